"""Decoders (brain_ai.core.decoding): hand-computed outputs, contracts, AMP.

Peer equality (snnTorch functional.acc) lives in conformance/cases_codecs.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from brain_ai.config import DecodingConfig
from brain_ai.core.decoding import (
    DecoderOutput,
    EnsembleDecoder,
    FirstSpikeDecoder,
    MembraneDecoder,
    PopulationDecoder,
    RateDecoder,
    build_decoder,
)
from brain_ai.core.encoding import PopulationEncoder, SpikeBatch
from brain_ai.errors import ConfigError, ShapeError

EXACT = {"rtol": 0, "atol": 0}


def train(*rows: list[int]) -> torch.Tensor:
    """One sample; rows are time steps: ``train([0,1], [1,0])`` -> (1, 2, 2)."""
    return torch.tensor(rows, dtype=torch.float32).unsqueeze(0)


S = train([1, 0, 1], [0, 0, 1], [1, 0, 0], [0, 0, 1])  # counts [2, 0, 3]; first [0, -, 0]


def test_rate_decoder_hand_values() -> None:
    """counts [2, 0, 3], temperature 2 -> logits [1, 0, 1.5]; confidence
    e^1.5 / (e^1 + 1 + e^1.5) = 4.48169 / 8.19997 = 0.546549; margin 0.5; histogram over
    0..4 spikes: [1, 0, 1, 1, 0]."""
    out = RateDecoder(temperature=2.0)(S)
    assert_close(out.logits_proxy, torch.tensor([[1.0, 0.0, 1.5]]), **EXACT)
    assert out.prediction.tolist() == [2]
    assert_close(out.confidence, torch.tensor([0.546549]), rtol=0, atol=1e-6)
    assert_close(out.aux["margin"], torch.tensor([0.5]), **EXACT)
    assert out.aux["count_histogram"].tolist() == [[1, 0, 1, 1, 0]]
    assert_close(out.aux["rates"], torch.tensor([[0.5, 0.0, 0.75]]), **EXACT)


def test_rate_decoder_ties_go_to_lowest_index() -> None:
    assert RateDecoder()(train([0, 1, 1], [0, 1, 1])).prediction.tolist() == [1]


def test_mask_excludes_invalid_steps() -> None:
    """Only the first 2 steps valid: counts [1, 0, 2], rates / 2."""
    mask = torch.tensor([[True, True, False, False]])
    out = RateDecoder()(SpikeBatch(S, mask=mask))
    assert_close(out.aux["counts"], torch.tensor([[1.0, 0.0, 2.0]]), **EXACT)
    assert_close(out.aux["rates"], torch.tensor([[0.5, 0.0, 1.0]]), **EXACT)


def test_first_spike_decoder_hand_values() -> None:
    """t_first = [2, silent, 1] of T = 4 -> logits [-0.5, -1, -0.25]; neuron 2 wins."""
    s = train([0, 0, 0], [0, 0, 1], [1, 0, 1], [0, 0, 0])
    out = FirstSpikeDecoder()(s)
    assert_close(out.logits_proxy, torch.tensor([[-0.5, -1.0, -0.25]]), **EXACT)
    assert out.prediction.tolist() == [2]
    assert out.aux["first_spike_times"].tolist() == [[2, -1, 1]]


def test_first_spike_silent_neuron_never_beats_last_step() -> None:
    """Neuron 0 silent, neuron 1 fires at T-1: neuron 1 wins (snnTorch would pick 0)."""
    assert FirstSpikeDecoder()(train([0, 0], [0, 0], [0, 1])).prediction.tolist() == [1]
    assert FirstSpikeDecoder()(torch.zeros(1, 3, 2)).prediction.tolist() == [0]


def test_population_classification_hand_values() -> None:
    """P = 2: counts [2, 0 | 3, 1] -> groups [2, 4] -> class 1."""
    s = train([1, 0, 1, 1], [1, 0, 1, 0], [0, 0, 1, 0])
    out = PopulationDecoder(2)(s)
    assert_close(out.logits_proxy, torch.tensor([[2.0, 4.0]]), **EXACT)
    assert out.prediction.tolist() == [1]


def test_population_regression_hand_values() -> None:
    """centers [0, .5, 1]; counts [0, 2, 2] of T = 4 -> rates [0, .5, .5] ->
    ŷ = (.5·.5 + 1·.5) / (1 + 1e-7) = 0.75 / 1.0000001; confidence = max share = .5."""
    s = train([0, 1, 1], [0, 1, 1], [0, 0, 0], [0, 0, 0])
    out = PopulationDecoder(3, "regression")(s)
    assert_close(out.prediction, torch.tensor([0.75 / (1 + 1e-7)]), rtol=0, atol=1e-7)
    assert tuple(out.logits_proxy.shape) == (1, 1)
    assert_close(out.confidence, torch.tensor([0.5]), rtol=0, atol=1e-6)
    two = PopulationDecoder(3, "regression")(torch.cat([s, s], -1))
    assert tuple(two.prediction.shape) == (1, 2)


def test_population_round_trip() -> None:
    """PopulationEncoder -> PopulationDecoder (same centers, deterministic) recovers x within
    0.03 (11 centers on [0, 1], 50 steps)."""
    x = torch.tensor([[0.1], [0.35], [0.5], [0.8]])
    spikes = PopulationEncoder(50, 11, normalization="none", sampling="deterministic")(x)
    y = PopulationDecoder(11, "regression")(spikes).prediction
    assert float((y - x[:, 0]).abs().max()) < 0.03


def test_population_rejects_indivisible() -> None:
    with pytest.raises(ShapeError, match="not a multiple of population_size"):
        PopulationDecoder(3)(torch.zeros(1, 2, 4))


def test_membrane_decoder_last_max_and_mask() -> None:
    v = torch.tensor([[[0.1, 0.9], [0.7, 0.2], [0.3, 0.4]]])
    assert_close(MembraneDecoder("last")(membrane=v).logits_proxy, torch.tensor([[0.3, 0.4]]),
                 **EXACT)
    assert_close(MembraneDecoder("max")(membrane=v).logits_proxy, torch.tensor([[0.7, 0.9]]),
                 **EXACT)
    mask = torch.tensor([[True, True, False]])
    sb = SpikeBatch(torch.zeros(1, 3, 2), mask=mask)
    assert_close(MembraneDecoder("last")(sb, v).logits_proxy, torch.tensor([[0.7, 0.2]]),
                 **EXACT)
    with pytest.raises(ShapeError, match="needs a \\(B, T, C\\) membrane"):
        MembraneDecoder()(S)


def test_ensemble_is_log_mean_softmax() -> None:
    """rate logits [2, 0, 3] and first-spike logits [0, -1, 0] (t_first = [0, silent, 0])."""
    out = EnsembleDecoder([RateDecoder(), FirstSpikeDecoder()])(S)
    p = (torch.softmax(torch.tensor([2.0, 0.0, 3.0]), -1)
         + torch.softmax(torch.tensor([0.0, -1.0, 0.0]), -1)) / 2
    assert_close(out.logits_proxy, p.log().unsqueeze(0), rtol=0, atol=1e-6)
    assert out.prediction.tolist() == [2]
    assert out.aux["member_predictions"].tolist() == [[2, 0]]
    assert_close(out.aux["agreement"], torch.tensor([0.5]), **EXACT)


def test_ensemble_config_errors() -> None:
    with pytest.raises(ConfigError, match="regression cannot be ensembled"):
        EnsembleDecoder([PopulationDecoder(2, "regression")])
    with pytest.raises(ConfigError, match="one weight"):
        EnsembleDecoder([RateDecoder()], weights=[1.0, 2.0])
    with pytest.raises(ConfigError, match=r"RateDecoder.temperature: temperature must be a number"):
        RateDecoder(temperature=0.0)


def test_counts_accumulate_in_fp32_under_autocast() -> None:
    """300 steps of bf16 spikes: exact count 300 (a bf16 sum would round 257 -> 256)."""
    s = torch.ones(1, 300, 2, dtype=torch.bfloat16)
    s[0, :43, 1] = 0  # neuron 1: 257 spikes
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = RateDecoder()(s)
    assert out.logits_proxy.dtype == torch.float32
    assert_close(out.logits_proxy, torch.tensor([[300.0, 257.0]]), **EXACT)


def test_decoder_output_validation_and_missing_input() -> None:
    with pytest.raises(ShapeError, match="inconsistent shapes"):
        DecoderOutput(torch.zeros(2, 3), torch.zeros(3), torch.zeros(2))
    with pytest.raises(ShapeError, match="needs spikes"):
        RateDecoder()()
    with pytest.raises(ShapeError, match=r"\(B, T, N\)"):
        RateDecoder()(torch.zeros(1, 2, 3, 4))


@pytest.mark.parametrize("kind, cls", [
    ("rate", RateDecoder), ("first_spike", FirstSpikeDecoder),
    ("population", PopulationDecoder), ("membrane", MembraneDecoder),
    ("ensemble", EnsembleDecoder),
])
def test_build_decoder(kind: str, cls: type) -> None:
    assert type(build_decoder(DecodingConfig(type=kind))) is cls


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 4), steps=st.integers(1, 6), c=st.integers(1, 5),
       seed=st.integers(0, 2**16),
       kind=st.sampled_from(["rate", "first_spike", "membrane", "ensemble"]))
def test_decoder_contract(b: int, steps: int, c: int, seed: int, kind: str) -> None:
    g = torch.Generator().manual_seed(seed)
    s = (torch.rand(b, steps, c, generator=g) < 0.3).float()
    out = build_decoder(DecodingConfig(type=kind))(s, torch.randn(b, steps, c, generator=g))
    assert tuple(out.logits_proxy.shape) == (b, c) and out.logits_proxy.dtype == torch.float32
    assert tuple(out.prediction.shape) == (b,)
    assert bool(((out.confidence >= 0) & (out.confidence <= 1 + 1e-6)).all())
    if kind == "first_spike":  # the winner has the earliest first spike (silent = T)
        first = torch.where(s.any(1), s.argmax(1), steps)
        assert_close(first.gather(1, out.prediction[:, None])[:, 0], first.min(1).values,
                     **EXACT)
    if kind == "rate":
        assert_close(out.logits_proxy, s.sum(1), **EXACT)
    assert math.isfinite(float(out.logits_proxy.sum()))
