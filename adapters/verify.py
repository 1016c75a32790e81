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
import math
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
    """Comparison of one neuron layer over the whole sequence (all of its calls).

    ``calls`` is 0 for a layer that never ran (defined but unused by the model's
    ``forward``: listed as *unused*), 1 otherwise. A layer that ran but never spiked
    (``firing_rate == 0``) proves nothing: it is *untested*, never "equal".
    """

    name: str
    spike_mismatches: int
    max_abs_membrane: float
    firing_rate: float
    calls: int = 1

    @property
    def status(self) -> str:
        """``"equal"``, ``"DIFFERS"``, ``"untested"`` (never spiked) or ``"unused"``."""
        if self.calls == 0:
            return "unused"
        if self.spike_mismatches or not self.max_abs_membrane <= 0.0:
            return "DIFFERS"
        return "untested" if self.firing_rate == 0.0 else "equal"


@dataclass
class MigrationReport:
    """Per-layer and per-gradient differences; :attr:`verdict` applies the tolerances.

    Gradients are compared wherever the peer's gradient is finite; ``nonfinite[name]`` counts
    the entries where it is not (e.g. snnTorch's ``sigmoid`` surrogate, whose backward is
    ``inf/inf`` for ``slope·(U - θ) < -88.7``; brain_ai's stays finite there).
    """

    layers: list[LayerRow]
    grads: dict[str, float]
    output_spike_mismatches: int
    spike_tol: int = 0
    membrane_tol: float = 0.0
    grad_tol: float = 1e-6
    notes: list[str] = field(default_factory=list)
    nonfinite: dict[str, int] = field(default_factory=dict)

    def _layer_ok(self, r: LayerRow) -> bool:
        return r.spike_mismatches <= self.spike_tol and r.max_abs_membrane <= self.membrane_tol

    @property
    def equivalent(self) -> bool:
        """Nothing differs beyond the tolerances wherever both sides were compared."""
        return (self.output_spike_mismatches <= self.spike_tol
                and all(self._layer_ok(r) for r in self.layers)
                and all(g <= self.grad_tol for g in self.grads.values()))

    @property
    def untested(self) -> list[str]:
        """Layers that ran but never spiked (their equality proves nothing)."""
        return [r.name for r in self.layers if r.calls and r.firing_rate == 0.0
                and self._layer_ok(r)]

    @property
    def verdict(self) -> str:
        """``"EQUIVALENT"``, ``"NOT EQUIVALENT"`` or ``"UNTESTED"`` (equal, but some layer
        never spiked)."""
        if not self.equivalent:
            return "NOT EQUIVALENT"
        return "UNTESTED" if self.untested else "EQUIVALENT"

    def to_dict(self) -> dict[str, Any]:
        return {
            "equivalent": self.equivalent,
            "verdict": self.verdict,
            "output_spike_mismatches": self.output_spike_mismatches,
            "layers": [{**vars(r), "status": r.status} for r in self.layers],
            "grads": self.grads,
            "nonfinite_peer_grads": self.nonfinite,
            "tolerances": {"spikes": self.spike_tol, "membrane": self.membrane_tol,
                           "grad": self.grad_tol},
            "notes": self.notes,
        }

    def __str__(self) -> str:
        lines = [f"{'layer':<24} {'spike mismatches':>16} {'max|Δmembrane|':>15} {'rate':>6} "
                 f"{'verdict':>9}"]
        for r in self.layers:
            lines.append(f"{r.name:<24} {r.spike_mismatches:>16d} {r.max_abs_membrane:>15.3g} "
                         f"{r.firing_rate:>6.3f} {r.status:>9}")
        lines.append(f"{'gradient':<24} {'max rel |Δ|':>16}")
        for name, g in self.grads.items():
            extra = ""
            if self.nonfinite.get(name):
                extra = (f"  (equal wherever the peer is finite; the peer is non-finite at "
                         f"{self.nonfinite[name]} entries)")
            lines.append(f"{name:<24} {g:>16.3g}{extra}")
        lines.append(f"output spike mismatches: {self.output_spike_mismatches}")
        unused = [r.name for r in self.layers if r.calls == 0]
        if unused:
            lines.append(f"unused (never ran): {', '.join(unused)}")
        if self.verdict == "UNTESTED":
            lines.append(f"UNTESTED: no difference, but {', '.join(self.untested)} never spiked "
                         "(raise the input scale)")
        else:
            lines.append(self.verdict)
        if self.nonfinite:
            total = sum(self.nonfinite.values())
            lines.append(f"note: gradients equal wherever the peer is finite; the peer is "
                         f"non-finite at {total} entries")
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
    records_o: Sequence[tuple[Tensor, Tensor] | None],
    records_m: Sequence[tuple[Tensor, Tensor] | None],
    out_o: Tensor,
    out_m: Tensor,
    pairs: Sequence[Pair],
    *,
    seed: int = 0,
    grad_tol: float = 1e-6,
    notes: Sequence[str] = (),
) -> MigrationReport:
    """The report from both runs' per-layer ``(spikes, membrane)`` (same layout each side).

    A record is ``None`` for a layer that never ran (on both sides: a row with
    ``calls=0``). ``pairs`` are the tensors whose gradients are compared (the input and the
    parameters); gradients are compared where the original's is finite.
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
    for name, rec_o, rec_m in zip(names, records_o, records_m, strict=True):
        if rec_o is None or rec_m is None:
            ran = rec_o if rec_o is not None else rec_m
            layers.append(LayerRow(name, 0 if ran is None else int(ran[0].numel()),
                                   0.0 if ran is None else math.inf, 0.0, 0 if ran is None
                                   else 1))
            continue
        (s_o, v_o), (s_m, v_m) = rec_o, rec_m
        if s_o.shape != s_m.shape:
            layers.append(LayerRow(name, max(s_o.numel(), s_m.numel()), math.inf,
                                   float(s_o.detach().float().mean()), 1))
            continue
        layers.append(LayerRow(name, spike_mismatches(s_m, s_o), max_abs_diff(v_m, v_o),
                               float(s_o.detach().float().mean())))
        gs, gv = weights(s_o), weights(v_o)
        loss_o = loss_o + (s_o * gs).sum() + (v_o * gv).sum()
        loss_m = loss_m + (s_m * gs).sum() + (v_m * gv).sum()
    grads: dict[str, float] = {}
    nonfinite: dict[str, int] = {}
    live = [p for p in pairs if p[1].requires_grad and p[2].requires_grad]
    if live and loss_o.requires_grad and loss_m.requires_grad:
        g_o = torch.autograd.grad(loss_o, [a for _, a, _ in live], allow_unused=True)
        g_m = torch.autograd.grad(loss_m, [b for _, _, b in live], allow_unused=True)
        for (name, a, _), ga, gb in zip(live, g_o, g_m, strict=True):
            # unused on one side = a zero gradient there (a non-zero other side then fails)
            ga = torch.zeros_like(a) if ga is None else ga
            gb = torch.zeros_like(a) if gb is None else gb
            finite = torch.isfinite(ga)
            if not bool(finite.all()):
                nonfinite[name] = int((~finite).sum())
                ga, gb = ga[finite], gb[finite]
            rel = max_rel_diff(gb, ga)
            grads[name] = math.inf if math.isnan(rel) else rel
    return MigrationReport(layers, grads, spike_mismatches(out_m, out_o), grad_tol=grad_tol,
                           notes=list(notes), nonfinite=nonfinite)


class Recorder:
    """Every call of every neuron layer, by name: ``(spikes, membrane)`` per call.

    :meth:`records` concatenates a layer's calls (flattened, in call order), so layers
    called once per step, once per sequence or several times per forward (shared modules,
    attention) compare alike; ``None`` for a layer that never ran.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.calls: dict[str, list[tuple[Tensor, Tensor]]] = {n: [] for n in names}

    def add(self, name: str, spikes: Tensor, membrane: Tensor) -> None:
        self.calls[name].append((spikes, membrane))

    def records(self) -> list[tuple[Tensor, Tensor] | None]:
        return [None if not c else (torch.cat([s.reshape(-1) for s, _ in c]),
                                    torch.cat([v.reshape(-1) for _, v in c]))
                for c in self.calls.values()]

    def probe(self, model: nn.Module, names: Sequence[str]) -> list[Any]:
        """Probe the converted modules of ``model`` at ``names`` (they report spikes and
        membranes, see :class:`~brain_ai.adapters.hidden_state.HiddenStateModule`)."""
        from brain_ai.adapters.hidden_state import HiddenStateModule

        handles = []
        for name in names:
            m = model.get_submodule(name)
            if not isinstance(m, HiddenStateModule):
                raise ConversionError("verify_migration", f"{name} is not a converted neuron "
                                      "in the migrated model", got=type(m).__name__,
                                      expected="a module migrate() made",
                                      hint="pass the model migrate() returned")
            handles.append(m.register_probe(
                lambda _m, s, v, name=name: self.add(name, s, v)))
        return handles

    def hook(self, model: nn.Module, names: Sequence[str],
             read: Callable[[nn.Module, Any], tuple[Tensor, Tensor]]) -> list[Any]:
        """Forward hooks on the peer's neurons at ``names``; ``read(module, output)`` gives
        ``(spikes, membrane)``."""
        handles = []
        for name in names:
            def hook(mod: nn.Module, _inp: Any, out: Any, name: str = name) -> None:
                self.add(name, *read(mod, out))
            handles.append(model.get_submodule(name).register_forward_hook(hook))
        return handles


def flat_output(out: Any) -> Tensor:
    """Every tensor a model returned, flattened and concatenated (the compared output)."""
    import torch.utils._pytree as pytree

    leaves = [t for t in pytree.tree_leaves(out) if isinstance(t, Tensor)]
    if not leaves:
        raise ConversionError("verify_migration", "the model returned no tensor",
                              got=type(out).__name__, expected="a tensor or tuple of tensors",
                              hint="verify a model whose forward returns its output")
    return torch.cat([t.reshape(-1) for t in leaves])


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
            For any other model, ``inputs`` is passed to both models unchanged and every
            tensor each returns is compared; every neuron is compared over all its calls (a
            neuron the model never calls is listed as unused).
        seed: RNG state of both runs (dropout) and of the random loss weights.
        grad_tol: largest max-relative gradient difference that counts as equivalent.
    Returns:
        A :class:`MigrationReport`; gradients are compared where snnTorch's are finite
        (``report.nonfinite`` counts the entries where they are not).
    """
    import snntorch as snn

    from brain_ai.adapters.hidden_state import stores
    from brain_ai.adapters.snntorch import brain_ai_param_name

    peers = [(n, m) for n, m in original.named_modules() if isinstance(m, snn.SpikingNeuron)]
    names = [n or "<model>" for n, _ in peers]

    def reset_peers() -> None:
        for _, m in peers:
            m.reset_mem()

    def read(m: nn.Module, out: Any) -> tuple[Tensor, Tensor]:
        return (out[0] if isinstance(out, tuple) else out), m.mem

    x_o = inputs.detach().clone().requires_grad_(inputs.is_floating_point())
    x_m = inputs.detach().clone().requires_grad_(inputs.is_floating_point())
    rec_o = Recorder(names)
    with isolated(original, migrated, cleanup=reset_peers), contextlib.ExitStack() as stack:
        reset_peers()
        for store in stores(migrated):
            stack.enter_context(store.using({}))
        handles = []
        for name, (_, m) in zip(names, peers, strict=True):
            handles.append(m.register_forward_hook(
                lambda mod, _i, out, name=name: rec_o.add(name, *read(mod, out))))
        try:
            if isinstance(migrated, SpikingSequential):
                steps = seeded(lambda: [original(x_t) for x_t in x_o.unbind(0)], seed)
                out_o = torch.stack([_first(s) for s in steps])
                res = seeded(lambda: migrated(time_to_batch_first(x_m), return_details=True),
                             seed)
                out_m = batch_to_time_first(res.output)
                records_m: list[tuple[Tensor, Tensor] | None] = [
                    (batch_to_time_first(res.spikes[k]).reshape(-1),
                     batch_to_time_first(res.membrane[k]).reshape(-1)) for k in res.spikes]
                records_o = [None if r is None else (r[0], r[1]) for r in _per_step(rec_o)]
            else:
                rec_m = Recorder(names)
                handles += rec_m.probe(migrated, [n for n, _ in peers])
                out_o = flat_output(seeded(lambda: original(x_o), seed))
                out_m = flat_output(seeded(lambda: migrated(x_m), seed))
                records_o, records_m = rec_o.records(), rec_m.records()
        finally:
            for h in handles:
                h.remove()
        migrated_params = {_peer_side(n): p for n, p in migrated.named_parameters()}
        pairs: list[Pair] = [("input", x_o, x_m)]
        for name, p in original.named_parameters():
            key = brain_ai_param_name(name)
            if key not in migrated_params:
                raise ConversionError("verify_migration", f"parameter {name!r} has no "
                                      "counterpart in the migrated model", got=name,
                                      expected=key, hint="pass the model migrate() returned")
            pairs.append((name, p, migrated_params[key]))
        return compare_runs(names, records_o, records_m, out_o, out_m, pairs,
                            seed=seed, grad_tol=grad_tol)


def _per_step(rec: Recorder) -> list[tuple[Tensor, Tensor] | None]:
    """Per-step calls of an ``init_hidden`` Sequential, in brain_ai's time-first layout."""
    return [None if not c else (torch.stack([s for s, _ in c]).reshape(-1),
                                torch.stack([v for _, v in c]).reshape(-1))
            for c in rec.calls.values()]


def _peer_side(name: str) -> str:
    """A migrated parameter's name as the peer spells its path (drop-in shims hold their
    brain_ai neuron in ``.neuron``)."""
    name = name.replace(".neuron.", ".")
    return name.removeprefix("neuron.")
