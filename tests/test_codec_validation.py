"""The codec rules are written once (the ``check_*`` functions of :mod:`brain_ai.config`):
a bad option raises the same :class:`ConfigError` at config construction and at direct
encoder / decoder construction, each naming its own public entry point; and ``brain_ai.config``
never imports ``brain_ai.core`` (not lazily, not under ``TYPE_CHECKING``)."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

import brain_ai.config as config_module
from brain_ai.config import DecodingConfig, EncodingConfig
from brain_ai.core.decoding import (
    EnsembleDecoder,
    FirstSpikeDecoder,
    MembraneDecoder,
    PopulationDecoder,
    RateDecoder,
    build_decoder,
)
from brain_ai.core.encoding import (
    DeltaEncoder,
    LatencyEncoder,
    PopulationEncoder,
    RateEncoder,
    TTFSEncoder,
    build_encoder,
)
from brain_ai.errors import ConfigError

Make = Callable[[], object]

# (id, config call, config where, constructor call, constructor where, match, same body)
# "same body": everything after "<where>: " is identical (what, got, expected, hint); else the
# two messages share what the rule says (``match``) and ``expected``.
CASES: list[tuple[str, Make, str, Make, str, str, bool]] = [
    ("ttfs window past T-1",
     lambda: EncodingConfig(type="ttfs", num_steps=12, t_max=12), "EncodingConfig.t_min/t_max",
     lambda: TTFSEncoder(12, t_max=12), "TTFSEncoder.t_min/t_max", "spike window", True),
    ("latency window reversed",
     lambda: EncodingConfig(type="latency", num_steps=12, t_min=5, t_max=4),
     "EncodingConfig.t_min/t_max",
     lambda: LatencyEncoder(12, t_min=5, t_max=4), "LatencyEncoder.t_min/t_max", "spike window",
     True),
    ("latency window t_min past T-1 with t_max=None",
     lambda: EncodingConfig(type="latency", num_steps=4, t_min=4), "EncodingConfig.t_min/t_max",
     lambda: LatencyEncoder(4, t_min=4), "LatencyEncoder.t_min/t_max", "spike window", True),
    ("log threshold 0",
     lambda: EncodingConfig(type="latency", latency_mapping="log", threshold=0.0),
     "EncodingConfig.threshold",
     lambda: LatencyEncoder(25, "log", threshold=0.0), "LatencyEncoder.threshold",
     "threshold is outside", True),
    ("threshold 1",
     lambda: EncodingConfig(type="ttfs", latency_mapping="linear", threshold=1.0),
     "EncodingConfig.threshold",
     lambda: TTFSEncoder(25, "linear", threshold=1.0), "TTFSEncoder.threshold",
     "threshold is outside", True),
    ("exponential fitted to the window needs threshold > 0",
     lambda: EncodingConfig(type="ttfs", threshold=0.0), "EncodingConfig.threshold",
     lambda: TTFSEncoder(25, "exponential", threshold=0.0), "TTFSEncoder.threshold",
     "needs θ > 0", True),
    ("tau 0",
     lambda: EncodingConfig(type="latency", tau=0.0), "EncodingConfig.tau",
     lambda: LatencyEncoder(25, tau=0.0), "LatencyEncoder.tau", "tau must be positive", True),
    ("jitter negative",
     lambda: EncodingConfig(type="ttfs", jitter=-1.0), "EncodingConfig.jitter",
     lambda: TTFSEncoder(25, jitter=-1.0), "TTFSEncoder.jitter", "jitter must be >= 0", True),
    ("seed a string",
     lambda: EncodingConfig(seed="0"), "EncodingConfig.seed",
     lambda: RateEncoder(25, seed="0"), "RateEncoder.seed", "seed must be an int or None",
     True),
    ("seed a bool",
     lambda: EncodingConfig(type="population", seed=True), "EncodingConfig.seed",
     lambda: PopulationEncoder(25, seed=True), "PopulationEncoder.seed",
     "seed must be an int or None", True),
    ("rate_gain not a number",
     lambda: EncodingConfig(type="rate_poisson", rate_gain=None), "EncodingConfig.rate_gain",
     lambda: RateEncoder(25, "poisson", rate_gain=None), "RateEncoder.rate_gain",
     "rate_gain must be a number", True),
    ("population sigma negative",
     lambda: EncodingConfig(type="population", population_sigma=-1.0),
     "EncodingConfig.population_sigma",
     lambda: PopulationEncoder(25, sigma=-1.0), "PopulationEncoder.sigma",
     "sigma must be positive", True),
    ("population value_range empty (encoder)",
     lambda: EncodingConfig(type="population", value_range=(1.0, 1.0)),
     "EncodingConfig.value_range",
     lambda: PopulationEncoder(25, value_range=(1.0, 1.0)), "PopulationEncoder.value_range",
     "empty range", True),
    ("population centers unknown",
     lambda: EncodingConfig(type="population", population_centers="random"),
     "EncodingConfig.population_centers",
     lambda: PopulationEncoder(25, centers="random"), "PopulationEncoder.centers",
     "unknown", False),
    ("delta threshold 0",
     lambda: EncodingConfig(type="delta", delta_threshold=0.0),
     "EncodingConfig.delta_threshold",
     lambda: DeltaEncoder(0.0), "DeltaEncoder.threshold", "threshold must be positive", True),
    ("population value_range reversed (decoder)",
     lambda: DecodingConfig(type="population", value_range=(2.0, 1.0)),
     "DecodingConfig.value_range",
     lambda: PopulationDecoder(8, value_range=(2.0, 1.0)), "PopulationDecoder.value_range",
     "empty range", True),
    ("ensemble member value_range reversed",
     lambda: DecodingConfig(type="ensemble", ensemble_types=("rate", "population"),
                            value_range=(2.0, 1.0)), "DecodingConfig.value_range",
     lambda: PopulationDecoder(8, value_range=(2.0, 1.0)), "PopulationDecoder.value_range",
     "empty range", True),
    ("membrane reduce unknown",
     lambda: DecodingConfig(type="membrane", membrane_reduce="mean"),
     "DecodingConfig.membrane_reduce",
     lambda: MembraneDecoder("mean"), "MembraneDecoder.reduce", "unknown reduction", True),
    ("ensemble member membrane reduce unknown",
     lambda: DecodingConfig(type="ensemble", ensemble_types=("membrane",),
                            membrane_reduce="mean"), "DecodingConfig.membrane_reduce",
     lambda: MembraneDecoder("mean"), "MembraneDecoder.reduce", "unknown reduction", True),
    ("ensemble without members",
     lambda: DecodingConfig(type="ensemble", ensemble_types=()),
     "DecodingConfig.ensemble_types",
     lambda: EnsembleDecoder([]), "EnsembleDecoder.members", "an ensemble needs members",
     True),
    ("ensemble with a regression member",
     lambda: DecodingConfig(type="ensemble", ensemble_types=("rate", "population"),
                            population_mode="regression"), "DecodingConfig.ensemble_types",
     lambda: EnsembleDecoder([RateDecoder(), PopulationDecoder(mode="regression")]),
     "EnsembleDecoder.members", "regression cannot be ensembled", False),
    ("ensemble weights of the wrong length",
     lambda: DecodingConfig(type="ensemble", ensemble_weights=(1.0,)),
     "DecodingConfig.ensemble_weights",
     lambda: EnsembleDecoder([RateDecoder(), FirstSpikeDecoder()], weights=(1.0,)),
     "EnsembleDecoder.weights", "one weight", True),
    ("ensemble weights all 0",
     lambda: DecodingConfig(type="ensemble", ensemble_weights=(0.0, 0.0)),
     "DecodingConfig.ensemble_weights",
     lambda: EnsembleDecoder([RateDecoder(), FirstSpikeDecoder()], weights=(0.0, 0.0)),
     "EnsembleDecoder.weights", "one weight", True),
]


def _raise(call: Make, where: str, match: str) -> ConfigError:
    with pytest.raises(ConfigError, match=match) as info:
        call()
    err = info.value
    assert err.where == where, str(err)
    assert str(err).startswith(f"{where}: "), str(err)
    return err


@pytest.mark.parametrize(("name", "config_call", "config_where", "ctor_call", "ctor_where",
                          "match", "same_body"), CASES, ids=[c[0] for c in CASES])
def test_rule_raises_at_config_and_at_constructor(name: str, config_call: Make,
                                                  config_where: str, ctor_call: Make,
                                                  ctor_where: str, match: str,
                                                  same_body: bool) -> None:
    from_config = _raise(config_call, config_where, match)
    from_ctor = _raise(ctor_call, ctor_where, match)
    assert from_config.expected == from_ctor.expected
    if same_body:
        body = str(from_config)[len(config_where) + 2:]
        assert body == str(from_ctor)[len(ctor_where) + 2:]


@pytest.mark.parametrize("make", [
    lambda: EncodingConfig(type="rate_bernoulli", t_max=100, jitter=-1.0, tau=0.0,
                           population_sigma=-1.0, delta_threshold=0.0),
    lambda: EncodingConfig(type="delta", t_min=7, population_centers="random"),
    lambda: DecodingConfig(type="rate", membrane_reduce="mean", value_range=(1.0, 0.0),
                           ensemble_weights=(1.0,)),
    lambda: DecodingConfig(type="ensemble", ensemble_types=("rate",),
                           population_mode="regression"),
])
def test_options_of_other_codecs_are_not_read(make: Make) -> None:
    """Each config checks only what the selected encoder / decoder reads (as before)."""
    cfg = make()
    build = build_encoder if isinstance(cfg, EncodingConfig) else build_decoder
    build(cfg)  # type: ignore[arg-type]


@pytest.mark.parametrize("cfg", [
    EncodingConfig(type="ttfs", num_steps=12, t_min=2, t_max=11, threshold=0.0,
                   latency_mapping="linear"),
    EncodingConfig(type="latency", latency_mapping="log", tau=3.0, jitter=0.5, seed=1),
    EncodingConfig(type="population", population_centers="uniform", population_sigma=0.2,
                   value_range=[-1.0, 1.0]),
    EncodingConfig(type="rate_deterministic", rate_gain=2, rate_bias=-0.5),
    EncodingConfig(type="delta", delta_threshold=0.5),
    DecodingConfig(type="ensemble", ensemble_types=("population", "membrane"),
                   membrane_reduce="max", ensemble_weights=(0.0, 1.0)),
])
def test_valid_edge_configs_build(cfg: object) -> None:
    build = build_encoder if isinstance(cfg, EncodingConfig) else build_decoder
    build(cfg)  # type: ignore[arg-type]


def test_config_never_imports_core() -> None:
    """config.py sits below brain_ai.core: no import of it anywhere in the file."""
    tree = ast.parse(Path(config_module.__file__).read_text(encoding="utf-8"))
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append("." * node.level + (node.module or ""))
    assert imported, "the walk found no import at all"
    bad = [m for m in imported if m.startswith(("brain_ai.core", ".core", "brain_ai.apps"))
           or m in ("brain_ai", ".")]
    assert bad == [], bad
    allowed = ("brain_ai.errors", "brain_ai.physics")
    assert all(not m.startswith("brain_ai") or m.startswith(allowed) for m in imported), imported
