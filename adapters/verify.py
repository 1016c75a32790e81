"""``verify_migration``: proof that a migrated model computes what the original computed.

The report has one row per neuron layer (spike mismatches, max ``|Δmembrane|``) and one per
gradient (the input and every parameter, paired by name): max relative ``|Δ|``
(:func:`brain_ai.conformance.metrics.max_rel_diff`). Gradients come from the same scalar on
both sides: ``Σ spikes·w_s + Σ membrane·w_m`` of the output layer, with fixed random
weights ``w`` (seeded), so that every spike and membrane value is tested.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from brain_ai.conformance.metrics import max_abs_diff, max_rel_diff, spike_mismatches
from brain_ai.core.axes import batch_to_time_first, time_to_batch_first
from brain_ai.core.snn import SpikingSequential

__all__ = ["LayerRow", "MigrationReport", "verify_migration"]


@dataclass
class LayerRow:
    """Comparison of one neuron layer over the whole sequence."""

    name: str
    spike_mismatches: int
    max_abs_membrane: float
    firing_rate: float


@dataclass
class MigrationReport:
    """Per-layer and per-gradient differences; :attr:`equivalent` applies the tolerances."""

    layers: list[LayerRow]
    grads: dict[str, float]
    output_spike_mismatches: int
    spike_tol: int = 0
    membrane_tol: float = 0.0
    grad_tol: float = 1e-6
    notes: list[str] = field(default_factory=list)

    @property
    def equivalent(self) -> bool:
        return (self.output_spike_mismatches <= self.spike_tol
                and all(r.spike_mismatches <= self.spike_tol for r in self.layers)
                and all(r.max_abs_membrane <= self.membrane_tol for r in self.layers)
                and all(g <= self.grad_tol for g in self.grads.values()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "equivalent": self.equivalent,
            "output_spike_mismatches": self.output_spike_mismatches,
            "layers": [vars(r) for r in self.layers],
            "grads": self.grads,
            "tolerances": {"spikes": self.spike_tol, "membrane": self.membrane_tol,
                           "grad": self.grad_tol},
            "notes": self.notes,
        }

    def __str__(self) -> str:
        lines = [f"{'layer':<24} {'spike mismatches':>16} {'max|Δmembrane|':>15} {'rate':>6}"]
        for r in self.layers:
            lines.append(f"{r.name:<24} {r.spike_mismatches:>16d} {r.max_abs_membrane:>15.3g} "
                         f"{r.firing_rate:>6.3f}")
        lines.append(f"{'gradient':<24} {'max rel |Δ|':>16}")
        for name, g in self.grads.items():
            lines.append(f"{name:<24} {g:>16.3g}")
        lines.append(f"output spike mismatches: {self.output_spike_mismatches}")
        lines.append("EQUIVALENT" if self.equivalent else "NOT EQUIVALENT")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


Records = dict[str, tuple[list[Tensor], list[Tensor]]]


def _hook_neurons(model: nn.Module, is_neuron: Callable[[nn.Module], bool],
                  read: Callable[[nn.Module, Any], tuple[Tensor, Tensor]]
                  ) -> tuple[Records, list[Any]]:
    records: Records = {}
    handles = []
    for name, m in model.named_modules():
        if name and is_neuron(m):
            records[name] = ([], [])

            def hook(mod: nn.Module, _inp: Any, out: Any, name: str = name) -> None:
                spk, mem = read(mod, out)
                records[name][0].append(spk)
                records[name][1].append(mem)

            handles.append(m.register_forward_hook(hook))
    return records, handles


def _weights(shape: torch.Size, gen: torch.Generator) -> Tensor:
    return torch.randn(shape, generator=gen)


def _param_grads(model: nn.Module, rename: Callable[[str], str] = str
                 ) -> dict[str, Tensor | None]:
    return {rename(name.replace(".neuron.", ".")): p.grad
            for name, p in model.named_parameters()}


def verify_migration(original: nn.Module, migrated: nn.Module, inputs: Tensor, *,
                     seed: int = 0, grad_tol: float = 1e-6) -> MigrationReport:
    """Run both models on ``inputs`` and compare spikes, membranes and gradients.

    Args:
        original: the snnTorch model (not modified; its hidden states are reset first).
        migrated: the result of :func:`brain_ai.adapters.snntorch.migrate`.
        inputs: what ``original`` consumes. For an ``init_hidden`` ``nn.Sequential`` (called
            once per step) this is the time-first sequence ``(T, B, ...)``; the migrated
            :class:`SpikingSequential` receives it batch-first through the axis helper.
            For any other model, ``inputs`` is passed to both models unchanged.
    """
    import snntorch as snn

    def is_peer(m: nn.Module) -> bool:
        return isinstance(m, snn.SpikingNeuron)

    for m in original.modules():
        if is_peer(m):
            m.reset_mem()
    gen = torch.Generator().manual_seed(seed)
    x_o = inputs.detach().clone().requires_grad_(inputs.is_floating_point())
    x_m = inputs.detach().clone().requires_grad_(inputs.is_floating_point())

    def read_peer(mod: nn.Module, out: Any) -> tuple[Tensor, Tensor]:
        spk = out[0] if isinstance(out, tuple) else out
        return spk, mod.mem

    rec_o, handles = _hook_neurons(original, is_peer, read_peer)
    try:
        if isinstance(migrated, SpikingSequential):
            steps = [original(x_t) for x_t in x_o.unbind(0)]
            out_o = torch.stack([s[0] if isinstance(s, tuple) else s for s in steps])
            last = list(rec_o)[-1]
            mem_o = torch.stack(rec_o[last][1])
            res = migrated(time_to_batch_first(x_m), return_details=True)
            rec_m = {k: ([batch_to_time_first(res.spikes[k])],
                         [batch_to_time_first(res.membrane[k])]) for k in res.spikes}
            out_m = batch_to_time_first(res.output)
            mem_m = rec_m[last][1][0]
            outs_o, outs_m = [out_o, mem_o], [out_m, mem_m]
        else:
            from brain_ai.adapters.snntorch import SnnTorchNeuron

            rec_m, handles_m = _hook_neurons(
                migrated, lambda m: isinstance(m, SnnTorchNeuron),
                lambda _m, out: (out[0], out[-1]))
            handles += handles_m
            outs_o = [t for t in _leaves(original(x_o)) if t.is_floating_point()]
            outs_m = [t for t in _leaves(migrated(x_m)) if t.is_floating_point()]
    finally:
        for h in handles:
            h.remove()

    layers = []
    for name, (spk_o, mem_o_list) in rec_o.items():
        if name not in rec_m:
            raise KeyError(f"verify_migration: layer {name} missing in the migrated model")
        s_o, m_o = _cat(spk_o), _cat(mem_o_list)
        s_m, m_m = _cat(rec_m[name][0]), _cat(rec_m[name][1])
        layers.append(LayerRow(name, spike_mismatches(s_o, s_m), max_abs_diff(m_o, m_m),
                               float(s_o.detach().float().mean())))
    out_mismatch = spike_mismatches(outs_o[0], outs_m[0]) if outs_o else 0

    loss_o = sum((t * _weights(t.shape, gen)).sum() for t in outs_o)
    gen = torch.Generator().manual_seed(seed)
    loss_m = sum((t * _weights(t.shape, gen)).sum() for t in outs_m)
    grads: dict[str, float] = {}
    notes: list[str] = []
    if isinstance(loss_o, Tensor) and loss_o.requires_grad:
        loss_o.backward()
        loss_m.backward()  # type: ignore[union-attr]
        grads["input"] = max_rel_diff(x_m.grad, x_o.grad) if x_o.grad is not None else 0.0
        from brain_ai.adapters.snntorch import brain_ai_param_name

        g_o = _param_grads(original, brain_ai_param_name)
        g_m = _param_grads(migrated)
        for name, go in g_o.items():
            gm = g_m.get(name)
            if go is None and gm is None:
                continue
            if go is None or gm is None:
                grads[name] = float("inf")
                notes.append(f"{name}: gradient on one side only")
                continue
            grads[name] = max_rel_diff(gm, go)
        for name in g_m.keys() - g_o.keys():
            notes.append(f"{name}: parameter only in the migrated model")
            grads[name] = float("inf")
    original.zero_grad(set_to_none=True)
    migrated.zero_grad(set_to_none=True)
    return MigrationReport(layers, grads, out_mismatch, grad_tol=grad_tol, notes=notes)


def _cat(ts: list[Tensor]) -> Tensor:
    return ts[0] if len(ts) == 1 else torch.stack(ts)


def _leaves(out: Any) -> list[Tensor]:
    import torch.utils._pytree as pytree

    return [t for t in pytree.tree_leaves(out) if isinstance(t, Tensor)]
