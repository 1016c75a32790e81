"""Runtime contract checks of the spike codecs, for ``brain-ai validate``.

:func:`codec_checks` builds every encoder and decoder type from its config, runs it on small
seeded inputs (CPU, < 1 s) and checks the seed's contract: batch-first shapes, binary spikes,
a ``(B, T)`` bool mask, seeded reproducibility, deterministic eval, TTFS = one spike, AMP
(bf16 autocast) leaves spikes and fp32 counts unchanged, decoder shapes and confidences.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from brain_ai.config import DecodingConfig, EncodingConfig
from brain_ai.core.decoding import build_decoder
from brain_ai.core.encoding import PopulationEncoder, SpikeBatch, build_encoder

__all__ = ["codec_checks"]

_ENCODINGS = ("rate_bernoulli", "rate_poisson", "rate_deterministic", "latency", "ttfs",
              "population", "delta")
_DECODINGS = ("rate", "first_spike", "population", "membrane", "ensemble")
_B, _N, _T = 4, 6, 12

Check = tuple[bool, str]


def _input(kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    shape = (_B, _T, _N) if kind == "delta" else (_B, _N)
    return torch.rand(shape, generator=g)


def _encode(kind: str, *, train: bool = True, seed: int = 0) -> SpikeBatch:
    enc = build_encoder(EncodingConfig(type=kind, num_steps=_T, seed=seed,
                                       population_size=3)).train(train)
    return enc(_input(kind))


def _encoder_contract(kind: str) -> Check:
    out = _encode(kind)
    feats = {"population": (_N * 3,), "delta": (2 * _N,)}.get(kind, (_N,))
    expected = (_B, _T, *feats)
    ok = (tuple(out.spikes.shape) == expected and out.is_binary()
          and out.mask is not None and out.mask.dtype == torch.bool
          and tuple(out.mask.shape) == (_B, _T))
    return ok, f"spikes {tuple(out.spikes.shape)} (expected {expected}), binary, mask (B, T)"


def _encoder_reproducible(kind: str) -> Check:
    a, b = _encode(kind), _encode(kind)
    c, d = _encode(kind, train=False, seed=1), _encode(kind, train=False, seed=2)
    ok = torch.equal(a.spikes, b.spikes) and torch.equal(c.spikes, d.spikes)
    return ok, "same seed -> same train; eval mode independent of the seed"


def _ttfs_one_spike() -> Check:
    out = _encode("ttfs")
    counts = out.spikes.sum(1)
    first = out.spikes.argmax(1)
    ok = bool((counts == 1).all()) and torch.equal(first, out.aux["spike_times"])
    return ok, f"spikes per feature in [{int(counts.min())}, {int(counts.max())}] (expected 1)"


def _latency_order() -> Check:
    x = torch.linspace(0.05, 1.0, 8).unsqueeze(0)
    enc = build_encoder(EncodingConfig(type="ttfs", num_steps=_T, normalization="none"))
    times = enc(x).aux["spike_times"][0]
    ok = bool((times[1:] <= times[:-1]).all()) and int(times[-1]) == 0
    return ok, f"times for increasing x: {times.tolist()} (non-increasing, x=1 -> 0)"


def _amp() -> Check:
    x = _input("rate_bernoulli")
    enc = build_encoder(EncodingConfig(num_steps=_T, seed=0))
    ref = enc(x).spikes
    enc.reset()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = enc(x)
        out = build_decoder(DecodingConfig())(amp)
    ok = (torch.equal(amp.spikes, ref) and amp.aux["rates"].dtype == torch.float32
          and out.logits_proxy.dtype == torch.float32)
    return ok, "bf16 autocast: identical spikes, fp32 rates and counts"


def _decoder_contract(kind: str) -> Check:
    g = torch.Generator().manual_seed(0)
    spikes = (torch.rand(_B, _T, 16, generator=g) < 0.3).float()
    membrane = torch.randn(_B, _T, 16, generator=g)
    out = build_decoder(DecodingConfig(type=kind))(spikes, membrane)
    C = 2 if kind == "population" else 16
    ok = (tuple(out.logits_proxy.shape) == (_B, C) and tuple(out.prediction.shape) == (_B,)
          and bool(((out.confidence >= 0) & (out.confidence <= 1)).all())
          and bool(torch.isfinite(out.logits_proxy).all()))
    return ok, f"logits {tuple(out.logits_proxy.shape)}, prediction (B,), confidence in [0, 1]"


def _first_spike_wins() -> Check:
    s = torch.zeros(1, 5, 3)
    s[0, 3, 0] = s[0, 1, 2] = s[0, 4, 2] = 1.0  # neuron 2 first (t=1), neuron 1 silent
    out = build_decoder(DecodingConfig(type="first_spike"))(s)
    ok = int(out.prediction) == 2 and out.aux["first_spike_times"][0].tolist() == [3, -1, 1]
    return ok, f"prediction {int(out.prediction)} (expected 2)"


def _population_round_trip() -> Check:
    values = torch.tensor([[0.1], [0.35], [0.5], [0.8]])
    enc = PopulationEncoder(50, 11, normalization="none", sampling="deterministic")
    out = build_decoder(DecodingConfig(type="population", population_mode="regression",
                                       population_size=11))(enc(values))
    err = float((out.prediction - values[:, 0]).abs().max())
    return err < 0.03, f"max |decoded - x| = {err:.4f} (< 0.03)"


def codec_checks() -> list[tuple[str, bool, str]]:
    """Run every codec contract check: ``[(name, passed, detail), ...]`` (never raises)."""
    checks: list[tuple[str, Callable[[], Check]]] = []
    for kind in _ENCODINGS:
        checks.append((f"encoder/{kind}/contract", lambda k=kind: _encoder_contract(k)))
        checks.append((f"encoder/{kind}/reproducible", lambda k=kind: _encoder_reproducible(k)))
    checks += [("encoder/ttfs/one-spike", _ttfs_one_spike),
               ("encoder/latency/stronger-fires-earlier", _latency_order),
               ("encoder/rate/amp-bf16", _amp)]
    checks += [(f"decoder/{kind}/contract", lambda k=kind: _decoder_contract(k))
               for kind in _DECODINGS]
    checks += [("decoder/first_spike/earliest-wins", _first_spike_wins),
               ("codec/population/regression-round-trip", _population_round_trip)]
    results = []
    for name, fn in checks:
        try:
            ok, detail = fn()
        except Exception as exc:  # reported as a failed check, with the error text
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results.append((name, bool(ok), detail))
    return results
