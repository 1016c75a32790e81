"""``verify_migration``: proof that a migrated model computes what the original computed.

The report has one row per neuron layer (spike mismatches, max ``|Δmembrane|``, firing rate)
and one per gradient (the input and every parameter, paired by name): max relative ``|Δ|``
(:func:`brain_ai.adapters.metrics.max_rel_diff`). Gradients come from the same scalar on
both sides, ``Σ G·output + Σ_layers (G_s·spikes + G_v·membrane)`` with fixed random ``G``
(seeded), so every spike and membrane value is tested.

Both models run from the same RNG state (dropout masks agree), and both get back their
buffers (BatchNorm running statistics) and lose any hidden peer state afterwards: verifying
changes neither model. :func:`compare_runs` and :func:`isolated` are the shared core of the
snnTorch and SpikingJelly verifiers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from brain_ai.adapters.metrics import max_abs_diff, max_rel_diff, spike_mismatches
from brain_ai.core.snn import SpikingSequential
from brain_ai.errors import ConversionError
from brain_ai.physics.axes import batch_to_time_first, time_to_batch_first

__all__ = ["LayerRow", "MigrationReport", "compare_runs", "isolated", "seeded",
           "verify_migration"]


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


@contextlib.contextmanager
def isolated(*models: nn.Module, cleanup: Callable[[], None] | None = None) -> Iterator[None]:
    """Restore every buffer of ``models`` afterwards and run ``cleanup`` (hidden peer state)."""
    saved = [(b, b.detach().clone()) for m in models for b in m.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in saved:
                if b.shape == value.shape:
                    b.copy_(value)
        if cleanup is not None:
            cleanup()


def seeded(fn: Callable[[], Any], seed: int) -> Any:
    """``fn()`` from a fixed RNG state, leaving the global RNG untouched."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return fn()


Pair = tuple[str, Tensor, Tensor]  # name, original's tensor, migrated's tensor


def compare_runs(
    names: Sequence[str],
    records_o: Sequence[tuple[Tensor, Tensor]],
    records_m: Sequence[tuple[Tensor, Tensor]],
    out_o: Tensor,
    out_m: Tensor,
    pairs: Sequence[Pair],
    *,
    seed: int = 0,
    grad_tol: float = 1e-6,
    notes: Sequence[str] = (),
) -> MigrationReport:
    """The report from both runs' per-layer ``(spikes, membrane)`` (same layout each side).

    ``pairs`` are the tensors whose gradients are compared (the input and the parameters).
    """
    if len(records_o) != len(records_m):
        raise ConversionError("compare_runs", "the models have different numbers of neuron "
                              "layers", got=len(records_m), expected=len(records_o),
                              hint="pass the model migrate() returned for `original`")
    gen = torch.Generator().manual_seed(seed)

    def weights(like: Tensor) -> Tensor:
        return torch.randn(like.shape, generator=gen, dtype=torch.float32).to(like)

    layers = []
    g = weights(out_o)
    loss_o, loss_m = (out_o * g).sum(), (out_m * g).sum()
    for name, (s_o, v_o), (s_m, v_m) in zip(names, records_o, records_m, strict=True):
        layers.append(LayerRow(name, spike_mismatches(s_m, s_o), max_abs_diff(v_m, v_o),
                               float(s_o.detach().float().mean())))
        gs, gv = weights(s_o), weights(v_o)
        loss_o = loss_o + (s_o * gs).sum() + (v_o * gv).sum()
        loss_m = loss_m + (s_m * gs).sum() + (v_m * gv).sum()
    grads: dict[str, float] = {}
    live = [p for p in pairs if p[1].requires_grad and p[2].requires_grad]
    if live and loss_o.requires_grad and loss_m.requires_grad:
        g_o = torch.autograd.grad(loss_o, [a for _, a, _ in live], allow_unused=True)
        g_m = torch.autograd.grad(loss_m, [b for _, _, b in live], allow_unused=True)
        for (name, a, _), ga, gb in zip(live, g_o, g_m, strict=True):
            # unused on one side = a zero gradient there (a non-zero other side then fails)
            ga = torch.zeros_like(a) if ga is None else ga
            gb = torch.zeros_like(a) if gb is None else gb
            grads[name] = max_rel_diff(gb, ga)
    return MigrationReport(layers, grads, spike_mismatches(out_m, out_o), grad_tol=grad_tol,
                           notes=list(notes))


def _hook(model: nn.Module, is_neuron: Callable[[nn.Module], bool],
          read: Callable[[nn.Module, Any], tuple[Tensor, Tensor]]
          ) -> tuple[dict[str, tuple[list[Tensor], list[Tensor]]], list[Any]]:
    records: dict[str, tuple[list[Tensor], list[Tensor]]] = {}
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


def _stacked(records: dict[str, tuple[list[Tensor], list[Tensor]]]
             ) -> list[tuple[Tensor, Tensor]]:
    return [(torch.stack(s), torch.stack(v)) for s, v in records.values()]


def _first(out: Any) -> Tensor:
    import torch.utils._pytree as pytree

    leaves = [t for t in pytree.tree_leaves(out) if isinstance(t, Tensor)]
    if not leaves:
        raise ConversionError("verify_migration", "the model returned no tensor",
                              got=type(out).__name__, expected="a tensor or tuple of tensors",
                              hint="verify a model whose forward returns its output")
    return leaves[0]


def verify_migration(original: nn.Module, migrated: nn.Module, inputs: Tensor, *,
                     seed: int = 0, grad_tol: float = 1e-6) -> MigrationReport:
    """Run an snnTorch model and its migration on ``inputs`` and compare everything.

    Args:
        original: the snnTorch model (left unchanged: buffers restored, hidden states reset).
        migrated: the result of :func:`brain_ai.adapters.snntorch.migrate`.
        inputs: what ``original`` consumes. For an ``init_hidden`` ``nn.Sequential`` (called
            once per step) this is the time-first sequence ``(T, B, ...)``; the migrated
            :class:`SpikingSequential` receives it batch-first through the axis helper.
            For any other model, ``inputs`` is passed to both models unchanged and the first
            tensor each returns is the compared output.
        seed: RNG state of both runs (dropout) and of the random loss weights.
        grad_tol: largest max-relative gradient difference that counts as equivalent.
    """
    import snntorch as snn

    from brain_ai.adapters.snntorch import SnnTorchNeuron, brain_ai_param_name

    peers = [m for m in original.modules() if isinstance(m, snn.SpikingNeuron)]

    def reset_peers() -> None:
        for m in peers:
            m.reset_mem()

    x_o = inputs.detach().clone().requires_grad_(inputs.is_floating_point())
    x_m = inputs.detach().clone().requires_grad_(inputs.is_floating_point())
    with isolated(original, migrated, cleanup=reset_peers):
        reset_peers()
        rec_o, handles = _hook(original, lambda m: isinstance(m, snn.SpikingNeuron),
                               lambda m, out: (out[0] if isinstance(out, tuple) else out, m.mem))
        try:
            if isinstance(migrated, SpikingSequential):
                steps = seeded(lambda: [original(x_t) for x_t in x_o.unbind(0)], seed)
                out_o = torch.stack([_first(s) for s in steps])
                res = seeded(lambda: migrated(time_to_batch_first(x_m), return_details=True),
                             seed)
                out_m = batch_to_time_first(res.output)
                records_m = [(batch_to_time_first(res.spikes[k]),
                              batch_to_time_first(res.membrane[k])) for k in res.spikes]
            else:
                rec_m, handles_m = _hook(migrated, lambda m: isinstance(m, SnnTorchNeuron),
                                         lambda _m, out: (out[0], out[-1]))
                handles += handles_m
                out_o = _first(seeded(lambda: original(x_o), seed))
                out_m = _first(seeded(lambda: migrated(x_m), seed))
                records_m = _stacked(rec_m)
        finally:
            for h in handles:
                h.remove()
        migrated_params = {n.replace(".neuron.", "."): p for n, p in migrated.named_parameters()}
        pairs: list[Pair] = [("input", x_o, x_m)]
        for name, p in original.named_parameters():
            key = brain_ai_param_name(name)
            if key not in migrated_params:
                raise ConversionError("verify_migration", f"parameter {name!r} has no "
                                      "counterpart in the migrated model", got=name,
                                      expected=key, hint="pass the model migrate() returned")
            pairs.append((name, p, migrated_params[key]))
        return compare_runs(list(rec_o), _stacked(rec_o), records_m, out_o, out_m, pairs,
                            seed=seed, grad_tol=grad_tol)
