r"""Fast multi-step kernels of the LIF family, chosen per call by :func:`fused_multi_step`.

=============  ============================================================================
kernel         what runs
=============  ============================================================================
``reference``  :func:`brain_ai.physics.functional.lif_multi_step` (per-step autograd graph)
``fused``      :class:`brain_ai.kernels.fused.FusedLIF`: pure PyTorch, one autograd node per
               window, one saved tensor per neuron-step, hand-written backward
``native``     :mod:`brain_ai.kernels.native`: the same op as a C++ loop (OpenMP over batch x
               neuron blocks), compiled on first use and cached; CPU only
``triton``     :mod:`brain_ai.kernels.triton_lif`: the same op as Triton kernels for CUDA
               tensors. **Opt-in and untested on GPU hardware** (validated only under the
               Triton interpreter on CPU); never chosen by default
=============  ============================================================================

Coverage is deny-by-default: each kernel lists the rule names it implements (``COVERED`` in
:mod:`.fused`, :mod:`.native`, :mod:`.triton_lif`) and takes the rule codes from the one table
(:data:`brain_ai.physics.rules.RULE_CODES`); a rule added to the table, or a
:class:`~brain_ai.physics.functional.LIFParams` field not in :data:`KNOWN_FIELDS`, runs the
reference until a kernel lists it.

``BRAIN_AI_KERNEL=reference|fused|native|triton`` picks one; unset, the fastest available exact
kernel runs (``native`` on CPU when it compiles, else ``fused``; ``fused`` on CUDA tensors).
A call a kernel does not cover falls back to the next (``triton`` -> ``native`` -> ``fused``
-> ``reference``; ``triton`` on CPU tensors, without Triton or under ``torch.compile``;
``native`` also when no compiler exists), never to something inexact: forward spikes,
membranes and currents are bit-identical to the reference. So are the gradients of ``fused``
and ``native`` for every charge, reset, timing and comparator (input, initial membrane,
learnable leak and threshold of any broadcastable shape, every built-in surrogate, float32
and float64, truncated BPTT): they add what autograd's engine adds, in its order
(tests/test_fast_path.py, also against snnTorch and SpikingJelly directly). With a synapse,
adaptation, recurrence, a refractory period or graded spikes they differ only by summation
order (tests/test_kernels.py: within 1e-6 of the largest entry, and for parameters of the sum
of the absolute terms reduced).

Truncated BPTT (``chunk_size``) runs as one call of ``fused`` / ``native`` over the whole
sequence, which stops the state's gradient at the window edges (:func:`fused_multi_step`).

Covered by ``fused`` and ``native``: every charge rule, reset mechanism, reset timing,
comparator, ``v_reset``, ``detach_reset``, a current-based synapse, an adaptive threshold
(``AdaptiveLIFNeuron``), a one-to-one recurrence (``RecurrentLIFNeuron(recurrent=
"one_to_one")``), refractory periods, graded spikes, learnable (scalar or per-neuron) leak,
threshold, ``α``, ``κ``, ``ρ``, recurrent weight and graded factor, ``record=("v",)``,
float32/float64 state (lower-precision input is promoted as the reference does), every built-in
surrogate (``native``; a user-defined surrogate runs on ``fused``, which calls its
``backward``). ``native`` runs every charge x reset x timing x comparator on a vectorized
loop of its own (the rules as template arguments); the optional features (synapse,
adaptation, recurrence, refractory period, graded spikes) on a general loop. ``triton`` covers the
LIF family without adaptation, recurrence, refractory periods and graded spikes. Not covered
(the reference runs): linear/conv recurrent connections (a matmul per step needs the previous
step's spikes of the whole layer), learnable delays, other recorded fields, and calls under
``vmap``/``jit.trace``. Under ``torch.compile`` the native op is traced as one opaque node (its
fake implementation gives the shapes); without it the reference is traced (the pure-PyTorch
loop would be unrolled just the same).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import torch
from torch import Tensor

from brain_ai.errors import ConfigError
from brain_ai.kernels import fused, native, triton_lif
from brain_ai.kernels.fused import FusedConfig, run_fused
from brain_ai.physics.functional import LIFParams
from brain_ai.physics.state import SpikingState

__all__ = ["KERNELS", "KNOWN_FIELDS", "FusedConfig", "fused_config", "fused_multi_step",
           "selected_kernel", "unknown_fields_set"]

KERNELS = ("reference", "fused", "native", "triton")
ENV_VAR = "BRAIN_AI_KERNEL"


def selected_kernel() -> str | None:
    """The kernel named by ``$BRAIN_AI_KERNEL`` (``None`` when unset: fastest available)."""
    name = os.environ.get(ENV_VAR, "").strip().lower()
    if not name:
        return None
    if name not in KERNELS:
        raise ConfigError(ENV_VAR, "unknown kernel", got=repr(name),
                          expected=" | ".join(KERNELS),
                          hint=f"unset {ENV_VAR} to use the fastest exact kernel")
    return name


def _param_ok(t: object, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> bool:
    """A parameter the fused op can take after ``.to(dtype)`` without changing any bit."""
    if not isinstance(t, Tensor) or not t.is_floating_point():
        return False
    if t.dim() == 0:  # a 0-d tensor never promotes a dimensioned one
        return t.device == device or t.device.type == "cpu"
    if t.device != device or torch.promote_types(t.dtype, dtype) != dtype:
        return False
    try:
        return torch.broadcast_shapes(t.shape, shape) == shape
    except RuntimeError:
        return False


#: Every :class:`LIFParams` field the dispatcher turns into kernel inputs or refuses. A field
#: added to ``LIFParams`` and not listed here runs the reference whenever it is set away from
#: its default (deny by default: a fast kernel never silently ignores a parameter).
KNOWN_FIELDS = frozenset({
    "leak", "threshold", "surrogate", "charge", "comparator", "reset", "reset_timing",
    "v_reset", "detach_reset", "alpha", "recurrent", "adapt_decay", "adapt_scale",
    "refractory_steps", "graded", "delays",
})


def unknown_fields_set(p: LIFParams) -> list[str]:
    """The fields of ``p`` that no kernel knows and that are not at their default."""
    out = []
    for f in dataclasses.fields(p):
        if f.name in KNOWN_FIELDS:
            continue
        value = getattr(p, f.name)
        if f.default is dataclasses.MISSING or isinstance(value, Tensor) or value != f.default:
            out.append(f.name)
    return out


def recurrent_weight(p: LIFParams) -> Tensor | None:
    """``w`` of a one-to-one recurrence ``w ⊙ s`` (``None`` for none or another kind)."""
    return getattr(p.recurrent, "elementwise_weight", None) if p.recurrent is not None else None


def fused_config(x: Tensor, state: SpikingState, p: LIFParams, record: Sequence[str] = (),
                 chunk_size: int | None = None) -> FusedConfig | None:
    """The :class:`FusedConfig` of this call, or ``None`` when the fused op does not cover it.

    ``chunk_size``: truncated-BPTT window inside the op (``None``: full BPTT)."""
    if unknown_fields_set(p):
        return None
    adapt = p.adapt_decay is not None or p.adapt_scale is not None
    w_rec = recurrent_weight(p)
    if (p.recurrent is not None and w_rec is None) or p.delays is not None:
        return None
    if any(name != "v" for name in record):
        return None
    if (state.spike_history is not None or (state.ref is None) != (p.refractory_steps <= 0)
            or (state.i is None) != (p.alpha is None) or (state.a is None) == adapt
            or (state.prev_spk is None) != (p.recurrent is None)):
        return None
    v = state.v
    if not isinstance(x, Tensor) or x.dim() < 2 or not v.is_floating_point():
        return None
    if type(x) is not Tensor or type(v) is not Tensor:  # subclasses (fake, batched) -> reference
        return None
    if v.shape != torch.Size((x.shape[0], *x.shape[2:])) or x.device != v.device:
        return None
    dt = v.dtype
    if not x.is_floating_point() or torch.promote_types(x.dtype, dt) != dt:
        return None
    for extra in (state.i, state.a, state.prev_spk, state.ref):
        if extra is not None and (type(extra) is not Tensor or extra.dtype != dt
                                  or extra.shape != v.shape or extra.device != v.device):
            return None
    params = [p.leak, p.threshold] + ([p.alpha] if p.alpha is not None else [])
    if adapt:
        if p.adapt_decay is None or p.adapt_scale is None:
            return None
        params += [p.adapt_scale, p.adapt_decay]
    if w_rec is not None:
        params.append(w_rec)
    if p.graded is not None:
        params.append(p.graded)
    if not all(_param_ok(t, v.shape, dt, v.device) for t in params):
        return None
    c = FusedConfig(
        charge=p.charge, comparator=p.comparator, reset=p.reset, timing=p.reset_timing,
        v_reset=float(p.v_reset), detach_reset=bool(p.detach_reset), surrogate=p.surrogate,
        synapse=p.alpha is not None, record_v="v" in record, adapt=adapt,
        recur=w_rec is not None, refractory=max(int(p.refractory_steps), 0),
        graded=p.graded is not None,
        window=int(chunk_size) if chunk_size is not None and chunk_size < x.shape[1] else 0,
    )
    # every faster kernel falls back to the fused op: it must cover the rules, or none runs
    return c if fused.covers(c) else None


def _transformed() -> bool:
    """Inside jit tracing or a functorch transform (vmap, grad): the reference runs there."""
    return torch.jit.is_tracing() or torch._C._functorch.peek_interpreter_stack() is not None


def fused_multi_step(
    x: Tensor, state: SpikingState, p: LIFParams, record: Sequence[str] = (),
    preferred: str | None = None, chunk_size: int | None = None,
) -> tuple[Tensor, SpikingState, dict[str, Tensor]] | None:
    """The multi-step LIF over ``x`` ``(B, T, *f)`` by the selected fast kernel, or ``None``.

    Same contract as :func:`brain_ai.physics.functional.lif_multi_step`; ``None`` means "not
    covered here, run the reference" (unsupported feature, ``BRAIN_AI_KERNEL=reference``, or a
    tracing context).

    Args:
        x: input current ``(B, T, *f)``.
        state: state before the first step (``v``, and ``i`` with a synapse).
        p: resolved parameters.
        record: state fields to stack over time; only ``("v",)`` is covered.
        preferred: the neuron's own kernel choice (``None``: fastest); ``$BRAIN_AI_KERNEL``,
            when set, overrides it.
        chunk_size: truncated-BPTT window (``None``: full BPTT). The whole sequence is one
            call of the op, which stops the state's gradient at the window edges (steps
            ``t > 0`` with ``t % chunk_size == 0``): the same numbers as detaching the state
            between windows (:func:`brain_ai.core.unroll.snn_unroll`), with no concatenation,
            and the parameters' gradients summed over the whole sequence in autograd's order
            (per-window calls would sum each window apart, another float).
    Returns:
        ``(spikes (B, T, *f), final_state, traces)`` or ``None``.
    """
    kernel = selected_kernel() or preferred
    if kernel == "reference":
        return None
    c = fused_config(x, state, p, record, chunk_size)
    if c is None:
        return None
    compiling = torch.compiler.is_compiling()
    if not compiling and _transformed():
        return None
    dt = state.v.dtype
    x = x.to(dt)
    # the native op takes the parameters as they are (shape and dtype: it reduces and casts
    # their gradients step by step, as autograd does); the others in the state's dtype
    raw = {"leak": p.leak, "threshold": p.threshold, "alpha": p.alpha}
    extra_raw: dict[str, Tensor | None] = {}
    if c.adapt:
        extra_raw.update(kappa=p.adapt_scale, rho=p.adapt_decay)
    if c.recur:
        extra_raw["w_rec"] = recurrent_weight(p)
    if c.graded:
        extra_raw["graded"] = p.graded
    states: dict[str, Tensor | None] = {}
    if c.adapt:
        states["a0"] = state.a
    if c.recur:
        states["p0"] = state.prev_spk
    if c.refractory:
        states["ref0"] = state.ref

    def cast(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(dt)

    leak, thr, alpha = (cast(raw[k]) for k in ("leak", "threshold", "alpha"))
    extra = {**states, **{k: cast(t) for k, t in extra_raw.items()}}
    outs = None
    if kernel == "triton" and not compiling and not extra and not c.window:
        outs = triton_lif.run_dispatched(c, x, state.v, state.i, leak, thr, alpha)
    if outs is None and kernel != "fused" and (not compiling or native.loaded()):
        outs = native.run_native(c, x, state.v, state.i, raw["leak"], raw["threshold"],
                                 raw["alpha"], **states, **extra_raw)
    if outs is None:
        if compiling:  # the Python loop would be unrolled: trace the reference instead
            return None
        outs = run_fused(c, x, state.v, state.i, leak, thr, alpha, **extra)
    it = iter(outs)
    spikes, v = next(it), next(it)
    i = next(it) if c.synapse else None
    a = next(it) if c.adapt else None
    prev = next(it) if c.recur else None
    ref = next(it) if c.refractory else None
    traces = {"v": next(it)} if c.record_v else {}
    return spikes, SpikingState(v=v, i=i, a=a, prev_spk=prev, ref=ref), traces
