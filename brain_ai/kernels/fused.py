r"""The fused multi-step LIF op in pure PyTorch: one autograd node for a whole window.

:func:`brain_ai.physics.functional.lif_multi_step` builds an autograd graph of ~10 nodes per
step and saves ~5 tensors per neuron-step. :class:`FusedLIF` runs the same rules (calling
:mod:`brain_ai.physics.rules`, so every forward value is bit-identical) under ``no_grad``, saves
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

An adaptive threshold (``θ_t = θ + κ·a_{t-1}``, ``a_t = ρ·a_{t-1} + s_t``) and a one-to-one
recurrent input (``w ⊙ s_{t-1}``, added to the synaptic current or to the charged membrane)
add two reverse recursions: ``g_s += g_a + g_p``; ``g_a(t-1) = ρ·g_a + κ·g_θ``;
``g_p(t-1) = w·g_rec``. The adaptation ``a_t`` and the spikes are rebuilt from ``h`` by the
same forward scan (``s_t = H(h_t - θ - κ·a_{t-1})`` needs ``a_{t-1}``), so the saved
activations stay one tensor per neuron-step. A refractory period zeroes ``g_h`` where the
membrane was held (the mask ``ref > 0`` is rebuilt by the same scan); graded spikes
(``out = s·g``) scale the spike's gradient: ``g_g += g_out·s``, ``g_s = g_out·g``.
Learnable ``α`` and the ``*_input`` charges with a learnable leak also keep a reference to the
input ``x`` (no copy) to rebuild the synaptic current.

:func:`fused_config` says whether a configuration is covered; :func:`run_fused` runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from brain_ai.physics import rules
from brain_ai.physics.surrogates import Surrogate, step_function

__all__ = [
    "COVERED",
    "LIF_RULES",
    "FusedConfig",
    "FusedLIF",
    "covers",
    "h_is_free",
    "no_second_order",
    "rules_covered",
    "run_fused",
    "saved_hooks_active",
]


@dataclass(frozen=True)
class FusedConfig:
    """The static (non-tensor) part of one fused call: rule names and options.

    Attributes:
        charge, comparator, reset, timing, v_reset, detach_reset: as in
            :class:`brain_ai.physics.functional.LIFParams` (``timing`` = ``reset_timing``).
        surrogate: the spike's surrogate (its ``backward`` is called as is).
        synapse: a current-based synapse ``i = α·i + x`` is present.
        record_v: also return the stored membrane after every step.
        adapt: an adaptive threshold ``θ + κ·a`` with ``a' = ρ·a + s``.
        recur: a one-to-one recurrent input ``w ⊙ s_{t-1}``.
        refractory: refractory steps ``R`` (0: none): ``h ← v_reset`` while ``ref > 0``;
            ``ref' = R`` after a spike, else ``max(ref - 1, 0)``.
        graded: the output is ``s·g`` (snnTorch's graded spikes; also the recurrent input).
        window: truncated BPTT inside the op (0: none): the state's gradient stops at every
            step ``t > 0`` with ``t % window == 0`` (the state was detached there), the
            parameters' gradients run on through the whole sequence in one reverse-time sum,
            as autograd's engine adds them over the detached windows.
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
    adapt: bool = False
    recur: bool = False
    refractory: int = 0
    graded: bool = False
    window: int = 0

    @property
    def carried(self) -> bool:
        """:func:`brain_ai.physics.rules.is_carried`."""
        return rules.is_carried(self.reset, self.timing)

    @property
    def pre(self) -> bool:
        """:func:`brain_ai.physics.rules.is_pre_charge`."""
        return rules.is_pre_charge(self.timing)

    @property
    def compensated(self) -> bool:
        """:func:`brain_ai.physics.rules.is_compensated`."""
        return rules.is_compensated(self.reset, self.timing)

    @property
    def delayed(self) -> bool:
        """The stored membrane is ``h`` itself (no same-step reset):
        :func:`brain_ai.physics.rules.stores_h`."""
        return rules.stores_h(self.reset, self.timing)


#: The LIF rule names every kernel of this package implements today (fused, native, Triton;
#: each kernel's ``COVERED`` names this set or its own). A name the rule table gains later is
#: not among them: the dispatcher then runs the reference.
LIF_RULES: dict[str, frozenset[str]] = {
    "charge": frozenset({"beta", "tau", "tau_input", "rate", "rate_input"}),
    "comparator": frozenset({">", ">="}),
    "reset": frozenset({"subtract", "zero", "none"}),
    "reset_timing": frozenset({"immediate", "delayed", "delayed_pre", "compensated",
                               "compensated_pre"}),
}
#: The rule names whose gradients :class:`FusedLIF` writes by hand.
COVERED = LIF_RULES


def rules_covered(covered: dict[str, frozenset[str]], c: FusedConfig) -> bool:
    """Whether every rule of ``c`` is among the ``covered`` names (deny by default)."""
    names = {"charge": c.charge, "comparator": c.comparator, "reset": c.reset,
             "reset_timing": c.timing}
    return all(names[kind] in allowed for kind, allowed in covered.items())


def covers(c: FusedConfig) -> bool:
    """Whether :class:`FusedLIF` implements every rule of ``c``."""
    return rules_covered(COVERED, c)


def _spike(d: Tensor, comparator: str) -> Tensor:
    """The forward of :func:`brain_ai.physics.surrogates.heaviside`, without autograd."""
    return step_function(d, comparator == ">=")


def _reduce(g: Tensor, like: Tensor) -> Tensor:
    """Sum ``g`` over the dimensions that ``like`` was broadcast along (as autograd does)."""
    return g if g.shape == like.shape else g.sum_to_size(like.shape)


def _charge_grads(c: FusedConfig, g_h: Tensor, v1: Tensor | None, drive: Tensor | None,
                  leak: Tensor, need_leak: bool) -> tuple[list[Tensor], Tensor, Tensor | None]:
    """``(g_v1 parts, g_drive, g_leak)`` of :func:`brain_ai.physics.rules.charge`.

    The gradient reaches ``v`` once ("beta") or twice (the other charges: ``v`` itself, then
    through the leak term); the parts come in the order autograd's engine adds them, so that
    a caller adding other gradients first (the trace's) gets the engine's sum bit for bit.
    """
    vr = c.v_reset
    if c.charge == "beta":  # h = leak·v + x
        return [g_h * leak], g_h, (g_h * v1 if need_leak else None)
    if c.charge == "tau":  # h = v - (v - vr)/τ + x
        g_a = (-g_h) / leak
        g_l = g_h * (((v1 - vr) / leak) / leak) if need_leak else None
        return [g_h, g_a], g_h, g_l
    if c.charge == "tau_input":  # h = v + (x - (v - vr))/τ
        g_e = g_h / leak
        g_l = -g_h * (((drive - (v1 - vr)) / leak) / leak) if need_leak else None
        return [g_h, -g_e], g_e, g_l
    if c.charge == "rate":  # h = v - (v - vr)·q + x
        g_b = -g_h
        g_l = g_b * (v1 - vr) if need_leak else None
        return [g_h, g_b * leak], g_h, g_l
    if c.charge != "rate_input":  # unreachable: covers() admits only the names above
        raise NotImplementedError(f"FusedLIF: no gradient for charge {c.charge!r}")
    # "rate_input": h = v + (x - (v - vr))·q
    g_e = g_h * leak
    g_l = g_h * (drive - (v1 - vr)) if need_leak else None
    return [g_h, -g_e], g_e, g_l


def _total(parts: list[Tensor], first: Tensor | None = None) -> Tensor | None:
    """``first`` and ``parts`` added left to right (the engine's order of arrival)."""
    out = first
    for p in parts:
        out = p if out is None else out + p
    return out


class _SecondOrderUnsupported(torch.autograd.Function):
    """Stands in for a kernel's first-order gradient under ``create_graph=True``: the value is
    the gradient, and differentiating it again raises (never a silent zero or partial value)."""

    @staticmethod
    def forward(ctx, kernel: str, grad: Tensor, *anchors: Tensor) -> Tensor:  # type: ignore[override]
        ctx.kernel = kernel
        return grad.detach()

    @staticmethod
    def backward(ctx, *_: Tensor) -> tuple[None, ...]:  # type: ignore[override]
        raise RuntimeError(
            f"brain_ai kernel {ctx.kernel!r}: second-order gradients (a backward through a "
            "gradient taken with create_graph=True) are not implemented by this kernel "
            "(got a double backward; expected first-order use of its gradients).\n"
            "  Hint: run the neuron on the reference kernel, whose double backward is exact: "
            "LIFNeuron(..., kernel='reference'), neuron.kernel = 'reference', or "
            "BRAIN_AI_KERNEL=reference.")


def no_second_order(kernel: str, grads: tuple[Tensor | None, ...],
                    anchors: Callable[[], tuple[Tensor | None, ...]]
                    ) -> tuple[Tensor | None, ...]:
    """A kernel's gradients as returned by its ``backward``. Under ``create_graph=True`` (grad
    mode on inside backward) each is tied to the inputs and incoming gradients that require
    grad, through a node whose backward raises: the first-order values are exact, a second
    differentiation is a clear error. ``anchors`` is called only then (the saved tensors may
    have been overwritten in place otherwise, see :func:`h_is_free`)."""
    if not torch.is_grad_enabled():
        return grads
    tied = [t for t in anchors() if isinstance(t, Tensor) and t.requires_grad]
    if not tied:
        return grads
    return tuple(g if not isinstance(g, Tensor) else
                 _SecondOrderUnsupported.apply(kernel, g, *tied) for g in grads)


def saved_hooks_active() -> bool:
    """Whether saved-tensor hooks (``saved_tensors_hooks``, ``save_on_cpu``, non-reentrant
    checkpointing) pack what a forward saves now: ``h`` may then be seen by someone else.
    ``True`` while a compiler traces (it cannot ask; :func:`h_is_free` says no there anyway)."""
    if torch.compiler.is_compiling():
        return True
    return torch._C._autograd._top_saved_tensors_default_hooks(False) is not None


def h_is_free(returned: bool, hooked: bool) -> bool:
    """Whether backward may overwrite the saved ``h`` with the input gradient: the graph is
    not kept (no ``retain_graph``/``create_graph``: this is the only backward through the node,
    and autograd frees ``h`` right after it), ``h`` was not also returned as the membrane trace
    (``returned``), no saved-tensor hooks packed it in forward (``hooked``: they may keep it),
    and no compiler is tracing (its graph would not know of the write). Saves one
    ``(B, T, N)`` buffer at the peak of backward."""
    if returned or hooked or torch.compiler.is_compiling():
        return False
    return not torch._C._autograd._get_current_graph_task_keep_graph()


class FusedLIF(torch.autograd.Function):
    """Whole-window LIF: ``(x (B,T,*f), v0, i0, a0, p0, ref0, leak, θ, α, κ, ρ, w, g) ->
    (spikes, v_T[, i_T][, a_T][, p_T][, ref_T][, v_trace])``.

    ``i0``/``α`` are ``None`` without a synapse, ``a0``/``κ``/``ρ`` without adaptation,
    ``p0``/``w`` without one-to-one recurrence, ``ref0`` without a refractory period, ``g``
    without graded spikes; the matching outputs are returned only with the feature,
    ``v_trace`` only with ``record_v``. Saves ``h`` ``(B, T, *f)`` (one tensor per
    neuron-step).
    """

    @staticmethod
    def forward(ctx, c: FusedConfig, x: Tensor, v0: Tensor, i0: Tensor | None,  # type: ignore[override]
                a0: Tensor | None, p0: Tensor | None, ref0: Tensor | None, leak: Tensor,
                threshold: Tensor, alpha: Tensor | None, kappa: Tensor | None,
                rho: Tensor | None, w_rec: Tensor | None, graded: Tensor | None
                ) -> tuple[Tensor, ...]:
        ctx.set_materialize_grads(False)
        needs = ctx.needs_input_grad
        grad = any(needs)
        steps = x.shape[1]
        spikes = torch.empty_like(x)
        hs = torch.empty_like(x) if (grad or (c.record_v and c.delayed)) else None
        trace = hs if c.record_v and c.delayed else (
            torch.empty_like(x) if c.record_v else None)
        v, i, a, prev, ref = v0, i0, a0, p0, ref0
        for t in range(steps):
            x_t = x[:, t]
            r = rules.carried_reset(v, threshold, c.comparator) if c.carried else None
            if r is not None and c.pre:
                v = rules.apply_carried_reset_pre(v, r, c.reset, threshold, c.v_reset)
            rec = prev * w_rec if c.recur else None
            if c.synapse:
                i = alpha * i + x_t
                if rec is not None:
                    i = i + rec
                h = rules.charge(v, i, leak, c.charge, c.v_reset)
            else:
                h = rules.charge(v, x_t, leak, c.charge, c.v_reset)
                if rec is not None:
                    h = h + rec
            if r is not None and not c.pre:
                h = rules.apply_carried_reset_post(h, r, c.reset, threshold, c.v_reset)
            if c.refractory:
                h = torch.where(ref > 0, torch.full_like(h, c.v_reset), h)
            th = threshold + kappa * a if c.adapt else threshold
            d = h - th
            if c.graded:
                s = _spike(d, c.comparator)
                out = spikes[:, t]
                torch.mul(s, graded, out=out)
            else:
                s = out = spikes[:, t]  # written in place: H(d), without a cast copy
                s.copy_(d >= 0 if c.comparator == ">=" else d > 0)
            v = rules.apply_reset(h, s, r, c.reset, c.timing, th, c.v_reset, c.detach_reset)
            if c.adapt:
                a = rho * a + s
            if c.refractory:
                ref = torch.where(s > 0, torch.full_like(ref, float(c.refractory)),
                                  (ref - 1).clamp_min(0))
            if c.recur:
                prev = out
            if hs is not None:
                hs[:, t] = h
            if trace is not None and trace is not hs:
                trace[:, t] = v
        outs: list[Tensor] = [spikes, v.clone() if v is v0 else v]
        if c.synapse:
            outs.append(i if i is not i0 else i.clone())
        if c.adapt:
            outs.append(a if a is not a0 else a.clone())
        if c.recur:
            outs.append(prev.clone())  # a view of spikes (or p0): an output of its own
        if c.refractory:
            outs.append(ref if ref is not ref0 else ref.clone())
        if trace is not None:
            outs.append(trace)
        ctx.c = c
        ctx.hooked = saved_hooks_active()
        if grad:
            keep_x = (c.synapse and needs[9]) or (
                needs[7] and c.charge in rules.INPUT_CHARGES)
            ctx.save_for_backward(hs, v0, i0, a0, p0, ref0, leak, threshold, alpha, kappa, rho,
                                  w_rec, graded, x if keep_x else None)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        c: FusedConfig = ctx.c
        (hs, v0, i0, a0, p0, ref0, leak, thr, alpha, kappa, rho, w_rec, graded,
         x) = ctx.saved_tensors
        needs = ctx.needs_input_grad
        need_leak, need_thr = needs[7], needs[8]
        need_alpha = c.synapse and needs[9]
        need_kappa, need_rho = c.adapt and needs[10], c.adapt and needs[11]
        need_w = c.recur and needs[12]
        need_g = c.graded and needs[13]
        grads_it = iter(grads)
        g_spk, g_v = next(grads_it), next(grads_it)
        g_i_next = next(grads_it) if c.synapse else None
        g_a = next(grads_it) if c.adapt else None
        g_p = next(grads_it) if c.recur else None
        if c.refractory:
            next(grads_it)  # ref_T: a counter, no gradient
        g_tr = next(grads_it) if c.record_v else None
        steps = hs.shape[1]
        vr = c.v_reset
        surrogate = c.surrogate
        # gradient w.r.t. the threshold actually compared (θ + κ·a with adaptation) needed
        need_the = need_thr or c.adapt

        # Forward scan (detached) of what backward needs per step: the carried reset r_t
        # (s_{t-1} for delayed timings without adaptation, else H(v_{t-1} - θ)), and with
        # adaptation, recurrence or refractoriness the compared threshold, the adaptation
        # before the step, the spike and the refractory mask (ref > 0 before the step).
        rs: list[Tensor | None] = [None] * steps
        ths: list[Tensor] = [thr] * steps
        a_prev: list[Tensor | None] = [None] * steps
        ss: list[Tensor | None] = [None] * steps
        masks: list[Tensor | None] = [None] * steps
        if c.carried or c.adapt or c.recur or c.refractory or c.graded:
            r = rules.carried_reset(v0, thr, c.comparator) if c.carried else None
            a, ref = a0, ref0
            for t in range(steps):
                rs[t], a_prev[t] = r, a
                if c.refractory:
                    masks[t] = ref > 0
                h = hs[:, t]
                th = thr + kappa * a if c.adapt else thr
                ths[t] = th
                s = _spike(h - th, c.comparator)
                ss[t] = s
                if c.carried:
                    if c.delayed and not c.adapt:
                        r = s
                    else:
                        v = rules.apply_reset(h, s, r, c.reset, c.timing, th, vr,
                                              c.detach_reset)
                        r = rules.carried_reset(v, thr, c.comparator)
                if c.adapt:
                    a = rho * a + s
                if c.refractory:
                    ref = torch.where(s > 0, torch.full_like(ref, float(c.refractory)),
                                      (ref - 1).clamp_min(0))
        outs = ss if not c.graded else [None if s is None else s * graded for s in ss]
        # Synaptic currents i_t (only for learnable α or an *_input charge with learnable leak).
        drives: list[Tensor | None] = [None] * steps
        i_prev: list[Tensor | None] = [None] * steps
        if x is not None:
            i, prev = i0, p0
            for t in range(steps):
                i_prev[t] = i
                if c.synapse:
                    i = alpha * i + x[:, t]
                    if c.recur:
                        i = i + prev * w_rec
                else:
                    i = x[:, t]
                drives[t] = i
                prev = outs[t]

        # x's gradient overwrites h step by step where nothing can read h again: h[t] is last
        # read at step t (h[t-1] too, overwritten only at step t-1)
        g_x = None
        if needs[1]:
            free = h_is_free(c.record_v and c.delayed, ctx.hooked)
            g_x = hs if free else torch.empty_like(hs)
        g_leak = torch.zeros_like(leak) if need_leak else None
        g_thr = torch.zeros_like(thr) if need_thr else None
        g_alpha = torch.zeros_like(alpha) if need_alpha else None
        g_kappa = torch.zeros_like(kappa) if need_kappa else None
        g_rho = torch.zeros_like(rho) if need_rho else None
        g_w = torch.zeros_like(w_rec) if need_w else None
        g_g = torch.zeros_like(graded) if need_g else None
        g_parts: list[Tensor] = []  # what step t+1 sends to the stored membrane of step t
        for t in range(steps - 1, -1, -1):
            h = hs[:, t]
            th = ths[t]
            d = h - th
            r = rs[t]
            # the spike is needed by every same-step reset rule but subtract-without-θ-grad
            need_s = not c.delayed and (c.reset == "zero" or need_the)
            s: Tensor = (ss[t] if ss[t] is not None else _spike(d, c.comparator)
                         ) if need_s else None  # type: ignore[assignment]
            # the stored membrane's gradient: from outside first (v_T's, the trace's), then
            # what step t+1's charge sent, in the engine's order
            g_vp = g_v
            if g_tr is not None:
                g_vp = g_tr[:, t] if g_vp is None else g_vp + g_tr[:, t]
            g_vp = _total(g_parts, g_vp)
            g_v = None
            g_s = None if g_spk is None else g_spk[:, t]
            if g_p is not None:  # the output is the next step's recurrent input (or p_T)
                g_s = g_p if g_s is None else g_s + g_p
            if c.graded and g_s is not None:  # out = s·g
                if need_g:
                    g_g = g_g + _reduce(g_s * ss[t], graded)
                g_s = g_s * graded
            if g_a is not None:  # a_t = ρ·a_{t-1} + s_t
                g_s = g_a if g_s is None else g_s + g_a
            # same-step reset v' = reset(h, s): its gradient w.r.t. h, s and the threshold
            g_h_reset: Tensor | None = g_vp
            the_terms: list[Tensor] = []  # w.r.t. the compared threshold th
            thr_terms: list[Tensor] = []  # w.r.t. θ itself (the carried resets)
            if g_vp is not None and not c.delayed:
                comp = c.compensated
                if c.reset == "subtract":
                    if not c.detach_reset:
                        ds = (-g_vp) * th
                        g_s = ds if g_s is None else g_s + ds
                    if need_the:
                        the_terms.append((-g_vp) * (s - r if comp else s))
                elif comp:  # zero, compensated: v' = h - (s - r)·(h - vr)
                    g_h_reset = g_vp + (-(g_vp * (s - r)))
                    if not c.detach_reset:
                        ds = -(g_vp * (h if vr == 0.0 else h - vr))
                        g_s = ds if g_s is None else g_s + ds
                else:  # zero, immediate: v' = s·vr + (1 - s)·h
                    g_h_reset = g_vp * (1.0 - s)
                    if not c.detach_reset:  # through (1 - s)·h first, then s·vr
                        ds = -(g_vp * h)
                        g_s = (ds if g_s is None else g_s + ds) + g_vp * vr
            sg = surrogate.backward(d, g_s) if g_s is not None else None
            if need_the and sg is not None:
                the_terms.append(-sg)
            if g_h_reset is None:
                g_h = sg if sg is not None else torch.zeros_like(h)
            else:
                g_h = g_h_reset if sg is None else g_h_reset + sg
            if c.refractory:  # h = where(ref > 0, v_reset, h)
                g_h = torch.where(masks[t], torch.zeros_like(g_h), g_h)
            # carried reset after the charge: h - r·θ  |  h - r·h' (h' the charge evaluated a
            # second time, as snnTorch does: its own gradient g_h2)
            g_h2 = None
            if r is not None and not c.pre:
                if c.reset == "subtract":
                    if need_thr:
                        thr_terms.append((-g_h) * r)
                else:
                    g_h2 = (-g_h) * r
            g_rec = g_h if g_h2 is None else g_h + g_h2  # h = charge(v, x) + rec, no synapse
            # charge
            v1 = None
            if need_leak:
                if t == 0:
                    v_prev = v0
                else:
                    hp = hs[:, t - 1]
                    sp = ss[t - 1] if ss[t - 1] is not None else _spike(hp - thr, c.comparator)
                    v_prev = rules.apply_reset(hp, sp, rs[t - 1], c.reset, c.timing,
                                               ths[t - 1], vr, c.detach_reset)
                v1 = v_prev
                if r is not None and c.pre:
                    v1 = rules.apply_carried_reset_pre(v_prev, r, c.reset, thr, vr)
            parts, g_drive, g_l = _charge_grads(c, g_h, v1, drives[t], leak, need_leak)
            if g_h2 is not None:  # the engine runs the second evaluation's chain first
                parts2, g_drive2, g_l2 = _charge_grads(c, g_h2, v1, drives[t], leak, need_leak)
                parts = parts2 + parts
                g_drive = g_drive2 + g_drive
                if g_l2 is not None:
                    g_leak = g_leak + _reduce(g_l2, leak)
            if g_l is not None:
                g_leak = g_leak + _reduce(g_l, leak)
            if c.synapse:
                g_cur = g_drive if g_i_next is None else g_drive + g_i_next
                if need_alpha:
                    g_alpha = g_alpha + _reduce(g_cur * i_prev[t], alpha)
                g_i_next = g_cur * alpha
                g_drive = g_cur
                g_rec = g_cur  # i = α·i + x + rec
            if g_x is not None:
                g_x[:, t] = g_drive
            if c.recur:  # rec = p_{t-1}·w
                p_before = p0 if t == 0 else outs[t - 1]
                if need_w:
                    g_w = g_w + _reduce(g_rec * p_before, w_rec)
                g_p = g_rec * w_rec
            # carried reset before the charge: v1 = v - r·θ  |  (1 - r)·v (+ r·vr)
            if r is not None and c.pre:
                g_v1 = _total(parts)
                if c.reset == "subtract":
                    if need_thr:
                        thr_terms.append((-g_v1) * r)
                else:
                    g_v1 = g_v1 * (1 - r)
                parts = [g_v1]
            if c.adapt:  # th = θ + κ·a_{t-1};  a_t = ρ·a_{t-1} + s_t
                g_th = None
                for term in the_terms:
                    g_th = term if g_th is None else g_th + term
                a_before = a_prev[t]
                g_a_next = None if g_a is None else g_a * rho
                if need_rho and g_a is not None:
                    g_rho = g_rho + _reduce(g_a * a_before, rho)
                if g_th is not None:
                    if need_thr:
                        thr_terms.append(g_th)
                    if need_kappa:
                        g_kappa = g_kappa + _reduce(g_th * a_before, kappa)
                    g_k = g_th * kappa
                    g_a_next = g_k if g_a_next is None else g_a_next + g_k
                g_a = g_a_next
            else:
                thr_terms = the_terms + thr_terms
            for term in thr_terms:  # reduced one by one, in autograd's (reverse) order
                g_thr = g_thr + _reduce(term, thr)
            g_parts = parts
            if c.window and t > 0 and t % c.window == 0:  # truncated BPTT: detached here
                g_parts, g_i_next, g_a, g_p = [], None, None, None
        g_v0 = _total(g_parts) if needs[2] else None
        g_i0 = g_i_next if (c.synapse and needs[3]) else None
        g_a0 = g_a if (c.adapt and needs[4]) else None
        g_p0 = g_p if (c.recur and needs[5]) else None
        return no_second_order("fused", (None, g_x, g_v0, g_i0, g_a0, g_p0, None, g_leak,
                                         g_thr, g_alpha, g_kappa, g_rho, g_w, g_g),
                               lambda: (*ctx.saved_tensors, *grads))


def run_fused(c: FusedConfig, x: Tensor, v0: Tensor, i0: Tensor | None, leak: Tensor,
              threshold: Tensor, alpha: Tensor | None, *, a0: Tensor | None = None,
              p0: Tensor | None = None, kappa: Tensor | None = None, rho: Tensor | None = None,
              w_rec: Tensor | None = None, ref0: Tensor | None = None,
              graded: Tensor | None = None) -> tuple[Tensor, ...]:
    """Apply :class:`FusedLIF` (see there for inputs and outputs)."""
    return FusedLIF.apply(c, x, v0, i0, a0, p0, ref0, leak, threshold, alpha, kappa, rho,
                          w_rec, graded)
