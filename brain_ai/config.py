"""Configuration dataclasses: :class:`SNNConfig` (spiking core) and the codec/loss configs.

Every config validates itself in ``__post_init__`` (clear :class:`~brain_ai.errors.ConfigError`,
never a silent repair) and round-trips through ``to_dict`` / ``from_dict``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from brain_ai.errors import ConfigError, check_choice, check_positive, is_int
from brain_ai.physics import rules
from brain_ai.physics.surrogates import SURROGATE_NAMES
from brain_ai.physics.windows import check_chunk_size

__all__ = [
    "LATENCY_MAPPINGS",
    "MEMBRANE_REDUCTIONS",
    "NORMALIZATIONS",
    "POPULATION_CENTERS",
    "CodecPreset",
    "DecodingConfig",
    "EncodingConfig",
    "LossConfig",
    "SNNConfig",
    "check_delta_threshold",
    "check_ensemble",
    "check_jitter",
    "check_latency_code",
    "check_membrane_reduce",
    "check_population_code",
    "check_rate_affine",
    "check_seed",
    "check_spike_window",
    "check_value_range",
    "population_classification_preset",
    "population_spacing",
    "rate_classification_preset",
    "regression_preset",
    "ttfs_classification_preset",
]

_NEURONS = ("lif", "adaptive", "recurrent", "advanced")
_RESETS = rules.ALLOWED["reset"]
_TIMINGS = rules.ALLOWED["reset_timing"]
_COMPARATORS = rules.ALLOWED["comparator"]
_SURROGATES = tuple(SURROGATE_NAMES)
_DTYPE_POLICIES = ("float32", "input")


def _one_of(name: str, value: object, options: tuple[str, ...]) -> None:
    rules.check_rule(f"SNNConfig.{name}", name, value, options)


@dataclass
class SNNConfig:
    """Configuration of a spiking network built from the LIF family (seed 000).

    Neuron fields map one-to-one onto :class:`brain_ai.core.neurons.LIFNeuron` arguments;
    ``num_steps`` and ``chunk_size`` (truncated-BPTT window, ``None`` = full BPTT) drive
    :func:`brain_ai.core.unroll.snn_unroll`.
    """

    neuron: str = "lif"
    input_size: int = 784
    hidden_sizes: tuple[int, ...] = (128,)
    output_size: int = 10
    num_steps: int = 25
    beta: float = 0.9
    threshold: float = 1.0
    v_reset: float = 0.0
    reset: str = "subtract"
    reset_timing: str = "immediate"
    comparator: str = ">"
    detach_reset: bool = False
    surrogate: str = "atan"
    surrogate_scale: float | None = None
    learn_beta: bool = False
    learn_threshold: bool = False
    beta_param: str = "clamp"
    beta_clamp: tuple[float, float] = (0.0, 0.999)
    alpha: float | None = None
    refractory_steps: int = 0
    chunk_size: int | None = None
    dtype_policy: str = "float32"

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(self.hidden_sizes)
        self.beta_clamp = tuple(self.beta_clamp)  # type: ignore[assignment]
        _one_of("neuron", self.neuron, _NEURONS)
        _one_of("reset", self.reset, _RESETS)
        _one_of("reset_timing", self.reset_timing, _TIMINGS)
        _one_of("comparator", self.comparator, _COMPARATORS)
        _one_of("surrogate", self.surrogate, _SURROGATES)
        _one_of("beta_param", self.beta_param, ("clamp", "sigmoid"))
        _one_of("dtype_policy", self.dtype_policy, _DTYPE_POLICIES)
        for name in ("beta", "threshold", "v_reset") + (("alpha",) if self.alpha is not None
                                                        else ()):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"SNNConfig.{name}", f"{name} must be a number",
                                  got=repr(value), expected="a float",
                                  hint="per-neuron tensors go to the neuron classes directly")
        lo, hi = self.beta_clamp
        if not 0.0 <= lo <= hi <= 1.0:
            raise ConfigError("SNNConfig.beta_clamp", "beta_clamp must satisfy 0 <= lo <= hi "
                              "<= 1", got=self.beta_clamp, expected="e.g. (0.0, 0.999)",
                              hint="(0.0, 1.0) allows a non-leaky neuron")
        if not lo <= self.beta <= hi:
            raise ConfigError("SNNConfig.beta", "beta is outside beta_clamp", got=self.beta,
                              expected=f"{lo} <= beta <= {hi}",
                              hint="beta = exp(-dt/tau); for beta = 1 set beta_clamp=(0.0, 1.0)")
        if self.alpha is not None and not 0.0 <= self.alpha <= 1.0:
            raise ConfigError("SNNConfig.alpha", "alpha is outside [0, 1]", got=self.alpha,
                              expected="0 <= alpha <= 1", hint="alpha = exp(-dt/tau_syn)")
        for name in ("num_steps", "input_size", "output_size"):
            value = getattr(self, name)
            if not is_int(value) or value <= 0:
                raise ConfigError(f"SNNConfig.{name}", f"{name} must be a positive int",
                                  got=repr(value), expected="an int > 0",
                                  hint=f"set {name} to a positive integer")
        check_chunk_size("SNNConfig.chunk_size", self.chunk_size)
        if not is_int(self.refractory_steps) or self.refractory_steps < 0:
            raise ConfigError("SNNConfig.refractory_steps", "refractory_steps must be an int "
                              ">= 0", got=repr(self.refractory_steps), expected="an int >= 0",
                              hint="0 disables the refractory period")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        d["beta_clamp"] = list(self.beta_clamp)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SNNConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError("SNNConfig.from_dict", "unknown keys", got=unknown,
                              expected=f"a subset of {sorted(known)}",
                              hint="remove or rename the listed keys")
        return cls(**data)


# --------------------------------------------------------------------------- codec / loss configs

_ENCODINGS = (
    "rate_bernoulli", "rate_poisson", "rate_deterministic", "latency", "ttfs", "population",
    "delta",
)
_RATE_TYPES = ("rate_bernoulli", "rate_poisson", "rate_deterministic")
_DECODINGS = ("rate", "first_spike", "population", "membrane", "ensemble")
_POPULATION_MODES = ("classification", "regression")
NORMALIZATIONS = ("none", "minmax", "sigmoid", "clamp")
LATENCY_MAPPINGS = ("linear", "exponential", "log")
POPULATION_CENTERS = ("linear", "uniform", "learned")
MEMBRANE_REDUCTIONS = ("last", "max")


# --------------------------------------------------------------------------- codec rules
#
# The rules that tie codec options together (or that only one encoder / decoder reads), each
# written once: EncodingConfig / DecodingConfig call them in ``__post_init__`` and the encoders /
# decoders of :mod:`brain_ai.core.encoding` / :mod:`brain_ai.core.decoding` call them in their
# constructors. ``where`` is the public name to report (``"EncodingConfig"``, ``"TTFSEncoder"``);
# ``*_name`` arguments give the spelling of a field where the config and the constructor differ
# (``population_sigma`` vs ``sigma``). Pure functions: plain values in, ``ConfigError`` out.


def check_seed(where: str, seed: object) -> None:
    """``seed`` is an int or ``None``."""
    if seed is not None and not is_int(seed):
        raise ConfigError(f"{where}.seed", "seed must be an int or None", got=repr(seed),
                          expected="int | None", hint="None uses torch's global RNG")


def check_rate_affine(where: str, gain: object, bias: object) -> tuple[float, float]:
    """``(float(gain), float(bias))`` of the rate code ``p = clamp(gain·x̂ + bias, 0, 1)``."""
    out = []
    for name, value in (("rate_gain", gain), ("rate_bias", bias)):
        try:
            out.append(float(value))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConfigError(f"{where}.{name}", f"{name} must be a number", got=repr(value),
                              expected="a float",
                              hint="p = clamp(rate_gain * x + rate_bias, 0, 1)") from None
    return out[0], out[1]


def check_spike_window(where: str, num_steps: int, t_min: object, t_max: object) -> int:
    """Latency / TTFS window: ints with ``0 <= t_min <= t_max <= num_steps - 1``.

    ``t_max=None`` means ``num_steps - 1``; returns the resolved ``t_max``.
    """
    t_max = num_steps - 1 if t_max is None else t_max
    if not (isinstance(t_min, int) and isinstance(t_max, int)
            and 0 <= t_min <= t_max <= num_steps - 1):
        raise ConfigError(f"{where}.t_min/t_max", "the spike window is not inside [0, T-1]",
                          got=f"t_min={t_min!r}, t_max={t_max!r}, T={num_steps}",
                          expected="ints with 0 <= t_min <= t_max <= T-1",
                          hint="t_max=None means T-1")
    return t_max


def check_latency_code(where: str, mapping: str, threshold: Any, tau: Any) -> None:
    """Latency / TTFS curve: ``threshold`` in ``[0, 1)`` (``(0, 1)`` for ``log``), ``tau > 0``
    or ``None``, and ``threshold > 0`` for the exponential code fitted to the window
    (``tau=None``)."""
    if not (0.0 < threshold < 1.0 or (threshold == 0.0 and mapping != "log")):
        raise ConfigError(f"{where}.threshold", "threshold is outside its range",
                          got=threshold, expected="0 < θ < 1" if mapping == "log"
                          else "0 <= θ < 1",
                          hint="θ is the weakest intensity that still codes its own time")
    if tau is not None and not tau > 0:
        raise ConfigError(f"{where}.tau", "tau must be positive or None", got=tau,
                          expected="> 0 or None", hint="None fits the code to the window")
    if mapping == "exponential" and tau is None and threshold <= 0:
        raise ConfigError(f"{where}.threshold", "the exponential code needs θ > 0 to fit "
                          "the window (ln(1/0) is infinite)", got=threshold,
                          expected="θ > 0 when tau is None", hint="e.g. threshold=0.01")


def check_jitter(where: str, jitter: Any) -> None:
    """Latency / TTFS training-time timing noise: ``jitter >= 0`` steps."""
    if not jitter >= 0:
        raise ConfigError(f"{where}.jitter", "jitter must be >= 0", got=jitter,
                          expected=">= 0 (steps)", hint="0 disables it")


def check_value_range(where: str, value_range: Any) -> tuple[float, float]:
    """Population ``value_range = (lo, hi)`` with ``lo < hi``; returns it as floats."""
    lo, hi = (float(v) for v in value_range)
    if not lo < hi:
        raise ConfigError(f"{where}.value_range", "empty range", got=value_range,
                          expected="(lo, hi) with lo < hi", hint="e.g. (0.0, 1.0)")
    return lo, hi


def population_spacing(lo: float, hi: float, population_size: int, centers: str) -> float:
    """Distance between neighbouring tuning-curve centers: ``(hi - lo) / P`` for
    ``"uniform"`` (bin midpoints), ``(hi - lo) / (P - 1)`` otherwise (``linspace``)."""
    if centers == "uniform":
        return (hi - lo) / population_size
    return (hi - lo) / max(population_size - 1, 1)


def check_population_code(where: str, population_size: int, *, sigma: Any, centers: str,
                          value_range: Any, sigma_name: str = "sigma",
                          centers_name: str = "centers") -> tuple[float, float, Any]:
    """Population encoder: known ``centers``, ``lo < hi`` and a positive ``sigma``
    (``None`` = the center spacing). Returns ``(lo, hi, sigma)`` with ``sigma`` resolved."""
    check_choice(where, centers_name, centers, POPULATION_CENTERS)
    lo, hi = check_value_range(where, value_range)
    sigma = population_spacing(lo, hi, population_size, centers) if sigma is None else sigma
    if not sigma > 0:
        raise ConfigError(f"{where}.{sigma_name}", "sigma must be positive", got=sigma,
                          expected="> 0 or None", hint="None uses the center spacing")
    return lo, hi, sigma


def check_delta_threshold(where: str, threshold: Any, *, name: str = "threshold") -> None:
    """Delta encoder: the change that triggers a spike is ``> 0``."""
    if not threshold > 0:
        raise ConfigError(f"{where}.{name}", "threshold must be positive",
                          got=threshold, expected="> 0", hint="e.g. 0.1")


def check_membrane_reduce(where: str, reduce: object, *, name: str = "reduce") -> None:
    """Membrane decoder: ``reduce`` is ``"last"`` or ``"max"``."""
    if reduce not in MEMBRANE_REDUCTIONS:
        raise ConfigError(f"{where}.{name}", "unknown reduction", got=repr(reduce),
                          expected="'last' | 'max'", hint="pick one of the listed values")


def check_ensemble(where: str, members: int, weights: Any, *, regression: object = None,
                   members_name: str = "members", weights_name: str = "weights"
                   ) -> list[float]:
    """Ensemble decoder: ``members >= 1`` classifiers (``regression``: the first member that
    regresses, or ``None``) and one weight ``>= 0`` per member, not all 0 (``None`` = equal).

    Returns the weights as floats (not normalized).
    """
    if not members:
        raise ConfigError(f"{where}.{members_name}", "an ensemble needs members",
                          got=0, expected=">= 1 decoder", hint="e.g. rate + first_spike")
    if regression is not None:
        raise ConfigError(f"{where}.{members_name}", "regression cannot be ensembled",
                          got=regression, expected="classification decoders",
                          hint="average regression outputs yourself")
    weights = [1.0] * members if weights is None else [float(w) for w in weights]
    if len(weights) != members or any(not w >= 0 for w in weights) or not sum(weights) > 0:
        raise ConfigError(f"{where}.{weights_name}", "one weight >= 0 per member, not all 0",
                          got=weights, expected=f"{members} weights",
                          hint="None gives equal weights")
    return weights


class _DictMixin:
    """``to_dict`` / ``from_dict`` / ``to_json`` / ``from_json`` for flat frozen configs."""

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of every field (JSON-serializable)."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{cls.__name__}.from_dict", "unknown keys", got=unknown,
                              expected=f"a subset of {sorted(known)}",
                              hint="remove or rename the listed keys")
        return cls(**data)

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict` (keys sorted)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Any:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class LossConfig(_DictMixin):
    """Weights and knobs of the SNN loss pack (seed 002, ``brain_ai.core.losses``).

    Weights are ``>= 0`` (``0`` switches a term off); ``target_rate`` is in ``[0, 1]``;
    ``probspikes_temperature > 0``; ``isi_refractory_window`` is an int ``> 0``.
    """

    w_probspikes: float = 1.0
    w_rate: float = 0.1
    w_temporal: float = 0.01
    w_isi: float = 0.01
    w_membrane: float = 0.001
    target_rate: float = 0.1
    probspikes_temperature: float = 1.0
    isi_refractory_window: int = 3

    def __post_init__(self) -> None:
        for name in ("w_probspikes", "w_rate", "w_temporal", "w_isi", "w_membrane"):
            check_positive("LossConfig", name, getattr(self, name), allow_zero=True)
        check_positive("LossConfig", "probspikes_temperature", self.probspikes_temperature)
        check_positive("LossConfig", "isi_refractory_window", self.isi_refractory_window,
                        integer=True)
        if isinstance(self.target_rate, bool) or not isinstance(self.target_rate, (int, float)) \
                or not 0.0 <= self.target_rate <= 1.0:
            raise ConfigError("LossConfig.target_rate", "target_rate is outside [0, 1]",
                              got=repr(self.target_rate), expected="0 <= target_rate <= 1",
                              hint="a firing rate is spikes per step, a fraction")


def _as_tuple(obj: object, name: str) -> None:
    """Frozen-dataclass helper: store a list field (e.g. from JSON) as a tuple."""
    value = getattr(obj, name)
    if isinstance(value, list):
        object.__setattr__(obj, name, tuple(value))


@dataclass(frozen=True)
class EncodingConfig(_DictMixin):
    """Which encoder :func:`brain_ai.core.encoding.build_encoder` builds, and how.

    The first six fields are the seed's table; the rest are the encoders' options (names as in
    :mod:`brain_ai.core.encoding`; each encoder reads only its own). Cross-field rules (e.g.
    ``t_max <= num_steps - 1``) are the ``check_*`` functions of this module, which the
    encoders' constructors call too: each rule is written once, errors name the config field.

    Attributes:
        type: ``rate_bernoulli | rate_poisson | rate_deterministic | latency | ttfs |
            population | delta``.
        num_steps: ``T`` (delta encodes sequences and ignores it).
        normalization: ``none | minmax | sigmoid | clamp`` (per sample, before encoding).
        deterministic_eval: rate/population: deterministic schedule in eval mode.
        population_size: neurons per feature (population).
        latency_mapping: ``linear | exponential | log`` (latency/ttfs).
        seed: private ``torch.Generator`` seed; ``None`` = torch's global RNG.
        rate_gain, rate_bias: rate: ``p = clamp(gain·x̂ + bias, 0, 1)``.
        tau, threshold, t_min, t_max, jitter: latency/ttfs timing (``None`` tau / t_max:
            fit the window / ``T - 1``).
        population_sigma, population_centers, value_range: population tuning curves.
        delta_threshold: delta: change that triggers an ON/OFF spike.
    """

    type: str = "rate_bernoulli"
    num_steps: int = 25
    normalization: str = "minmax"
    deterministic_eval: bool = True
    population_size: int = 8
    latency_mapping: str = "exponential"
    seed: int | None = None
    rate_gain: float = 1.0
    rate_bias: float = 0.0
    tau: float | None = None
    threshold: float = 0.01
    t_min: int = 0
    t_max: int | None = None
    jitter: float = 0.0
    population_sigma: float | None = None
    population_centers: str = "linear"
    value_range: tuple[float, float] = (0.0, 1.0)
    delta_threshold: float = 0.1

    def __post_init__(self) -> None:
        _as_tuple(self, "value_range")
        check_choice("EncodingConfig", "type", self.type, _ENCODINGS)
        check_choice("EncodingConfig", "normalization", self.normalization, NORMALIZATIONS)
        check_choice("EncodingConfig", "latency_mapping", self.latency_mapping,
                      LATENCY_MAPPINGS)
        check_positive("EncodingConfig", "num_steps", self.num_steps, integer=True)
        check_positive("EncodingConfig", "population_size", self.population_size,
                        integer=True)
        if not isinstance(self.deterministic_eval, bool):
            raise ConfigError("EncodingConfig.deterministic_eval", "must be a bool",
                              got=repr(self.deterministic_eval), expected="True | False",
                              hint="True makes inference reproducible")
        self._check_encoder_options()

    def _check_encoder_options(self) -> None:
        """The rules of the encoder ``type`` selects (the same functions its constructor
        calls); options of the other encoders are not read."""
        where = "EncodingConfig"
        if self.type != "delta":
            check_seed(where, self.seed)
        if self.type in _RATE_TYPES:
            check_rate_affine(where, self.rate_gain, self.rate_bias)
        elif self.type in ("latency", "ttfs"):
            check_spike_window(where, self.num_steps, self.t_min, self.t_max)
            check_latency_code(where, self.latency_mapping, self.threshold, self.tau)
            check_jitter(where, self.jitter)
        elif self.type == "population":
            check_population_code(where, self.population_size, sigma=self.population_sigma,
                                  centers=self.population_centers,
                                  value_range=self.value_range,
                                  sigma_name="population_sigma",
                                  centers_name="population_centers")
        elif self.type == "delta":
            check_delta_threshold(where, self.delta_threshold, name="delta_threshold")


@dataclass(frozen=True)
class DecodingConfig(_DictMixin):
    """Which decoder :func:`brain_ai.core.decoding.build_decoder` builds, and how.

    The first four fields are the seed's table; the rest are decoder options, validated (like
    :class:`EncodingConfig`) by the ``check_*`` functions the decoders' constructors call too.

    Attributes:
        type: ``rate | first_spike | population | membrane | ensemble``.
        temperature: logits are divided by it (``> 0``).
        eps: floor before logs / divisions (``> 0``).
        population_mode: ``classification | regression``.
        population_size: output neurons per class / per regressed value.
        value_range: regression: the centers are ``linspace(lo, hi, population_size)``.
        membrane_reduce: ``last | max`` over time (membrane).
        ensemble_types: member decoder types (ensemble); ``ensemble_weights``: their weights
            (``None`` = equal).
    """

    type: str = "rate"
    temperature: float = 1.0
    eps: float = 1e-7
    population_mode: str = "classification"
    population_size: int = 8
    value_range: tuple[float, float] = (0.0, 1.0)
    membrane_reduce: str = "last"
    ensemble_types: tuple[str, ...] = ("rate", "first_spike")
    ensemble_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("value_range", "ensemble_types", "ensemble_weights"):
            _as_tuple(self, name)
        check_choice("DecodingConfig", "type", self.type, _DECODINGS)
        check_choice("DecodingConfig", "population_mode", self.population_mode,
                      _POPULATION_MODES)
        check_positive("DecodingConfig", "temperature", self.temperature)
        check_positive("DecodingConfig", "eps", self.eps)
        check_positive("DecodingConfig", "population_size", self.population_size,
                        integer=True)
        for member in self.ensemble_types:
            check_choice("DecodingConfig", "ensemble_types", member,
                          tuple(d for d in _DECODINGS if d != "ensemble"))
        self._check_decoder_options()

    def _check_decoder_options(self) -> None:
        """The rules of the decoder(s) ``type`` selects (the same functions their
        constructors call); options of the other decoders are not read."""
        where = "DecodingConfig"
        kinds = self.ensemble_types if self.type == "ensemble" else (self.type,)
        for kind in kinds:
            if kind == "population":
                check_value_range(where, self.value_range)
            elif kind == "membrane":
                check_membrane_reduce(where, self.membrane_reduce, name="membrane_reduce")
        if self.type == "ensemble":
            regression = "population" in kinds and self.population_mode == "regression"
            check_ensemble(where, len(kinds), self.ensemble_weights,
                           regression="population (population_mode='regression')"
                           if regression else None,
                           members_name="ensemble_types", weights_name="ensemble_weights")


@dataclass(frozen=True)
class CodecPreset:
    """The three configs of one task setup, as returned by the ``*_preset()`` functions."""

    encoding: EncodingConfig
    decoding: DecodingConfig
    loss: LossConfig

    def to_dict(self) -> dict[str, Any]:
        """``{"encoding": {...}, "decoding": {...}, "loss": {...}}``."""
        return {"encoding": self.encoding.to_dict(), "decoding": self.decoding.to_dict(),
                "loss": self.loss.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodecPreset:
        """Inverse of :meth:`to_dict`."""
        if set(data) != {"encoding", "decoding", "loss"}:
            raise ConfigError("CodecPreset.from_dict", "wrong keys", got=sorted(data),
                              expected="['decoding', 'encoding', 'loss']",
                              hint="use the output of CodecPreset.to_dict()")
        return cls(EncodingConfig.from_dict(data["encoding"]),
                   DecodingConfig.from_dict(data["decoding"]), LossConfig.from_dict(data["loss"]))

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict` (keys sorted)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CodecPreset:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def rate_classification_preset() -> CodecPreset:
    """Bernoulli rate code in, spike counts out, default loss weights."""
    return CodecPreset(EncodingConfig(), DecodingConfig(), LossConfig())


def ttfs_classification_preset() -> CodecPreset:
    """Strict TTFS in, earliest output spike wins; rate target ``1/T`` (one spike per window)."""
    enc = EncodingConfig(type="ttfs")
    return CodecPreset(enc, DecodingConfig(type="first_spike"),
                       LossConfig(target_rate=1.0 / enc.num_steps))


def population_classification_preset() -> CodecPreset:
    """Gaussian population code in; the class is the output group with the most spikes."""
    return CodecPreset(EncodingConfig(type="population"), DecodingConfig(type="population"),
                       LossConfig())


def regression_preset() -> CodecPreset:
    """Population code in (inputs clamped to [0, 1], no per-sample minmax, which would erase a
    single feature), population-vector regression out; no classification loss
    (``w_probspikes=0``)."""
    return CodecPreset(EncodingConfig(type="population", normalization="clamp"),
                       DecodingConfig(type="population", population_mode="regression"),
                       LossConfig(w_probspikes=0.0))
