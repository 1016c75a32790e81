"""Issue 16, codecs: the NaN policy and the edges of every encoder and decoder.

Policy (module docstrings of :mod:`brain_ai.core.encoding` and :mod:`brain_ai.core.decoding`):
NaN/±Inf input raises a :class:`ConfigError`, never a silenced sample or a NaN output; ``T = 0``,
empty axes and fully masked samples raise a :class:`ShapeError`; graded spikes are decoded.
``CASES`` are the probes (error class and public name); the accepted edges follow with
numbers, then property tests over generated input.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from brain_ai.core.decoding import (
    EnsembleDecoder,
    FirstSpikeDecoder,
    MembraneDecoder,
    PopulationDecoder,
    RateDecoder,
)
from brain_ai.core.encoding import (
    DeltaEncoder,
    LatencyEncoder,
    PopulationEncoder,
    RateEncoder,
    SpikeBatch,
    TTFSEncoder,
    normalize_input,
    spike_train,
)
from brain_ai.errors import BrainAIError, ConfigError, DTypeError, ShapeError

NAN, INF = float("nan"), float("inf")
EXACT = {"rtol": 0, "atol": 0}


def assert_clear(err: BaseException, where: str = "") -> None:
    """The house shape: a BrainAIError naming the public entry, got/expected, a Hint."""
    assert isinstance(err, BrainAIError), f"{type(err).__name__}: {err}"
    msg = str(err)
    assert msg.startswith(where), msg
    assert "(got " in msg and "; expected " in msg and "\n  Hint: " in msg, msg


def _x(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows)


def _masked(spikes: torch.Tensor, *rows: list[bool]) -> SpikeBatch:
    return SpikeBatch(spikes, mask=torch.tensor(rows))


ONES = torch.ones(2, 3, 4)
ALL_MASKED_ROW = ([True, True, True], [False, False, False])

CASES: list[tuple[str, Callable[[], object], type[BrainAIError], str]] = [
    # ---- encoders: non-finite input is refused, never silenced
    ("rate minmax, one NaN", lambda: RateEncoder(5, seed=0)(_x([0.1, NAN, 0.5], [0.1, 0.2, 0.3])),
     ConfigError, "RateEncoder.forward"),
    ("rate minmax, one +Inf", lambda: RateEncoder(5, seed=0)(_x([0.1, INF, 0.5])),
     ConfigError, "RateEncoder.forward"),
    ("rate clamp, -Inf", lambda: RateEncoder(5, normalization="clamp")(_x([-INF, 0.5])),
     ConfigError, "RateEncoder.forward"),
    ("rate poisson sigmoid, NaN", lambda: RateEncoder(5, "poisson", normalization="sigmoid")(
        _x([NAN])), ConfigError, "RateEncoder.forward"),
    ("latency, NaN", lambda: LatencyEncoder(5)(_x([0.2, NAN])), ConfigError,
     "LatencyEncoder.forward"),
    ("ttfs, +Inf", lambda: TTFSEncoder(5, normalization="clamp")(_x([INF, 0.2])), ConfigError,
     "TTFSEncoder.forward"),
    ("population, NaN", lambda: PopulationEncoder(5, 3)(_x([0.2, NAN])), ConfigError,
     "PopulationEncoder.forward"),
    ("delta, NaN frame", lambda: DeltaEncoder(0.1)(torch.tensor([[[0.0], [NAN]]])),
     ConfigError, "DeltaEncoder.forward"),
    ("delta, NaN prev", lambda: DeltaEncoder(0.1)(torch.zeros(1, 2, 1), prev=_x([NAN])),
     ConfigError, "DeltaEncoder.forward"),
    ("normalize_input, NaN", lambda: normalize_input(_x([NAN, 1.0]), "minmax"), ConfigError,
     "normalize_input"),
    ("spike_train, NaN probability", lambda: spike_train(torch.tensor([[NAN, 0.5]]), 3),
     ConfigError, "spike_train"),
    ("spike_train, NaN uniforms", lambda: spike_train(
        torch.full((1, 2), 0.5), 2, uniforms=torch.full((1, 2, 2), NAN)), ConfigError,
     "spike_train"),
    # ---- encoders: configuration numbers
    ("rate_gain NaN", lambda: RateEncoder(5, rate_gain=NAN), ConfigError,
     "RateEncoder.rate_gain"),
    ("rate_bias +Inf", lambda: RateEncoder(5, rate_bias=INF), ConfigError,
     "RateEncoder.rate_bias"),
    ("if_threshold +Inf", lambda: RateEncoder(5, if_threshold=INF), ConfigError,
     "RateEncoder.if_threshold"),
    ("population if_threshold 0", lambda: PopulationEncoder(5, 3, if_threshold=0.0),
     ConfigError, "PopulationEncoder.if_threshold"),
    ("latency tau +Inf", lambda: LatencyEncoder(5, tau=INF), ConfigError, "LatencyEncoder.tau"),
    ("population value_range to +Inf", lambda: PopulationEncoder(5, 3, value_range=(0.0, INF)),
     ConfigError, "PopulationEncoder.value_range"),
    ("delta threshold +Inf", lambda: DeltaEncoder(INF), ConfigError, "DeltaEncoder.threshold"),
    # ---- encoders: shapes and dtypes
    ("rate, empty feature axis", lambda: RateEncoder(5)(torch.zeros(2, 0)), ShapeError,
     "RateEncoder.forward"),
    ("latency, complex input", lambda: LatencyEncoder(5)(torch.zeros(2, 3, dtype=torch.cfloat)),
     DTypeError, "LatencyEncoder.forward"),
    ("population, no features", lambda: PopulationEncoder(5, 3)(torch.zeros(2, 0)), ShapeError,
     "PopulationEncoder.forward"),
    ("delta, T = 0", lambda: DeltaEncoder(0.1)(torch.zeros(2, 0, 3)), ShapeError,
     "DeltaEncoder.forward"),
    # ---- decoders: T = 0, no neurons, fully masked samples, mask mismatch
    ("rate, T = 0", lambda: RateDecoder()(torch.zeros(2, 0, 4)), ShapeError,
     "RateDecoder.forward"),
    ("first spike, T = 0", lambda: FirstSpikeDecoder()(torch.zeros(2, 0, 4)), ShapeError,
     "FirstSpikeDecoder.forward"),
    ("population regression, T = 0", lambda: PopulationDecoder(2, "regression")(
        torch.zeros(2, 0, 4)), ShapeError, "PopulationDecoder.forward"),
    ("membrane last, T = 0", lambda: MembraneDecoder("last")(None, torch.zeros(2, 0, 3)),
     ShapeError, "MembraneDecoder.forward"),
    ("membrane max, T = 0", lambda: MembraneDecoder("max")(None, torch.zeros(2, 0, 3)),
     ShapeError, "MembraneDecoder.forward"),
    ("rate, no neurons", lambda: RateDecoder()(torch.zeros(2, 3, 0)), ShapeError,
     "RateDecoder.forward"),
    ("rate, all-masked row", lambda: RateDecoder()(_masked(ONES, *ALL_MASKED_ROW)), ShapeError,
     "RateDecoder.forward"),
    ("first spike, all-masked row", lambda: FirstSpikeDecoder()(_masked(ONES, *ALL_MASKED_ROW)),
     ShapeError, "FirstSpikeDecoder.forward"),
    ("population regression, all-masked row",
     lambda: PopulationDecoder(2, "regression")(_masked(ONES, *ALL_MASKED_ROW)), ShapeError,
     "PopulationDecoder.forward"),
    ("membrane last, all-masked row",
     lambda: MembraneDecoder("last")(_masked(ONES, *ALL_MASKED_ROW), torch.zeros(2, 3, 2)),
     ShapeError, "MembraneDecoder.forward"),
    ("membrane max, all-masked row",
     lambda: MembraneDecoder("max")(_masked(ONES, *ALL_MASKED_ROW), torch.zeros(2, 3, 2)),
     ShapeError, "MembraneDecoder.forward"),
    ("membrane, mask of another T",
     lambda: MembraneDecoder("last")(SpikeBatch(ONES), torch.zeros(2, 5, 2)), ShapeError,
     "MembraneDecoder.forward"),
    ("ensemble, all-masked row", lambda: EnsembleDecoder([RateDecoder(), FirstSpikeDecoder()])(
        _masked(ONES, *ALL_MASKED_ROW)), ShapeError, "RateDecoder.forward"),
    # ---- decoders: non-finite input and configuration
    ("rate, NaN spike", lambda: RateDecoder()(torch.tensor([[[NAN, 1.0]]])), ConfigError,
     "RateDecoder.forward"),
    ("first spike, +Inf spike", lambda: FirstSpikeDecoder()(torch.tensor([[[INF, 0.0]]])),
     ConfigError, "FirstSpikeDecoder.forward"),
    ("membrane, NaN", lambda: MembraneDecoder("max")(None, torch.tensor([[[NAN, 0.0]]])),
     ConfigError, "MembraneDecoder.forward"),
    ("membrane, complex", lambda: MembraneDecoder()(None, torch.zeros(1, 2, 2,
                                                                    dtype=torch.cfloat)),
     DTypeError, "MembraneDecoder.forward"),
    ("temperature +Inf", lambda: RateDecoder(INF), ConfigError, "RateDecoder.temperature"),
    ("population value_range to +Inf",
     lambda: PopulationDecoder(2, value_range=(0.0, INF)), ConfigError,
     "PopulationDecoder.value_range"),
    ("ensemble weight +Inf", lambda: EnsembleDecoder([RateDecoder()], weights=[INF]),
     ConfigError, "EnsembleDecoder.weights"),
]


@pytest.mark.parametrize(("name", "call", "cls", "where"), CASES, ids=[c[0] for c in CASES])
def test_codec_edge_raises_a_clear_error(name: str, call: Callable[[], object],
                                         cls: type[BrainAIError], where: str) -> None:
    with pytest.raises(cls) as info:
        call()
    assert_clear(info.value, where)


def test_nan_message_counts_and_locates_the_entries() -> None:
    with pytest.raises(ConfigError) as info:
        RateEncoder(5)(_x([0.1, 0.2, 0.5], [0.1, NAN, NAN]))
    assert "2 of 6 entries, first at index (1, 1) = nan" in str(info.value)
    assert "nan_to_num" in str(info.value).split("Hint:")[1]


# ----------------------------------------------------------------------------- accepted edges


def test_rate_decoder_counts_graded_spikes() -> None:
    """Graded spikes 0 / 2.5 (``graded_spikes_factor=2.5``), T = 4: neuron 0 spikes in 4
    steps (count 10), neuron 1 in 1 step (2.5), neuron 2 never. The histogram counts steps
    with a spike: one neuron each with 0, 1 and 4 of them."""
    g = 2.5
    s = torch.tensor([[[g, g, 0.0], [g, 0.0, 0.0], [g, 0.0, 0.0], [g, 0.0, 0.0]]])
    out = RateDecoder()(s)
    assert out.aux["counts"].tolist() == [[10.0, 2.5, 0.0]]
    assert out.aux["rates"].tolist() == [[2.5, 0.625, 0.0]]
    assert out.aux["count_histogram"].tolist() == [[1, 1, 0, 0, 1]]
    assert out.prediction.tolist() == [0]


def test_graded_spikes_from_a_neuron_decode() -> None:
    """A neuron with graded spikes feeds the decoder (it crashed inside one_hot): x = 2 each
    step, θ = 1, β = 0.9, subtract: h = 2, 2.9, 3.8 -> always fires, spikes 3.0 each."""
    from brain_ai.core.neurons import LIFNeuron

    spikes, _ = LIFNeuron(features=2, graded_spikes_factor=3.0)(torch.full((1, 3, 2), 2.0))
    out = RateDecoder()(spikes)
    assert out.aux["counts"].tolist() == [[9.0, 9.0]]
    assert out.aux["count_histogram"].tolist() == [[0, 0, 0, 2]]


def test_membrane_last_reads_the_last_valid_step_of_each_row() -> None:
    """Row 0 valid at steps 0 and 2 (a gap): reads step 2; row 1 valid at 0 only: step 0."""
    v = torch.arange(8.0).view(2, 4, 1).expand(2, 4, 2)
    mask = ([True, False, True, False], [True, False, False, False])
    out = MembraneDecoder("last")(_masked(torch.zeros(2, 4, 2), *mask), v)
    assert out.aux["membrane_reduced"].tolist() == [[2.0, 2.0], [4.0, 4.0]]
    out = MembraneDecoder("max")(_masked(torch.zeros(2, 4, 2), *mask), v)
    assert out.aux["membrane_reduced"].tolist() == [[2.0, 2.0], [4.0, 4.0]]


def test_partially_masked_rows_give_finite_rates() -> None:
    """Row 1 has one valid step of three: rates = counts / 1, never 0/0."""
    out = RateDecoder()(_masked(ONES, [True, True, True], [True, False, False]))
    assert out.aux["rates"].tolist() == [[1.0] * 4, [1.0] * 4]
    assert out.aux["counts"].tolist() == [[3.0] * 4, [1.0] * 4]


def test_empty_batch_gives_empty_outputs() -> None:
    enc = RateEncoder(4, seed=0)(torch.zeros(0, 3))
    assert tuple(enc.spikes.shape) == (0, 4, 3)
    dec = RateDecoder()(torch.zeros(0, 4, 3))
    assert tuple(dec.logits_proxy.shape) == (0, 3) and tuple(dec.prediction.shape) == (0,)


def test_infinite_input_can_be_cleaned_explicitly() -> None:
    """The documented way out: nan_to_num first; then minmax maps 1 -> 1, 0 -> 0."""
    x = _x([0.0, INF, 0.5]).nan_to_num(0.0, posinf=1.0, neginf=0.0)
    out = RateEncoder(3, "deterministic", seed=0)(x)
    assert out.aux["rates"].tolist() == [[0.0, 1.0, 0.5]]


# ----------------------------------------------------------------------------- properties

FILLS = (0.0, 0.3, 1.0, 2.5, -1.0, NAN, INF, -INF)


@st.composite
def encoder_inputs(draw: st.DrawFn) -> tuple[str, torch.Tensor]:
    kind = draw(st.sampled_from(("rate", "poisson", "latency", "ttfs", "population", "delta")))
    b = draw(st.sampled_from((1, 2, 0)))
    t = draw(st.sampled_from((1, 3, 0)))
    n = draw(st.sampled_from((3, 3, 0)))
    rank_ok = (b, t, n) if kind == "delta" else (b, n)
    shape = draw(st.sampled_from((rank_ok, rank_ok, (b,), (b, t, n, 2))))
    dtype = draw(st.sampled_from((torch.float32, torch.float32, torch.float64, torch.float16,
                                  torch.int64, torch.bool, torch.cfloat)))
    values = draw(st.lists(st.sampled_from(FILLS), min_size=1, max_size=4))
    numel = int(torch.Size(shape).numel())
    flat = torch.tensor([values[i % len(values)] for i in range(numel)])
    x = flat.reshape(shape)
    x = x.to(dtype) if dtype.is_floating_point or dtype.is_complex else x.nan_to_num().to(dtype)
    return kind, x


def _encoder(kind: str) -> torch.nn.Module:
    return {
        "rate": lambda: RateEncoder(4, seed=0),
        "poisson": lambda: RateEncoder(4, "poisson", normalization="clamp", seed=0),
        "latency": lambda: LatencyEncoder(4, normalization="clamp"),
        "ttfs": lambda: TTFSEncoder(4),
        "population": lambda: PopulationEncoder(4, 2, seed=0),
        "delta": lambda: DeltaEncoder(0.1, normalization="sigmoid"),
    }[kind]()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(encoder_inputs())
def test_generated_encoder_input_gives_a_clear_error_or_a_valid_train(
        case: tuple[str, torch.Tensor]) -> None:
    kind, x = case
    try:
        out = _encoder(kind)(x)
    except BrainAIError as err:
        assert_clear(err)
        event(f"clear error: {type(err).__name__}")
        if x.is_floating_point() and x.numel() and not bool(torch.isfinite(x).all()):
            assert isinstance(err, (ConfigError, ShapeError))
        return
    event("accepted")
    assert not x.is_complex()
    assert not x.is_floating_point() or bool(torch.isfinite(x).all()), "NaN/Inf accepted"
    s = out.spikes
    assert s.shape[0] == x.shape[0] and out.is_binary()
    if kind == "population":
        assert tuple(s.shape) == (x.shape[0], 4, x.shape[1] * 2)
    elif kind == "delta":
        assert tuple(s.shape) == (x.shape[0], x.shape[1], 2 * x.shape[2], *x.shape[3:])
    else:
        assert tuple(s.shape) == (x.shape[0], 4, *x.shape[1:])
    if kind in ("rate", "poisson", "latency", "ttfs"):
        rates = out.aux["rates"]
        assert bool(((rates >= 0) & (rates <= 1)).all())


@st.composite
def decoder_inputs(draw: st.DrawFn) -> tuple[str, torch.Tensor | SpikeBatch, torch.Tensor]:
    kind = draw(st.sampled_from(("rate", "first_spike", "population", "regression",
                                 "membrane_last", "membrane_max", "ensemble")))
    b = draw(st.sampled_from((1, 2, 3, 0)))
    t = draw(st.sampled_from((1, 3, 3, 0)))
    n = draw(st.sampled_from((4, 4, 3, 0)))
    shape = draw(st.sampled_from(((b, t, n), (b, t, n), (b, n), (b, t, n, 1))))
    value = draw(st.sampled_from((0.0, 1.0, 1.0, 2.5, NAN, INF)))
    dtype = draw(st.sampled_from((torch.float32, torch.float32, torch.bool, torch.uint8,
                                  torch.float16)))
    pattern = torch.rand(shape, generator=torch.Generator().manual_seed(draw(st.integers(0, 9))))
    spikes = torch.where(pattern < 0.5, torch.full(shape, value), torch.zeros(shape))
    spikes = spikes.to(dtype) if dtype.is_floating_point else spikes.nan_to_num().clamp(0, 1
                                                                                      ).to(dtype)
    membrane = torch.where(pattern < 0.3, torch.full(shape, value), pattern * 2)
    given_spikes: torch.Tensor | SpikeBatch = spikes
    if len(shape) == 3 and draw(st.booleans()):
        mask = torch.rand(shape[:2], generator=torch.Generator().manual_seed(1)) < draw(
            st.sampled_from((0.0, 0.5, 1.1)))
        given_spikes = SpikeBatch(spikes, mask=mask)
    return kind, given_spikes, membrane


def _decoder(kind: str) -> torch.nn.Module:
    return {
        "rate": RateDecoder, "first_spike": FirstSpikeDecoder,
        "population": lambda: PopulationDecoder(2),
        "regression": lambda: PopulationDecoder(2, "regression"),
        "membrane_last": lambda: MembraneDecoder("last"),
        "membrane_max": lambda: MembraneDecoder("max"),
        "ensemble": lambda: EnsembleDecoder([RateDecoder(), FirstSpikeDecoder()]),
    }[kind]()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(decoder_inputs())
def test_generated_decoder_input_gives_a_clear_error_or_a_finite_decision(
        case: tuple[str, torch.Tensor | SpikeBatch, torch.Tensor]) -> None:
    kind, spikes, membrane = case
    try:
        out = _decoder(kind)(spikes, membrane)
    except BrainAIError as err:
        assert_clear(err)
        event(f"clear error: {type(err).__name__}")
        return
    event("accepted")
    read = membrane if kind.startswith("membrane") else (
        spikes.spikes if isinstance(spikes, SpikeBatch) else spikes)
    assert bool(torch.isfinite(read.float()).all()), "NaN/Inf decoded"
    b = read.shape[0]
    assert out.logits_proxy.shape[0] == b and bool(torch.isfinite(out.logits_proxy).all())
    assert bool(((out.confidence >= 0) & (out.confidence <= 1)).all())
    if kind != "regression":
        c = out.logits_proxy.shape[1]
        assert bool(((out.prediction >= 0) & (out.prediction < c)).all())
    if kind == "rate":
        hist = out.aux["count_histogram"]
        assert tuple(hist.shape) == (b, read.shape[1] + 1)
        assert hist.sum(1).tolist() == [read.shape[2]] * b  # every neuron in one bin
