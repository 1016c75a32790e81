r"""The fused multi-step LIF op in pure PyTorch: one autograd node for a whole window.

:func:`brain_ai.core.functional.lif_multi_step` builds an autograd graph of ~10 nodes per
step and saves ~5 tensors per neuron-step. :class:`FusedLIF` runs the same rules (calling
:mod:`brain_ai.core.rules`, so every forward value is bit-identical) under ``no_grad``, saves
**one** fp32 tensor per neuron-step, the charged membrane ``h`` just before firing (after any
carried reset), and runs the reverse recursion by hand in one pass.

Backward, per step ``t`` in reverse (``d = h - θ``, ``s = H(d)``, ``g_v'`` = gradient of the
stored membrane, ``g_s`` = gradient of the spike output)::

    g_s  += g_v' · ∂v'/∂s                 (same-step reset; 0 with detach_reset)
    σ     = surrogate.backward(d, g_s)
    g_h   = g_v' · ∂v'/∂h + σ
    g_θ  += -σ  (+ reset terms)           g_leak += g_h · ∂h/∂leak
    g_x   = g_h · ∂h/∂x   (through the synapse: g_i = g_x + α·g_i(t+1))
    g_v   = g_h · ∂h/∂v · ∂v_pre/∂v       (the gradient of the previous stored membrane)

Everything else is recomputed from ``h`` with the forward's own operations: the spike ``s``,
the stored membrane of the previous step (learnable leak only), and the carried reset ``r``
(``r_t = s_{t-1}`` for the delayed timings; a cheap forward scan for the compensated ones).
Learnable ``α`` and the ``*_input`` charges with a learnable leak also keep a reference to the
input ``x`` (no copy) to rebuild the synaptic current.

:func:`fused_config` says whether a configuration is covered; :func:`run_fused` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from brain_ai.core import rules
from brain_ai.core.surrogates import Surrogate, step_function

__all__ = ["FusedConfig", "FusedLIF", "run_fused"]


@dataclass(frozen=True)
class FusedConfig:
    """The static (non-tensor) part of one fused call: rule names and options.

    Attributes:
        charge, comparator, reset, timing, v_reset, detach_reset: as in
            :class:`brain_ai.core.functional.LIFParams` (``timing`` = ``reset_timing``).
        surrogate: the spike's surrogate (its ``backward`` is called as is).
        synapse: a current-based synapse ``i = α·i + x`` is present.
        record_v: also return the stored membrane after every step.
    """

    charge: str
    comparator: str
    reset: str
    timing: str
    v_reset: float
    detach_reset: bool
    surrogate: Surrogate
    synapse: bool
    record_v: bool

    @property
    def carried(self) -> bool:
        return self.timing in rules.CARRIED_TIMINGS and self.reset != "none"

    @property
    def pre(self) -> bool:
        return self.timing in rules.PRE_CHARGE_TIMINGS

    @property
    def delayed(self) -> bool:
        """The stored membrane is ``h`` itself (no same-step reset)."""
        return self.timing in ("delayed", "delayed_pre") or self.reset == "none"


def _spike(d: Tensor, comparator: str) -> Tensor:
    """The forward of :func:`brain_ai.core.surrogates.heaviside`, without autograd."""
    return step_function(d, comparator == ">=")


def _reduce(g: Tensor, like: Tensor) -> Tensor:
    """Sum ``g`` over the dimensions that ``like`` was broadcast along (as autograd does)."""
    return g if g.shape == like.shape else g.sum_to_size(like.shape)


def _charge_grads(c: FusedConfig, g_h: Tensor, v1: Tensor | None, drive: Tensor | None,
                  leak: Tensor, need_leak: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(g_v1, g_drive, g_leak)`` of :func:`brain_ai.core.rules.charge`, in autograd's order."""
    vr = c.v_reset
    if c.charge == "beta":  # h = leak·v + x
        return g_h * leak, g_h, (g_h * v1 if need_leak else None)
    if c.charge == "tau":  # h = v - (v - vr)/τ + x
        g_a = (-g_h) / leak
        g_l = g_h * (((v1 - vr) / leak) / leak) if need_leak else None
        return g_h + g_a, g_h, g_l
    if c.charge == "tau_input":  # h = v + (x - (v - vr))/τ
        g_e = g_h / leak
        g_l = -g_h * (((drive - (v1 - vr)) / leak) / leak) if need_leak else None
        return g_h + (-g_e), g_e, g_l
    if c.charge == "rate":  # h = v - (v - vr)·q + x
        g_b = -g_h
        g_l = g_b * (v1 - vr) if need_leak else None
        return g_h + g_b * leak, g_h, g_l
    # "rate_input": h = v + (x - (v - vr))·q
    g_e = g_h * leak
    g_l = g_h * (drive - (v1 - vr)) if need_leak else None
    return g_h + (-g_e), g_e, g_l


class FusedLIF(torch.autograd.Function):
    """Whole-window LIF: ``(x (B,T,*f), v0, i0, leak, θ, α) -> (spikes, v_T[, i_T][, v_trace])``.

    ``i0``/``α`` are ``None`` without a synapse; ``i_T`` is returned only with one, ``v_trace``
    only with ``record_v``. Saves ``h`` ``(B, T, *f)`` (one tensor per neuron-step).
    """

    @staticmethod
    def forward(ctx, c: FusedConfig, x: Tensor, v0: Tensor, i0: Tensor | None,  # type: ignore[override]
                leak: Tensor, threshold: Tensor, alpha: Tensor | None) -> tuple[Tensor, ...]:
        ctx.set_materialize_grads(False)
        needs = ctx.needs_input_grad
        grad = any(needs)
        steps = x.shape[1]
        spikes = torch.empty_like(x)
        hs = torch.empty_like(x) if (grad or (c.record_v and c.delayed)) else None
        trace = hs if c.record_v and c.delayed else (
            torch.empty_like(x) if c.record_v else None)
        v, i = v0, i0
        for t in range(steps):
            x_t = x[:, t]
            r = rules.carried_reset(v, threshold, c.comparator) if c.carried else None
            if r is not None and c.pre:
                v = rules.apply_carried_reset_pre(v, r, c.reset, threshold, c.v_reset)
            if c.synapse:
                i = alpha * i + x_t
                h = rules.charge(v, i, leak, c.charge, c.v_reset)
            else:
                h = rules.charge(v, x_t, leak, c.charge, c.v_reset)
            if r is not None and not c.pre:
                h = rules.apply_carried_reset_post(h, r, c.reset, threshold, c.v_reset)
            d = h - threshold
            s = spikes[:, t]  # written in place: H(d) of the reference, without a cast copy
            s.copy_(d >= 0 if c.comparator == ">=" else d > 0)
            v = rules.apply_reset(h, s, r, c.reset, c.timing, threshold, c.v_reset,
                                  c.detach_reset)
            if hs is not None:
                hs[:, t] = h
            if trace is not None and trace is not hs:
                trace[:, t] = v
        outs: list[Tensor] = [spikes, v.clone() if v is v0 else v]
        if c.synapse:
            outs.append(i if i is not i0 else i.clone())
        if trace is not None:
            outs.append(trace)
        ctx.c = c
        if grad:
            keep_x = (c.synapse and needs[6]) or (
                needs[4] and c.charge in ("tau_input", "rate_input"))
            ctx.save_for_backward(hs, v0, i0, leak, threshold, alpha, x if keep_x else None)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        c: FusedConfig = ctx.c
        hs, v0, i0, leak, thr, alpha, x = ctx.saved_tensors
        needs = ctx.needs_input_grad
        need_leak, need_thr, need_alpha = needs[4], needs[5], c.synapse and needs[6]
        g_spk = grads[0]
        g_v = grads[1]
        pos = 2
        g_i_next: Tensor | None = None
        if c.synapse:
            g_i_next = grads[2]
            pos = 3
        g_tr = grads[pos] if c.record_v else None
        steps = hs.shape[1]
        vr = c.v_reset
        surrogate = c.surrogate

        # Carried resets r_t (detached): s_{t-1} for delayed timings, a scan for compensated.
        rs: list[Tensor | None] = [None] * steps
        if c.carried:
            r = rules.carried_reset(v0, thr, c.comparator)
            for t in range(steps):
                rs[t] = r
                h = hs[:, t]
                s = _spike(h - thr, c.comparator)
                v = rules.apply_reset(h, s, r, c.reset, c.timing, thr, vr, c.detach_reset)
                r = s if c.delayed else rules.carried_reset(v, thr, c.comparator)
        # Synaptic currents i_t (only for learnable α or an *_input charge with learnable leak).
        drives: list[Tensor | None] = [None] * steps
        i_prev: list[Tensor | None] = [None] * steps
        if x is not None:
            i = i0
            for t in range(steps):
                i_prev[t] = i
                i = alpha * i + x[:, t] if c.synapse else x[:, t]
                drives[t] = i

        g_x = torch.empty_like(hs) if needs[1] else None
        g_leak = torch.zeros_like(leak) if need_leak else None
        g_thr = torch.zeros_like(thr) if need_thr else None
        g_alpha = torch.zeros_like(alpha) if need_alpha else None
        for t in range(steps - 1, -1, -1):
            h = hs[:, t]
            d = h - thr
            r = rs[t]
            # the spike is needed by every same-step reset rule but subtract-without-θ-grad
            need_s = not c.delayed and (c.reset == "zero" or need_thr)
            s: Tensor = _spike(d, c.comparator) if need_s else None  # type: ignore[assignment]
            g_vp = g_v
            if g_tr is not None:
                g_vp = g_tr[:, t] if g_vp is None else g_vp + g_tr[:, t]
            g_s = None if g_spk is None else g_spk[:, t]
            # same-step reset v' = reset(h, s): its gradient w.r.t. h, s and θ
            g_h_reset: Tensor | None = g_vp
            thr_terms: list[Tensor] = []
            if g_vp is not None and not c.delayed:
                comp = c.timing in ("compensated", "compensated_pre")
                if c.reset == "subtract":
                    if not c.detach_reset:
                        ds = (-g_vp) * thr
                        g_s = ds if g_s is None else g_s + ds
                    if need_thr:
                        thr_terms.append((-g_vp) * (s - r if comp else s))
                elif comp:  # zero, compensated: v' = h - (s - r)·(h - vr)
                    g_h_reset = g_vp + (-(g_vp * (s - r)))
                    if not c.detach_reset:
                        ds = -(g_vp * (h if vr == 0.0 else h - vr))
                        g_s = ds if g_s is None else g_s + ds
                else:  # zero, immediate: v' = s·vr + (1 - s)·h
                    g_h_reset = g_vp * (1.0 - s)
                    if not c.detach_reset:
                        ds = g_vp * vr + (-(g_vp * h))
                        g_s = ds if g_s is None else g_s + ds
            sg = surrogate.backward(d, g_s) if g_s is not None else None
            if need_thr and sg is not None:
                thr_terms.append(-sg)
            if g_h_reset is None:
                g_h = sg if sg is not None else torch.zeros_like(h)
            else:
                g_h = g_h_reset if sg is None else g_h_reset + sg
            # carried reset after the charge: h2 = h - r·θ  |  h - r·(h - vr)
            if r is not None and not c.pre:
                if c.reset == "subtract":
                    if need_thr:
                        thr_terms.append((-g_h) * r)
                else:
                    g_h = g_h + (-(g_h * r))
            # charge
            v1 = None
            if need_leak:
                if t == 0:
                    v_prev = v0
                else:
                    hp = hs[:, t - 1]
                    v_prev = rules.apply_reset(hp, _spike(hp - thr, c.comparator), rs[t - 1],
                                               c.reset, c.timing, thr, vr, c.detach_reset)
                v1 = v_prev
                if r is not None and c.pre:
                    v1 = rules.apply_carried_reset_pre(v_prev, r, c.reset, thr, vr)
            g_v1, g_drive, g_l = _charge_grads(c, g_h, v1, drives[t], leak, need_leak)
            if g_l is not None:
                g_leak = g_leak + _reduce(g_l, leak)
            if c.synapse:
                g_cur = g_drive if g_i_next is None else g_drive + g_i_next
                if need_alpha:
                    g_alpha = g_alpha + _reduce(g_cur * i_prev[t], alpha)
                g_i_next = g_cur * alpha
                g_drive = g_cur
            if g_x is not None:
                g_x[:, t] = g_drive
            # carried reset before the charge: v1 = v - r·θ  |  (1 - r)·v (+ r·vr)
            if r is not None and c.pre:
                if c.reset == "subtract":
                    if need_thr:
                        thr_terms.append((-g_v1) * r)
                else:
                    g_v1 = g_v1 * (1 - r)
            for term in thr_terms:  # reduced one by one, in autograd's (reverse) order
                g_thr = g_thr + _reduce(term, thr)
            g_v = g_v1
        g_v0 = g_v if needs[2] else None
        g_i0 = g_i_next if (c.synapse and needs[3]) else None
        return None, g_x, g_v0, g_i0, g_leak, g_thr, g_alpha


def run_fused(c: FusedConfig, x: Tensor, v0: Tensor, i0: Tensor | None, leak: Tensor,
              threshold: Tensor, alpha: Tensor | None) -> tuple[Tensor, ...]:
    """Apply :class:`FusedLIF` (see there for inputs and outputs)."""
    return FusedLIF.apply(c, x, v0, i0, leak, threshold, alpha)
