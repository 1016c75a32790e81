"""Conformance cases of the spike codecs (``brain_ai.core.encoding`` / ``decoding``).

Encoders are compared with snnTorch ``spikegen`` and SpikingJelly ``activation_based.encoding``
on CPU, driven by the same seed; decoders with snnTorch ``functional.acc``. Peers are
time-first: their trains pass through :func:`time_to_batch_first` before comparison.
Metrics: ``spikes`` = mismatching spike elements, ``value`` = max ``|Δ|`` of the trains /
activations, or (decoders) the number of samples whose predicted class differs.
The exact parameter mappings are tabulated in the encoders' docstrings.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from snntorch import spikegen
from snntorch.functional import acc as sacc
from spikingjelly.activation_based import encoding as sj_encoding
from torch import Tensor

from brain_ai.adapters.metrics import max_abs_diff, spike_mismatches
from brain_ai.conformance.registry import Case, register
from brain_ai.core.decoding import FirstSpikeDecoder, PopulationDecoder, RateDecoder
from brain_ai.core.encoding import (
    DeltaEncoder,
    LatencyEncoder,
    PopulationEncoder,
    RateEncoder,
    TTFSEncoder,
)
from brain_ai.physics.axes import batch_to_time_first, time_to_batch_first

B, N, T = 6, 17, 16
EXACT = {"spikes": 0.0, "value": 0.0}


def _trains(ours_bf: Tensor, theirs_tf: Tensor) -> dict[str, float]:
    theirs = time_to_batch_first(theirs_tf.detach()).float()
    ours = ours_bf.detach().float()
    return {"spikes": spike_mismatches(ours, theirs), "value": max_abs_diff(ours, theirs)}


def _data(seed: int, shape: tuple[int, ...] = (B, N), lo: float = 0.0, hi: float = 1.0,
          zeros: bool = True) -> Tensor:
    """Uniform data in [lo, hi) from a private generator; a few exact zeros when asked.

    The generator is offset from ``seed`` so the data never equals the uniforms that
    ``torch.manual_seed(seed)`` then feeds the encoders (that is the tie guard's setup).
    """
    g = torch.Generator().manual_seed(10_000 + seed)
    x = lo + (hi - lo) * torch.rand(shape, generator=g)
    if zeros:
        x.view(-1)[:: max(x.numel() // 7, 1)] = 0.0
    return x


def _codec(name: str, peer: str, run: Callable[[int], dict[str, float]], config: dict,
           *, expect: str = "equal", why: str = "", steps: int | None = T,
           tolerances: dict[str, float] | None = None) -> None:
    register(Case(name=name, family="codec", peer=peer, run=run,
                  tolerances=EXACT if tolerances is None else tolerances, expect=expect,
                  config=config, direction="native", steps=steps, why=why))


# ----------------------------------------------------------------------------- rate


def _rate_snntorch(seed: int, gain: float = 0.8, offset: float = 0.1) -> dict[str, float]:
    x = _data(seed, lo=-0.3, hi=1.4)
    torch.manual_seed(seed)
    theirs = spikegen.rate(x, num_steps=T, gain=gain, offset=offset)
    torch.manual_seed(seed)
    ours = RateEncoder(T, "bernoulli", normalization="clamp", rate_gain=gain,
                       rate_bias=offset)(x).spikes
    return _trains(ours, theirs)


def _poisson_sj(seed: int, tie: bool = False) -> dict[str, float]:
    steps = 1 if tie else T
    if tie:  # x equal to the very uniforms the encoder will draw
        torch.manual_seed(seed)
        x = torch.rand(B, N)
    else:
        x = _data(seed, zeros=False)
    torch.manual_seed(seed)
    enc = sj_encoding.PoissonEncoder()
    theirs = torch.stack([enc(x) for _ in range(steps)])
    torch.manual_seed(seed)
    ours = RateEncoder(steps, "bernoulli", normalization="none")(x).spikes
    return _trains(ours, theirs)


_codec("snntorch/codec/rate-clamp-gain-offset", "snntorch", _rate_snntorch,
       {"peer": "spikegen.rate(x, num_steps=16, gain=0.8, offset=0.1)",
        "brain_ai": "RateEncoder(16, 'bernoulli', normalization='clamp', rate_gain=0.8, "
                    "rate_bias=0.1)", "rng": "torch.manual_seed(seed) before each"})
_codec("spikingjelly/codec/poisson", "spikingjelly", _poisson_sj,
       {"peer": "PoissonEncoder()(x) x16", "brain_ai": "RateEncoder(16, normalization='none')",
        "rng": "torch.manual_seed(seed) before each"})
_codec("spikingjelly/codec/poisson-tie", "spikingjelly", lambda s: _poisson_sj(s, tie=True),
       {"peer": "PoissonEncoder()(u), u = the uniforms drawn", "brain_ai": "RateEncoder(1)"},
       expect="differs", steps=1,
       why="SpikingJelly fires on U <= x, brain_ai (like snnTorch's bernoulli) on U < p; they "
           "differ exactly where a uniform equals the probability (x = 0 can fire in SJ)")


# ----------------------------------------------------------------------------- latency


def _latency_snntorch(seed: int, ours: LatencyEncoder, data: Tensor | None = None,
                      **peer: object) -> dict[str, float]:
    x = _data(seed) if data is None else data
    theirs = spikegen.latency(x, num_steps=ours.num_steps, **peer)
    return _trains(ours(x).spikes, theirs)


_LATENCY = [
    ("linear-normalize-clip", dict(linear=True, normalize=True, threshold=0.05,
                                   first_spike_time=2, clip=True),
     lambda: LatencyEncoder(T, "linear", normalization="none", threshold=0.05, t_min=2)),
    ("linear-normalize-noclip", dict(linear=True, normalize=True, threshold=0.05),
     lambda: TTFSEncoder(T, "linear", normalization="none", threshold=0.05)),
    ("linear-tau", dict(linear=True, tau=9, threshold=0.01, clip=True),
     lambda: LatencyEncoder(T, "linear", normalization="none", tau=9.0, threshold=0.01)),
    ("log-tau-bypass", dict(tau=3, threshold=0.05, clip=True, bypass=True),
     lambda: LatencyEncoder(T, "log", normalization="none", tau=3.0, threshold=0.05)),
    ("log-normalize-noclip", dict(normalize=True, threshold=0.05),
     lambda: TTFSEncoder(T, "log", normalization="none", threshold=0.05)),
    ("log-normalize-clip", dict(normalize=True, threshold=0.05, clip=True),
     lambda: LatencyEncoder(T, "log", normalization="none", threshold=0.05)),
]
for _name, _peer, _make in _LATENCY:
    _codec(f"snntorch/codec/latency-{_name}", "snntorch",
           lambda s, p=_peer, m=_make: _latency_snntorch(s, m(), **p),
           {"peer": f"spikegen.latency(x, num_steps={T}, {_peer})", "brain_ai": repr(_make()),
            "data": "uniform [0, 1) with exact zeros"})

_codec("snntorch/codec/latency-log-normalize-batch-max", "snntorch",
       lambda s: _latency_snntorch(s, TTFSEncoder(T, "log", normalization="none",
                                                  threshold=0.05),
                                   data=_data(s, lo=0.3, hi=1.0, zeros=False),
                                   normalize=True, threshold=0.05),
       {"peer": "spikegen.latency(x, normalize=True, threshold=0.05)",
        "brain_ai": "TTFSEncoder(16, 'log', threshold=0.05)", "data": "uniform [0.3, 1)"},
       expect="differs",
       why="snnTorch's log normalize divides by the batch maximum of the spike times, so when "
           "no input is at or below the threshold it stretches every code (and a sample's code "
           "depends on its batch); brain_ai scales by the constant time of x <= θ")


def _latency_sj(seed: int, enc_function: str, ours: LatencyEncoder) -> dict[str, float]:
    x = _data(seed)
    enc = sj_encoding.LatencyEncoder(ours.num_steps, enc_function=enc_function)
    theirs = torch.stack([enc(x) for _ in range(ours.num_steps)])
    return _trains(ours(x).spikes, theirs)


_codec("spikingjelly/codec/latency-linear", "spikingjelly",
       lambda s: _latency_sj(s, "linear", TTFSEncoder(T, "linear", normalization="none",
                                                      threshold=0.0)),
       {"peer": f"LatencyEncoder({T}, 'linear') x{T}",
        "brain_ai": f"TTFSEncoder({T}, 'linear', threshold=0.0)"})
_codec("spikingjelly/codec/latency-log", "spikingjelly",
       lambda s: _latency_sj(s, "log", TTFSEncoder(T, "log", normalization="none")),
       {"peer": f"LatencyEncoder({T}, 'log')", "brain_ai": f"TTFSEncoder({T}, 'log')"},
       expect="differs",
       why="SpikingJelly's 'log' is t = T-1-ln(αx+1) with α = e^(T-1)-1, a different curve from "
           "brain_ai's 'log' (snnTorch's RC charging time tau·ln(x/(x-θ)))")


# ----------------------------------------------------------------------------- delta


def _delta_snntorch(seed: int, padding: bool, off_spike: bool) -> dict[str, float]:
    g = torch.Generator().manual_seed(10_000 + seed)
    x = (0.15 * torch.randn(B, T, N, generator=g)).cumsum(1)
    x[:, 3] = x[:, 2] + 0.1  # exact threshold crossings exercise the inclusive >=
    theirs = spikegen.delta(batch_to_time_first(x), threshold=0.1, padding=padding,
                            off_spike=off_spike)
    out = DeltaEncoder(0.1, initial="first" if padding else "zero")(x)
    ours = out.aux["on"].float() - (out.aux["off"].float() if off_spike else 0.0)
    return _trains(ours, theirs)


for _pad in (False, True):
    for _off in (False, True):
        _codec(f"snntorch/codec/delta-padding={_pad}-off_spike={_off}", "snntorch",
               lambda s, p=_pad, o=_off: _delta_snntorch(s, p, o),
               {"peer": f"spikegen.delta(x, threshold=0.1, padding={_pad}, off_spike={_off})",
                "brain_ai": f"DeltaEncoder(0.1, initial={'first' if _pad else 'zero'!r}): "
                            "on" + (" - off" if _off else "")})


# ----------------------------------------------------------------------------- population

_POP = {"obs_dim": N, "pop_dim": 5, "spike_ts": T, "mean_range": (-0.2, 1.2), "std": 0.2}


def _ours_population(sampling: str, if_threshold: float = 1.0) -> PopulationEncoder:
    return PopulationEncoder(T, _POP["pop_dim"], sigma=_POP["std"],
                             value_range=_POP["mean_range"], normalization="none",
                             sampling=sampling, if_threshold=if_threshold)


def _population_sj(seed: int, kind: str) -> dict[str, float]:
    x = _data(seed)
    peer = getattr(sj_encoding, kind)(**_POP)
    ours = _ours_population("deterministic" if kind != "PopSpikeEncoderRandom" else "bernoulli",
                            0.999)
    torch.manual_seed(seed)
    theirs = peer(x)
    torch.manual_seed(seed)
    out = ours(x)
    if kind == "PopEncoder":
        ours_train = out.aux["activation"].unsqueeze(1).expand(-1, T, -1)
        return {"value": max_abs_diff(ours_train, time_to_batch_first(theirs))}
    return _trains(out.spikes, theirs)


for _kind in ("PopEncoder", "PopSpikeEncoderDeterministic", "PopSpikeEncoderRandom"):
    _codec(f"spikingjelly/codec/population-{_kind}", "spikingjelly",
           lambda s, k=_kind: _population_sj(s, k),
           {"peer": f"{_kind}({_POP})",
            "brain_ai": "PopulationEncoder(16, 5, sigma=0.2, value_range=(-0.2, 1.2), "
                        "normalization='none', sampling="
                        + ("'bernoulli'" if _kind == "PopSpikeEncoderRandom"
                           else "'deterministic', if_threshold=0.999"),
            "compared": "aux['activation'] repeated" if _kind == "PopEncoder" else "spikes"},
           tolerances={"value": 0.0} if _kind == "PopEncoder" else None)


# ----------------------------------------------------------------------------- decoders


def _mismatches(pred: Tensor, accuracy_of: Callable[[Tensor], float]) -> dict[str, float]:
    """Samples where the peer's class differs from ours (peer accuracy against our labels)."""
    return {"value": round((1.0 - float(accuracy_of(pred))) * pred.shape[0])}


def _sparse_spikes(seed: int, batch: int = 64, steps: int = 6, n: int = 10,
                   p: float = 0.15) -> Tensor:
    g = torch.Generator().manual_seed(10_000 + seed)
    return (torch.rand(batch, steps, n, generator=g) < p).float()


def _acc_rate(seed: int, groups: int | None = None) -> dict[str, float]:
    s = _sparse_spikes(seed)  # few steps: many count ties, which pins the tie rule
    tf = batch_to_time_first(s)
    if groups is None:
        pred = RateDecoder()(s).prediction
        return _mismatches(pred, lambda y: sacc.accuracy_rate(tf, y))
    pred = PopulationDecoder(s.shape[-1] // groups)(s).prediction
    return _mismatches(pred, lambda y: sacc.accuracy_rate(tf, y, population_code=True,
                                                          num_classes=groups))


def _acc_temporal(seed: int, silent_quirk: bool = False) -> dict[str, float]:
    s = _sparse_spikes(seed)
    if silent_quirk:  # neuron 0 silent, neuron 1 fires only at T-1, nothing else
        s.zero_()
        s[:, -1, 1] = 1.0
    else:  # every sample has a spike before T-1; silent neurons cannot tie it
        s[torch.arange(s.shape[0]), 0, torch.arange(s.shape[0]) % s.shape[-1]] = 1.0
    pred = FirstSpikeDecoder()(s).prediction
    return _mismatches(pred, lambda y: sacc.accuracy_temporal(batch_to_time_first(s), y))


_DEC_TOL = {"value": 0.0}
_codec("snntorch/codec/accuracy_rate", "snntorch", _acc_rate,
       {"peer": "accuracy_rate(spk_tf, y)", "brain_ai": "RateDecoder().prediction",
        "data": "64 x 6 steps x 10, p=0.15 (many ties)"}, steps=6, tolerances=_DEC_TOL)
_codec("snntorch/codec/accuracy_rate-population", "snntorch", lambda s: _acc_rate(s, 2),
       {"peer": "accuracy_rate(spk_tf, y, population_code=True, num_classes=2)",
        "brain_ai": "PopulationDecoder(5).prediction"}, steps=6, tolerances=_DEC_TOL)
_codec("snntorch/codec/accuracy_temporal", "snntorch", _acc_temporal,
       {"peer": "accuracy_temporal(spk_tf, y)", "brain_ai": "FirstSpikeDecoder().prediction",
        "data": "each sample fires before T-1"}, steps=6, tolerances=_DEC_TOL)
_codec("snntorch/codec/accuracy_temporal-silent", "snntorch",
       lambda s: _acc_temporal(s, silent_quirk=True),
       {"peer": "accuracy_temporal", "brain_ai": "FirstSpikeDecoder",
        "data": "neuron 0 silent, neuron 1 fires at T-1 only"},
       expect="differs", steps=6, tolerances=_DEC_TOL,
       why="snnTorch assigns a silent neuron the time T-1, so it ties a spike at T-1 and wins "
           "by index; brain_ai assigns T (after the window): a neuron that fired beats one "
           "that never did")
