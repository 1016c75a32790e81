"""Numbers for the loss pack (brain_ai.core.losses).

Peer parity with snnTorch is proven by the registered conformance cases
(``conformance/cases_losses.py``); here each term is checked against a value worked out by
hand, plus gradients, AMP, the composer contract, errors and property tests.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from brain_ai.config import LossConfig
from brain_ai.core.losses import (
    ISIRegularization,
    MembraneRegularization,
    ProbSpikes,
    SNNLossComposer,
    SNNMetrics,
    SpikeRateRegularization,
    TemporalConsistency,
    compute_snn_metrics,
    neuron_activity,
)
from brain_ai.errors import ConfigError, ShapeError


def rec(*steps: list[float]) -> Tensor:
    """``rec([a, b], [c, d], ...)``: one sample, one row per time step -> ``(1, T, N)``."""
    return torch.tensor([list(s) for s in steps], dtype=torch.float32).unsqueeze(0)


def close(a: Tensor | float, b: float, tol: float = 1e-6) -> None:
    value = float(a.detach()) if isinstance(a, Tensor) else float(a)
    torch.testing.assert_close(torch.tensor(value, dtype=torch.float64),
                               torch.tensor(b, dtype=torch.float64), rtol=0, atol=tol)


# ----------------------------------------------------------------------------- hand values


def test_probspikes_hand_values() -> None:
    """Class 0 fires at both of T=2 steps, class 1 never: counts [2, 0], target 0.

    normalize=True, tau=1: logits [1, 0] -> -log(e/(e+1)) = log(1 + e^-1) = 0.3132616875.
    normalize=False:       logits [2, 0] -> log(1 + e^-2) = 0.1269280110.
    normalize=True, tau=0.5: logits [2, 0] -> 0.1269280110 as well.
    """
    s, y = rec([1, 0], [1, 0]), torch.tensor([0])
    loss, diag = ProbSpikes()(s, y)
    close(loss, math.log1p(math.exp(-1)))
    close(ProbSpikes(normalize=False)(s, y)[0], math.log1p(math.exp(-2)))
    close(ProbSpikes(temperature=0.5)(s, y)[0], math.log1p(math.exp(-2)))
    assert diag == pytest.approx({"accuracy": 1.0, "p_target": 1 / (1 + math.exp(-1)),
                                  "mean_rate": 0.5})
    assert loss.shape == () and loss.dtype == torch.float32


def test_probspikes_eps_clamp() -> None:
    """counts [20, 0] raw, target 1: -log p = log(1 + e^20) = 20.000000002, clamped at
    -log(1e-7) = 16.118095651; the clamped sample passes no gradient."""
    s = torch.zeros(1, 20, 2)
    s[0, :, 0] = 1
    s.requires_grad_(True)
    loss, _ = ProbSpikes(normalize=False)(s, torch.tensor([1]))
    close(loss, -math.log(1e-7), tol=1e-5)
    loss.backward()
    assert s.grad is not None and float(s.grad.abs().max()) == 0.0
    close(ProbSpikes(normalize=False, eps=0.0)(s, torch.tensor([1]))[0],
          20 + math.log1p(math.exp(-20)), tol=1e-5)


def test_rate_regularization_hand_value() -> None:
    """(1, 4, 2): neuron 0 fires [1, 1, 0, 0] (rate .5), neuron 1 never (rate 0), target .1.

    target term: ((.5-.1)^2 + (0-.1)^2) / 2 = (.16 + .01) / 2 = .085
    range term (min .01, max .5): neuron 0 inside -> 0; neuron 1 -> (.01-0)^2 = 1e-4;
    mean over neurons 5e-5; total .085 + 1 * 5e-5 = .08505. Dead fraction 1/2.
    """
    s = rec([1, 0], [1, 0], [0, 0], [0, 0])
    loss, diag = SpikeRateRegularization(0.1)(s)
    close(loss, 0.08505)
    assert diag["dead_frac"] == 0.5 and diag["saturated_frac"] == 0.0
    assert diag["mean_rate"] == 0.25 and diag["output/dead_frac"] == 0.5
    close(SpikeRateRegularization(0.1, range_weight=0.0)(s)[0], 0.085)


def test_rate_regularization_per_layer_targets() -> None:
    """Layer a: one neuron, rate 1 (saturated), target 1 -> 0 + range (1-.5)^2 = .25.
    Layer b: one neuron, rate .5, target .25 -> (.25)^2 = .0625; range 0.
    Mean over layers: (.25 + .0625) / 2 = .15625."""
    layers = {"a": rec([1], [1]), "b": rec([1], [0])}
    reg = SpikeRateRegularization({"a": 1.0, "b": 0.25})
    loss, diag = reg(torch.zeros(1, 2, 1), layers=layers)
    close(loss, 0.15625)
    assert diag["a/saturated_frac"] == 1.0 and diag["saturated_frac"] == 0.5
    with pytest.raises(ConfigError, match="no target rate for a layer"):
        reg(torch.zeros(1, 2, 1), layers={"c": rec([1], [0])})


@pytest.mark.parametrize(
    ("window", "penalty", "expected"),
    [
        # s = [1, 0, 1, 1]; W=1: r = s, deltas [-1, 1, 0] -> |.| mean 2/3, squares mean 2/3
        (1, "l1", 2 / 3),
        (1, "l2", 2 / 3),
        # variance of [1, 0, 1, 1]: mean .75, ((.25^2)*3 + .75^2) / 4 = .1875
        (1, "variance", 0.1875),
        # W=2: r = [.5, .5, 1], deltas [0, .5] -> l1 .25, l2 .125; var of r = 1/18
        (2, "l1", 0.25),
        (2, "l2", 0.125),
        (2, "variance", 1 / 18),
    ],
)
def test_temporal_consistency_hand_values(window: int, penalty: str, expected: float) -> None:
    loss, _ = TemporalConsistency(window, penalty)(rec([1], [0], [1], [1]))  # type: ignore[arg-type]
    close(loss, expected)


def test_isi_hand_value() -> None:
    """Neuron 0 fires at t = 0, 1, 3; neuron 1 never. W = 3, tau = 1, rho_t = sum_d e^-d s_{t-d}.

    t=1: e^-1 (from t=0); t=3: e^-2 (t=1) + e^-3 (t=0); t=0 has no past.
    loss = (e^-1 + e^-2 + e^-3) / (B*T*N = 8) = 0.5530017860 / 8 = 0.0691252232.
    Spikes with a predecessor inside W: t=1 and t=3 of three -> violation_frac 2/3.
    """
    s = rec([1, 0], [1, 0], [0, 0], [1, 0])
    loss, diag = ISIRegularization(3, tau=1.0)(s)
    close(loss, (math.exp(-1) + math.exp(-2) + math.exp(-3)) / 8)
    close(diag["violation_frac"], 2 / 3)
    # W = 1 only sees lag 1: the t=0 -> t=1 pair, e^-1 / 8
    close(ISIRegularization(1)(s)[0], math.exp(-1) / 8)


def _isi_reference(s: Tensor, window: int, tau: float) -> Tensor:
    """Naive loops over every (b, t, n) and lag, in float64."""
    x = s.double().reshape(s.shape[0], s.shape[1], -1)
    b, t, n = x.shape
    total = 0.0
    for i in range(b):
        for k in range(n):
            for j in range(t):
                rho = sum(math.exp(-d / tau) * float(x[i, j - d, k])
                          for d in range(1, window + 1) if j - d >= 0)
                total += float(x[i, j, k]) * rho
    return torch.tensor(total / (b * t * n), dtype=torch.float64)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.integers(1, 4), st.integers(1, 5),
       st.floats(0.3, 4.0), st.integers(0, 2**31 - 1))
def test_isi_matches_loop_reference(b: int, t: int, n: int, window: int, tau: float,
                                    seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    s = (torch.rand(b, t, n, 2, generator=g) < 0.5).float()  # two feature axes
    loss, _ = ISIRegularization(window, tau=tau)(s)
    torch.testing.assert_close(loss.double(), _isi_reference(s, window, tau),
                               rtol=1e-5, atol=1e-7)


def test_membrane_hand_value() -> None:
    """v = [.5, -2, 1.5, 3], v_max = 1: excess [0, 1, .5, 2] -> squares [0, 1, .25, 4] ->
    mean 5.25 / 4 = 1.3125; 3 of 4 entries exceed."""
    v = rec([0.5], [-2.0], [1.5], [3.0])
    loss, diag = MembraneRegularization(1.0)(torch.zeros(1, 4, 1), membrane=v)
    close(loss, 1.3125)
    assert diag["excess_frac"] == 0.75 and diag["max_abs"] == 3.0
    close(diag["membrane_mean"], 0.75)
    close(diag["membrane_var"], (0.0625 + 7.5625 + 0.5625 + 5.0625) / 4)


# ------------------------------------------------------------------------- composer


def test_composer_contract_and_weights() -> None:
    g = torch.Generator().manual_seed(0)
    s = (torch.rand(4, 12, 3, generator=g) < 0.3).float()
    v = torch.randn(4, 12, 3, generator=g)
    y = torch.tensor([0, 1, 2, 0])
    cfg = LossConfig()
    comp = SNNLossComposer.from_config(cfg)
    total, log = comp(s, y, membrane=v)
    names = ["probspikes", "rate_reg", "temporal", "isi", "membrane"]
    assert list(log) == ["total", "components", "diagnostics", "weights"]
    assert list(log["components"]) == names == list(log["diagnostics"])
    assert log["weights"] == {"probspikes": 1.0, "rate_reg": 0.1, "temporal": 0.01,
                              "isi": 0.01, "membrane": 0.001}
    assert all(isinstance(x, float) for x in log["components"].values())
    expected = sum(log["weights"][k] * log["components"][k] for k in names)
    close(log["total"], expected, tol=1e-6)
    assert float(total) == log["total"] and total.dtype == torch.float32
    # each component is the term called alone
    close(log["components"]["isi"], float(ISIRegularization(3)(s)[0]), tol=0)
    # a zero weight drops the term (no membrane needed)
    comp0 = SNNLossComposer.from_config(LossConfig(w_membrane=0.0))
    assert "membrane" not in comp0.weights
    comp0(s, y)
    with pytest.raises(ShapeError, match="membrane is required"):
        comp(s, y)


def test_composer_validation() -> None:
    with pytest.raises(ConfigError, match="duplicate term name"):
        SNNLossComposer([(ProbSpikes(), 1.0), (ProbSpikes(), 0.5)])
    with pytest.raises(ConfigError, match="weight is out of range"):
        SNNLossComposer([(ProbSpikes(), -1.0)])
    with pytest.raises(ConfigError, match="no loss terms"):
        SNNLossComposer([])
    with pytest.raises(ConfigError, match="not a LossConfig"):
        SNNLossComposer.from_config({"w_rate": 1.0})  # type: ignore[arg-type]


# ------------------------------------------------------------------ gradients and AMP

TERMS = [ProbSpikes(), SpikeRateRegularization(), TemporalConsistency(2, "l1"),
         TemporalConsistency(2, "variance"), ISIRegularization(), MembraneRegularization()]


@pytest.mark.parametrize("term", TERMS, ids=lambda t: repr(t))
@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_gradients_finite_at_constant_trains(term: object, fill: float) -> None:
    s = torch.full((2, 6, 3), fill, requires_grad=True)
    v = torch.full((2, 6, 3), fill * 3, requires_grad=True)
    loss, _ = term(s, torch.tensor([0, 2]), membrane=v)  # type: ignore[operator]
    loss.backward()
    assert torch.isfinite(loss)
    for x in (s, v):
        assert x.grad is None or bool(torch.isfinite(x.grad).all())


@pytest.mark.parametrize("term", TERMS, ids=lambda t: repr(t))
def test_bf16_autocast_matches_fp32(term: object) -> None:
    """Binary spikes are exact in bf16, and every term computes in float32 with autocast off,
    so the bf16-autocast loss equals the float32 loss bit for bit."""
    g = torch.Generator().manual_seed(3)
    s = (torch.rand(3, 8, 4, generator=g) < 0.4).float()
    v = torch.randn(3, 8, 4, generator=g).bfloat16().float()
    y = torch.tensor([0, 3, 1])
    ref, _ = term(s, y, membrane=v)  # type: ignore[operator]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = term(s.bfloat16(), y, membrane=v.bfloat16())  # type: ignore[operator]
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


# ----------------------------------------------------------------------- properties


@st.composite
def spike_records(draw: st.DrawFn) -> Tensor:
    b, t, n = draw(st.integers(1, 3)), draw(st.integers(6, 10)), draw(st.integers(1, 4))
    rate = draw(st.floats(0.0, 1.0))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    return (torch.rand(b, t, n, generator=g) < rate).float()


@settings(max_examples=40, deadline=None)
@given(spike_records())
def test_terms_are_non_negative(s: Tensor) -> None:
    y = torch.zeros(s.shape[0], dtype=torch.long)
    for term in TERMS:
        loss, _ = term(s, y, membrane=s * 4 - 2)
        assert float(loss) >= 0.0


@settings(max_examples=40, deadline=None)
@given(spike_records())
def test_rate_terms_invariant_to_window_length(s: Tensor) -> None:
    """Repeating a record (2T steps, the same rates) leaves the count/rate terms unchanged
    bit for bit: count/T and 2count/2T are the same rational, correctly rounded."""
    y = torch.zeros(s.shape[0], dtype=torch.long)
    s2 = torch.cat([s, s], dim=1)
    for term in (ProbSpikes(), ProbSpikes(temperature=0.3), SpikeRateRegularization()):
        torch.testing.assert_close(term(s2, y)[0], term(s, y)[0], rtol=0, atol=0)
    m = MembraneRegularization(0.5)
    torch.testing.assert_close(m(s2, membrane=s2 * 3)[0], m(s, membrane=s * 3)[0])


# ---------------------------------------------------------------------------- metrics


def test_compute_snn_metrics_hand_values() -> None:
    """Neuron 0 fires at 3 of 4 steps, neuron 1 never: rate 3/8, sparsity 5/8, dead 1/2.
    Membrane [0, 1, 2, 3] per neuron: mean 1.5, variance 1.25."""
    s = rec([1, 0], [1, 0], [0, 0], [1, 0])
    v = rec([0, 0], [1, 1], [2, 2], [3, 3])
    m = compute_snn_metrics(s, v)
    assert m == SNNMetrics(0.375, 0.625, 0.5, 0.0, 1.5, 1.25, 1.0)
    assert m.healthy() == {"firing_rate": True, "spike_sparsity": True,
                           "dead_neuron_frac": False, "saturated_neuron_frac": True,
                           "membrane_mean": True, "membrane_var": True}
    assert not m.is_healthy
    assert compute_snn_metrics(torch.ones(2, 3, 4)).healthy()["saturated_neuron_frac"] is False
    rate, dead, sat = neuron_activity(s)
    assert rate.tolist() == [0.75, 0.0] and (dead, sat) == (0.5, 0.0)


# ----------------------------------------------------------------------------- errors


def test_errors_follow_house_format() -> None:
    with pytest.raises(ConfigError) as e:
        ProbSpikes(temperature=0.0)
    assert str(e.value).startswith("ProbSpikes: temperature is out of range (got 0.0;")
    assert "\n  Hint: " in str(e.value)
    with pytest.raises(ShapeError, match="too few axes"):
        ProbSpikes()(torch.zeros(4, 3), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ShapeError, match="out of range"):
        ProbSpikes()(torch.zeros(2, 3, 4), torch.tensor([0, 4]))
    with pytest.raises(ShapeError, match="integer class indices"):
        ProbSpikes()(torch.zeros(2, 3, 4), torch.tensor([0.0, 1.0]))
    with pytest.raises(ShapeError, match="shorter than the penalty needs"):
        TemporalConsistency(5)(torch.zeros(1, 5, 2))
    with pytest.raises(ConfigError, match="min_rate is above max_rate"):
        SpikeRateRegularization(min_rate=0.6, max_rate=0.5)
    with pytest.raises(ConfigError, match="window must be a positive int"):
        ISIRegularization(0)
