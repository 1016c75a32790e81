r"""Spike encoders: continuous inputs -> batch-first spike trains (seed 002, "Spike Codec").

Every encoder is an ``nn.Module`` whose ``forward`` returns a :class:`SpikeBatch` whose
``spikes`` are batch-first ``(B, T, ...)``. Peers (snnTorch ``spikegen``, SpikingJelly
``encoding``) are time-first; the only conversion is :func:`time_to_batch_first` /
:func:`batch_to_time_first` (re-exported here from :mod:`brain_ai.physics.axes`).

AMP rules: inputs are cast to fp32 before normalization, every uniform/normal draw is fp32,
and spikes are produced by a comparison (exactly 0 or 1), then cast to ``spike_dtype``.

========================  ==========================================================
type (``build_encoder``)  encoder
========================  ==========================================================
``rate_bernoulli``        :class:`RateEncoder` (``mode="bernoulli"``)
``rate_poisson``          :class:`RateEncoder` (``mode="poisson"``)
``rate_deterministic``    :class:`RateEncoder` (``mode="deterministic"``)
``latency``               :class:`LatencyEncoder` (at most one spike per feature)
``ttfs``                  :class:`TTFSEncoder` (exactly one spike per feature)
``population``            :class:`PopulationEncoder`
``delta``                 :class:`DeltaEncoder`
========================  ==========================================================

NaN policy (the same for every encoder and :func:`normalize_input`): an input with a NaN or
±Inf entry raises :class:`~brain_ai.errors.ConfigError` naming how many entries and the first
one; nothing is silenced or clamped on the caller's behalf (a NaN has no rate, and one +Inf
would empty a whole sample under ``"minmax"``). Clean the data first, e.g.
``x.nan_to_num(0.0, posinf=1.0, neginf=0.0)``, if that is the code you want. Configuration
numbers (gains, thresholds, ranges, time constants) must be finite too. Other edges: an
input with an empty feature axis raises :class:`~brain_ai.errors.ShapeError`, a complex
input :class:`~brain_ai.errors.DTypeError`; an empty batch (``B = 0``) gives an empty train.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from brain_ai.config import (
    LATENCY_MAPPINGS,
    NORMALIZATIONS,
    EncodingConfig,
    check_delta_threshold,
    check_jitter,
    check_latency_code,
    check_population_code,
    check_rate_affine,
    check_seed,
    check_spike_window,
)
from brain_ai.errors import ConfigError, DTypeError, ShapeError, check_choice
from brain_ai.physics.axes import BATCH_DIM, TIME_DIM, batch_to_time_first, time_to_batch_first

__all__ = [
    "BATCH_DIM",
    "TIME_DIM",
    "DeltaEncoder",
    "LatencyEncoder",
    "PopulationEncoder",
    "RateEncoder",
    "SpikeBatch",
    "TTFSEncoder",
    "batch_to_time_first",
    "build_encoder",
    "check_finite",
    "integrate_and_fire_train",
    "normalize_input",
    "spike_train",
    "time_to_batch_first",
]

RATE_MODES = ("bernoulli", "poisson", "deterministic")
SAMPLINGS = ("bernoulli", "deterministic")
LOG_EPS = 1e-7  # snnTorch ``latency(epsilon=1e-7)``: log-mapping inputs saturate at threshold + eps
_MINMAX_TINY = 1e-12


# ----------------------------------------------------------------------------- SpikeBatch


@dataclass(frozen=True, eq=False)
class SpikeBatch:
    """What every encoder returns.

    Attributes:
        spikes: ``(B, T, *features)``; bool, uint8 or float with values exactly 0 / 1.
        mask: ``(B, T)`` bool, True where a step is valid; ``None`` builds all-True.
        aux: side information (``rates``, ``spike_times``, ``population_map``, normalization
            stats ``norm_min`` / ``norm_max`` ...), documented by each encoder.
    """

    spikes: Tensor
    mask: Tensor | None = None
    aux: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.spikes
        if not isinstance(s, Tensor) or s.dim() < 3:
            raise ShapeError(
                "SpikeBatch", "spikes need a batch, a time and at least one feature axis",
                got=f"shape {tuple(s.shape)}" if isinstance(s, Tensor) else type(s).__name__,
                expected="a tensor (B, T, *features) of rank >= 3",
                hint="add a feature axis with spikes.unsqueeze(-1)")
        if self.mask is None:
            object.__setattr__(self, "mask", torch.ones(s.shape[:2], dtype=torch.bool,
                                                        device=s.device))
        elif self.mask.shape != s.shape[:2] or self.mask.dtype != torch.bool:
            raise ShapeError(
                "SpikeBatch", "mask must be a bool (B, T) tensor",
                got=f"{self.mask.dtype} {tuple(self.mask.shape)}",
                expected=f"torch.bool {tuple(s.shape[:2])}",
                hint="build it as a bool tensor of the spikes' first two sizes")

    @property
    def time_steps(self) -> int:
        """``T``."""
        return self.spikes.shape[TIME_DIM]

    @property
    def batch_size(self) -> int:
        """``B``."""
        return self.spikes.shape[BATCH_DIM]

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """The sizes after ``(B, T)``."""
        return tuple(self.spikes.shape[2:])

    @property
    def device(self) -> torch.device:
        """Device of ``spikes``."""
        return self.spikes.device

    def is_binary(self) -> bool:
        """True when every spike is exactly 0 or 1 (always True for bool spikes)."""
        s = self.spikes
        return s.dtype == torch.bool or bool(((s == 0) | (s == 1)).all())


# ----------------------------------------------------------------------------- shared pieces


def _check_input(where: str, x: Tensor, min_rank: int, layout: str) -> None:
    """``x`` is a real tensor of rank ``>= min_rank`` whose axes after the first
    ``min_rank - 1`` are not empty. Values are checked by :func:`check_finite`."""
    if not isinstance(x, Tensor) or x.dim() < min_rank:
        raise ShapeError(where, "input has too few axes",
                         got=f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x),
                         expected=f"{layout} (rank >= {min_rank})",
                         hint="add the missing axis with x.unsqueeze(...)")
    if x.is_complex():
        raise DTypeError(where, "input is complex", got=x.dtype,
                         expected="a real dtype (float, int or bool)",
                         hint="encode x.real, x.abs() or both as separate features")
    if 0 in x.shape[min_rank - 1:]:
        raise ShapeError(where, "input has an empty feature axis: nothing to encode",
                         got=f"shape {tuple(x.shape)}", expected=f"{layout}, features >= 1",
                         hint="check the feature sizes of the data")


def check_finite(where: str, x: Tensor, name: str = "input", hint: str | None = None) -> None:
    """Raise :class:`ConfigError` if ``x`` has a NaN or ±Inf entry: the codecs' NaN policy
    (one place for encoders and decoders; the message counts and locates the entries)."""
    if not x.is_floating_point():
        return
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise ConfigError(where, f"{name} has non-finite entries (NaN/Inf are never silenced)",
                          got=f"{int(bad.sum())} of {x.numel()} entries, first at index {first}"
                              f" = {x[first].item()}",
                          expected="finite values",
                          hint=hint or "clean the data first, e.g. x.nan_to_num(0.0, "
                                       "posinf=1.0, neginf=0.0), or drop the sample")


def _check_number(where: str, name: str, value: float) -> float:
    """A finite configuration number (NaN/Inf never reach a code)."""
    if not math.isfinite(value):
        raise ConfigError(f"{where}.{name}", f"{name} must be finite", got=value,
                          expected="a finite float", hint=f"check how {name} was computed")
    return value


def normalize_input(x: Tensor, normalization: str, *, where: str = "normalize_input"
                    ) -> tuple[Tensor, dict[str, Tensor]]:
    """Map ``x`` (``(B, *features)`` or ``(B, T, *features)``) to fp32, per sample.

    * ``"none"``: ``x`` unchanged (fp32);
    * ``"minmax"``: ``(x - min_b) / (max_b - min_b)`` over all non-batch axes of sample ``b``
      (a constant sample maps to 0); returns ``norm_min`` / ``norm_max`` of shape ``(B,)``;
    * ``"sigmoid"``: ``sigmoid(x)``;
    * ``"clamp"``: ``clamp(x, 0, 1)``.

    Per-sample statistics keep a sample's code independent of the rest of its batch.
    Non-finite entries raise (module NaN policy); ``where`` names the caller in the error.
    """
    check_choice(where, "normalization", normalization, NORMALIZATIONS)
    _check_input(where, x, 2, "(B, *features) or (B, T, *features)")
    check_finite(where, x)
    x = x.float()
    if normalization == "minmax":
        flat = x.flatten(1)
        lo, hi = flat.amin(1), flat.amax(1)
        shape = (-1,) + (1,) * (x.dim() - 1)
        span = (hi - lo).clamp_min(_MINMAX_TINY)
        return (x - lo.view(shape)) / span.view(shape), {"norm_min": lo, "norm_max": hi}
    if normalization == "sigmoid":
        return torch.sigmoid(x), {}
    if normalization == "clamp":
        return x.clamp(0.0, 1.0), {}
    return x, {}


def _probability(where: str, x: Tensor, normalization: str, gain: float = 1.0,
                 bias: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
    """``p = clamp(gain * x̂ + bias, 0, 1)``; with ``"none"`` out-of-range values raise.

    ``"clamp"`` clamps *after* the affine map (= snnTorch ``rate_conv(data * gain + offset)``).
    """
    xn, stats = normalize_input(x, "none" if normalization == "clamp" else normalization,
                                where=where)
    p = xn * gain + bias
    if normalization != "none":
        return p.clamp(0.0, 1.0), stats
    if not bool(((p >= 0) & (p <= 1)).all()):
        raise ConfigError(
            where, "normalization='none' needs gain * x + bias inside [0, 1]",
            got=f"range [{float(p.min()):.4g}, {float(p.max()):.4g}]", expected="[0, 1]",
            hint="use normalization='clamp' to clip explicitly, or 'minmax' / 'sigmoid'")
    return p, stats


def integrate_and_fire_train(p: Tensor, num_steps: int, threshold: float = 1.0) -> Tensor:
    r"""Deterministic rate code: a soft-reset integrate-and-fire neuron driven by ``p``.

    .. math:: v_t = v_{t-1} + p,\quad s_t = [v_t \ge \theta],\quad v_t \leftarrow v_t - s_t\theta

    with ``v_{-1} = 0``; over ``T`` steps it emits ``floor(T p / θ)`` spikes (up to float
    rounding), evenly spaced. ``θ = 0.999`` reproduces SpikingJelly's
    ``PopSpikeEncoderDeterministic`` exactly (same operations, same order).

    Args:
        p: ``(B, *features)`` fp32 drive per step.
    Returns:
        ``(B, T, *features)`` bool.
    """
    v = torch.zeros_like(p)
    out = []
    for _ in range(num_steps):
        v = v + p
        s = v >= threshold
        v = v - s.to(v.dtype) * threshold
        out.append(s)
    return torch.stack(out, dim=TIME_DIM)


def spike_train(p: Tensor, num_steps: int, *, mode: str = "bernoulli",
                generator: torch.Generator | None = None, uniforms: Tensor | None = None,
                if_threshold: float = 1.0) -> Tensor:
    r"""Turn per-step probabilities into a spike train (the one sampler of this module).

    * ``"bernoulli"``: :math:`s_{b,t} = [U_{b,t} < p_b]`;
    * ``"deterministic"``: :func:`integrate_and_fire_train` (no randomness).

    The uniforms ``U`` are fp32, drawn **time-first** ``(T, B, ...)`` from ``generator`` (the
    global RNG when ``None``) and moved with :func:`time_to_batch_first`. Hence (i) a run with
    ``T`` steps is a prefix of the run with ``T + k`` steps, and (ii) on CPU it equals
    ``torch.bernoulli`` of the time-first repeated input, i.e. snnTorch ``spikegen.rate`` and
    SpikingJelly ``PoissonEncoder`` called once per step, for the same seed.

    Args:
        p: ``(B, *features)`` probabilities in ``[0, 1]`` (fp32).
        uniforms: optional ``(B, T, *features)`` draws to use instead of the generator.
    Returns:
        ``(B, T, *features)`` bool.
    """
    check_choice("spike_train", "mode", mode, SAMPLINGS)
    check_finite("spike_train", p, "p")
    if mode == "deterministic":
        return integrate_and_fire_train(p, num_steps, if_threshold)
    expected = (p.shape[0], num_steps, *p.shape[1:])
    if uniforms is None:
        u = time_to_batch_first(torch.rand((num_steps, *p.shape), generator=generator,
                                           dtype=torch.float32, device=p.device))
    elif tuple(uniforms.shape) != expected:
        raise ShapeError("spike_train", "uniforms do not match (B, T, *features)",
                         got=f"shape {tuple(uniforms.shape)}", expected=f"shape {expected}",
                         hint="draw one uniform per batch element, step and feature")
    else:
        check_finite("spike_train", uniforms, "uniforms")
        u = uniforms.float()
    return u < p.unsqueeze(TIME_DIM)


class _Encoder(nn.Module):
    """Common parts: ``num_steps``, seeded per-device generators, ``spike_dtype``."""

    def __init__(self, num_steps: int, seed: int | None, spike_dtype: torch.dtype) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps <= 0:
            raise ConfigError(f"{name}.num_steps", "num_steps must be a positive int",
                              got=repr(num_steps), expected="an int > 0",
                              hint="T is the number of simulation steps")
        check_seed(name, seed)
        if spike_dtype not in (torch.bool, torch.uint8, torch.float16, torch.bfloat16,
                               torch.float32, torch.float64):
            raise ConfigError(f"{name}.spike_dtype", "unsupported spike dtype",
                              got=spike_dtype, expected="bool | uint8 | a float dtype",
                              hint="spikes are 0/1 values; pick a dtype that holds them")
        self.num_steps = num_steps
        self.seed = seed
        self.spike_dtype = spike_dtype
        self._generators: dict[str, torch.Generator] = {}

    def reset(self) -> None:
        """Rewind the seeded random streams to ``seed`` (no-op when ``seed is None``)."""
        self._generators.clear()

    def _rng(self, device: torch.device, generator: torch.Generator | None
             ) -> torch.Generator | None:
        if generator is not None or self.seed is None:
            return generator
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, seed={self.seed}"


# ----------------------------------------------------------------------------- rate


class RateEncoder(_Encoder):
    r"""Rate coding: ``p = clamp(gain · x̂ + bias, 0, 1)``, then one draw per step.

    ``x̂`` is :func:`normalize_input` of ``x``. The per-step firing probability is ``q = p``
    (``"bernoulli"``, ``"deterministic"``) or ``q = 1 - e^{-p}`` (``"poisson"``: a Poisson
    process of ``p`` spikes/step, binarized per step); sampling is :func:`spike_train` of ``q``.
    ``"deterministic"``, and eval mode with ``deterministic_eval=True``, replace the draws by
    the schedule :func:`integrate_and_fire_train`: reproducible, ≈ ``T·q`` spikes.

    Peer mapping (proved bit-exact by ``conformance/cases_codecs.py``, CPU, same seed):

    =========================================================  ==================================
    peer call                                                  brain_ai
    =========================================================  ==================================
    ``snntorch.spikegen.rate(x, num_steps=T, gain=g,            ``RateEncoder(T, "bernoulli",
    offset=o)`` after ``torch.manual_seed(s)``                  normalization="clamp", rate_gain=g,
                                                                rate_bias=o)`` after
                                                                ``torch.manual_seed(s)``, train mode
    SpikingJelly ``PoissonEncoder()(x)`` called ``T`` times     ``RateEncoder(T, "bernoulli",
    after ``torch.manual_seed(s)``, ``x`` in ``(0, 1]``         normalization="none")``
    =========================================================  ==================================

    Guard: SpikingJelly fires on ``U <= x`` (so ``x = 0`` can fire when ``U == 0``); here, as in
    snnTorch's ``bernoulli``, a spike needs ``U < p``.

    Args:
        num_steps: ``T``.
        mode: ``"bernoulli" | "poisson" | "deterministic"`` (see :func:`spike_train`).
        normalization: see :func:`normalize_input`; ``"none"`` raises on ``p`` outside [0, 1].
        rate_gain, rate_bias: the affine map applied after normalization.
        deterministic_eval: use the deterministic schedule when ``not self.training``.
        seed: seeds a private ``torch.Generator`` per device; ``None`` = global RNG.
        if_threshold: threshold of the deterministic schedule.
    """

    def __init__(self, num_steps: int = 25, mode: str = "bernoulli", *,
                 normalization: str = "minmax", rate_gain: float = 1.0,
                 rate_bias: float = 0.0, deterministic_eval: bool = True,
                 seed: int | None = None, if_threshold: float = 1.0,
                 spike_dtype: torch.dtype = torch.float32) -> None:
        super().__init__(num_steps, seed, spike_dtype)
        check_choice("RateEncoder", "mode", mode, RATE_MODES)
        check_choice("RateEncoder", "normalization", normalization, NORMALIZATIONS)
        if not if_threshold > 0 or not math.isfinite(if_threshold):
            raise ConfigError("RateEncoder.if_threshold", "if_threshold must be positive",
                              got=if_threshold, expected="finite > 0",
                              hint="1.0 is the usual value")
        self.mode, self.normalization = mode, normalization
        gain, bias = check_rate_affine("RateEncoder", rate_gain, rate_bias)
        self.rate_gain = _check_number("RateEncoder", "rate_gain", gain)
        self.rate_bias = _check_number("RateEncoder", "rate_bias", bias)
        self.deterministic_eval, self.if_threshold = deterministic_eval, if_threshold

    def _sampling(self) -> str:
        fixed = self.mode == "deterministic" or (self.deterministic_eval and not self.training)
        return "deterministic" if fixed else "bernoulli"

    def forward(self, x: Tensor, *, generator: torch.Generator | None = None,
                uniforms: Tensor | None = None) -> SpikeBatch:
        """Encode ``x`` ``(B, *features)`` into ``spikes`` ``(B, T, *features)``.

        ``aux``: ``rates`` ``(B, *features)`` fp32 rates ``p``; ``norm_min`` /
        ``norm_max`` ``(B,)`` for minmax. ``uniforms`` (``(B, T, *features)``) replaces the
        random draws (exact control, e.g. for tests).
        """
        _check_input("RateEncoder.forward", x, 2, "(B, *features)")
        p, stats = _probability("RateEncoder.forward", x, self.normalization,
                                self.rate_gain, self.rate_bias)
        q = -torch.expm1(-p) if self.mode == "poisson" else p
        s = spike_train(q, self.num_steps, mode=self._sampling(),
                        generator=self._rng(p.device, generator), uniforms=uniforms,
                        if_threshold=self.if_threshold)
        return SpikeBatch(s.to(self.spike_dtype), aux={"rates": p, **stats})


# ----------------------------------------------------------------------------- latency / TTFS


class LatencyEncoder(_Encoder):
    r"""Latency coding: stronger input fires earlier; at most one spike per feature.

    The intensity ``x`` (:func:`normalize_input`, must end in [0, 1]) gets a raw time ``r(x)``;
    ``θ`` is ``threshold``, ``span = t_max - t_min``:

    ===============  ==================================  ==========================================
    mapping          ``r(x)``                            ``tau=None`` (fit the window)
    ===============  ==================================  ==========================================
    ``linear``       ``1 - max(x, θ)``                   ``t = r·span/1 + t_min``: x = 0 -> t_max
    ``log``          ``ln(x'/(x'-θ))``,                  ``t = r·span/r(0) + t_min``: x <= θ ->
                     ``x' = max(x, θ + 1e-7)`` (RC)      t_max
    ``exponential``  ``-ln max(x, θ)``                   ``t = r·span/r(0) + t_min``: x <= θ ->
                                                         t_max (needs θ > 0)
    ===============  ==================================  ==========================================

    With a number ``tau``: ``t = tau·r + t_min``. The step is ``round(t)`` (half-to-even, as
    both peers). A step beyond ``t_max`` (or an infinite ``t``) and, when ``allow_no_spike``,
    every ``x < θ`` produce no spike (``spike_times = -1``); without ``allow_no_spike`` they fire
    at ``t_max``. ``jitter > 0`` adds ``N(0, jitter²)`` steps in training mode only, clamped to
    ``[t_min, t_max]`` (it never adds or removes a spike).

    Peer mapping (``T = num_steps``, ``f = first_spike_time``; proved in
    ``conformance/cases_codecs.py``; trains identical, ``normalization="none"``):

    ===============================================  ==========================================
    snnTorch ``spikegen.latency(x, num_steps=T, …)``  brain_ai
    ===============================================  ==========================================
    ``linear=True, normalize=True, threshold=θ,      ``mapping="linear", tau=None, threshold=θ,
    first_spike_time=f, clip=c``                     t_min=f, allow_no_spike=c``
    ``linear=True, tau=τ, threshold=θ, clip=c``      ``mapping="linear", tau=τ, threshold=θ,
    (all spikes inside the window)                   allow_no_spike=c``
    ``tau=τ, threshold=θ, clip=True, bypass=True``   ``mapping="log", tau=τ, threshold=θ,
    (log code)                                       allow_no_spike=True``
    ``normalize=True, tau=1, threshold=θ, clip=c``   ``mapping="log", tau=None, threshold=θ,
    (log; the batch holds an ``x <= θ``)             allow_no_spike=c``
    SpikingJelly ``LatencyEncoder(T, "linear")``     ``TTFSEncoder(T, "linear", threshold=0.0)``
    ===============================================  ==========================================

    Guards: snnTorch's log ``normalize`` divides by the *batch* maximum (a sample's code depends
    on its batch; here the scale is the constant ``r(0)``), and SpikingJelly's ``"log"`` is a
    different curve, ``T-1-ln(αx+1)``.

    Args:
        num_steps: ``T``.
        mapping: ``"linear" | "exponential" | "log"``.
        tau: time constant in steps, or ``None`` to fit the window.
        threshold: ``θ``, in ``[0, 1)`` (``(0, 1)`` for ``log``).
        t_min, t_max: first and last allowed step (``t_max=None`` -> ``T - 1``).
        allow_no_spike: see above (``TTFSEncoder`` forces ``False``).
        jitter: std of the training-time timing noise, in steps.
        seed: seeds the jitter generator.
    """

    def __init__(self, num_steps: int = 25, mapping: str = "exponential", *,
                 normalization: str = "minmax", tau: float | None = None,
                 threshold: float = 0.01, t_min: int = 0, t_max: int | None = None,
                 allow_no_spike: bool = True, jitter: float = 0.0, seed: int | None = None,
                 spike_dtype: torch.dtype = torch.float32) -> None:
        super().__init__(num_steps, seed, spike_dtype)
        name = type(self).__name__
        check_choice(name, "mapping", mapping, LATENCY_MAPPINGS)
        check_choice(name, "normalization", normalization, NORMALIZATIONS)
        t_max = check_spike_window(name, num_steps, t_min, t_max)
        check_latency_code(name, mapping, threshold, tau)
        check_jitter(name, jitter)
        _check_number(name, "jitter", float(jitter))
        if tau is not None:
            _check_number(name, "tau", float(tau))
        self.mapping, self.normalization, self.tau = mapping, normalization, tau
        self.threshold, self.t_min, self.t_max = float(threshold), t_min, t_max
        self.allow_no_spike, self.jitter = allow_no_spike, float(jitter)

    def _raw_time(self, x: Tensor) -> Tensor:
        th = self.threshold
        if self.mapping == "linear":
            return 1.0 - x.clamp_min(th)
        if self.mapping == "log":
            d = x.clamp_min(th + LOG_EPS)
            return torch.log(d / (d - th))
        return torch.log(x.clamp_min(th)).neg()

    def spike_time(self, x: Tensor) -> Tensor:
        """Real-valued firing time ``t(x)`` (before rounding), same shape as ``x`` (fp32)."""
        r = self._raw_time(x)
        if self.tau is not None:
            return self.tau * r + self.t_min
        span = self.t_max - self.t_min
        if self.mapping == "linear":
            return r * span / 1 + self.t_min
        return r * span / self._raw_time(x.new_zeros(())) + self.t_min

    def forward(self, x: Tensor, *, generator: torch.Generator | None = None) -> SpikeBatch:
        """Encode ``x`` ``(B, *features)`` into ``spikes`` ``(B, T, *features)``.

        ``aux``: ``spike_times`` ``(B, *features)`` int64 (``-1`` = no spike); ``rates`` the
        intensities ``x̂`` in [0, 1]; normalization stats.
        """
        where = f"{type(self).__name__}.forward"
        _check_input(where, x, 2, "(B, *features)")
        p, stats = _probability(where, x, self.normalization)
        t = self.spike_time(p)
        late = ~(torch.round(t) <= self.t_max)  # also catches inf / nan
        if self.training and self.jitter > 0:
            noise = torch.randn(t.shape, generator=self._rng(t.device, generator),
                                dtype=torch.float32, device=t.device)
            t = (t + self.jitter * noise).clamp(self.t_min, self.t_max)
        step = torch.where(late, torch.full_like(t, self.t_max), torch.round(t)).long()
        silent = (late | (p < self.threshold)) if self.allow_no_spike else torch.zeros_like(late)
        steps = torch.arange(self.num_steps, device=t.device).view(1, -1, *[1] * (t.dim() - 1))
        spikes = (steps == step.unsqueeze(TIME_DIM)) & ~silent.unsqueeze(TIME_DIM)
        spike_times = torch.where(silent, torch.full_like(step, -1), step)
        return SpikeBatch(spikes.to(self.spike_dtype),
                          aux={"spike_times": spike_times, "rates": p, **stats})

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, mapping={self.mapping!r}, tau={self.tau}, "
                f"threshold={self.threshold}, window=[{self.t_min}, {self.t_max}], "
                f"allow_no_spike={self.allow_no_spike}")


class TTFSEncoder(LatencyEncoder):
    """Strict time-to-first-spike: :class:`LatencyEncoder` with ``allow_no_spike=False``.

    Every feature fires exactly once in ``[t_min, t_max]`` (weak or late inputs fire at
    ``t_max``). Takes every :class:`LatencyEncoder` argument except ``allow_no_spike``.
    """

    def __init__(self, num_steps: int = 25, mapping: str = "exponential",
                 **kwargs: Any) -> None:
        if "allow_no_spike" in kwargs:
            raise ConfigError("TTFSEncoder.allow_no_spike", "TTFS always fires exactly once",
                              got=kwargs["allow_no_spike"], expected="not given",
                              hint="use LatencyEncoder to allow silent features")
        super().__init__(num_steps, mapping, allow_no_spike=False, **kwargs)


# ----------------------------------------------------------------------------- population


class PopulationEncoder(_Encoder):
    r"""Population coding: each feature drives ``P`` neurons with Gaussian tuning curves.

    .. math:: a_{b,n,j} = \exp\!\left(-\tfrac12\left(\frac{\hat x_{b,n} - c_j}{\sigma}
              \right)^2\right)

    (the seed's ``exp(-(x-c)²/(2σ²))``, in SpikingJelly's operation order), then
    :func:`spike_train` of ``a`` (``sampling``; deterministic in eval with
    ``deterministic_eval``). Neuron ``n·P + j`` belongs to feature ``n`` (SpikingJelly's
    ``flatten`` order).

    Centers ``c`` (``(P,)``, shared by all features) on ``value_range = (lo, hi)``:
    ``"linear"``: ``linspace(lo, hi, P)``; ``"uniform"``: bin midpoints
    ``lo + (j + ½)(hi - lo)/P``; ``"learned"``: ``linspace`` as an ``nn.Parameter`` (gradients
    reach it through ``aux["activation"]``). ``sigma=None``: the center spacing.

    Peer mapping (SpikingJelly, ``mean_range=value_range``, ``std=sigma``; exact):
    ``PopEncoder`` = ``aux["activation"]`` repeated; ``PopSpikeEncoderDeterministic`` =
    ``sampling="deterministic", if_threshold=0.999``; ``PopSpikeEncoderRandom`` (same global
    seed) = ``sampling="bernoulli"`` with ``seed=None``.

    Args:
        num_steps: ``T``. population_size: ``P``.
        normalization: applied before the tuning curves (``"none"`` keeps raw values).
    """

    def __init__(self, num_steps: int = 25, population_size: int = 8, *,
                 sigma: float | None = None, centers: str = "linear",
                 value_range: tuple[float, float] = (0.0, 1.0), normalization: str = "minmax",
                 sampling: str = "bernoulli", deterministic_eval: bool = True,
                 seed: int | None = None, if_threshold: float = 1.0,
                 spike_dtype: torch.dtype = torch.float32) -> None:
        super().__init__(num_steps, seed, spike_dtype)
        check_choice("PopulationEncoder", "sampling", sampling, SAMPLINGS)
        check_choice("PopulationEncoder", "normalization", normalization, NORMALIZATIONS)
        if isinstance(population_size, bool) or not isinstance(population_size, int) \
                or population_size <= 0:
            raise ConfigError("PopulationEncoder.population_size", "must be a positive int",
                              got=repr(population_size), expected="an int > 0",
                              hint="8 neurons per feature is typical")
        lo, hi, sigma = check_population_code("PopulationEncoder", population_size,
                                              sigma=sigma, centers=centers,
                                              value_range=value_range)
        for name, value in (("value_range", lo), ("value_range", hi), ("sigma", sigma)):
            _check_number("PopulationEncoder", name, float(value))
        if not if_threshold > 0 or not math.isfinite(if_threshold):
            raise ConfigError("PopulationEncoder.if_threshold", "if_threshold must be positive",
                              got=if_threshold, expected="finite > 0",
                              hint="1.0 is the usual value (0.999: SpikingJelly's schedule)")
        P = population_size
        if centers == "uniform":
            c = lo + (torch.arange(P, dtype=torch.float32) + 0.5) * ((hi - lo) / P)
        else:
            c = torch.linspace(lo, hi, P)
        self.centers: Tensor
        if centers == "learned":
            self.centers = nn.Parameter(c)
        else:
            self.register_buffer("centers", c)
        self.population_size, self.sigma, self.center_mode = P, float(sigma), centers
        self.value_range, self.normalization, self.sampling = (lo, hi), normalization, sampling
        self.deterministic_eval, self.if_threshold = deterministic_eval, if_threshold

    def activation(self, x: Tensor) -> Tensor:
        """Tuning-curve activations ``(B, N·P)`` of normalized inputs ``x`` ``(B, N)``."""
        return torch.exp(-0.5 * ((x.unsqueeze(-1) - self.centers) / self.sigma).square()
                         ).flatten(1)

    def forward(self, x: Tensor, *, generator: torch.Generator | None = None,
                uniforms: Tensor | None = None) -> SpikeBatch:
        """Encode ``x`` ``(B, N)`` into ``spikes`` ``(B, T, N·P)``.

        ``aux``: ``activation`` ``(B, N·P)`` (differentiable), ``population_map`` ``(N·P,)``
        int64 feature index of each neuron, ``centers`` ``(P,)``, ``population_size``.
        """
        where = "PopulationEncoder.forward"
        if not isinstance(x, Tensor) or x.dim() != 2:
            raise ShapeError(where, "input must be (B, N)",
                             got=f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else x,
                             expected="rank 2", hint="flatten the features: x.flatten(1)")
        _check_input(where, x, 2, "(B, N)")
        xn, stats = normalize_input(x, self.normalization, where=where)
        a = self.activation(xn)
        mode = "deterministic" if self.deterministic_eval and not self.training \
            else self.sampling
        s = spike_train(a.detach(), self.num_steps, mode=mode,
                        generator=self._rng(a.device, generator), uniforms=uniforms,
                        if_threshold=self.if_threshold)
        pmap = torch.arange(x.shape[1], device=x.device).repeat_interleave(
            self.population_size)
        return SpikeBatch(s.to(self.spike_dtype), aux={
            "activation": a, "population_map": pmap, "centers": self.centers,
            "population_size": self.population_size, **stats})


# ----------------------------------------------------------------------------- delta


class DeltaEncoder(nn.Module):
    r"""Delta modulation with ON/OFF channels: spike where the signal moved by ``>= threshold``.

    .. math:: d_t = \hat x_t - \hat x_{t-1},\quad on_t = [d_t \ge \theta],\quad
              off_t = [d_t \le -\theta]

    ``x̂_{-1}`` is ``prev`` when given, else ``0`` (``initial="zero"``) or ``x̂_0``
    (``initial="first"``). Output ``(B, T, 2·F0, *rest)``: ON channels first, then OFF
    (concatenated on the first feature axis).

    State is explicit: ``aux["last"]`` is the raw last frame ``(B, *features)``; pass it back as
    ``prev`` to continue a stream. With ``streaming=True`` the module keeps it for you and uses
    it on the next call; call :meth:`reset` between sequences. Forgetting it is detected when
    the batch/feature shape changes (:class:`ShapeError`), not when a same-shaped new sequence
    follows. ``streaming=False`` (default) makes every call independent.

    Peer mapping (exact): snnTorch ``spikegen.delta(x_tf, threshold=θ, padding=p,
    off_spike=o)`` = ``batch_to_time_first(on)`` (``o=False``) or ``on - off`` (``o=True``),
    with ``initial = "first" if p else "zero"``, ``normalization="none"``.

    Args:
        threshold: ``θ > 0`` in signal units (after normalization).
        normalization: ``"minmax"`` is per sample over the whole chunk, hence refused with
            ``streaming`` or ``prev``.
    """

    def __init__(self, threshold: float = 0.1, *, initial: str = "zero",
                 normalization: str = "none", streaming: bool = False,
                 spike_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        check_choice("DeltaEncoder", "initial", initial, ("zero", "first"))
        check_choice("DeltaEncoder", "normalization", normalization, NORMALIZATIONS)
        check_delta_threshold("DeltaEncoder", threshold)
        _check_number("DeltaEncoder", "threshold", float(threshold))
        if streaming and normalization == "minmax":
            raise ConfigError("DeltaEncoder.normalization", "minmax statistics change from "
                              "chunk to chunk", got="'minmax' with streaming=True",
                              expected="'none' | 'sigmoid' | 'clamp'",
                              hint="normalize the whole stream beforehand")
        self.threshold, self.initial, self.normalization = float(threshold), initial, \
            normalization
        self.streaming, self.spike_dtype = streaming, spike_dtype
        self._last: Tensor | None = None

    def reset(self) -> None:
        """Forget the stored last frame (``streaming=True``)."""
        self._last = None

    def forward(self, x: Tensor, prev: Tensor | None = None) -> SpikeBatch:
        """Encode a sequence ``x`` ``(B, T, *features)``.

        Args:
            prev: raw frame before ``x[:, 0]``, ``(B, *features)``; overrides the stored one.
        Returns:
            ``spikes`` ``(B, T, 2·F0, *rest)``; ``aux``: ``last`` ``(B, *features)``, ``on`` and
            ``off`` ``(B, T, *features)`` bool.
        """
        _check_input("DeltaEncoder.forward", x, 3, "(B, T, *features)")
        if x.shape[TIME_DIM] == 0:
            raise ShapeError("DeltaEncoder.forward", "the sequence has no time steps",
                             got=f"shape {tuple(x.shape)}", expected="T >= 1",
                             hint="pass at least one frame")
        if prev is None and self.streaming:
            prev = self._last
            if prev is not None and prev.shape != x[:, 0].shape:
                raise ShapeError(
                    "DeltaEncoder.forward", "the stored last frame does not fit this input",
                    got=f"stored {tuple(prev.shape)} vs x[:, 0] {tuple(x[:, 0].shape)}",
                    expected="the same (B, *features)",
                    hint="a new sequence starts: call encoder.reset() first")
        if prev is not None and prev.shape != x[:, 0].shape:
            raise ShapeError("DeltaEncoder.forward", "prev must be one frame of x",
                             got=f"shape {tuple(prev.shape)}",
                             expected=f"shape {tuple(x[:, 0].shape)}",
                             hint="pass aux['last'] of the previous chunk")
        if prev is not None and self.normalization == "minmax":
            raise ConfigError("DeltaEncoder.forward", "minmax cannot continue a stream",
                              got="prev with normalization='minmax'",
                              expected="normalization 'none' | 'sigmoid' | 'clamp'",
                              hint="normalize the whole stream beforehand")
        xn, stats = normalize_input(x, self.normalization, where="DeltaEncoder.forward")
        if prev is not None:
            check_finite("DeltaEncoder.forward", prev, "prev")
            first = normalize_input(prev, self.normalization, where="DeltaEncoder.forward")[0]
        else:
            first = torch.zeros_like(xn[:, 0]) if self.initial == "zero" else xn[:, 0]
        d = xn - torch.cat([first.unsqueeze(TIME_DIM), xn[:, :-1]], dim=TIME_DIM)
        on, off = d >= self.threshold, d <= -self.threshold
        last = x[:, -1]
        if self.streaming:
            self._last = last.detach()
        spikes = torch.cat([on, off], dim=2).to(self.spike_dtype)
        return SpikeBatch(spikes, aux={"last": last, "on": on, "off": off, **stats})

    def extra_repr(self) -> str:
        return (f"threshold={self.threshold}, initial={self.initial!r}, "
                f"streaming={self.streaming}")


# ----------------------------------------------------------------------------- factory


def build_encoder(cfg: EncodingConfig) -> nn.Module:
    """Encoder for ``cfg.type`` (see the module table), configured from ``cfg``."""
    rate_modes = {"rate_bernoulli": "bernoulli", "rate_poisson": "poisson",
                  "rate_deterministic": "deterministic"}
    if cfg.type in rate_modes:
        return RateEncoder(cfg.num_steps, rate_modes[cfg.type], normalization=cfg.normalization,
                           rate_gain=cfg.rate_gain, rate_bias=cfg.rate_bias,
                           deterministic_eval=cfg.deterministic_eval, seed=cfg.seed)
    if cfg.type in ("latency", "ttfs"):
        cls = LatencyEncoder if cfg.type == "latency" else TTFSEncoder
        return cls(cfg.num_steps, cfg.latency_mapping, normalization=cfg.normalization,
                   tau=cfg.tau, threshold=cfg.threshold, t_min=cfg.t_min, t_max=cfg.t_max,
                   jitter=cfg.jitter, seed=cfg.seed)
    if cfg.type == "population":
        return PopulationEncoder(cfg.num_steps, cfg.population_size, sigma=cfg.population_sigma,
                                 centers=cfg.population_centers, value_range=cfg.value_range,
                                 normalization=cfg.normalization,
                                 deterministic_eval=cfg.deterministic_eval, seed=cfg.seed)
    if cfg.type == "delta":
        return DeltaEncoder(cfg.delta_threshold, normalization=cfg.normalization)
    raise ConfigError("build_encoder", "unknown encoding type", got=repr(cfg.type),
                      expected="an EncodingConfig type", hint="see EncodingConfig.type")
