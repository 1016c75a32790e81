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
    "CodecPreset",
    "DecodingConfig",
    "EncodingConfig",
    "LossConfig",
    "SNNConfig",
    "population_classification_preset",
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
_NORMALIZATIONS = ("none", "minmax", "sigmoid", "clamp")
_LATENCY_MAPPINGS = ("linear", "exponential", "log")
_DECODINGS = ("rate", "first_spike", "population", "membrane", "ensemble")
_POPULATION_MODES = ("classification", "regression")


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
    ``t_max <= num_steps - 1``) are checked by building the encoder once, so the encoder's
    checks are the only copy of them.

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
        check_choice("EncodingConfig", "normalization", self.normalization, _NORMALIZATIONS)
        check_choice("EncodingConfig", "latency_mapping", self.latency_mapping,
                      _LATENCY_MAPPINGS)
        check_positive("EncodingConfig", "num_steps", self.num_steps, integer=True)
        check_positive("EncodingConfig", "population_size", self.population_size,
                        integer=True)
        if not isinstance(self.deterministic_eval, bool):
            raise ConfigError("EncodingConfig.deterministic_eval", "must be a bool",
                              got=repr(self.deterministic_eval), expected="True | False",
                              hint="True makes inference reproducible")
        from brain_ai.core.encoding import build_encoder  # lazy: encoding imports config

        build_encoder(self)


@dataclass(frozen=True)
class DecodingConfig(_DictMixin):
    """Which decoder :func:`brain_ai.core.decoding.build_decoder` builds, and how.

    The first four fields are the seed's table; the rest are decoder options, validated (like
    :class:`EncodingConfig`) by building the decoder once.

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
        from brain_ai.core.decoding import build_decoder  # lazy: decoding imports config

        build_decoder(self)


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
