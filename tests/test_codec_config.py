"""Codec / loss configs (brain_ai.config), presets, and the codec runtime checks."""

from __future__ import annotations

import dataclasses
import json

import pytest

from brain_ai.apps.validate_codecs import codec_checks
from brain_ai.config import (
    CodecPreset,
    DecodingConfig,
    EncodingConfig,
    LossConfig,
    population_classification_preset,
    rate_classification_preset,
    regression_preset,
    ttfs_classification_preset,
)
from brain_ai.core.decoding import build_decoder
from brain_ai.core.encoding import build_encoder
from brain_ai.errors import ConfigError

PRESETS = [rate_classification_preset, ttfs_classification_preset,
           population_classification_preset, regression_preset]


def test_seed_table_defaults() -> None:
    assert dataclasses.asdict(LossConfig()) == {
        "w_probspikes": 1.0, "w_rate": 0.1, "w_temporal": 0.01, "w_isi": 0.01,
        "w_membrane": 0.001, "target_rate": 0.1, "probspikes_temperature": 1.0,
        "isi_refractory_window": 3}
    e = EncodingConfig()
    assert (e.type, e.num_steps, e.normalization, e.deterministic_eval, e.population_size,
            e.latency_mapping) == ("rate_bernoulli", 25, "minmax", True, 8, "exponential")
    d = DecodingConfig()
    assert (d.type, d.temperature, d.eps, d.population_mode) == (
        "rate", 1.0, 1e-7, "classification")


@pytest.mark.parametrize("cfg", [
    LossConfig(w_rate=0.5, isi_refractory_window=5),
    EncodingConfig(type="population", value_range=(-1.0, 2.0), seed=3),
    EncodingConfig(type="ttfs", latency_mapping="log", tau=2.0, t_max=20),
    DecodingConfig(type="ensemble", ensemble_types=("rate", "membrane"),
                   ensemble_weights=(2.0, 1.0)),
])
def test_dict_and_json_round_trip(cfg: object) -> None:
    cls = type(cfg)
    assert cls.from_dict(cfg.to_dict()) == cfg
    assert cls.from_json(cfg.to_json()) == cfg
    assert json.loads(cfg.to_json()) == json.loads(json.dumps(cfg.to_dict()))


@pytest.mark.parametrize("make", PRESETS)
def test_presets_round_trip_and_build(make: object) -> None:
    preset = make()
    assert isinstance(preset, CodecPreset)
    assert CodecPreset.from_json(preset.to_json()) == preset
    build_encoder(preset.encoding)
    build_decoder(preset.decoding)


def test_preset_contents() -> None:
    assert ttfs_classification_preset().decoding.type == "first_spike"
    assert ttfs_classification_preset().loss.target_rate == 1.0 / 25
    reg = regression_preset()
    assert (reg.decoding.population_mode, reg.loss.w_probspikes) == ("regression", 0.0)
    assert population_classification_preset().encoding.type == "population"


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        LossConfig().w_rate = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("make, match", [
    (lambda: LossConfig(w_rate=-0.1), r"LossConfig.w_rate: w_rate must be a number >= 0"),
    (lambda: LossConfig(target_rate=1.5), "target_rate is outside"),
    (lambda: LossConfig(isi_refractory_window=2.5), "isi_refractory_window must be an int"),
    (lambda: LossConfig(probspikes_temperature=0.0), "probspikes_temperature must be"),
    (lambda: EncodingConfig(type="rate"), "unknown type"),
    (lambda: EncodingConfig(num_steps=0), "num_steps must be an int > 0"),
    (lambda: EncodingConfig(num_steps=True), "num_steps must be an int > 0"),
    (lambda: EncodingConfig(type="ttfs", t_max=25),  # cross-field: config.check_spike_window
     r"EncodingConfig.t_min/t_max: the spike window"),
    (lambda: DecodingConfig(type="membrane", membrane_reduce="mean"),
     r"DecodingConfig.membrane_reduce: unknown reduction"),
    (lambda: DecodingConfig(temperature=-1.0), "temperature must be a number > 0"),
    (lambda: DecodingConfig(type="ensemble", ensemble_types=("ensemble",)), "unknown"),
    (lambda: DecodingConfig(population_mode="ranking"), "unknown population_mode"),
    (lambda: LossConfig.from_dict({"w_rat": 1.0}), r"unknown keys.*\n  Hint: remove"),
])
def test_validation_errors(make: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make()


def test_codec_checks_all_pass() -> None:
    results = codec_checks()
    assert len(results) == 24
    assert [r for r in results if not r[1]] == []
