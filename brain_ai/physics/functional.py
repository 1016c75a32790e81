r"""The pure step of the LIF family, and its multi-step path.

:func:`lif_step` is the whole neuron physics: ``(x, state, params) -> (spikes, state)``.
:func:`lif_multi_step` is the *one* multi-step path of the family, used by every sequence-mode
call (through :func:`brain_ai.core.unroll.snn_unroll`); a fused kernel replaces it without any
API change. It iterates with ``unbind`` (never ``x[t]`` on a grad-requiring tensor).

One step, in order (rules named in :mod:`brain_ai.physics.rules`)::

    x      <- delayed input  sum_k w_k(d) * history[k]          (learnable delays, optional)
    r      =  H(v - θ) detached                                  (carried reset timings only)
    v      <- carried reset before the charge                    ("*_pre" timings)
    c      =  rec(prev_spk)                                      (recurrent, optional)
    i      =  α·i + x (+ c)          drive = i                    (current-based synapse, optional)
    h      =  charge(v, drive) (+ c if no synapse)
    h      <- carried reset after the charge                     ("delayed", "compensated")
    h      <- v_reset where refractory                           (refractory, optional)
    θ_eff  =  θ + κ·a                                            (adaptation, optional)
    s      =  H(h - θ_eff) (comparator ">" or ">=")               (spikes exactly 0/1)
    v'     =  reset(h, s)                                        (same-step timings)
    a'     =  ρ·a + s ;  ref' = R if s else max(ref - 1, 0)
    out    =  s · g                                               (graded spikes, g = 1 default)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from brain_ai.physics import rules
from brain_ai.physics.state import SpikingState
from brain_ai.physics.surrogates import Surrogate

__all__ = ["LIFParams", "lif_multi_step", "lif_step"]


@dataclass(frozen=True, eq=False)
class LIFParams:
    """Resolved parameters of one LIF-family neuron for one call. Never mutated.

    Tensors broadcast against ``(B, *features)``. ``leak`` is β (``charge="beta"``), τ
    (``"tau"``, ``"tau_input"``) or ``q = 1/τ`` (``"rate"``, ``"rate_input"``), already clamped /
    reparameterized by the module.
    """

    leak: Tensor
    threshold: Tensor
    surrogate: Surrogate
    charge: str = "beta"
    comparator: str = ">"
    reset: str = "subtract"
    reset_timing: str = "immediate"
    v_reset: float = 0.0
    detach_reset: bool = False
    alpha: Tensor | None = None
    recurrent: Callable[[Tensor], Tensor] | None = None
    adapt_decay: Tensor | None = None
    adapt_scale: Tensor | None = None
    refractory_steps: int = 0
    graded: Tensor | None = None
    delays: Tensor | None = None


def _delayed_input(x: Tensor, history: Tensor, delays: Tensor) -> tuple[Tensor, Tensor]:
    """Push ``x`` into ``history`` ``(B, D, *f)`` and read it at per-neuron ``delays`` ``(*f)``.

    A fractional delay ``d`` reads ``(1 - φ)·h[⌊d⌋] + φ·h[⌊d⌋ + 1]`` with ``φ = d - ⌊d⌋``; the
    gradient w.r.t. ``d`` is ``h[⌊d⌋ + 1] - h[⌊d⌋]``, non-zero at integer delays too.
    """
    history = torch.cat((x.unsqueeze(1), history[:, :-1]), dim=1)
    depth = history.shape[1]
    lower = delays.detach().floor()
    frac = delays - lower
    k = torch.arange(depth, device=x.device, dtype=x.dtype).view(-1, *([1] * delays.dim()))
    hi = (lower + 1).clamp(max=depth - 1)
    weights = (k == lower).to(x.dtype) * (1 - frac) + (k == hi).to(x.dtype) * frac
    return (history * weights).sum(dim=1), history


def _charge(v: Tensor, x: Tensor, state: SpikingState, p: LIFParams
            ) -> tuple[Tensor, Tensor | None]:
    """``(h, i)``: synaptic current (if any), recurrent input (if any) and the charge rule."""
    rec = p.recurrent(state.prev_spk) if p.recurrent is not None else None
    i = state.i
    if p.alpha is not None:
        i = p.alpha * i + x
        if rec is not None:
            i = i + rec
        return rules.charge(v, i, p.leak, p.charge, p.v_reset), i
    h = rules.charge(v, x, p.leak, p.charge, p.v_reset)
    return (h if rec is None else h + rec), i


def lif_step(x: Tensor, state: SpikingState, p: LIFParams) -> tuple[Tensor, SpikingState]:
    """One step of the LIF family (see the module docstring for the equations).

    Args:
        x: input current ``(B, *features)``.
        state: previous state; ``state.v.shape == x.shape``; optional fields must be set
            exactly when the corresponding feature is enabled in ``p``.
        p: resolved parameters (:class:`LIFParams`).
    Returns:
        ``(spikes, new_state)``; spikes are 0/1 (times ``p.graded`` if set), shape of ``x``.
    """
    history = state.spike_history
    if p.delays is not None:
        x, history = _delayed_input(x, history, p.delays)

    v = state.v
    r = None
    if p.reset_timing in rules.CARRIED_TIMINGS:
        r = rules.carried_reset(v, p.threshold, p.comparator)
        if p.reset_timing in rules.PRE_CHARGE_TIMINGS:
            v = rules.apply_carried_reset_pre(v, r, p.reset, p.threshold, p.v_reset)

    h, i = _charge(v, x, state, p)
    if r is not None and p.reset_timing not in rules.PRE_CHARGE_TIMINGS:
        # snnTorch's zero reset subtracts a second evaluation of the charged value
        # (base - r·base'): two autograd branches. Mirroring it gives its gradients bit for bit.
        again = _charge(v, x, state, p)[0] if p.reset == "zero" else h
        h = rules.apply_carried_reset_post(h, r, p.reset, p.threshold, p.v_reset, again)

    ref = state.ref
    if p.refractory_steps > 0:
        h = torch.where(ref > 0, torch.full_like(h, p.v_reset), h)

    threshold = p.threshold
    if p.adapt_scale is not None:
        threshold = threshold + p.adapt_scale * state.a

    s = rules.fire(h, threshold, p.surrogate, p.comparator)
    v_new = rules.apply_reset(h, s, r, p.reset, p.reset_timing, threshold, p.v_reset,
                              p.detach_reset)

    a = state.a
    if p.adapt_decay is not None:
        a = p.adapt_decay * a + s
    if p.refractory_steps > 0:
        ref = torch.where(s > 0, torch.full_like(ref, float(p.refractory_steps)),
                          (ref - 1).clamp_min(0))

    out = s if p.graded is None else s * p.graded
    new_state = SpikingState(
        v=v_new, i=i, a=a,
        prev_spk=out if state.prev_spk is not None else None,
        spike_history=history, ref=ref,
    )
    return out, new_state


def lif_multi_step(
    x_seq: Tensor, state: SpikingState, p: LIFParams, record: Sequence[str] = ()
) -> tuple[Tensor, SpikingState, dict[str, Tensor]]:
    """Run :func:`lif_step` over ``x_seq`` ``(B, T, *features)``.

    Returns:
        ``(spikes (B, T, *f), final_state, traces)`` where ``traces[name]`` stacks
        ``state.<name>`` after every step, ``(B, T, *f)``.
    """
    spikes: list[Tensor] = []
    traces: dict[str, list[Tensor]] = {name: [] for name in record}
    for x_t in x_seq.unbind(1):
        s, state = lif_step(x_t, state, p)
        spikes.append(s)
        for name in record:
            traces[name].append(getattr(state, name))
    return (torch.stack(spikes, 1), state,
            {name: torch.stack(vals, 1) for name, vals in traces.items()})
