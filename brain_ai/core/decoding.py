r"""Spike decoders: output spike trains / membranes -> logits, predictions, confidences.

Every decoder is an ``nn.Module`` with ``forward(spikes=None, membrane=None)`` returning a
:class:`DecoderOutput`. ``spikes`` is ``(B, T, N)`` or a :class:`SpikeBatch` (its ``mask``
zeroes invalid steps); ``membrane`` is ``(B, T, C)``. Counting happens in fp32
(``spikes.float().sum(dim=1)``) and softmax in fp32, so decoding is AMP-safe.

For classification decoders, ``prediction = logits_proxy.argmax(-1)`` (ties -> lowest index)
and ``confidence = softmax(logits_proxy)`` at the prediction; ``aux["margin"]`` is the gap
between the two largest logits.

===============  ============================  =========================================
type             decoder                       logits_proxy ``(B, C)``
===============  ============================  =========================================
``rate``         :class:`RateDecoder`          ``counts / temperature``
``first_spike``  :class:`FirstSpikeDecoder`    ``-t_first / T / temperature``
``population``   :class:`PopulationDecoder`    group counts / temperature, or the
                                               regressed values
``membrane``     :class:`MembraneDecoder`      ``membrane[:, -1]`` or ``max_t``, / temp.
``ensemble``     :class:`EnsembleDecoder`      ``log`` of the weighted mean softmax
===============  ============================  =========================================

Peer mapping (proved exact in ``conformance/cases_codecs.py``): snnTorch
``functional.acc.accuracy_rate(spk_tf, y)`` = mean(``RateDecoder`` prediction == y);
``accuracy_rate(spk_tf, y, population_code=True, num_classes=G)`` = the same with
:class:`PopulationDecoder` (``population_size = N / G``); ``accuracy_temporal(spk_tf, y)`` =
the same with :class:`FirstSpikeDecoder` whenever no silent neuron ties the earliest spike.
Guard: snnTorch gives a silent neuron the time ``T - 1``; here it is ``T`` (after the window), so a
silent neuron never beats or ties one that fired at ``T - 1``.

NaN policy and edges (every decoder; the encoders' policy, see :mod:`brain_ai.core.encoding`):
spikes or membranes with a NaN/±Inf entry raise :class:`~brain_ai.errors.ConfigError`; no
decoder returns NaN, ``-inf`` or a raw indexing error for a shape it accepts. ``T = 0``, an
empty neuron axis, a sample whose steps are all masked out (it has nothing to decode), and a
mask that does not match the membrane's ``(B, T)`` raise :class:`~brain_ai.errors.ShapeError`;
a complex input raises :class:`~brain_ai.errors.DTypeError`. Graded spikes (values other
than 0/1, e.g. ``graded_spikes_factor``) are summed into ``counts``; ``count_histogram``
counts the *steps with a non-zero spike*, so it stays in ``[0, T]``. ``B = 0`` gives empty
outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from brain_ai.config import (
    DecodingConfig,
    check_ensemble,
    check_membrane_reduce,
    check_value_range,
)
from brain_ai.core.encoding import SpikeBatch, check_finite
from brain_ai.errors import ConfigError, DTypeError, ShapeError, check_positive
from brain_ai.physics.axes import TIME_DIM

__all__ = [
    "DecoderOutput",
    "EnsembleDecoder",
    "FirstSpikeDecoder",
    "MembraneDecoder",
    "PopulationDecoder",
    "RateDecoder",
    "build_decoder",
]


@dataclass(frozen=True, eq=False)
class DecoderOutput:
    """What every decoder returns.

    Attributes:
        logits_proxy: ``(B, C)`` fp32, usable as logits by a loss (regression: the values).
        prediction: ``(B,)`` int64 class (regression: ``(B,)`` float when one value is
            regressed, else ``(B, D)``).
        confidence: ``(B,)`` fp32 in ``[0, 1]``.
        aux: decoder-specific tensors (``counts``, ``count_histogram``,
            ``first_spike_times``, ``margin`` ...).
    """

    logits_proxy: Tensor
    prediction: Tensor
    confidence: Tensor
    aux: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lg = self.logits_proxy
        if lg.dim() != 2 or self.prediction.shape[:1] != lg.shape[:1] \
                or self.confidence.shape != lg.shape[:1]:
            raise ShapeError(
                "DecoderOutput", "inconsistent shapes",
                got=f"logits {tuple(lg.shape)}, prediction {tuple(self.prediction.shape)}, "
                    f"confidence {tuple(self.confidence.shape)}",
                expected="logits (B, C), prediction (B,) or (B, D), confidence (B,)",
                hint="build it through a decoder")


# ----------------------------------------------------------------------------- helpers


def _check_sequence(where: str, name: str, t: object, mask: Tensor | None) -> Tensor:
    """``t`` is a real, finite ``(B, T, N)`` tensor with ``T, N >= 1``; ``mask`` (``(B, T)``
    bool, or ``None``) matches it and leaves every sample at least one valid step."""
    if not isinstance(t, Tensor) or t.dim() != 3:
        raise ShapeError(where, f"{name} must be (B, T, N)",
                         got=f"shape {tuple(t.shape)}" if isinstance(t, Tensor)
                         else type(t).__name__,
                         expected="a tensor of rank 3", hint="flatten the features: x.flatten(2)")
    if t.is_complex():
        raise DTypeError(where, f"{name} is complex", got=t.dtype, expected="a real dtype",
                         hint=f"decode {name}.real")
    if t.shape[TIME_DIM] == 0 or t.shape[-1] == 0:
        raise ShapeError(where, f"{name} has no time steps or no neurons",
                         got=f"shape {tuple(t.shape)}", expected="(B, T >= 1, N >= 1)",
                         hint="decode after at least one simulated step of a non-empty layer")
    check_finite(where, t, name, hint="find where the network produced them (e.g. brain-ai "
                                      "debug-report); decoders never guess a class for them")
    if mask is not None:
        if tuple(mask.shape) != tuple(t.shape[:2]):
            raise ShapeError(where, f"the mask does not match {name}'s (B, T)",
                             got=f"mask {tuple(mask.shape)}, {name} {tuple(t.shape)}",
                             expected=f"mask {tuple(t.shape[:2])}",
                             hint="pass the SpikeBatch that belongs to this output")
        empty = ~mask.any(TIME_DIM)
        if bool(empty.any()):
            raise ShapeError(where, "samples with no valid step have nothing to decode",
                             got=f"rows {empty.nonzero().flatten().tolist()} fully masked",
                             expected="every row of the mask with at least one True",
                             hint="drop empty samples before decoding (a prediction for them "
                                  "would be arbitrary)")
    return t


def _spikes(where: str, spikes: Tensor | SpikeBatch | None) -> tuple[Tensor, Tensor]:
    """fp32 ``(B, T, N)`` spikes with invalid steps zeroed, and the number of valid steps
    ``(B, 1)`` (always >= 1: see :func:`_check_sequence`)."""
    if spikes is None:
        raise ShapeError(where, "this decoder needs spikes", got="spikes=None",
                         expected="a (B, T, N) tensor or a SpikeBatch",
                         hint="pass the output layer's spike train")
    mask = spikes.mask if isinstance(spikes, SpikeBatch) else None
    s = spikes.spikes if isinstance(spikes, SpikeBatch) else spikes
    s = _check_sequence(where, "spikes", s, mask).float()
    if mask is None:
        return s, torch.full((s.shape[0], 1), float(s.shape[TIME_DIM]), device=s.device)
    return s * mask.unsqueeze(-1), mask.float().sum(TIME_DIM, keepdim=True)


def _classify(logits: Tensor, aux: dict[str, Any]) -> DecoderOutput:
    """The one classification rule: argmax, softmax confidence, top-2 margin."""
    logits = logits.float()
    prediction = logits.argmax(-1)
    confidence = torch.softmax(logits, -1).gather(-1, prediction.unsqueeze(-1)).squeeze(-1)
    top = logits.topk(min(2, logits.shape[-1]), dim=-1).values
    margin = top[:, 0] - top[:, 1] if top.shape[-1] == 2 else torch.zeros_like(top[:, 0])
    return DecoderOutput(logits, prediction, confidence, {**aux, "margin": margin})


def _finite(where: str, name: str, value: float) -> float:
    """A finite configuration number (an infinite temperature or weight decodes nothing)."""
    if not math.isfinite(value):
        raise ConfigError(f"{where}.{name}", f"{name} must be finite", got=value,
                          expected="a finite float", hint=f"check how {name} was computed")
    return float(value)


class _Decoder(nn.Module):
    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        check_positive(type(self).__name__, "temperature", temperature)
        self.temperature = _finite(type(self).__name__, "temperature", temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


# ----------------------------------------------------------------------------- decoders


class RateDecoder(_Decoder):
    """Spike-count decoding: ``counts = spikes.float().sum(dim=1)``, ``logits = counts / temp``.

    ``aux``: ``counts`` ``(B, N)`` fp32, ``rates`` ``counts / valid steps``,
    ``count_histogram`` ``(B, T + 1)`` int64 (how many neurons spiked in ``k`` steps; a
    graded spike counts once).
    """

    def forward(self, spikes: Tensor | SpikeBatch | None = None,
                membrane: Tensor | None = None) -> DecoderOutput:
        s, steps = _spikes("RateDecoder.forward", spikes)
        counts = s.sum(TIME_DIM)
        events = (s != 0).sum(TIME_DIM)  # in [0, T] whatever the spike values
        hist = torch.nn.functional.one_hot(events, s.shape[TIME_DIM] + 1).sum(1)
        return _classify(counts / self.temperature,
                         {"counts": counts, "rates": counts / steps, "count_histogram": hist})


class FirstSpikeDecoder(_Decoder):
    """First-spike decoding: the earliest output wins.

    ``t_first`` is the first step with a spike, ``T`` for a silent neuron;
    ``logits = -t_first / T / temperature``. ``aux``: ``first_spike_times`` ``(B, N)`` int64
    with ``-1`` for silent neurons (the encoders' convention), ``counts``.
    """

    def forward(self, spikes: Tensor | SpikeBatch | None = None,
                membrane: Tensor | None = None) -> DecoderOutput:
        s, _ = _spikes("FirstSpikeDecoder.forward", spikes)
        T = s.shape[TIME_DIM]
        fired = s > 0
        has = fired.any(TIME_DIM)
        first = fired.float().argmax(TIME_DIM)  # first maximal index
        t_first = torch.where(has, first, torch.full_like(first, T))
        return _classify(-t_first.float() / T / self.temperature, {
            "first_spike_times": torch.where(has, first, torch.full_like(first, -1)),
            "counts": s.sum(TIME_DIM)})


class PopulationDecoder(_Decoder):
    r"""Population decoding over contiguous groups: neuron ``g·P + j`` is member ``j`` of
    group ``g`` (the layout of :class:`~brain_ai.core.encoding.PopulationEncoder`'s
    ``population_map``).

    * ``"classification"``: ``logits_g = Σ_j counts_{g,j} / temperature``.
    * ``"regression"``: :math:`\hat y_g = \sum_j c_j r_{g,j} / (\sum_j r_{g,j} + \epsilon)`
      with rates ``r`` and centers ``c = linspace(lo, hi, P)``; ``logits_proxy = ŷ`` ``(B, G)``;
      ``confidence`` = mean over groups of the largest member share ``max_j r_{g,j}/Σ_j r``.

    ``aux``: ``counts`` ``(B, N)``, ``group_counts`` ``(B, G)``; regression adds ``weights``
    ``(B, G, P)`` and ``centers``.
    """

    def __init__(self, population_size: int = 8, mode: str = "classification", *,
                 temperature: float = 1.0, eps: float = 1e-7,
                 value_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(temperature)
        if isinstance(population_size, bool) or not isinstance(population_size, int) \
                or population_size <= 0:
            raise ConfigError("PopulationDecoder.population_size", "must be a positive int",
                              got=repr(population_size), expected="an int > 0",
                              hint="neurons per class / per regressed value")
        if mode not in ("classification", "regression"):
            raise ConfigError("PopulationDecoder.mode", "unknown mode", got=repr(mode),
                              expected="'classification' | 'regression'",
                              hint="pick one of the listed values")
        check_positive("PopulationDecoder", "eps", eps)
        _finite("PopulationDecoder", "eps", eps)
        lo, hi = (_finite("PopulationDecoder", "value_range", v)
                  for v in check_value_range("PopulationDecoder", value_range))
        self.population_size, self.mode, self.eps = population_size, mode, float(eps)
        self.register_buffer("centers", torch.linspace(lo, hi, population_size))

    def forward(self, spikes: Tensor | SpikeBatch | None = None,
                membrane: Tensor | None = None) -> DecoderOutput:
        s, steps = _spikes("PopulationDecoder.forward", spikes)
        B, _, N = s.shape
        P = self.population_size
        if N % P:
            raise ShapeError("PopulationDecoder.forward",
                             "the neuron count is not a multiple of population_size",
                             got=f"N={N}, population_size={P}", expected="N % P == 0",
                             hint="size the output layer as classes * population_size")
        counts = s.sum(TIME_DIM)
        groups = counts.view(B, N // P, P)
        aux: dict[str, Any] = {"counts": counts, "group_counts": groups.sum(-1)}
        if self.mode == "classification":
            return _classify(groups.sum(-1) / self.temperature, aux)
        rates = groups / steps.unsqueeze(-1)
        w = rates / (rates.sum(-1, keepdim=True) + self.eps)
        value = (w * self.centers).sum(-1)
        prediction = value.squeeze(-1) if value.shape[-1] == 1 else value
        return DecoderOutput(value, prediction, w.amax(-1).mean(-1),
                             {**aux, "weights": w, "centers": self.centers})

    def extra_repr(self) -> str:
        return f"population_size={self.population_size}, mode={self.mode!r}"


class MembraneDecoder(_Decoder):
    """Membrane decoding: ``membrane[:, -1]`` (``reduce="last"``, the last *valid* step under a
    SpikeBatch mask) or ``max_t membrane`` (``"max"``), divided by ``temperature``.

    ``membrane`` is ``(B, T, C)``; ``spikes`` is only read for its mask when a SpikeBatch.
    ``aux``: ``membrane_reduced`` ``(B, C)`` fp32.
    """

    def __init__(self, reduce: str = "last", temperature: float = 1.0) -> None:
        super().__init__(temperature)
        check_membrane_reduce("MembraneDecoder", reduce)
        self.reduce = reduce

    def forward(self, spikes: Tensor | SpikeBatch | None = None,
                membrane: Tensor | None = None) -> DecoderOutput:
        where = "MembraneDecoder.forward"
        if membrane is None or not isinstance(membrane, Tensor) or membrane.dim() != 3:
            raise ShapeError(where, "needs a (B, T, C) membrane",
                             got=None if membrane is None
                             else f"shape {tuple(getattr(membrane, 'shape', ()))}",
                             expected="membrane of rank 3",
                             hint="record the output layer's membrane over time")
        mask = spikes.mask if isinstance(spikes, SpikeBatch) else None
        v = _check_sequence(where, "membrane", membrane, mask).float()
        if self.reduce == "max":
            if mask is not None:
                v = v.masked_fill(~mask.unsqueeze(-1), float("-inf"))
            reduced = v.amax(TIME_DIM)
        elif mask is None:
            reduced = v[:, -1]
        else:
            last = v.shape[TIME_DIM] - 1 - mask.flip(TIME_DIM).float().argmax(TIME_DIM)
            reduced = v.gather(TIME_DIM, last.view(-1, 1, 1).expand(-1, 1, v.shape[-1]))
            reduced = reduced.squeeze(TIME_DIM)
        return _classify(reduced / self.temperature, {"membrane_reduced": reduced})

    def extra_repr(self) -> str:
        return f"reduce={self.reduce!r}, {super().extra_repr()}"


class EnsembleDecoder(nn.Module):
    r"""Weighted mean of the members' softmax probabilities (fp32):

    .. math:: \bar p = \sum_i w_i\,\mathrm{softmax}(z_i) / \sum_i w_i,\qquad
              \text{logits\_proxy} = \log \max(\bar p, \epsilon)

    Every member gets the same ``spikes`` / ``membrane``; members must be classifiers with the
    same number of classes. ``aux``: ``member_predictions`` ``(B, M)``, ``agreement`` ``(B,)``
    (fraction of members agreeing with the ensemble), ``members`` (their outputs).
    """

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float] | None = None,
                 eps: float = 1e-7) -> None:
        super().__init__()
        regression = next((m for m in members if isinstance(m, PopulationDecoder)
                           and m.mode == "regression"), None)
        weights = check_ensemble("EnsembleDecoder", len(members), weights,
                                 regression=regression)
        check_positive("EnsembleDecoder", "eps", eps)
        _finite("EnsembleDecoder", "eps", eps)
        for w in weights:
            _finite("EnsembleDecoder", "weights", w)
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", torch.tensor(weights) / sum(weights))
        self.eps = float(eps)

    def forward(self, spikes: Tensor | SpikeBatch | None = None,
                membrane: Tensor | None = None) -> DecoderOutput:
        outs = [m(spikes, membrane) for m in self.members]
        shapes = {tuple(o.logits_proxy.shape) for o in outs}
        if len(shapes) != 1:
            raise ShapeError("EnsembleDecoder.forward", "members disagree on (B, C)",
                             got=sorted(shapes), expected="one shape",
                             hint="all members must decode the same classes")
        probs = torch.stack([torch.softmax(o.logits_proxy.float(), -1) for o in outs])
        mean = (self.weights.view(-1, 1, 1) * probs).sum(0)
        out = _classify(torch.log(mean.clamp_min(self.eps)), {})
        preds = torch.stack([o.prediction for o in outs], dim=-1)
        out.aux.update(member_predictions=preds, members=outs,
                       agreement=(preds == out.prediction.unsqueeze(-1)).float().mean(-1))
        return out


def build_decoder(cfg: DecodingConfig) -> nn.Module:
    """Decoder for ``cfg.type`` (see the module table), configured from ``cfg``."""

    def one(kind: str) -> nn.Module:
        if kind == "rate":
            return RateDecoder(cfg.temperature)
        if kind == "first_spike":
            return FirstSpikeDecoder(cfg.temperature)
        if kind == "population":
            return PopulationDecoder(cfg.population_size, cfg.population_mode,
                                     temperature=cfg.temperature, eps=cfg.eps,
                                     value_range=cfg.value_range)
        if kind == "membrane":
            return MembraneDecoder(cfg.membrane_reduce, cfg.temperature)
        raise ConfigError("build_decoder", "unknown decoding type", got=repr(kind),
                          expected="rate | first_spike | population | membrane | ensemble",
                          hint="see DecodingConfig.type")

    if cfg.type == "ensemble":
        return EnsembleDecoder([one(k) for k in cfg.ensemble_types], cfg.ensemble_weights,
                               cfg.eps)
    return one(cfg.type)
