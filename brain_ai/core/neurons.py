"""The LIF family as ``nn.Module`` s: parameters only, never state.

Every neuron maps ``forward(x, state=None)`` to ``(spikes, state)`` in two modes:

========  ==================  ==================  ======================================
mode      input               output              path
========  ==================  ==================  ======================================
step      ``(B, *f)``         ``(B, *f)``         :func:`brain_ai.physics.functional.lif_step`
sequence  ``(B, T, *f)``      ``(B, T, *f)``      :func:`brain_ai.core.unroll.snn_unroll`
========  ==================  ==================  ======================================

``f`` is the neuron's feature shape. The mode is read from the state's shape when a state is
passed, else from ``features`` given at construction; otherwise call :meth:`step` or
:meth:`sequence` explicitly (no guessing).

The physics (charge, fire, reset and their timing) is in :mod:`brain_ai.physics.rules`; these
classes resolve parameters (clamping β, learnable tensors) and validate input.

Validation, the same on every entry (``forward``, :meth:`~SpikingNeuronBase.step`,
:meth:`~SpikingNeuronBase.sequence`, and so inside a ``SpikingSequential``): ``x`` is a
floating-point tensor of the right rank ending in ``features``; a given state has exactly the
fields this neuron uses, each of the step's shape (never broadcast, never dropped or carried
along). Shapes may be symbolic (``torch.SymInt``) under ``torch.export``. Values are not
inspected (that would sync the device every step): a NaN input never fires and leaves a NaN
membrane; the encoders and decoders refuse NaN/Inf (see :mod:`brain_ai.core.encoding`).

Variants: :class:`LIFNeuron` (optionally current-based synapse, refractory period, graded
spikes), :class:`AdaptiveLIFNeuron` (adaptive threshold), :class:`RecurrentLIFNeuron`
(lateral connections), :class:`AdvancedLIFNeuron` (per-neuron τ, learnable delays, adaptation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from brain_ai.core.backends import NATIVE, check_backend, get_default_backend, peer_cell
from brain_ai.core.unroll import snn_unroll, unroll_windows
from brain_ai.errors import ConfigError, DTypeError, ShapeError, is_int
from brain_ai.kernels import KERNELS, fused_multi_step
from brain_ai.physics import rules
from brain_ai.physics.functional import LIFParams, lif_multi_step, lif_step
from brain_ai.physics.mappings import beta_from_tau_exact, plif_w_from_tau
from brain_ai.physics.state import SpikingState, detach_state
from brain_ai.physics.surrogates import ATan, Surrogate
from brain_ai.physics.windows import check_chunk_size, resolve_chunk_size

__all__ = [
    "AdaptiveLIFNeuron",
    "AdvancedLIFNeuron",
    "LIFNeuron",
    "NeuronOutput",
    "RecurrentLIFNeuron",
    "SpikingNeuronBase",
    "SpikingState",
]

Scalar = float | Tensor


@dataclass(eq=False)
class NeuronOutput:
    """What ``forward(..., return_details=True)`` returns.

    Attributes:
        spikes: ``(B, T, *f)`` (sequence) or ``(B, *f)`` (step).
        state: the final state.
        membrane: membrane after every step, same shape as ``spikes``.
        details: debug probes (firing_rate, membrane_mean, ...) as floats.
    """

    spikes: Tensor
    state: SpikingState
    membrane: Tensor
    details: dict[str, float] = field(default_factory=dict)


class _Cell:
    """``(x_t, state) -> (spikes, state)`` bound to resolved parameters, with its multi-step."""

    def __init__(self, p: LIFParams, kernel: str | None = None) -> None:
        self.p = p
        self.kernel = kernel

    def __call__(self, x: Tensor, state: SpikingState) -> tuple[Tensor, SpikingState]:
        return lif_step(x, state, self.p)

    #: multi_step takes the truncated-BPTT window itself (snn_unroll calls it once)
    windows = True

    def multi_step(self, x: Tensor, state: SpikingState, record: Sequence[str],
                   chunk_size: int | None = None
                   ) -> tuple[Tensor, SpikingState, dict[str, Tensor]]:
        # None: not covered by a fast kernel (or the reference was chosen): run the reference
        out = fused_multi_step(x, state, self.p, record, self.kernel, chunk_size)
        if out is not None:
            return out
        return unroll_windows(lambda w, s, r: lif_multi_step(w, s, self.p, r), x, state,
                              record, chunk_size)


def _tensor(value: Scalar, name: str, where: str) -> Tensor:
    t = value.detach().clone() if isinstance(value, Tensor) else torch.as_tensor(float(value))
    if not t.is_floating_point():
        t = t.float()
    if not torch.isfinite(t).all():
        raise ConfigError(where, f"{name} has non-finite entries", got=t, expected="finite",
                          hint=f"check how {name} was computed")
    return t.to(torch.float32) if t.dtype in (torch.float16, torch.bfloat16) else t


def _in_range(where: str, name: str, t: Tensor, lo: float, hi: float, hint: str) -> None:
    if t.numel() and (t.min() < lo or t.max() > hi):
        raise ConfigError(where, f"{name} is outside [{lo}, {hi}]",
                          got=f"min {t.min().item():.6g}, max {t.max().item():.6g}",
                          expected=f"{lo} <= {name} <= {hi}", hint=hint)


def _finite_float(where: str, name: str, value: object) -> float:
    """``float(value)`` of a real scalar that is finite; anything else is a ConfigError."""
    try:
        if isinstance(value, (str, bytes)):
            raise TypeError(value)
        out = math.nan if isinstance(value, bool) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError):  # a string, a multi-element tensor, ...
        raise ConfigError(where, f"{name} must be a real number", got=repr(value),
                          expected="a finite float",
                          hint=f"{name} is one scalar shared by every neuron") from None
    if not math.isfinite(out):
        raise ConfigError(where, f"{name} must be a finite number", got=repr(value),
                          expected="a finite float",
                          hint=f"check how {name} was computed (NaN/Inf is never repaired)")
    return out


def _is_size(value: object) -> bool:
    """An int size, or a symbolic one (``torch.SymInt`` under ``torch.export``/``compile``)."""
    return is_int(value) or isinstance(value, torch.SymInt)


class SpikingNeuronBase(nn.Module):
    """Shared parameters, validation, state lifecycle and the step/sequence dispatch.

    Args:
        features: shape of one sample's neurons (int or tuple); lets ``forward`` tell step
            from sequence input without a state.
        beta: membrane decay β (``charge="beta"``); float or per-neuron tensor in ``[0, 1]``.
        tau: membrane time constant (``charge`` in ``"tau"``, ``"tau_input"``, ``"rate"``,
            ``"rate_input"``), ``>= 1``. Giving ``tau`` without ``charge`` selects
            ``"tau_input"`` (``v += (x - (v - v_reset)) / τ``).
        charge: charge rule (see :mod:`brain_ai.physics.rules`).
        threshold: firing threshold θ (finite float or per-neuron tensor). A negative θ is
            accepted where a peer accepts it (snnTorch ``Leaky``/``Synaptic``/``RLeaky`` and
            SpikingJelly ``LIFNode``/``ParametricLIFNode`` take any finite threshold; such a
            neuron fires at rest) and refused by :class:`AdaptiveLIFNeuron` /
            :class:`AdvancedLIFNeuron`, which have no peer.
        v_reset: reset / resting potential; the initial membrane. Finite (NaN/Inf raise).
        reset: ``"subtract"`` | ``"zero"`` (to ``v_reset``) | ``"none"``.
        reset_timing: ``"immediate"`` (default) | ``"delayed"`` | ``"delayed_pre"`` |
            ``"compensated"`` | ``"compensated_pre"`` (peer timings, see rules).
        comparator: ``">"`` (default, snnTorch) or ``">="`` (SpikingJelly).
        surrogate: backward of the spike (default :class:`ATan` ``alpha=2``).
        detach_reset: stop the gradient through the same-step reset.
        learn_beta / learn_tau / learn_threshold / learn_alpha / learn_graded_spikes_factor:
            make the parameter an ``nn.Parameter`` (else a buffer).
        beta_param: ``"clamp"`` (β clamped to ``beta_clamp`` at use) or ``"sigmoid"``
            (β = sigmoid(logit), learnable without clamping).
        beta_clamp: the clamp of β at use; default ``(0, 0.999)`` keeps a leak. Use ``(0, 1)``
            for integrate-and-fire or snnTorch's own clamp.
        graded_spikes_factor: output spikes are ``s · g`` (snnTorch graded spikes).
        alpha: synaptic decay of a current-based synapse (``i = α·i + x``); ``None`` = none.
        input_gain: input scale ``x ← x·g`` applied before the step (e.g. snnTorch
            ``Lapicque``'s ``1/(R·C)``); ``None`` = none.
        refractory_steps: steps after a spike during which the membrane is held at
            ``v_reset`` and cannot fire.
        dtype_policy: ``"float32"`` keeps state at least fp32 (even under autocast);
            ``"input"`` keeps the input dtype (SpikingJelly's behaviour).
        chunk_size: the neuron's own truncated-BPTT window (``None`` = full BPTT): its state
            is detached before every step ``t > 0`` with ``t % chunk_size == 0``. A call's
            ``chunk_size``, or that of a :class:`~brain_ai.core.snn.SpikingSequential` the
            neuron is in, overrides it when given (see
            :func:`~brain_ai.physics.windows.resolve_chunk_size`); inside a
            ``SpikingSequential`` it holds in both execution orders.
        backend: ``"native"``, ``"snntorch"`` or ``"spikingjelly"`` (the step runs on the
            peer's implementation, sharing this module's parameters; see
            :mod:`brain_ai.core.backends`); ``None`` follows the global default.
        kernel: multi-step kernel of the native backend: ``"reference"`` (per-step autograd:
            gradients in the same operation order as the peers), ``"fused"``, ``"native"``,
            ``"triton"`` (CUDA tensors; opt-in, untested on GPU hardware);
            ``None`` = the fastest exact one (also what converted neurons use: its gradients
            follow autograd's order). ``$BRAIN_AI_KERNEL`` overrides it; forward results
            never depend on it.
    """

    def __init__(
        self,
        *,
        features: int | Sequence[int] | None = None,
        beta: Scalar | None = 0.9,
        tau: Scalar | None = None,
        charge: str | None = None,
        threshold: Scalar = 1.0,
        v_reset: float = 0.0,
        reset: str = "subtract",
        reset_timing: str = "immediate",
        comparator: str = ">",
        surrogate: Surrogate | None = None,
        detach_reset: bool = False,
        learn_beta: bool = False,
        learn_tau: bool = False,
        beta_param: str = "clamp",
        beta_clamp: tuple[float, float] = (0.0, 0.999),
        learn_threshold: bool = False,
        graded_spikes_factor: Scalar = 1.0,
        learn_graded_spikes_factor: bool = False,
        alpha: Scalar | None = None,
        learn_alpha: bool = False,
        input_gain: Scalar | None = None,
        refractory_steps: int = 0,
        dtype_policy: str = "float32",
        chunk_size: int | None = None,
        backend: str | None = None,
        kernel: str | None = None,
    ) -> None:
        super().__init__()
        where = f"{type(self).__name__}"
        if charge is None:
            charge = "beta" if tau is None else "tau_input"
        rules.check_rule(where, "charge", charge, rules.ALLOWED["charge"])
        rules.check_rule(where, "reset", reset, rules.ALLOWED["reset"])
        rules.check_rule(where, "reset_timing", reset_timing, rules.ALLOWED["reset_timing"])
        rules.check_rule(where, "comparator", comparator, rules.ALLOWED["comparator"])
        rules.check_rule(where, "beta_param", beta_param, ("clamp", "sigmoid"))
        rules.check_rule(where, "dtype_policy", dtype_policy, ("float32", "input"))
        if backend is not None:
            check_backend(where, backend)
        if kernel is not None:
            rules.check_rule(where, "kernel", kernel, KERNELS)
        self.backend = backend
        self.kernel = kernel
        if surrogate is None:
            surrogate = ATan()
        if not isinstance(surrogate, Surrogate):
            raise ConfigError(where, "surrogate must be a brain_ai Surrogate", got=surrogate,
                              expected="e.g. ATan(), FastSigmoid(slope=25)",
                              hint="see brain_ai.physics.surrogates")
        if not is_int(refractory_steps) or refractory_steps < 0:
            raise ConfigError(where, "refractory_steps must be an int >= 0",
                              got=repr(refractory_steps), expected="int >= 0",
                              hint="0 disables the refractory period")
        if refractory_steps and reset_timing != "immediate":
            raise ConfigError(where, "a refractory period needs the immediate reset timing",
                              got=reset_timing, expected="'immediate'",
                              hint="peer timings (delayed/compensated) have no refractory period")
        check_chunk_size(where, chunk_size)
        lo, hi = beta_clamp
        if not 0.0 <= lo <= hi <= 1.0:
            raise ConfigError(where, "beta_clamp must satisfy 0 <= lo <= hi <= 1",
                              got=beta_clamp, expected="e.g. (0.0, 0.999)",
                              hint="beta outside [0, 1] makes the membrane explode or oscillate")

        self.features: tuple[int, ...] | None = (
            None if features is None
            else (features,) if isinstance(features, int) else tuple(features)
        )
        if self.features is not None and not all(is_int(n) and n > 0 for n in self.features):
            raise ConfigError(where, "features must be positive ints", got=features,
                              expected="N or a shape like (C, H, W)",
                              hint="features is the shape of one sample's neurons")
        self._rank = None if self.features is None else len(self.features)
        self.charge = charge
        self.reset = reset
        self.reset_timing = reset_timing
        self.comparator = comparator
        self.surrogate = surrogate
        self.detach_reset = bool(detach_reset)
        self.v_reset = _finite_float(where, "v_reset", v_reset)
        self.beta_param = beta_param
        self.beta_clamp = (float(lo), float(hi))
        self.refractory_steps = refractory_steps
        self.dtype_policy = dtype_policy
        self.chunk_size = chunk_size

        if charge == "beta":
            if beta is None:
                raise ConfigError(where, "charge='beta' needs beta", got=None,
                                  expected="beta in [0, 1]", hint="or give tau and a tau charge")
            b = _tensor(beta, "beta", where)
            _in_range(where, "beta", b, lo, hi,
                      "beta = exp(-dt/tau); for a non-leaky neuron pass beta_clamp=(0.0, 1.0)")
            if beta_param == "sigmoid":
                if b.numel() and (b.min() <= 0 or b.max() >= 1):
                    raise ConfigError(where, "beta_param='sigmoid' needs 0 < beta < 1",
                                      got=f"min {b.min().item()}, max {b.max().item()}",
                                      expected="beta strictly inside (0, 1)",
                                      hint="use beta_param='clamp' for beta 0 or 1")
                self._register("beta_logit", torch.logit(b.double()).float(), learn_beta)
            else:
                self._register("beta", b, learn_beta)
        else:
            if tau is None:
                raise ConfigError(where, f"charge={charge!r} needs tau", got=None,
                                  expected="tau >= 1", hint="or use charge='beta' with beta")
            t = _tensor(tau, "tau", where)
            _in_range(where, "tau", t, 1.0, math.inf, "tau is in steps (dt = 1); tau >= 1")
            if charge in ("rate", "rate_input"):  # 1/τ = sigmoid(w), as SpikingJelly's PLIF
                w = torch.as_tensor(plif_w_from_tau(t if t.dim() else float(t)),
                                    dtype=torch.float32)
                self._register("w", w, learn_tau)
            else:
                self._register("tau", t, learn_tau)

        self._register("threshold", _tensor(threshold, "threshold", where), learn_threshold)
        g = _tensor(graded_spikes_factor, "graded_spikes_factor", where)
        if learn_graded_spikes_factor or not bool((g == 1).all()):
            self._register("graded_spikes_factor", g, learn_graded_spikes_factor)
        else:
            self.graded_spikes_factor = None
        if alpha is not None:
            a = _tensor(alpha, "alpha", where)
            _in_range(where, "alpha", a, 0.0, 1.0, "alpha = exp(-dt/tau_syn)")
            self._register("alpha", a, learn_alpha)
        else:
            self.alpha = None
        if input_gain is not None:
            self.register_buffer("input_gain", _tensor(input_gain, "input_gain", where))
        else:
            self.input_gain = None
        self._check_param_shapes(where)

    def _check_param_shapes(self, where: str) -> None:
        """Per-neuron parameters must broadcast to ``features`` (never over the batch)."""
        if self.features is None:
            return
        for name, t in [*self.named_parameters(recurse=False), *self.named_buffers(recurse=False)]:
            try:
                ok = torch.broadcast_shapes(t.shape, self.features) == self.features
            except RuntimeError:
                ok = False
            if not ok:
                raise ConfigError(where, f"{name} does not fit the neurons' shape",
                                  got=tuple(t.shape), expected=f"broadcastable to {self.features}",
                                  hint="per-neuron parameters have the shape of one sample's "
                                       "neurons (no batch axis)")

    # ---------------------------------------------------------------- parameters
    def _register(self, name: str, value: Tensor, learn: bool) -> None:
        if learn:
            setattr(self, name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    def leak(self) -> Tensor:
        """The resolved leak tensor: β (clamped or sigmoid), τ, or ``q = sigmoid(w)``."""
        if self.charge == "beta":
            if self.beta_param == "sigmoid":
                return torch.sigmoid(self.beta_logit)
            return self.beta.clamp(*self.beta_clamp)
        if self.charge in ("rate", "rate_input"):  # at least fp32, else the model's dtype
            return self.w.to(torch.promote_types(self.w.dtype, torch.float32)).sigmoid()
        return self.tau

    def params(self) -> LIFParams:
        """Parameters resolved for one call (subclasses add their features)."""
        return LIFParams(
            leak=self.leak(), threshold=self.threshold, surrogate=self.surrogate,
            charge=self.charge, comparator=self.comparator, reset=self.reset,
            reset_timing=self.reset_timing, v_reset=self.v_reset,
            detach_reset=self.detach_reset,
            alpha=None if self.alpha is None else self.alpha.clamp(0.0, 1.0),
            refractory_steps=self.refractory_steps, graded=self.graded_spikes_factor,
        )

    def cell(self) -> Any:
        """``(x_t, state) -> (spikes, state)`` on this neuron's backend, for one call."""
        backend = self.backend or get_default_backend()
        if backend == NATIVE:
            return _Cell(self.params(), self.kernel)
        return peer_cell(self, backend)

    def prepare_input(self, x: Tensor) -> Tensor:
        """Input transform before the step: ``x·input_gain`` if set (subclasses add more)."""
        return x if self.input_gain is None else x * self.input_gain

    def prepare_sequence(self, x: Tensor) -> Tensor:
        """:meth:`prepare_input` over ``(B, T, ...)`` (elementwise, so the bits match steps)."""
        return self.prepare_input(x)

    # ---------------------------------------------------------------- state lifecycle
    def _state_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """``"input"``: the input's dtype; ``"float32"``: at least fp32, and at least the
        parameters' dtype (a float64 parameter would promote the state after one step)."""
        if self.dtype_policy == "input":
            return dtype
        out = torch.promote_types(dtype, torch.float32)
        for t in (*self.parameters(recurse=False), *self.buffers(recurse=False)):
            if t.is_floating_point() and t.dim() > 0:
                out = torch.promote_types(out, t.dtype)
        return out

    def reset_state(
        self,
        batch_size: int,
        feature_shape: int | Sequence[int] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> SpikingState:
        """Fresh state for ``batch_size`` samples: ``v = v_reset``, everything else zero.

        ``feature_shape`` defaults to the ``features`` given at construction. ``dtype`` is the
        input dtype; the state dtype follows ``dtype_policy``. Nothing is stored on ``self``.
        """
        where = f"{type(self).__name__}.reset_state"
        shape = (self.features if feature_shape is None
                 else (feature_shape,) if isinstance(feature_shape, int) else tuple(feature_shape))
        if shape is None:
            raise ShapeError(where, "the feature shape is unknown", got=None,
                             expected="feature_shape=(N,) or features= at construction",
                             hint="pass feature_shape, or let forward(x, state=None) build it")
        if not _is_size(batch_size) or batch_size <= 0:
            raise ShapeError(where, "batch_size must be a positive int", got=batch_size,
                             expected="int > 0 (or a symbolic size while exporting)",
                             hint="use x.shape[0]")
        if not all(_is_size(n) and n > 0 for n in shape):
            raise ShapeError(where, "the feature shape must be positive ints", got=shape,
                             expected="e.g. (N,) or (C, H, W)",
                             hint="feature_shape is the shape of one sample's neurons")
        full = (batch_size, *shape)
        dt = self._state_dtype(dtype)
        zeros = torch.zeros(full, device=device, dtype=dt)
        return SpikingState(v=torch.full(full, self.v_reset, device=device, dtype=dt),
                            **self._extra_state(zeros))

    def _extra_state(self, zeros: Tensor) -> dict[str, Tensor]:
        extra: dict[str, Tensor] = {}
        if self.alpha is not None:
            extra["i"] = zeros
        if self.refractory_steps:
            extra["ref"] = zeros
        return extra

    def detach_state(self, state: SpikingState) -> SpikingState:
        """The same values with the autograd graph cut (truncated BPTT between windows)."""
        return detach_state(state)  # type: ignore[return-value]

    def _check_state(self, where: str, state: SpikingState, x_step_shape: torch.Size,
                     x: Tensor) -> None:
        if not isinstance(state, SpikingState):
            raise ShapeError(where, "state must be a SpikingState", got=type(state).__name__,
                             expected="SpikingState", hint="use neuron.reset_state(...)")
        fields = state.tensors()
        bad = sorted(k for k, t in fields.items()
                     if not isinstance(t, Tensor) or not t.is_floating_point())
        if bad:
            raise ShapeError(where, f"state fields {bad} are not floating-point tensors",
                             got={k: getattr(fields[k], "dtype", type(fields[k]).__name__)
                                  for k in bad},
                             expected="floating-point tensors",
                             hint="build the state with this neuron's reset_state(...)")
        if state.v.shape != x_step_shape:
            raise ShapeError(
                where,
                f"state.v has shape {tuple(state.v.shape)} but one step of x has shape "
                f"{tuple(x_step_shape)}; they must match (state is never broadcast)",
                got=tuple(state.v.shape), expected=tuple(x_step_shape),
                hint="start from neuron.reset_state(...) for this batch, or pass state=None")
        probe = {"v": state.v, **self._extra_state(torch.zeros(1, 1))}
        missing = sorted(set(probe) - set(fields))
        if missing:
            raise ShapeError(where, f"state lacks fields {missing} that this neuron uses",
                             got=sorted(fields), expected=sorted(probe),
                             hint="build the state with this neuron's reset_state(...)")
        extra = sorted(set(fields) - set(probe))
        if extra:
            raise ShapeError(where, f"state has fields {extra} that {type(self).__name__} does "
                             "not use (a state of another neuron kind?)",
                             got=sorted(fields), expected=sorted(probe),
                             hint="build the state with this neuron's reset_state(...); "
                                  "fields are never dropped or carried along silently")
        for name, t in fields.items():
            # spike_history is (B, D, *f) with D the neuron's history depth; the rest (B, *f)
            want = (x_step_shape if probe[name].dim() == 2 or name == "v" else
                    torch.Size((x_step_shape[0], probe[name].shape[1], *x_step_shape[1:])))
            if t.shape != want:
                raise ShapeError(where, f"state.{name} has shape {tuple(t.shape)} but this "
                                 f"step needs {tuple(want)} (state is never broadcast)",
                                 got=tuple(t.shape), expected=tuple(want),
                                 hint="start from neuron.reset_state(...) for this batch, or "
                                      "pass state=None")
            if t.device != x.device:
                raise ShapeError(where, f"state.{name} and the input are on different devices",
                                 got=str(t.device), expected=str(x.device),
                                 hint="move the state with tree_map(lambda t: t.to(dev), state)")

    def _check_input(self, where: str, x: Tensor, lead: int) -> None:
        """``x`` is a float tensor ``(B, [T,] *f)``: ``lead`` axes before the features."""
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise ShapeError(where, "x must be a floating-point tensor",
                             got=getattr(x, "dtype", type(x).__name__),
                             expected="float16/bfloat16/float32/float64",
                             hint="convert spikes or counts with x.float()")
        layout = "(B, T, *f)" if lead == 2 else "(B, *f)"
        inputs = self.input_features()
        rank = len(inputs) if inputs is not None else self._rank
        if x.dim() < lead or (rank is not None and x.dim() != rank + lead):
            raise ShapeError(where, "x has the wrong rank for this neuron", got=tuple(x.shape),
                             expected=f"{layout}" + ("" if rank is None
                                                     else f" with {rank} feature dims"),
                             hint="use .step(x) for (B, *f) and .sequence(x) for (B, T, *f); "
                                  "time-first data: time_to_batch_first(x)")
        if inputs and tuple(x.shape[lead:]) != inputs:
            raise ShapeError(where, "x does not end with this neuron's feature shape",
                             got=tuple(x.shape),
                             expected="(" + ", ".join(["B", "T"][:lead] + list(map(str, inputs)))
                                      + ")",
                             hint="check the preceding layer's output size, or the neuron's "
                                  "features=")

    # ---------------------------------------------------------------- forward
    def _mode(self, x: Tensor, state: SpikingState | None) -> str:
        where = f"{type(self).__name__}.forward"
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise ShapeError(where, "x must be a floating-point tensor",
                             got=getattr(x, "dtype", type(x).__name__),
                             expected="float16/bfloat16/float32/float64",
                             hint="convert spikes or counts with x.float()")
        inputs = self.input_features()
        rank = len(inputs) if inputs is not None else self._rank
        if rank is None and isinstance(state, SpikingState):
            rank = state.v.dim() - 1
        if rank is None:
            raise ShapeError(where, "cannot tell step input (B, ...) from sequence input "
                             "(B, T, ...)", got=tuple(x.shape),
                             expected="features= at construction, or a state",
                             hint="construct with features=..., pass state=, or call "
                                  ".step(x) / .sequence(x)")
        if x.dim() not in (rank + 1, rank + 2):
            raise ShapeError(where, "x has the wrong rank for this neuron",
                             got=tuple(x.shape),
                             expected=f"(B, *f) or (B, T, *f) with {rank} feature dims",
                             hint="inputs are batch-first; time-first data: "
                                  "time_to_batch_first(x)")
        if inputs and tuple(x.shape[x.dim() - len(inputs):]) != inputs:
            raise ShapeError(where, "x does not end with this neuron's feature shape",
                             got=tuple(x.shape), expected=f"(B, [T,] *{inputs})",
                             hint="check the preceding layer's output size")
        return "step" if x.dim() == rank + 1 else "sequence"

    def input_features(self) -> tuple[int, ...] | None:
        """Feature shape of one input step, if known (``features`` unless projected)."""
        return self.features

    def step(self, x: Tensor, state: SpikingState | None = None
             ) -> tuple[Tensor, SpikingState]:
        """One time step: ``x`` ``(B, *f)`` -> ``(spikes (B, *f), state)``."""
        self._check_input(f"{type(self).__name__}.step", x, lead=1)
        x = self.prepare_input(x)
        if state is None:
            state = self.reset_state(x.shape[0], tuple(x.shape[1:]), x.device, x.dtype)
        else:
            self._check_state(f"{type(self).__name__}.step", state, x.shape, x)
        return self.cell()(x, state)  # type: ignore[no-any-return]

    def sequence(
        self,
        x: Tensor,
        state: SpikingState | None = None,
        chunk_size: int | None = None,
        record: Sequence[str] = (),
    ) -> tuple[Tensor, SpikingState, dict[str, Tensor]]:
        """A whole sequence ``(B, T, *f)`` through :func:`snn_unroll`.

        ``chunk_size`` (truncated-BPTT window) overrides the neuron's own when given; ``None``
        uses the neuron's own (:func:`~brain_ai.physics.windows.resolve_chunk_size`).

        Returns ``(spikes (B, T, *f), final_state, traces)``; ``traces`` stacks the state
        fields named in ``record`` (e.g. ``("v",)``) over time.
        """
        where = f"{type(self).__name__}.sequence"
        self._check_input(where, x, lead=2)
        x = self.prepare_sequence(x)
        step_shape = torch.Size((x.shape[0], *x.shape[2:]))
        if state is None:
            state = self.reset_state(x.shape[0], tuple(x.shape[2:]), x.device, x.dtype)
        else:
            self._check_state(where, state, step_shape, x)
        chunk = resolve_chunk_size(f"snn_unroll ({type(self).__name__}.sequence)",
                                   call=chunk_size, own=self.chunk_size)
        spikes, final, traces = snn_unroll(self.cell(), x, state, chunk, record)
        return spikes, final, traces

    def forward(
        self,
        x: Tensor,
        state: SpikingState | None = None,
        carry_state: bool = False,
        return_details: bool = False,
        chunk_size: int | None = None,
    ) -> Any:
        """Step ``(B, *f)`` or sequence ``(B, T, *f)``; returns ``(spikes, state)``.

        Args:
            x: input current, batch-first.
            state: state before the first step; ``None`` starts from :meth:`reset_state`.
            carry_state: streaming: return the final state detached, so it can be passed to
                the next call indefinitely without growing the autograd graph.
            return_details: return a :class:`NeuronOutput` (spikes, state, membrane and the
                debug probes) instead of the tuple.
            chunk_size: truncated-BPTT window for sequence input; overrides the neuron's own
                ``chunk_size``, ``None`` uses it.
        """
        mode = self._mode(x, state)
        if mode == "step":
            spikes, new_state = self.step(x, state)
            membrane = new_state.v
        else:
            spikes, new_state, traces = self.sequence(
                x, state, chunk_size, ("v",) if return_details else ())
            membrane = traces.get("v")
        if carry_state:
            new_state = self.detach_state(new_state)
        if not return_details:
            return spikes, new_state
        from brain_ai.core.losses import compute_snn_metrics

        seq_spikes = spikes if mode == "sequence" else spikes.unsqueeze(1)
        seq_mem = membrane if mode == "sequence" else membrane.unsqueeze(1)
        metrics = compute_snn_metrics(seq_spikes, seq_mem)
        return NeuronOutput(spikes, new_state, membrane, _as_float_dict(metrics))

    def extra_repr(self) -> str:
        return (f"charge={self.charge}, reset={self.reset}, reset_timing={self.reset_timing}, "
                f"comparator='{self.comparator}', surrogate={self.surrogate}")


def _as_float_dict(metrics: Any) -> dict[str, float]:
    if isinstance(metrics, dict):
        return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    from dataclasses import asdict, is_dataclass

    if is_dataclass(metrics):
        return {k: float(v) for k, v in asdict(metrics).items() if isinstance(v, (int, float))}
    return {}


class LIFNeuron(SpikingNeuronBase):
    """Leaky integrate-and-fire neuron (seed baseline ``v = β·v + i``, then spike and reset).

    All options of :class:`SpikingNeuronBase`; by default: β = 0.9 clamped to [0, 0.999],
    θ = 1, immediate subtract reset, comparator ``>``, ATan surrogate.

    Example:
        >>> import torch
        >>> lif = LIFNeuron(beta=0.5, features=2)
        >>> spikes, state = lif(torch.tensor([[[0.6, 1.2], [0.6, 0.0]]]))   # (B=1, T=2, N=2)
        >>> spikes[0].tolist(), state.v[0].tolist()
        ([[0.0, 1.0], [0.0, 0.0]], [0.9000000357627869, 0.10000002384185791])
    """

    def __init__(self, beta: Scalar | None = 0.9, threshold: Scalar = 1.0, **kwargs: Any) -> None:
        super().__init__(beta=beta, threshold=threshold, **kwargs)


class AdaptiveLIFNeuron(SpikingNeuronBase):
    """LIF with an adaptive threshold: ``θ_eff = θ + κ·a``, ``a ← ρ·a + s`` (Bellec et al.).

    Args:
        adapt_scale: κ >= 0 (``learn_adaptation`` makes κ and ρ learnable).
        adapt_decay: ρ in [0, 1].
    Subtract reset removes ``θ_eff``.
    """

    def __init__(self, beta: Scalar | None = 0.9, threshold: Scalar = 1.0, *,
                 adapt_scale: Scalar = 0.1, adapt_decay: Scalar = 0.95,
                 learn_adaptation: bool = False, **kwargs: Any) -> None:
        super().__init__(beta=beta, threshold=threshold, **kwargs)
        where = type(self).__name__
        if self.reset_timing != "immediate":
            raise ConfigError(where, "an adaptive threshold needs the immediate reset timing",
                              got=self.reset_timing, expected="'immediate'",
                              hint="the carried (peer) timings re-derive the previous spike "
                                   "from the base threshold, which adaptation moves")
        theta = self.threshold.detach()
        if theta.numel() and bool((theta < 0).any()):
            raise ConfigError(where, "a negative threshold is refused for an adaptive "
                              "threshold (no peer neuron takes one here)",
                              got=f"min {theta.min().item():.6g}", expected="threshold >= 0",
                              hint="LIFNeuron accepts a negative threshold, as snnTorch and "
                                   "SpikingJelly do; here θ + κ·a needs θ >= 0")
        k = _tensor(adapt_scale, "adapt_scale", where)
        _in_range(where, "adapt_scale", k, 0.0, math.inf, "a negative scale lowers the threshold")
        rho = _tensor(adapt_decay, "adapt_decay", where)
        _in_range(where, "adapt_decay", rho, 0.0, 1.0, "adapt_decay = exp(-dt/tau_adapt)")
        self._register("adapt_scale", k, learn_adaptation)
        self._register("adapt_decay", rho, learn_adaptation)

    def params(self) -> LIFParams:
        p = super().params()
        return _with(p, adapt_scale=self.adapt_scale, adapt_decay=self.adapt_decay.clamp(0, 1))

    def _extra_state(self, zeros: Tensor) -> dict[str, Tensor]:
        return {**super()._extra_state(zeros), "a": zeros}


def _with(p: LIFParams, **changes: Any) -> LIFParams:
    from dataclasses import replace

    return replace(p, **changes)


class _OneToOne(nn.Module):
    """Recurrent ``V ⊙ s`` (snnTorch ``all_to_all=False``)."""

    def __init__(self, V: Tensor, learn: bool) -> None:
        super().__init__()
        if learn:
            self.V = nn.Parameter(V)
        else:
            self.register_buffer("V", V)

    def forward(self, s: Tensor) -> Tensor:
        return s * self.V

    @property
    def elementwise_weight(self) -> Tensor:
        """``V``: the fused kernels compute ``s ⊙ V`` themselves, inside the time loop."""
        return self.V


class RecurrentLIFNeuron(SpikingNeuronBase):
    """LIF with lateral connections: ``h = β·v + W_in·x + W_rec·s_prev``.

    Args:
        features: number of neurons N (int) for ``"linear"``; ``(C, H, W)`` or the channel
            count ``C`` for ``"conv2d"``; optional for ``"one_to_one"``.
        recurrent: ``"linear"`` (``nn.Linear(N, N)``), ``"one_to_one"`` (``V ⊙ s``) or
            ``"conv2d"`` (``nn.Conv2d(C, C, kernel_size, padding=kernel_size // 2)``).
        bias: bias of the recurrent linear/conv layer (snnTorch has one).
        V: one-to-one weight (scalar or per-neuron).
        learn_recurrent: make the recurrent weights trainable.
        in_features: if given, an input projection ``nn.Linear(in_features, N)`` is applied
            first (time-folded in sequence mode).
        kernel_size: for ``"conv2d"``.
    ``state.prev_spk`` carries the previous output (not detached: BPTT flows through it).
    """

    def __init__(self, features: int | Sequence[int] | None = None, beta: Scalar | None = 0.9,
                 threshold: Scalar = 1.0, *, recurrent: str = "linear", bias: bool = True,
                 V: Scalar = 1.0, learn_recurrent: bool = True,
                 in_features: int | None = None, kernel_size: int = 3,
                 **kwargs: Any) -> None:
        super().__init__(features=features, beta=beta, threshold=threshold, **kwargs)
        where = type(self).__name__
        rules.check_rule(where, "recurrent", recurrent, ("linear", "one_to_one", "conv2d"))
        features = self.features or ()
        self.recurrent_kind = recurrent
        if recurrent == "linear":
            if len(features) != 1:
                raise ConfigError(where, "recurrent='linear' needs an int feature count",
                                  got=features, expected="features=N",
                                  hint="use recurrent='conv2d' for (C, H, W) features")
            self.recurrent = nn.Linear(features[0], features[0], bias=bias)
        elif recurrent == "conv2d":
            if len(features) not in (1, 3):
                raise ConfigError(where, "recurrent='conv2d' needs features=(C, H, W) or C",
                                  got=features, expected="a 3-tuple or an int",
                                  hint="the recurrent conv keeps the channel count")
            c = features[0]
            if len(features) == 1:
                self.features = None  # H, W unknown: the mode is read from the rank
                self._rank = 3
            self.recurrent = nn.Conv2d(c, c, kernel_size, padding=kernel_size // 2, bias=bias)
        else:
            self.recurrent = _OneToOne(_tensor(V, "V", where), learn_recurrent)
        if not learn_recurrent:
            for prm in self.recurrent.parameters():
                prm.requires_grad_(False)
        if in_features is not None and len(features) != 1:
            raise ConfigError(where, "in_features needs an int feature count", got=features,
                              expected="features=N", hint="the projection is nn.Linear(in, N)")
        self.input_proj = (None if in_features is None
                           else nn.Linear(in_features, features[0]))

    def prepare_input(self, x: Tensor) -> Tensor:
        weight = next(self.recurrent.parameters(), None)
        if weight is None:
            weight = next(self.recurrent.buffers(), None)
        state_dtype = self._state_dtype(x.dtype)
        if weight is not None and weight.dtype != state_dtype:
            raise DTypeError(f"{type(self).__name__}.forward",
                             "the state's dtype differs from the recurrent weights' dtype",
                             got=f"state {state_dtype}, weights {weight.dtype}",
                             expected="the same dtype",
                             hint=f"convert the neuron with .to({state_dtype}), or the input "
                                  f"with x.to({weight.dtype})")
        x = super().prepare_input(x)
        return x if self.input_proj is None else self.input_proj(x)

    def input_features(self) -> tuple[int, ...] | None:
        return self.features if self.input_proj is None else (self.input_proj.in_features,)

    def prepare_sequence(self, x: Tensor) -> Tensor:
        """Project step by step: a matmul's rounding can depend on its row count, and the
        sequence must equal the step loop bit for bit."""
        if self.input_proj is None:
            return super().prepare_sequence(x)
        return torch.stack([self.prepare_input(x_t) for x_t in x.unbind(1)], 1)

    def params(self) -> LIFParams:
        return _with(super().params(), recurrent=self.recurrent)

    def _extra_state(self, zeros: Tensor) -> dict[str, Tensor]:
        return {**super()._extra_state(zeros), "prev_spk": zeros}


class AdvancedLIFNeuron(AdaptiveLIFNeuron):
    """Heterogeneous per-neuron τ, learnable synaptic delays and threshold adaptation.

    ``β_n = exp(-1/τ_n)`` with learnable ``τ_n`` (initialised evenly over ``tau_range``);
    input to neuron ``n`` is read ``d_n`` steps late from ``state.spike_history`` (fractional
    ``d_n`` interpolates linearly, so delays learn), ``0 <= d_n <= max_delay``.

    Args:
        features: neuron count N or shape.
        tau_range: ``(τ_min, τ_max)`` in steps, both ``>= 1``.
        max_delay: largest delay in steps (history length ``max_delay + 2``: the step after
            the largest delay gives it a gradient).
        learn_delays / learn_tau: make delays / τ trainable.
    """

    def __init__(self, features: int | Sequence[int], threshold: Scalar = 1.0, *,
                 tau_range: tuple[float, float] = (5.0, 25.0), max_delay: int = 4,
                 learn_delays: bool = True, learn_tau: bool = True,
                 **kwargs: Any) -> None:
        where = type(self).__name__
        fixed = sorted({"beta", "tau", "charge", "learn_beta", "beta_param"} & set(kwargs))
        if fixed:
            raise ConfigError(where, f"{fixed} cannot be set: the decay comes from per-neuron "
                              "tau (beta_n = exp(-1/tau_n))", got=fixed,
                              expected="tau_range=(lo, hi) and learn_tau",
                              hint="use LIFNeuron for a fixed beta or a tau charge")
        super().__init__(beta=0.5, threshold=threshold, features=features, **kwargs)
        lo, hi = tau_range
        if not 1.0 <= lo <= hi:
            raise ConfigError(where, "tau_range must satisfy 1 <= lo <= hi", got=tau_range,
                              expected="e.g. (5.0, 25.0)", hint="tau is in steps")
        if not isinstance(max_delay, int) or max_delay < 0:
            raise ConfigError(where, "max_delay must be an int >= 0", got=repr(max_delay),
                              expected="int >= 0", hint="0 disables delays")
        shape = self.features or ()
        n = math.prod(shape)
        tau = torch.linspace(lo, hi, n).reshape(shape)
        del self.beta
        self._register("log_tau", tau.log(), learn_tau)
        self.max_delay = max_delay
        delays = torch.linspace(0.0, float(max_delay), n).reshape(shape)
        self._register("delays", delays, learn_delays)

    def leak(self) -> Tensor:
        beta = beta_from_tau_exact(self.log_tau.exp())  # exact decay, dt = 1
        return beta.clamp(*self.beta_clamp)  # type: ignore[union-attr]

    def params(self) -> LIFParams:
        return _with(super().params(), delays=self.delays.clamp(0.0, float(self.max_delay)))

    def _extra_state(self, zeros: Tensor) -> dict[str, Tensor]:
        history = zeros.unsqueeze(1).expand(-1, self.max_delay + 2, *zeros.shape[1:])
        return {**super()._extra_state(zeros), "spike_history": history.contiguous()}
