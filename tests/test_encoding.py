"""Encoders (brain_ai.core.encoding): hand-computed trains, closed forms, contracts.

Peer equality (snnTorch spikegen, SpikingJelly encoding) lives in conformance/cases_codecs.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

import brain_ai.physics.axes as axes
from brain_ai.config import EncodingConfig
from brain_ai.core import encoding as E
from brain_ai.core.encoding import (
    DeltaEncoder,
    LatencyEncoder,
    PopulationEncoder,
    RateEncoder,
    SpikeBatch,
    TTFSEncoder,
    build_encoder,
    integrate_and_fire_train,
    normalize_input,
    spike_train,
)
from brain_ai.errors import ConfigError, ShapeError

EXACT = {"rtol": 0, "atol": 0}
TYPES = ["rate_bernoulli", "rate_poisson", "rate_deterministic", "latency", "ttfs",
         "population", "delta"]


def t(*rows: object) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# ----------------------------------------------------------------------------- SpikeBatch


def test_spike_batch_properties_and_default_mask() -> None:
    sb = SpikeBatch(torch.zeros(2, 5, 3, 4))
    assert (sb.batch_size, sb.time_steps, sb.feature_shape) == (2, 5, (3, 4))
    assert sb.device == torch.device("cpu")
    assert sb.mask.dtype == torch.bool and tuple(sb.mask.shape) == (2, 5) and bool(sb.mask.all())
    assert sb.is_binary()
    assert not SpikeBatch(torch.full((1, 1, 1), 0.5)).is_binary()
    assert SpikeBatch(torch.ones(1, 1, 1, dtype=torch.bool)).is_binary()


def test_spike_batch_rejects_bad_shapes() -> None:
    with pytest.raises(ShapeError, match=r"SpikeBatch: spikes need .*\n  Hint:"):
        SpikeBatch(torch.zeros(2, 5))
    with pytest.raises(ShapeError, match="mask must be a bool"):
        SpikeBatch(torch.zeros(2, 5, 1), mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ShapeError, match="mask must be a bool"):
        SpikeBatch(torch.zeros(2, 5, 1), mask=torch.ones(2, 5))


def test_axis_helpers_are_the_core_ones() -> None:
    assert E.time_to_batch_first is axes.time_to_batch_first
    assert E.batch_to_time_first is axes.batch_to_time_first
    assert (E.BATCH_DIM, E.TIME_DIM) == (0, 1)


# ----------------------------------------------------------------------------- normalization


def test_normalize_input_hand_values() -> None:
    """minmax per sample: [1, 3, 5] -> [0, .5, 1]; a constant sample -> 0."""
    x = t([1.0, 3.0, 5.0], [2.0, 2.0, 2.0])
    xn, stats = normalize_input(x, "minmax")
    assert_close(xn, t([0.0, 0.5, 1.0], [0.0, 0.0, 0.0]), **EXACT)
    assert_close(stats["norm_min"], t(1.0, 2.0), **EXACT)
    assert_close(stats["norm_max"], t(5.0, 2.0), **EXACT)
    assert_close(normalize_input(t([0.0]), "sigmoid")[0], t([0.5]), **EXACT)
    assert_close(normalize_input(t([-1.0, 0.3, 2.0]), "clamp")[0], t([0.0, 0.3, 1.0]), **EXACT)
    assert normalize_input(torch.ones(1, 2, dtype=torch.float16), "none")[0].dtype == torch.float32


# ----------------------------------------------------------------------------- rate


def test_bernoulli_with_given_uniforms() -> None:
    """p = [0.25, 0.75]; spike iff U < p."""
    u = torch.tensor([[[0.2, 0.8], [0.25, 0.7], [0.9, 0.74999]]])
    s = RateEncoder(3, normalization="none")(t([0.25, 0.75]), uniforms=u).spikes
    assert_close(s, t([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), **EXACT)


def test_poisson_uses_one_minus_exp() -> None:
    """p = 0.5 -> q = 1 - e^-0.5 = 0.393469; U = 0.39 fires, U = 0.40 does not."""
    enc = RateEncoder(2, "poisson", normalization="none")
    s = enc(t([0.5]), uniforms=torch.tensor([[[0.39], [0.40]]])).spikes
    assert s.flatten().tolist() == [1.0, 0.0]
    assert 1 - math.exp(-0.5) == pytest.approx(0.393469, abs=1e-6)


def test_integrate_and_fire_schedule() -> None:
    """p = .5 -> every 2nd step from t=1; p = .25 -> t = 3, 7; p = 1 -> always; p = 0 -> never."""
    s = integrate_and_fire_train(t([0.5, 0.25, 1.0, 0.0]), 8)
    assert s[0, :, 0].nonzero().flatten().tolist() == [1, 3, 5, 7]
    assert s[0, :, 1].nonzero().flatten().tolist() == [3, 7]
    assert s[0, :, 2].all() and not s[0, :, 3].any()


def test_deterministic_eval_replaces_sampling() -> None:
    x = torch.rand(3, 5, generator=torch.Generator().manual_seed(1))
    ref = RateEncoder(10, "deterministic")(x).spikes
    enc = RateEncoder(10, "bernoulli").eval()
    assert_close(enc(x).spikes, ref, **EXACT)
    assert not torch.equal(enc.train()(x).spikes, ref)
    assert not torch.equal(RateEncoder(10, deterministic_eval=False).eval()(x).spikes, ref)


def test_gain_bias_then_clamp() -> None:
    """p = clamp(2x - 0.5, 0, 1): x = [0.1, 0.5, 0.9] -> [0, 0.5, 1]."""
    out = RateEncoder(4, normalization="clamp", rate_gain=2.0, rate_bias=-0.5)(
        t([0.1, 0.5, 0.9]))
    assert_close(out.aux["rates"], t([0.0, 0.5, 1.0]), rtol=0, atol=1e-7)
    assert out.spikes[0, :, 0].sum() == 0 and out.spikes[0, :, 2].sum() == 4


def test_none_normalization_refuses_out_of_range() -> None:
    with pytest.raises(ConfigError, match=r"normalization='none'.*\n  Hint: use normalization"):
        RateEncoder(4, normalization="none")(t([0.2, 1.5]))


def test_seeded_generator_reproducible_and_prefix_stable() -> None:
    x = torch.rand(2, 7, generator=torch.Generator().manual_seed(3))
    a = RateEncoder(9, seed=5)
    first = a(x).spikes
    assert not torch.equal(a(x).spikes, first)  # the stream advances
    a.reset()
    assert_close(a(x).spikes, first, **EXACT)  # ... and reset() rewinds it
    assert_close(RateEncoder(5, seed=5)(x).spikes, first[:, :5], **EXACT)  # time-first draws
    g = torch.Generator().manual_seed(5)
    assert_close(RateEncoder(9)(x, generator=g).spikes, first, **EXACT)


def test_rate_matches_probability_statistically() -> None:
    """p = 0.3 over 4000 steps: |mean - 0.3| < 4 sqrt(0.21 / 4000) = 0.029."""
    s = RateEncoder(4000, normalization="none", seed=0)(t([0.3])).spikes
    assert abs(float(s.mean()) - 0.3) < 0.029


def test_rate_under_bf16_autocast_is_identical() -> None:
    x = torch.rand(4, 6, generator=torch.Generator().manual_seed(0))
    ref = RateEncoder(8, seed=0)(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = RateEncoder(8, seed=0)(x)
    assert_close(amp.spikes, ref.spikes, **EXACT)
    assert amp.aux["rates"].dtype == torch.float32
    bf = RateEncoder(8, seed=0, spike_dtype=torch.bool)(x.bfloat16())
    assert bf.spikes.dtype == torch.bool and bf.aux["rates"].dtype == torch.float32


def test_spike_train_rejects_wrong_uniforms() -> None:
    with pytest.raises(ShapeError, match="uniforms do not match"):
        spike_train(torch.rand(2, 3), 4, uniforms=torch.rand(4, 2, 3))


# ----------------------------------------------------------------------------- latency / TTFS


def test_linear_latency_hand_values() -> None:
    """T = 11 (span 10): t = 10 (1 - x); x = .25 -> 7.5 rounds half-to-even to 8."""
    out = TTFSEncoder(11, "linear", normalization="none", threshold=0.0)(t([1.0, 0.5, 0.25, 0.0]))
    assert out.aux["spike_times"].tolist() == [[0, 5, 8, 10]]
    assert out.spikes[0].argmax(0).tolist() == [0, 5, 8, 10]


def test_exponential_latency_hand_values() -> None:
    """θ = .01, tau=None: t = 10 ln(1/x) / ln(100); x = .1 -> 5, x = .01 -> 10, x < θ: silent."""
    x = t([1.0, 0.1, 0.01, 0.001])
    lat = LatencyEncoder(11, "exponential", normalization="none")(x)
    assert lat.aux["spike_times"].tolist() == [[0, 5, 10, -1]]
    assert lat.spikes[0, :, 3].sum() == 0
    ttfs = TTFSEncoder(11, "exponential", normalization="none")(x)
    assert ttfs.aux["spike_times"].tolist() == [[0, 5, 10, 10]]


def test_log_latency_hand_values() -> None:
    """θ = .5, tau = 4: t = 4 ln(x/(x-.5)): x=1 -> 2.77 -> 3, .75 -> 4.39 -> 4, .6 -> 7.17 -> 7,
    .55 -> 9.59 beyond T-1 = 7: silent (latency) or t_max (TTFS)."""
    x = t([1.0, 0.75, 0.6, 0.55])
    lat = LatencyEncoder(8, "log", normalization="none", tau=4.0, threshold=0.5)(x)
    assert lat.aux["spike_times"].tolist() == [[3, 4, 7, -1]]
    ttfs = TTFSEncoder(8, "log", normalization="none", tau=4.0, threshold=0.5)(x)
    assert ttfs.aux["spike_times"].tolist() == [[3, 4, 7, 7]]


def test_window_and_jitter() -> None:
    """jitter moves times only in training, never outside [t_min, t_max], never drops a spike."""
    x = torch.rand(16, 32, generator=torch.Generator().manual_seed(0))
    kw = dict(normalization="none", t_min=2, t_max=9, jitter=1.5, seed=0)
    enc = TTFSEncoder(12, "linear", **kw)
    jittered = enc(x)
    times = jittered.aux["spike_times"]
    assert int(times.min()) >= 2 and int(times.max()) <= 9
    assert bool((jittered.spikes.sum(1) == 1).all())
    plain = TTFSEncoder(12, "linear", **{**kw, "jitter": 0.0})(x)
    assert not torch.equal(times, plain.aux["spike_times"])
    assert_close(enc.eval()(x).spikes, plain.spikes, **EXACT)


@pytest.mark.parametrize("kwargs, match", [
    (dict(mapping="log", threshold=0.0), "threshold is outside"),
    (dict(mapping="exponential", threshold=0.0), "needs θ > 0"),
    (dict(t_max=12), "spike window"),
    (dict(t_min=5, t_max=4), "spike window"),
    (dict(tau=0.0), "tau must be positive"),
    (dict(jitter=-1.0), "jitter"),
    (dict(mapping="cubic"), "unknown mapping"),
])
def test_latency_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LatencyEncoder(12, **kwargs)


def test_ttfs_refuses_allow_no_spike() -> None:
    with pytest.raises(ConfigError, match="TTFS always fires exactly once"):
        TTFSEncoder(5, allow_no_spike=True)


# ----------------------------------------------------------------------------- population


def test_population_activation_closed_form() -> None:
    """centers [0, .5, 1], σ = .5, x = .5: a = [e^-1/2, 1, e^-1/2]; map [0,0,0,1,1,1]."""
    enc = PopulationEncoder(4, 3, sigma=0.5, normalization="none")
    out = enc(t([0.5, 0.0]))
    e = math.exp(-0.5)
    assert_close(out.aux["activation"], t([e, 1.0, e, 1.0, e, math.exp(-2.0)]), rtol=0,
                 atol=1e-7)
    assert out.aux["population_map"].tolist() == [0, 0, 0, 1, 1, 1]
    assert tuple(out.spikes.shape) == (1, 4, 6)


def test_population_centers() -> None:
    assert_close(PopulationEncoder(2, 4, centers="uniform").centers,
                 t(0.125, 0.375, 0.625, 0.875), **EXACT)
    assert_close(PopulationEncoder(2, 3, value_range=(-1.0, 1.0)).centers, t(-1.0, 0.0, 1.0),
                 **EXACT)
    learned = PopulationEncoder(2, 3, centers="learned", normalization="none")
    assert isinstance(learned.centers, torch.nn.Parameter)
    learned(t([0.2]).T).aux["activation"].sum().backward()
    assert learned.centers.grad is not None and bool(learned.centers.grad.abs().gt(0).all())


def test_population_rejects_rank_3() -> None:
    with pytest.raises(ShapeError, match=r"\(B, N\)"):
        PopulationEncoder(2, 3)(torch.rand(2, 3, 4))


# ----------------------------------------------------------------------------- delta


def test_delta_snntorch_docstring_examples() -> None:
    """snnTorch: a = [1, 2, 2.9, 3, 3.9], θ = 1 -> [1,1,0,0,0] (zero start), [0,1,0,0,0]
    (first); b = [1, 2, 0, 2, 2.9] -> ON [1,1,0,1,0], OFF [0,0,1,0,0]."""
    a = t([1.0, 2.0, 2.9, 3.0, 3.9]).view(1, 5, 1)
    assert DeltaEncoder(1.0)(a).aux["on"].flatten().tolist() == [1, 1, 0, 0, 0]
    assert DeltaEncoder(1.0, initial="first")(a).aux["on"].flatten().tolist() == [0, 1, 0, 0, 0]
    out = DeltaEncoder(1.0)(t([1.0, 2.0, 0.0, 2.0, 2.9]).view(1, 5, 1))
    assert out.spikes[0, :, 0].tolist() == [1, 1, 0, 1, 0]  # ON channel first
    assert out.spikes[0, :, 1].tolist() == [0, 0, 1, 0, 0]  # then OFF


def test_delta_state_is_explicit_or_streamed() -> None:
    x = torch.randn(2, 10, 3, generator=torch.Generator().manual_seed(0)).cumsum(1)
    whole = DeltaEncoder(0.3)(x).spikes
    first = DeltaEncoder(0.3)(x[:, :4])
    explicit = DeltaEncoder(0.3)(x[:, 4:], prev=first.aux["last"]).spikes
    assert_close(torch.cat([first.spikes, explicit], 1), whole, **EXACT)
    stream = DeltaEncoder(0.3, streaming=True)
    chunks = torch.cat([stream(x[:, :4]).spikes, stream(x[:, 4:]).spikes], 1)
    assert_close(chunks, whole, **EXACT)
    with pytest.raises(ShapeError, match=r"call encoder.reset\(\) first"):
        stream(x[:1])  # a new batch size without reset(): detected
    stream.reset()
    assert_close(stream(x).spikes, whole, **EXACT)


def test_delta_config_errors() -> None:
    with pytest.raises(ConfigError, match="minmax statistics"):
        DeltaEncoder(0.1, normalization="minmax", streaming=True)
    with pytest.raises(ConfigError, match="threshold must be positive"):
        DeltaEncoder(0.0)
    with pytest.raises(ShapeError, match="too few axes"):
        DeltaEncoder(0.1)(torch.rand(2, 3))


# ----------------------------------------------------------------------------- factory & contract


@pytest.mark.parametrize("kind, cls", [
    ("rate_bernoulli", RateEncoder), ("rate_poisson", RateEncoder),
    ("rate_deterministic", RateEncoder), ("latency", LatencyEncoder), ("ttfs", TTFSEncoder),
    ("population", PopulationEncoder), ("delta", DeltaEncoder),
])
def test_build_encoder(kind: str, cls: type) -> None:
    enc = build_encoder(EncodingConfig(type=kind))
    assert type(enc) is cls
    if cls is RateEncoder:
        assert enc.mode == kind.removeprefix("rate_")


@pytest.mark.parametrize("kind", TYPES)
def test_every_encoder_is_autocast_invariant(kind: str) -> None:
    """Sampling and timing run in fp32: bf16 autocast changes no spike."""
    x = torch.rand((3, 5, 4) if kind == "delta" else (3, 4),
                   generator=torch.Generator().manual_seed(0))
    ref = build_encoder(EncodingConfig(type=kind, num_steps=6, seed=0))(x).spikes
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = build_encoder(EncodingConfig(type=kind, num_steps=6, seed=0))(x).spikes
    assert_close(amp, ref, **EXACT)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(TYPES), b=st.integers(1, 3), n=st.integers(1, 4),
       steps=st.integers(1, 6), seed=st.integers(0, 2**16), train=st.booleans())
def test_encoder_contract(kind: str, b: int, n: int, steps: int, seed: int, train: bool) -> None:
    enc = build_encoder(EncodingConfig(type=kind, num_steps=steps, seed=seed,
                                       population_size=2)).train(train)
    x = torch.randn((b, steps, n) if kind == "delta" else (b, n),
                    generator=torch.Generator().manual_seed(seed))
    out = enc(x)
    feats = {"population": 2 * n, "delta": 2 * n}.get(kind, n)
    assert tuple(out.spikes.shape) == (b, steps, feats) and out.is_binary()
    assert tuple(out.mask.shape) == (b, steps) and bool(out.mask.all())
    if kind in ("latency", "ttfs"):
        times = out.aux["spike_times"]
        fired = out.spikes.sum(1)
        assert bool((fired <= 1).all())
        assert_close(torch.where(fired > 0, out.spikes.argmax(1), -1), times, **EXACT)
        if kind == "ttfs":
            assert bool((fired == 1).all())
