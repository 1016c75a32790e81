r"""The fused multi-step LIF op as Triton kernels (a GPU path): forward and backward.

.. warning::
   **Untested on GPU hardware.** These kernels have been validated only under the Triton
   interpreter on CPU (``tests/test_kernels_triton.py``: forward bit-identical to
   :func:`brain_ai.physics.functional.lif_multi_step`, gradients within 1e-6), and compiled
   ahead of time to PTX/cubin for ``sm_90`` without running. The path is **off by default**:
   the dispatcher uses it only when the user asks for the kernel ``"triton"``.

Same op, same inputs and outputs as :class:`brain_ai.kernels.fused.FusedLIF` (see there for
the backward recursion) and ``lif_native.cpp`` (whose operation order, surrogate formulas
included, these kernels copy). One program per (batch row, block of neurons); the time loop
runs inside the kernel with the membrane (and the synaptic current) in registers.

Forward: saves only ``h`` ``(B, T, N)``, the charged membrane just before firing (after any
carried reset), as :class:`~brain_ai.kernels.fused.FusedLIF` does. Every operation is the
reference's, in its order, each rounded once: kernels are launched with
``enable_fp_fusion=False`` (no FMA contraction) and divisions are IEEE round-to-nearest
(``tl.fdiv(..., ieee_rounding=True)``: a plain ``/`` on fp32 lowers to the approximate
``div.full.f32`` on NVIDIA GPUs). Spikes, ``v_T``, ``i_T`` and the membrane trace are
bit-identical to the reference.

Backward: one pass in reverse over time per program, recomputing the spikes, the previous
stored membrane and the delayed carried reset from ``h``. Two things need a forward scan
first, done in the same kernel into a scratch tensor (then a block barrier): the carried
resets of the compensated timings (an ``int8`` ``(B, T, N)`` tensor) and, with a synapse, the
synaptic currents when the gradient of ``α`` (or of the leak under a ``*_input`` charge) is
needed (a ``(B, T, N)`` tensor of the state dtype). Parameter gradients are accumulated per
(batch row, neuron) in float64 and reduced to the parameter's shape after the kernel, in
float64, then cast. The surrogate's ``exp`` is the GPU's fast ``exp`` there (gradients
only).

Covered (:func:`run_triton` returns ``None`` otherwise, the caller then runs another kernel):
every charge rule, reset mechanism, reset timing and comparator, ``v_reset``,
``detach_reset``, the current-based synapse, learnable (any broadcastable shape) leak,
threshold and ``α``, ``record_v``, float32 and float64 state, features of any shape, and the
built-in surrogates ``ATan``, ``FastSigmoid``, ``STE``, ``Sigmoid``, ``Triangular``,
``PiecewiseQuadratic``, ``PiecewiseExp``, ``SoftSign``, ``SuperSpike``, ``Erf`` (exact
classes). ``None`` for: Triton not importable, a user-defined surrogate (or a subclass of a
built-in one), a state dtype other than float32/float64, tensors on devices other than CPU
(interpreter) or CUDA, tensors on different devices, compiled kernels asked for CPU tensors
(``interpret=False``), an empty window (``T = 0``) or no neurons, and shapes outside the
fused contract (``v0``/``i0`` not ``(B, *f)``, a parameter not broadcastable to it).

Interpreter: :func:`run_triton` with ``interpret=None`` (default) runs the Triton
interpreter for CPU tensors and compiled kernels for CUDA tensors; ``interpret=True`` forces
the interpreter (CUDA tensors are copied to the host by it). The kernels are built lazily by
:func:`kernels` per mode, wrapping the same Python functions with ``triton.jit`` or with the
interpreter's ``InterpretedFunction`` (each mode in its own global namespace), so neither
``$TRITON_INTERPRET`` nor the import order matters.
"""

from __future__ import annotations  # the kernels' tl.constexpr annotations stay strings

import functools
import math
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from brain_ai.kernels.fused import LIF_RULES, FusedConfig, no_second_order, rules_covered
from brain_ai.physics import rules
from brain_ai.physics import surrogates as S

try:  # an optional dependency: without it, available() is False and run_triton returns None
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - triton is installed wherever the tests run
    triton = None  # type: ignore[assignment]
    tl = None  # type: ignore[assignment]

__all__ = ["TritonLIF", "available", "kernels", "run_dispatched", "run_triton", "triton_config"]

_CODES = rules.RULE_CODES  # the one rule-code table (the kernels compare CHARGE/RESET to it)
_SURR = {cls.name: code for cls, code in S.SURROGATE_CODES.items()}

# The codes the device functions compare with, read from the tables (never written as
# numbers); :func:`kernels` gives them to the compiled functions as constexpr globals.
CHARGE_BETA = _CODES["charge"]["beta"]
CHARGE_TAU = _CODES["charge"]["tau"]
CHARGE_TAU_INPUT = _CODES["charge"]["tau_input"]
CHARGE_RATE = _CODES["charge"]["rate"]
RESET_SUBTRACT = _CODES["reset"]["subtract"]
SURR_ATAN = _SURR["atan"]
SURR_FAST_SIGMOID = _SURR["fast_sigmoid"]
SURR_STE = _SURR["ste"]
SURR_SIGMOID = _SURR["sigmoid"]
SURR_TRIANGULAR = _SURR["triangular"]
SURR_PIECEWISE_QUADRATIC = _SURR["piecewise_quadratic"]
SURR_PIECEWISE_EXP = _SURR["piecewise_exp"]
SURR_SOFT_SIGN = _SURR["soft_sign"]
SURR_SUPER_SPIKE = _SURR["super_spike"]
_RULE_CONSTANTS = ("CHARGE_BETA", "CHARGE_TAU", "CHARGE_TAU_INPUT", "CHARGE_RATE",
                   "RESET_SUBTRACT", "SURR_ATAN", "SURR_FAST_SIGMOID", "SURR_STE",
                   "SURR_SIGMOID", "SURR_TRIANGULAR", "SURR_PIECEWISE_QUADRATIC",
                   "SURR_PIECEWISE_EXP", "SURR_SOFT_SIGN", "SURR_SUPER_SPIKE")

#: The rule names the Triton kernels implement: the same set as the fused op.
COVERED = LIF_RULES


# surrogate class -> (k1, k2) from its parameter: the constants of lif_native.cpp's
# surrogate(), computed in double and rounded once to the state dtype, as T(...) there. The
# kernel id of each is S.SURROGATE_CODES[class]; a class not listed here runs elsewhere.
_CONSTANTS: dict[type, Callable[[Any], tuple[float, float]]] = {
    S.ATan: lambda s: (math.pi / 2 * s.alpha, s.alpha / 2),
    S.FastSigmoid: lambda s: (float(s.slope), 0.0),
    S.STE: lambda s: (0.0, 0.0),
    S.Sigmoid: lambda s: (float(s.alpha), 0.0),
    S.Triangular: lambda s: (float(s.threshold), 0.0),
    S.PiecewiseQuadratic: lambda s: (s.alpha * s.alpha, float(s.alpha)),
    S.PiecewiseExp: lambda s: (-s.alpha, s.alpha / 2),
    S.SoftSign: lambda s: (1 / s.alpha, 2 * s.alpha),
    S.SuperSpike: lambda s: (float(s.alpha), 0.0),
    S.Erf: lambda s: (float(s.alpha), s.alpha / math.sqrt(math.pi)),
}


def available() -> bool:
    """Whether Triton is importable (the kernels themselves are built on first use)."""
    return triton is not None


# ---------------------------------------------------------------- device functions
# Plain functions here; kernels() wraps them with triton.jit or InterpretedFunction. The rule
# choices are constexpr: each configuration compiles to straight-line code. Only builtins of
# triton.language are used: its @triton.jit helpers (tl.zeros, tl.sum, tl.sigmoid, ...) are
# compiled-mode objects unless $TRITON_INTERPRET was set at import, and would fail here.
def _spike(d, GE):
    """H(d): ``d >= 0`` (GE) or ``d > 0``, as 0/1 of d's dtype."""
    if GE:
        s = (d >= 0).to(d.dtype)
    else:
        s = (d > 0).to(d.dtype)
    return s


def _div(a, b):
    """IEEE round-to-nearest ``a / b`` (``b`` a tensor): a plain ``/`` lowers to the
    approximate ``div.full.f32`` for fp32 on NVIDIA GPUs, to ``div.rn.f64`` for fp64 (where
    the precise-division op does not lower)."""
    if b.dtype == tl.float64:
        q = a / b
    else:
        q = tl.fdiv(a, b, ieee_rounding=True)
    return q


def _charge(v, dr, lk, vr, CHARGE):
    """rules.charge: ``h`` from the membrane ``v`` and the drive ``dr``."""
    if CHARGE == CHARGE_BETA:
        h = lk * v + dr
    elif CHARGE == CHARGE_TAU:
        h = v - _div(v - vr, lk) + dr
    elif CHARGE == CHARGE_TAU_INPUT:
        h = v + _div(dr - (v - vr), lk)
    elif CHARGE == CHARGE_RATE:
        h = v - (v - vr) * lk + dr
    else:  # CHARGE_RATE_INPUT (triton_config admits only the COVERED names)
        h = v + (dr - (v - vr)) * lk
    return h


def _pre_reset(v, r, th, vr, RESET, VR0):
    """rules.apply_carried_reset_pre (reset subtract or zero)."""
    if RESET == RESET_SUBTRACT:
        out = v - r * th
    else:
        out = (1 - r) * v
        if not VR0:
            out = out + r * vr
    return out


def _post_reset(h, r, th, vr, RESET, VR0):
    """rules.apply_carried_reset_post (reset subtract or zero)."""
    if RESET == RESET_SUBTRACT:
        out = h - r * th
    elif VR0:
        out = h - r * h
    else:
        out = h - r * (h - vr)
    return out


def _reset(h, s, r, th, vr, RESET, DELAYED, COMP, VR0):
    """rules.apply_reset: the stored membrane after the step (``r`` used by COMP only)."""
    if DELAYED:
        v = h
    elif not COMP:
        if RESET == RESET_SUBTRACT:
            v = h - s * th
        else:
            v = s * vr + (1.0 - s) * h
    elif RESET == RESET_SUBTRACT:
        v = h - (s - r) * th
    elif VR0:
        v = h - (s - r) * h
    else:
        v = h - (s - r) * (h - vr)
    return v


def _surrogate(x, g, k1, k2, SURR):
    """surrogate() of lif_native.cpp: ``g·σ'(x)`` in its operation order."""
    if SURR == SURR_ATAN:
        y = k1 * x
        z = 1.0 + y * y
        out = (_div(1.0, z) * k2) * g
    elif SURR == SURR_FAST_SIGMOID:
        y = k1 * tl.abs(x) + 1.0
        out = _div(g, y * y)
    elif SURR == SURR_STE:
        out = g
    elif SURR == SURR_SIGMOID:
        e = _div(1.0, 1.0 + tl.exp(-(k1 * x)))
        out = g * (((1.0 - e) * e) * k1)
    elif SURR == SURR_TRIANGULAR:
        y = g * k1
        out = tl.where(x >= 0, -y, y)
    elif SURR == SURR_PIECEWISE_QUADRATIC:
        y = k2 - k1 * tl.abs(x)
        out = g * tl.where(y < 0, 0.0, y)
    elif SURR == SURR_PIECEWISE_EXP:
        out = g * (k2 * tl.exp(k1 * tl.abs(x)))
    elif SURR == SURR_SOFT_SIGN:
        z = k1 + tl.abs(x)
        out = g * _div(1.0, (k2 * z) * z)
    elif SURR == SURR_SUPER_SPIKE:
        z = 1.0 + tl.abs(x)
        out = g * (_div(1.0, z * z) * k1)
    else:  # SURR_ERF (triton_config admits only the surrogates of _CONSTANTS)
        z = k1 * x
        out = g * (k2 * tl.exp(-z * z))
    return out


# ---------------------------------------------------------------- kernels
def _lif_fwd(
    x_ptr, sxb, sxt, sxn,            # x (B, T, N), any strides
    v0_ptr, svb, svn,                # v0 rows (B, N)
    i0_ptr, sib, sin,                # i0 rows (synapse)
    lk_ptr, slb, sln,                # leak rows (stride 0 where broadcast)
    th_ptr, stb, stn,                # threshold rows
    al_ptr, sab, san,                # alpha rows (synapse)
    c_ptr,                           # constants [v_reset] in the state dtype
    spk_ptr, h_ptr, tr_ptr,          # (B, T, N) contiguous outputs
    vT_ptr, iT_ptr,                  # (B, N) contiguous outputs
    T, N,
    CHARGE: tl.constexpr, RESET: tl.constexpr, GE: tl.constexpr, CARRIED: tl.constexpr,
    PRE: tl.constexpr, DELAYED: tl.constexpr, COMP: tl.constexpr, VR0: tl.constexpr,
    SYN: tl.constexpr, SAVE_H: tl.constexpr, TRACE: tl.constexpr, BLOCK: tl.constexpr,
):
    pid_b = tl.program_id(0).to(tl.int64)
    n = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    m = n < N
    n64 = n.to(tl.int64)
    vr = tl.load(c_ptr)
    lk = tl.load(lk_ptr + pid_b * slb + n64 * sln, mask=m, other=1.0)
    th = tl.load(th_ptr + pid_b * stb + n64 * stn, mask=m, other=1.0)
    v = tl.load(v0_ptr + pid_b * svb + n64 * svn, mask=m, other=0.0)
    if SYN:
        al = tl.load(al_ptr + pid_b * sab + n64 * san, mask=m, other=0.0)
        cur = tl.load(i0_ptr + pid_b * sib + n64 * sin, mask=m, other=0.0)
    x_p = x_ptr + pid_b * sxb + n64 * sxn
    o = pid_b * T * N + n64  # offset into the (B, T, N) outputs
    for _ in range(T):
        xt = tl.load(x_p, mask=m, other=0.0)
        r = v  # placeholder: the carried reset exists only for the carried timings
        if CARRIED:
            r = _spike(v - th, GE)
            if PRE:
                v = _pre_reset(v, r, th, vr, RESET, VR0)
        if SYN:
            cur = al * cur + xt
            h = _charge(v, cur, lk, vr, CHARGE)
        else:
            h = _charge(v, xt, lk, vr, CHARGE)
        if CARRIED:
            if not PRE:
                h = _post_reset(h, r, th, vr, RESET, VR0)
        s = _spike(h - th, GE)
        v = _reset(h, s, r, th, vr, RESET, DELAYED, COMP, VR0)
        tl.store(spk_ptr + o, s, mask=m)
        if SAVE_H:
            tl.store(h_ptr + o, h, mask=m)
        if TRACE:
            tl.store(tr_ptr + o, v, mask=m)
        x_p += sxt
        o += N
    tl.store(vT_ptr + pid_b * N + n64, v, mask=m)
    if SYN:
        tl.store(iT_ptr + pid_b * N + n64, cur, mask=m)


def _lif_bwd(
    h_ptr,                           # saved h (B, T, N) contiguous
    gs_ptr, sgsb, sgst, sgsn,        # grad of spikes (B, T, N), any strides
    gtr_ptr, sgtb, sgtt, sgtn,       # grad of the membrane trace (B, T, N)
    gv_ptr, sgvb, sgvn,              # grad of v_T (B, N)
    gi_ptr, sgib, sgin,              # grad of i_T (B, N)
    x_ptr, sxb, sxt, sxn,            # x (only for the synaptic-current scan / input charges)
    v0_ptr, svb, svn,
    i0_ptr, sib, sin,
    lk_ptr, slb, sln,
    th_ptr, stb, stn,
    al_ptr, sab, san,
    c_ptr,                           # constants [v_reset, k1, k2] in the state dtype
    rb_ptr, ib_ptr,                  # scratch (B, T, N): carried resets (int8), currents
    gx_ptr, gv0_ptr, gi0_ptr,        # (B, T, N) and (B, N) contiguous outputs
    gl_ptr, gt_ptr, ga_ptr,          # (B, N) float64 outputs
    T, N,
    CHARGE: tl.constexpr, RESET: tl.constexpr, GE: tl.constexpr, CARRIED: tl.constexpr,
    PRE: tl.constexpr, DELAYED: tl.constexpr, COMP: tl.constexpr, VR0: tl.constexpr,
    SYN: tl.constexpr, DETACH: tl.constexpr, SURR: tl.constexpr,
    HAS_GS: tl.constexpr, HAS_GTR: tl.constexpr, HAS_GV: tl.constexpr, HAS_GI: tl.constexpr,
    NEED_X: tl.constexpr, NEED_V0: tl.constexpr, NEED_I0: tl.constexpr,
    NEED_LEAK: tl.constexpr, NEED_TH: tl.constexpr, NEED_AL: tl.constexpr,
    NEED_PREV: tl.constexpr, NEED_DRIVE: tl.constexpr, SCAN_I: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid_b = tl.program_id(0).to(tl.int64)
    n = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    m = n < N
    n64 = n.to(tl.int64)
    vr = tl.load(c_ptr)
    k1 = tl.load(c_ptr + 1)
    k2 = tl.load(c_ptr + 2)
    lk = tl.load(lk_ptr + pid_b * slb + n64 * sln, mask=m, other=1.0)
    th = tl.load(th_ptr + pid_b * stb + n64 * stn, mask=m, other=1.0)
    v0 = tl.load(v0_ptr + pid_b * svb + n64 * svn, mask=m, other=0.0)
    zero = tl.full([BLOCK], 0, v0.dtype)
    acc_l = zero.to(tl.float64)
    acc_t = zero.to(tl.float64)
    acc_a = zero.to(tl.float64)
    gv = zero
    if HAS_GV:
        gv = tl.load(gv_ptr + pid_b * sgvb + n64 * sgvn, mask=m, other=0.0)
    gi = zero
    if SYN:
        al = tl.load(al_ptr + pid_b * sab + n64 * san, mask=m, other=0.0)
        i0 = tl.load(i0_ptr + pid_b * sib + n64 * sin, mask=m, other=0.0)
        if HAS_GI:
            gi = tl.load(gi_ptr + pid_b * sgib + n64 * sgin, mask=m, other=0.0)
    ob = pid_b * T * N + n64  # offset of step 0 in the (B, T, N) tensors
    # Forward scans: carried resets of the compensated timings, synaptic currents.
    if COMP or SCAN_I:
        r = _spike(v0 - th, GE)
        cur = zero
        if SYN:
            cur = i0
        x_p = x_ptr + pid_b * sxb + n64 * sxn
        o = ob
        for _ in range(T):
            if COMP:
                tl.store(rb_ptr + o, r.to(tl.int8), mask=m)
                hq = tl.load(h_ptr + o, mask=m, other=0.0)
                sq = _spike(hq - th, GE)
                vq = _reset(hq, sq, r, th, vr, RESET, DELAYED, COMP, VR0)
                r = _spike(vq - th, GE)
            if SCAN_I:
                cur = al * cur + tl.load(x_p, mask=m, other=0.0)
                tl.store(ib_ptr + o, cur, mask=m)
                x_p += sxt
            o += N
        tl.debug_barrier()  # the reverse loop reads what this loop wrote
    for k in range(T):
        t = T - 1 - k
        t64 = t.to(tl.int64)
        o = ob + t64 * N
        # t > 0 as a block: the interpreter mis-types a block & scalar mask (int32 data)
        okp = (tl.full([BLOCK], 0, tl.int32) + t) > 0
        h = tl.load(h_ptr + o, mask=m, other=0.0)
        d = h - th
        s = _spike(d, GE)
        # the previous stored membrane (v0 at t = 0) and the carried reset r_t
        vp = v0
        if NEED_PREV:
            hp = tl.load(h_ptr + o - N, mask=m & okp, other=0.0)
            rp = hp
            if COMP:
                rp = tl.load(rb_ptr + o - N, mask=m & okp, other=0).to(hp.dtype)
            sp = _spike(hp - th, GE)
            vp = tl.where(okp, _reset(hp, sp, rp, th, vr, RESET, DELAYED, COMP, VR0), v0)
        r = zero
        if CARRIED:
            if COMP:
                r = tl.load(rb_ptr + o, mask=m, other=0).to(h.dtype)
            else:
                r = _spike(vp - th, GE)
        if HAS_GTR:
            gv = gv + tl.load(gtr_ptr + pid_b * sgtb + t64 * sgtt + n64 * sgtn, mask=m,
                              other=0.0)
        gs = zero
        if HAS_GS:
            gs = tl.load(gs_ptr + pid_b * sgsb + t64 * sgst + n64 * sgsn, mask=m, other=0.0)
        # same-step reset v' = reset(h, s)
        ghr = gv
        if not DELAYED:
            if RESET == RESET_SUBTRACT:
                if not DETACH:
                    gs = gs + (-gv) * th
                if NEED_TH:
                    if COMP:
                        acc_t += ((-gv) * (s - r)).to(tl.float64)
                    else:
                        acc_t += ((-gv) * s).to(tl.float64)
            elif COMP:
                ghr = gv + (-(gv * (s - r)))
                if not DETACH:
                    if VR0:
                        gs = gs + (-(gv * h))
                    else:
                        gs = gs + (-(gv * (h - vr)))
            else:
                ghr = gv * (1.0 - s)
                if not DETACH:
                    gs = gs + (gv * vr + (-(gv * h)))
        sg = _surrogate(d, gs, k1, k2, SURR)
        gh = ghr + sg
        if NEED_TH:
            acc_t -= sg.to(tl.float64)
        # carried reset after the charge
        if CARRIED:
            if not PRE:
                if RESET == RESET_SUBTRACT:
                    if NEED_TH:
                        acc_t += ((-gh) * r).to(tl.float64)
                else:
                    gh = gh + (-(gh * r))
        # the membrane before the charge (learnable leak only)
        v1 = vp
        if NEED_LEAK:
            if CARRIED:
                if PRE:
                    v1 = _pre_reset(vp, r, th, vr, RESET, VR0)
        drv = zero
        if NEED_DRIVE:
            if SYN:
                drv = tl.load(ib_ptr + o, mask=m, other=0.0)
            else:
                drv = tl.load(x_ptr + pid_b * sxb + t64 * sxt + n64 * sxn, mask=m, other=0.0)
        # charge
        if CHARGE == CHARGE_BETA:
            gv1 = gh * lk
            gd = gh
            if NEED_LEAK:
                acc_l += (gh * v1).to(tl.float64)
        elif CHARGE == CHARGE_TAU:
            gv1 = gh + _div(-gh, lk)
            gd = gh
            if NEED_LEAK:
                acc_l += (gh * _div(_div(v1 - vr, lk), lk)).to(tl.float64)
        elif CHARGE == CHARGE_TAU_INPUT:
            ge = _div(gh, lk)
            gv1 = gh + (-ge)
            gd = ge
            if NEED_LEAK:
                acc_l += ((-gh) * _div(_div(drv - (v1 - vr), lk), lk)).to(tl.float64)
        elif CHARGE == CHARGE_RATE:
            gv1 = gh + (-gh) * lk
            gd = gh
            if NEED_LEAK:
                acc_l += ((-gh) * (v1 - vr)).to(tl.float64)
        else:
            ge = gh * lk
            gv1 = gh + (-ge)
            gd = ge
            if NEED_LEAK:
                acc_l += (gh * (drv - (v1 - vr))).to(tl.float64)
        if SYN:
            gd = gd + gi
            if NEED_AL:
                ip = tl.load(ib_ptr + o - N, mask=m & okp, other=0.0)
                ip = tl.where(okp, ip, i0)
                acc_a += (gd * ip).to(tl.float64)
            gi = gd * al
        if NEED_X:
            tl.store(gx_ptr + o, gd, mask=m)
        # carried reset before the charge
        if CARRIED:
            if PRE:
                if RESET == RESET_SUBTRACT:
                    if NEED_TH:
                        acc_t += ((-gv1) * r).to(tl.float64)
                else:
                    gv1 = gv1 * (1.0 - r)
        gv = gv1
    if NEED_V0:
        tl.store(gv0_ptr + pid_b * N + n64, gv, mask=m)
    if SYN:
        if NEED_I0:
            tl.store(gi0_ptr + pid_b * N + n64, gi, mask=m)
    if NEED_LEAK:
        tl.store(gl_ptr + pid_b * N + n64, acc_l, mask=m)
    if NEED_TH:
        tl.store(gt_ptr + pid_b * N + n64, acc_t, mask=m)
    if NEED_AL:
        tl.store(ga_ptr + pid_b * N + n64, acc_a, mask=m)


_DEVICE_FNS = (_spike, _div, _charge, _pre_reset, _post_reset, _reset, _surrogate)


@functools.lru_cache(maxsize=2)
def kernels(interpret: bool) -> tuple[Any, Any]:
    """``(forward, backward)`` kernels: compiled (``JITFunction``) ones, or the interpreter's
    (``InterpretedFunction``).

    The same functions are wrapped in a fresh global namespace per mode (the device functions
    they call resolve there to the same mode), so this depends neither on
    ``$TRITON_INTERPRET`` nor on when this module was imported.
    """
    if triton is None:  # pragma: no cover
        raise RuntimeError("triton is not installed")
    if interpret:
        from triton.runtime.interpreter import InterpretedFunction as wrap
    else:  # not triton.jit, which returns an InterpretedFunction under $TRITON_INTERPRET
        from triton.runtime.jit import JITFunction as wrap
    ns: dict[str, Any] = {"tl": tl, "triton": triton, "__name__": __name__}
    ns.update({name: tl.constexpr(globals()[name]) for name in _RULE_CONSTANTS})

    def build(fn: Callable[..., Any]) -> Any:
        copy = types.FunctionType(fn.__code__, ns, fn.__name__, fn.__defaults__, fn.__closure__)
        copy.__qualname__, copy.__module__, copy.__doc__ = fn.__qualname__, __name__, fn.__doc__
        copy.__annotations__ = dict(fn.__annotations__)
        return wrap(copy)

    for fn in _DEVICE_FNS:
        ns[fn.__name__] = build(fn)
    return build(_lif_fwd), build(_lif_bwd)


# ---------------------------------------------------------------- host side
def triton_config(c: FusedConfig) -> dict[str, Any] | None:
    """The kernels' constexpr rule flags for ``c`` (``None``: a surrogate or a feature not
    covered: adaptation, one-to-one recurrence, refractory periods, graded spikes)."""
    if type(c.surrogate) not in _CONSTANTS or c.adapt or c.recur or c.refractory or c.graded:
        return None
    if not rules_covered(COVERED, c):
        return None
    carried = c.carried
    return {
        "CHARGE": _CODES["charge"][c.charge], "RESET": _CODES["reset"][c.reset],
        "GE": c.comparator == ">=",
        "CARRIED": carried, "PRE": carried and c.pre, "DELAYED": c.delayed,
        "COMP": c.compensated,
        "VR0": c.v_reset == 0.0, "SYN": c.synapse,
    }


def _block(n: int, programs_b: int, interpret: bool) -> tuple[int, int]:
    """``(BLOCK, num_warps)``: one wide block in the interpreter (fewer Python-level
    programs); on a GPU blocks of 32-128 neurons, narrower while the grid stays small."""
    if interpret:
        return min(1024, triton.next_power_of_2(n)), 1
    block = min(128, max(32, triton.next_power_of_2(n)))
    while block > 32 and programs_b * triton.cdiv(n, block) < 512:
        block //= 2
    return block, max(1, block // 32)


def _rows(t: Tensor, b: int, n: int, full: torch.Size) -> tuple[Tensor, int, int]:
    """``t`` broadcast to ``full`` as ``(B, N)`` rows: ``(tensor, batch stride, neuron
    stride)``, a view where the layout allows (stride 0 along broadcast dimensions)."""
    r = t.expand(full).reshape(b, n)
    return r, r.stride(0), (r.stride(1) if n > 1 else 1)


def _consts(values: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """The kernels' scalar constants as a (cached, read-only) tensor of the state dtype: each
    value rounded once from double, as ``T(value)`` in lif_native.cpp (a float kernel
    argument would be fp32 even for fp64 state)."""
    return _consts_cached(tuple(float(v).hex() for v in values), dtype, device)


@functools.lru_cache(maxsize=64)
def _consts_cached(values: tuple[str, ...], dtype: torch.dtype, device: torch.device
                   ) -> Tensor:  # keyed by the exact bits: -0.0 and 0.0 differ
    return torch.tensor([float.fromhex(v) for v in values], dtype=dtype, device=device)


def _launch(kernel: Any, grid: tuple[int, int], interpret: bool, *args: Any,
            **meta: Any) -> None:
    if interpret:
        import numpy as np

        # The interpreter computes with numpy, which warns where the GPU silently gives
        # IEEE results (inf, nan); a GPU does not warn, neither does this.
        with np.errstate(all="ignore"):
            kernel[grid](*args, **meta)
    else:
        kernel[grid](*args, **meta, enable_fp_fusion=False)


class TritonLIF(torch.autograd.Function):
    """Whole-window LIF by the Triton kernels.

    ``(c, interpret, x (B,T,*f), v0, i0, leak, θ, α) -> (spikes, v_T[, i_T][, v_trace])``;
    ``i0``/``α`` are ``None`` without a synapse. Saves ``h`` ``(B, T, N)`` only (plus the
    inputs, and ``x`` itself where a gradient needs the synaptic current or the drive).
    """

    @staticmethod
    def forward(ctx, c: FusedConfig, interpret: bool, x: Tensor, v0: Tensor,  # type: ignore[override]
                i0: Tensor | None, leak: Tensor, threshold: Tensor, alpha: Tensor | None
                ) -> tuple[Tensor, ...]:
        ctx.set_materialize_grads(False)
        needs = ctx.needs_input_grad
        grad = any(needs)
        flags = triton_config(c)
        assert flags is not None
        b, steps = x.shape[0], x.shape[1]
        feat = x.shape[2:]
        n = math.prod(feat)
        full = torch.Size((b, *feat))
        dt, dev = v0.dtype, v0.device
        xs = x.reshape(b, steps, n)
        v0r, svb, svn = _rows(v0, b, n, full)
        lkr, slb, sln = _rows(leak, b, n, full)
        thr, stb, stn = _rows(threshold, b, n, full)
        if c.synapse:
            i0r, sib, sin = _rows(i0, b, n, full)  # type: ignore[arg-type]
            alr, sab, san = _rows(alpha, b, n, full)  # type: ignore[arg-type]
        else:
            i0r, sib, sin = v0r, 0, 0
            alr, sab, san = v0r, 0, 0
        save_h = grad or (c.record_v and c.delayed)
        spikes = torch.empty((b, steps, *feat), dtype=dt, device=dev)
        hs = torch.empty_like(spikes) if save_h else None
        trace = None
        if c.record_v:
            trace = hs if c.delayed else torch.empty_like(spikes)
        v_t = torch.empty(full, dtype=dt, device=dev)
        i_t = torch.empty(full, dtype=dt, device=dev) if c.synapse else None
        consts = _consts((c.v_reset,), dt, dev)
        block, warps = _block(n, b, interpret)
        fwd, _ = kernels(interpret)
        _launch(fwd, (b, triton.cdiv(n, block)), interpret,
                xs, xs.stride(0), xs.stride(1), xs.stride(2) if n > 1 else 1,
                v0r, svb, svn, i0r, sib, sin, lkr, slb, sln, thr, stb, stn, alr, sab, san,
                consts, spikes, hs if hs is not None else spikes,
                trace if (trace is not None and trace is not hs) else spikes,
                v_t, i_t if i_t is not None else v_t, steps, n,
                **flags, SAVE_H=hs is not None,
                TRACE=trace is not None and trace is not hs, BLOCK=block, num_warps=warps)
        outs: list[Tensor] = [spikes, v_t]
        if i_t is not None:
            outs.append(i_t)
        if trace is not None:
            outs.append(trace)
        ctx.c, ctx.interpret = c, interpret
        if grad:
            keep_x = (c.synapse and needs[7]) or (
                needs[5] and c.charge in rules.INPUT_CHARGES)
            ctx.save_for_backward(hs, v0, i0, leak, threshold, alpha, x if keep_x else None)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        c: FusedConfig = ctx.c
        interpret: bool = ctx.interpret
        hs, v0, i0, leak, thr, alpha, x = ctx.saved_tensors
        needs = ctx.needs_input_grad
        syn = c.synapse
        need_x, need_v0, need_i0 = needs[2], needs[3], syn and needs[4]
        need_leak, need_th, need_al = needs[5], needs[6], syn and needs[7]
        g_spk, g_v = grads[0], grads[1]
        g_i = grads[2] if syn else None
        g_tr = grads[-1] if c.record_v else None
        flags = triton_config(c)
        assert flags is not None
        b, steps = hs.shape[0], hs.shape[1]
        feat = hs.shape[2:]
        n = math.prod(feat)
        full = torch.Size((b, *feat))
        dt, dev = hs.dtype, hs.device
        need_drive = need_leak and c.charge in rules.INPUT_CHARGES
        scan_i = syn and (need_drive or need_al)
        need_prev = need_leak or (flags["CARRIED"] and not flags["COMP"])

        def seq(g: Tensor | None) -> tuple[Tensor, int, int, int]:
            if g is None:
                return hs, 0, 0, 0
            g = g.reshape(b, steps, n)
            return g, g.stride(0), g.stride(1), (g.stride(2) if n > 1 else 1)

        def rows(g: Tensor | None) -> tuple[Tensor, int, int]:
            return (hs, 0, 0) if g is None else _rows(g, b, n, full)

        v0r, svb, svn = _rows(v0, b, n, full)
        lkr, slb, sln = _rows(leak, b, n, full)
        thr_, stb, stn = _rows(thr, b, n, full)
        i0r, sib, sin = _rows(i0, b, n, full) if syn else (v0r, 0, 0)
        alr, sab, san = _rows(alpha, b, n, full) if syn else (v0r, 0, 0)
        if x is not None:
            xs = x.reshape(b, steps, n)
            xa = (xs, xs.stride(0), xs.stride(1), xs.stride(2) if n > 1 else 1)
        else:
            xa = (hs, 0, 0, 0)
        sur_id = S.SURROGATE_CODES[type(c.surrogate)]
        k1, k2 = _CONSTANTS[type(c.surrogate)](c.surrogate)
        consts = _consts((c.v_reset, k1, k2), dt, dev)
        rb = (torch.empty((b, steps, n), dtype=torch.int8, device=dev) if flags["COMP"]
              else torch.empty(1, dtype=torch.int8, device=dev))
        ib = torch.empty((b, steps, n), dtype=dt, device=dev) if scan_i else hs
        gx = torch.empty((b, steps, *feat), dtype=dt, device=dev) if need_x else None
        gv0 = torch.empty(full, dtype=dt, device=dev) if need_v0 else None
        gi0 = torch.empty(full, dtype=dt, device=dev) if need_i0 else None
        f64 = torch.empty((b, n), dtype=torch.float64, device=dev)  # placeholder pointer
        gl = torch.empty((b, n), dtype=torch.float64, device=dev) if need_leak else None
        gt = torch.empty((b, n), dtype=torch.float64, device=dev) if need_th else None
        ga = torch.empty((b, n), dtype=torch.float64, device=dev) if need_al else None
        block, warps = _block(n, b, interpret)
        _, bwd = kernels(interpret)
        _launch(bwd, (b, triton.cdiv(n, block)), interpret,
                hs, *seq(g_spk), *seq(g_tr), *rows(g_v), *rows(g_i), *xa,
                v0r, svb, svn, i0r, sib, sin, lkr, slb, sln, thr_, stb, stn, alr, sab, san,
                consts, rb, ib,
                gx if gx is not None else hs, gv0 if gv0 is not None else hs,
                gi0 if gi0 is not None else hs,
                gl if gl is not None else f64, gt if gt is not None else f64,
                ga if ga is not None else f64, steps, n,
                **flags, DETACH=c.detach_reset, SURR=sur_id,
                HAS_GS=g_spk is not None, HAS_GTR=g_tr is not None, HAS_GV=g_v is not None,
                HAS_GI=g_i is not None, NEED_X=need_x, NEED_V0=need_v0, NEED_I0=need_i0,
                NEED_LEAK=need_leak, NEED_TH=need_th, NEED_AL=need_al, NEED_PREV=need_prev,
                NEED_DRIVE=need_drive, SCAN_I=scan_i, BLOCK=block, num_warps=warps)

        def reduce(g: Tensor | None, like: Tensor | None) -> Tensor | None:
            """(B, N) float64 -> the parameter's shape (summed in float64), its dtype."""
            if g is None or like is None:
                return None
            return g.view(full).sum_to_size(like.shape).to(like.dtype)

        return no_second_order("triton", (None, None, gx, gv0, gi0, reduce(gl, leak),
                                          reduce(gt, thr), reduce(ga, alpha) if need_al else None),
                               lambda: (*ctx.saved_tensors, *grads))


def _param_ok(t: Tensor | None, full: torch.Size, dt: torch.dtype, dev: torch.device) -> bool:
    if not isinstance(t, Tensor) or t.dtype != dt or t.device != dev:
        return False
    try:
        return torch.broadcast_shapes(t.shape, full) == full
    except RuntimeError:
        return False


def run_triton(c: FusedConfig, x: Tensor, v0: Tensor, i0: Tensor | None, leak: Tensor,
               threshold: Tensor, alpha: Tensor | None, *, interpret: bool | None = None
               ) -> tuple[Tensor, ...] | None:
    """The Triton op on the inputs of :func:`brain_ai.kernels.fused.run_fused`.

    Args:
        c: the call's :class:`~brain_ai.kernels.fused.FusedConfig`.
        x: input ``(B, T, *f)``; converted to the state dtype when that promotion is exact.
        v0, i0: state ``(B, *f)`` (``i0`` only with a synapse).
        leak, threshold, alpha: parameters broadcastable to ``(B, *f)``, of the state dtype
            (``alpha`` only with a synapse).
        interpret: ``None`` (default): the Triton interpreter for CPU tensors, compiled
            kernels for CUDA tensors; ``True``: the interpreter (any device); ``False``:
            compiled kernels (CUDA tensors only).
    Returns:
        ``(spikes, v_T[, i_T if synapse][, v_trace if record_v])``, or ``None`` where this op
        does not cover the call (see the module docstring): Triton missing, a user-defined
        surrogate, a dtype other than float32/float64, a device other than CPU/CUDA, mixed
        devices, compiled kernels on CPU, ``T = 0`` or no neurons, shapes outside the fused
        contract.
    """
    if triton is None or triton_config(c) is None:
        return None
    if not isinstance(x, Tensor) or x.dim() < 2 or not isinstance(v0, Tensor):
        return None
    dt, dev = v0.dtype, v0.device
    if dt not in (torch.float32, torch.float64) or dev.type not in ("cpu", "cuda"):
        return None
    if interpret is None:
        interpret = dev.type == "cpu"
    if not interpret and dev.type != "cuda":
        return None
    b, steps = x.shape[0], x.shape[1]
    full = torch.Size((b, *x.shape[2:]))
    if steps == 0 or full.numel() == 0 or v0.shape != full or x.device != dev:
        return None
    if not x.is_floating_point() or torch.promote_types(x.dtype, dt) != dt:
        return None
    if c.synapse != (i0 is not None) or c.synapse != (alpha is not None):
        return None
    if i0 is not None and (i0.shape != full or i0.dtype != dt or i0.device != dev):
        return None
    params = [leak, threshold] + ([alpha] if alpha is not None else [])
    if not all(_param_ok(p, full, dt, dev) for p in params):
        return None
    return TritonLIF.apply(c, interpret, x.to(dt), v0, i0, leak, threshold, alpha)


def run_dispatched(c: FusedConfig, x: Tensor, v0: Tensor, i0: Tensor | None, leak: Tensor,
                   threshold: Tensor, alpha: Tensor | None) -> tuple[Tensor, ...] | None:
    """What :func:`brain_ai.kernels.fused_multi_step` runs for the kernel ``"triton"``: the
    compiled kernels on CUDA tensors, ``None`` (the next kernel runs) on any other device."""
    if not x.is_cuda:
        return None
    return run_triton(c, x, v0, i0, leak, threshold, alpha, interpret=False)
