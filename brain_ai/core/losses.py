r"""Spike losses, regularizers and debug probes (seed 002 "loss pack", seed 000 metrics).

Everything here is batch-first: spike and membrane records are ``(B, T, ...)`` and class
targets are integer indices ``(B,)``.

Two layers, from high to low:

* **Loss terms** (:class:`LossTerm` subclasses) -- :class:`ProbSpikes`,
  :class:`SpikeRateRegularization`, :class:`TemporalConsistency`, :class:`ISIRegularization`,
  :class:`MembraneRegularization`. Each is called as
  ``term(spikes, targets, membrane=..., layers=...)`` and returns
  ``(scalar_loss, diagnostics)`` where ``diagnostics`` is a ``dict[str, float]``.
  :class:`SNNLossComposer` sums weighted terms and returns the logging contract
  ``(total, {"total", "components", "diagnostics", "weights"})``.
* **Debug probes** -- :func:`compute_snn_metrics` returns an :class:`SNNMetrics` with the seed-000
  probes and their healthy ranges.

The snnTorch-compatible functional losses (``count_cross_entropy``, ``mse_count``, ...,
``accuracy_rate``), the migration path from ``snntorch.functional``, live in
:mod:`brain_ai.core.snntorch_losses`; they share this module's validation and float32-region
helpers.

AMP hardening (seed 002): every reduction over time runs in float32 with autocast disabled
locally; ``log_softmax`` runs in float32; probabilities are clamped to ``eps`` before the log;
temperature divides the logits before the softmax; the ISI kernel is float32; the loss terms
normalize by ``T`` so that doubling the window at equal rates leaves the loss unchanged.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from brain_ai.config import LossConfig
from brain_ai.errors import ConfigError, ShapeError
from brain_ai.physics.axes import TIME_DIM

__all__ = [
    "HEALTHY_RANGES",
    "ISIRegularization",
    "LossTerm",
    "MembraneRegularization",
    "ProbSpikes",
    "SNNLossComposer",
    "SNNMetrics",
    "SpikeRateRegularization",
    "TemporalConsistency",
    "compute_snn_metrics",
    "neuron_activity",
]

#: The ``reduction`` argument of the functional losses (:mod:`brain_ai.core.snntorch_losses`).
Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------------------
# helpers: validation, float32 regions
# ----------------------------------------------------------------------------------------


@contextmanager
def _fp32_region(x: Tensor) -> Iterator[None]:
    """Disable autocast for the device of ``x`` so that the ops inside stay float32."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        yield


def _check_sequence(where: str, name: str, x: object, min_dim: int = 3) -> Tensor:
    """``x`` must be a floating/bool/int tensor of rank >= ``min_dim`` (``(B, T, ...)``)."""
    if not isinstance(x, Tensor):
        raise ShapeError(where, f"{name} is not a tensor", got=type(x).__name__,
                         expected=f"a torch.Tensor of shape (B, T, ...) with rank >= {min_dim}",
                         hint="convert with torch.as_tensor(...) first")
    if x.dim() < min_dim:
        raise ShapeError(where, f"{name} has too few axes", got=f"shape {tuple(x.shape)}",
                         expected=f"(B, T, ...) with rank >= {min_dim}",
                         hint="records are batch-first (B, T, N); add a feature axis with "
                              "x.unsqueeze(-1), or convert a time-first record with "
                              "time_to_batch_first(x)")
    if x.shape[TIME_DIM] == 0 or x.shape[0] == 0:
        raise ShapeError(where, f"{name} is empty", got=f"shape {tuple(x.shape)}",
                         expected="B >= 1 and T >= 1", hint="pass at least one sample and step")
    return x


def _check_targets(where: str, targets: object, batch: int, num_classes: int) -> Tensor:
    """Class-index targets of shape ``(B,)`` with values in ``[0, num_classes)``."""
    if targets is None:
        raise ShapeError(where, "targets are required", got=None,
                         expected=f"integer class indices of shape ({batch},)",
                         hint="pass targets=labels (a LongTensor of class indices)")
    if not isinstance(targets, Tensor):
        raise ShapeError(where, "targets is not a tensor", got=type(targets).__name__,
                         expected=f"integer class indices of shape ({batch},)",
                         hint="convert with torch.as_tensor(labels, dtype=torch.long)")
    if targets.dtype.is_floating_point or targets.dtype == torch.bool or targets.is_complex():
        raise ShapeError(where, "targets must be integer class indices", got=str(targets.dtype),
                         expected="torch.long (or another integer dtype)",
                         hint="one-hot targets: use targets.argmax(-1)")
    if tuple(targets.shape) != (batch,):
        raise ShapeError(where, "targets do not match the batch",
                         got=f"shape {tuple(targets.shape)}", expected=f"shape ({batch},)",
                         hint="one class index per sample")
    if batch and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        raise ShapeError(where, "a target class index is out of range",
                         got=f"range [{int(targets.min())}, {int(targets.max())}]",
                         expected=f"indices in [0, {num_classes})",
                         hint="the last axis of the output record must have one neuron per class")
    return targets.long()


def _check_positive(where: str, name: str, value: float, *, allow_zero: bool = False) -> float:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and (value >= 0 if allow_zero else value > 0))
    if not ok:
        raise ConfigError(where, f"{name} is out of range", got=value,
                          expected=f"a finite number {'>=' if allow_zero else '>'} 0",
                          hint=f"pass a valid {name}")
    return float(value)


def _check_unit(where: str, name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ConfigError(where, f"{name} is outside [0, 1]", got=value,
                          expected="0 <= value <= 1", hint=f"{name} is a firing probability")
    return float(value)


def _check_reduction(where: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ConfigError(where, "unknown reduction", got=repr(reduction),
                          expected=" | ".join(repr(r) for r in _REDUCTIONS),
                          hint="use 'mean' for training, 'none' for per-sample losses")


def _flat_features(x: Tensor) -> Tensor:
    """``(B, T, *features) -> (B, T, F)`` (a view where possible; the time axis stays put)."""
    return x.reshape(x.shape[0], x.shape[1], -1)


# ----------------------------------------------------------------------------------------
# neuron activity (shared by SpikeRateRegularization and compute_snn_metrics)
# ----------------------------------------------------------------------------------------


def neuron_activity(
    spikes: Tensor, *, dead_rate: float = 0.0, saturated_rate: float = 1.0
) -> tuple[Tensor, float, float]:
    """Per-neuron firing rate over batch and time, and the dead / saturated fractions.

    Args:
        spikes: ``(B, T, *features)`` spike record (any dtype; accumulated in float32).
        dead_rate: a neuron whose rate is ``<= dead_rate`` is dead (default: never fires).
        saturated_rate: a neuron whose rate is ``>= saturated_rate`` is saturated (default:
            fires at every step of every sample).
    Returns:
        ``(rate, dead_frac, saturated_frac)`` with ``rate`` of shape ``(*features,)`` float32.
    """
    with _fp32_region(spikes):
        rate = spikes.detach().float().mean(dim=(0, TIME_DIM))
        dead = float((rate <= dead_rate).float().mean())
        saturated = float((rate >= saturated_rate).float().mean())
    return rate, dead, saturated


# ----------------------------------------------------------------------------------------
# loss terms
# ----------------------------------------------------------------------------------------


class LossTerm(ABC):
    """One SNN loss or regularizer: ``term(spikes, targets, ...) -> (loss, diagnostics)``.

    Every term receives the same arguments (the composer passes all of them through) and uses
    the ones it needs; a term that needs an argument that is missing raises
    :class:`~brain_ai.errors.ShapeError`.

    Args (of ``__call__``):
        spikes: output spike record ``(B, T, C)`` (or ``(B, T, ...)`` for activity terms).
        targets: class indices ``(B,)`` (classification terms only).
        membrane: membrane record ``(B, T, ...)`` (membrane terms only).
        layers: hidden-layer spike records ``{name: (B, T, ...)}``; activity terms
            (rate, temporal, ISI) regularize these when given, else ``spikes``.
    Returns:
        ``(loss, diagnostics)``: a 0-d float32 tensor and a ``dict[str, float]``.
    """

    name: str = "term"

    @abstractmethod
    def __call__(
        self,
        spikes: Tensor,
        targets: Tensor | None = None,
        *,
        membrane: Tensor | None = None,
        layers: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        """Compute ``(loss, diagnostics)``; see the class docstring."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def _activity_records(where: str, spikes: Tensor, layers: Mapping[str, Tensor] | None
                      ) -> dict[str, Tensor]:
    if layers is None:
        return {"output": _check_sequence(where, "spikes", spikes)}
    if not isinstance(layers, Mapping) or len(layers) == 0:
        raise ShapeError(where, "layers must be a non-empty mapping", got=type(layers).__name__,
                         expected="{layer_name: (B, T, ...) spike record}",
                         hint="pass layers=None to regularize the output spikes")
    return {str(k): _check_sequence(where, f"layers[{k!r}]", v) for k, v in layers.items()}


class ProbSpikes(LossTerm):
    r"""Spike-count cross-entropy with temperature (seed 002 "ProbSpikes").

    .. math::
        z_{b,c} = \frac{\sum_t s_{b,t,c}}{\tau \cdot (T \text{ if normalize else } 1)},\quad
        \ell = -\frac{1}{B}\sum_b \log\max\big(\mathrm{softmax}(z_b)_{y_b}, \epsilon\big)

    Counts accumulate in float32, the softmax is a float32 ``log_softmax``, and the clamp is
    applied in log space (``log p >= log eps``, i.e. ``p`` clamped to ``eps`` before the log).
    With ``normalize=False, eps=0.0, temperature=1.0`` this is exactly snnTorch's
    ``ce_count_loss`` (conformance case ``snntorch/loss/probspikes_raw_vs_ce_count``; the default
    differs, guard ``snntorch/loss/probspikes_default_vs_ce_count``).

    Args:
        temperature: divides the logits before the softmax (> 0).
        normalize: divide counts by ``T`` (rates in ``[0, 1]``) so the loss does not scale
            with the window length.
        eps: probability floor before the log (>= 0; 0 disables the clamp).
    Call:
        ``spikes`` ``(B, T, C)``, ``targets`` ``(B,)`` class indices.
    Diagnostics:
        ``accuracy`` (argmax of counts, ties to the lowest index), ``p_target`` (mean softmax
        probability of the target class), ``mean_rate``.
    """

    name = "probspikes"

    def __init__(self, temperature: float = 1.0, *, normalize: bool = True,
                 eps: float = 1e-7) -> None:
        self.temperature = _check_positive("ProbSpikes", "temperature", temperature)
        self.normalize = bool(normalize)
        self.eps = _check_positive("ProbSpikes", "eps", eps, allow_zero=True)

    def __call__(
        self,
        spikes: Tensor,
        targets: Tensor | None = None,
        *,
        membrane: Tensor | None = None,
        layers: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        where = "ProbSpikes"
        _check_sequence(where, "spikes", spikes, min_dim=3)
        if spikes.dim() != 3:
            raise ShapeError(where, "the output record must be (B, T, C)",
                             got=f"shape {tuple(spikes.shape)}", expected="rank 3",
                             hint="flatten the class axes: spikes.flatten(2)")
        b, t, c = spikes.shape
        y = _check_targets(where, targets, b, c)
        with _fp32_region(spikes):
            counts = spikes.float().sum(dim=TIME_DIM)  # (B, C) float32
            logits = counts / float(t) if self.normalize else counts
            logits = logits / self.temperature
            logp = F.log_softmax(logits, dim=-1)
            if self.eps > 0:
                logp = logp.clamp(min=math.log(self.eps))
            loss = F.nll_loss(logp, y)
            with torch.no_grad():
                acc = float((counts.max(dim=-1).indices == y).float().mean())
                p_target = float(logp.gather(1, y[:, None]).exp().mean())
                mean_rate = float(counts.mean() / t)
        return loss, {"accuracy": acc, "p_target": p_target, "mean_rate": mean_rate}


class SpikeRateRegularization(LossTerm):
    r"""Pull firing rates toward a target and keep them inside a healthy range.

    Per layer (rates in float32, ``r_{b,n} = \frac1T\sum_t s_{b,t,n}``,
    ``\rho_n = \frac1B\sum_b r_{b,n}``):

    .. math::
        \ell = \operatorname{mean}_{b,n}(r_{b,n} - r^*)^2 + \lambda\,
        \operatorname{mean}_n\big[\mathrm{relu}(r_{min} - \rho_n)^2
        + \mathrm{relu}(\rho_n - r_{max})^2\big]

    The loss is the mean over layers (so adding layers does not scale it).

    Args:
        target_rate: ``r^*`` in ``[0, 1]``, one value or ``{layer_name: rate}`` (per-layer
            targets; every regularized layer must then be named in it).
        min_rate, max_rate: healthy range of the per-neuron rate ``rho_n``
            (``0 <= min_rate <= max_rate <= 1``; seed 000 healthy range by default).
        range_weight: ``lambda`` (>= 0; 0 disables the range penalty).
        dead_rate, saturated_rate: thresholds of the dead / saturated diagnostics
            (see :func:`neuron_activity`).
    Call:
        regularizes ``layers`` when given (each ``(B, T, ...)``), else ``spikes``.
    Diagnostics:
        ``mean_rate``, ``dead_frac``, ``saturated_frac`` (over all regularized neurons) and
        ``<layer>/mean_rate``, ``<layer>/dead_frac``, ``<layer>/saturated_frac``.
    """

    name = "rate_reg"

    def __init__(
        self,
        target_rate: float | Mapping[str, float] = 0.1,
        *,
        min_rate: float = 0.01,
        max_rate: float = 0.5,
        range_weight: float = 1.0,
        dead_rate: float = 0.0,
        saturated_rate: float = 1.0,
    ) -> None:
        where = "SpikeRateRegularization"
        if isinstance(target_rate, Mapping):
            if not target_rate:
                raise ConfigError(where, "per-layer target_rate is empty", got="{}",
                                  expected="{layer_name: rate} with at least one entry",
                                  hint="pass a float to use one target for every layer")
            self.target_rate: float | dict[str, float] = {
                str(k): _check_unit(where, f"target_rate[{k!r}]", v)
                for k, v in target_rate.items()
            }
        else:
            self.target_rate = _check_unit(where, "target_rate", target_rate)
        self.min_rate = _check_unit(where, "min_rate", min_rate)
        self.max_rate = _check_unit(where, "max_rate", max_rate)
        if self.min_rate > self.max_rate:
            raise ConfigError(where, "min_rate is above max_rate",
                              got=f"min_rate={min_rate}, max_rate={max_rate}",
                              expected="min_rate <= max_rate", hint="swap the two bounds")
        self.range_weight = _check_positive(where, "range_weight", range_weight, allow_zero=True)
        self.dead_rate = _check_unit(where, "dead_rate", dead_rate)
        self.saturated_rate = _check_unit(where, "saturated_rate", saturated_rate)

    def _target_for(self, layer: str) -> float:
        if isinstance(self.target_rate, dict):
            if layer not in self.target_rate:
                raise ConfigError("SpikeRateRegularization", "no target rate for a layer",
                                  got=repr(layer), expected=" | ".join(map(repr, self.target_rate)),
                                  hint="name every regularized layer in target_rate, or pass "
                                       "one float for all layers")
            return self.target_rate[layer]
        return self.target_rate

    def __call__(
        self,
        spikes: Tensor,
        targets: Tensor | None = None,
        *,
        membrane: Tensor | None = None,
        layers: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        records = _activity_records("SpikeRateRegularization", spikes, layers)
        losses: list[Tensor] = []
        diag: dict[str, float] = {}
        n_total = dead_total = sat_total = 0.0
        rate_sum = 0.0
        for layer, s in records.items():
            target = self._target_for(layer)
            with _fp32_region(s):
                rate = s.float().mean(dim=TIME_DIM)  # (B, *features)
                loss = ((rate - target) ** 2).mean()
                if self.range_weight > 0:
                    rho = rate.mean(dim=0)  # (*features,)
                    below = F.relu(self.min_rate - rho) ** 2
                    above = F.relu(rho - self.max_rate) ** 2
                    loss = loss + self.range_weight * (below + above).mean()
            losses.append(loss)
            rho_d, dead, sat = neuron_activity(s, dead_rate=self.dead_rate,
                                               saturated_rate=self.saturated_rate)
            n = float(rho_d.numel())
            diag[f"{layer}/mean_rate"] = float(rho_d.mean())
            diag[f"{layer}/dead_frac"] = dead
            diag[f"{layer}/saturated_frac"] = sat
            n_total += n
            dead_total += dead * n
            sat_total += sat * n
            rate_sum += float(rho_d.sum())
        total = torch.stack(losses).mean()
        diag["mean_rate"] = rate_sum / n_total
        diag["dead_frac"] = dead_total / n_total
        diag["saturated_frac"] = sat_total / n_total
        return total, diag


class TemporalConsistency(LossTerm):
    r"""Penalize flicker of the windowed firing rate over time.

    Per neuron, the rate over a sliding window of ``W`` steps is
    ``r_{b,t,n} = \frac1W\sum_{k<W} s_{b,t+k,n}`` for ``t = 0..T-W`` (float32). Then

    * ``"l1"``: ``mean |r_{t+1} - r_t|``;
    * ``"l2"``: ``mean (r_{t+1} - r_t)^2``;
    * ``"variance"``: mean over ``(b, n)`` of the population variance of ``r`` over time.

    Every variant is a mean over time, so the loss does not scale with ``T``. The loss is the
    mean over layers.

    Args:
        window_size: ``W >= 1``; the record needs ``T >= W + 1`` (``T >= W`` for variance).
        penalty: ``"l1"`` | ``"l2"`` | ``"variance"``.
    Call:
        regularizes ``layers`` when given (each ``(B, T, ...)``), else ``spikes``.
    Diagnostics:
        ``mean_abs_change`` (mean ``|r_{t+1} - r_t|``, 0 when only one window).
    """

    name = "temporal"

    def __init__(self, window_size: int = 5,
                 penalty: Literal["l1", "l2", "variance"] = "l2") -> None:
        where = "TemporalConsistency"
        if not isinstance(window_size, int) or isinstance(window_size, bool) or window_size < 1:
            raise ConfigError(where, "window_size must be a positive int", got=window_size,
                              expected="an int >= 1", hint="1 compares single steps")
        if penalty not in ("l1", "l2", "variance"):
            raise ConfigError(where, "unknown penalty", got=repr(penalty),
                              expected="'l1' | 'l2' | 'variance'", hint="pick one of the three")
        self.window_size = window_size
        self.penalty = penalty

    def __call__(
        self,
        spikes: Tensor,
        targets: Tensor | None = None,
        *,
        membrane: Tensor | None = None,
        layers: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        where = "TemporalConsistency"
        records = _activity_records(where, spikes, layers)
        w = self.window_size
        need = w if self.penalty == "variance" else w + 1
        losses: list[Tensor] = []
        changes: list[float] = []
        for layer, s in records.items():
            t = s.shape[TIME_DIM]
            if t < need:
                raise ShapeError(where, f"record {layer!r} is shorter than the penalty needs",
                                 got=f"T={t}", expected=f"T >= {need} for window_size={w}, "
                                 f"penalty={self.penalty!r}",
                                 hint="lower window_size or use a longer window")
            with _fp32_region(s):
                x = _flat_features(s).float()  # (B, T, F)
                rate = x.unfold(TIME_DIM, w, 1).mean(dim=-1)  # (B, T-W+1, F)
                delta = rate.diff(dim=TIME_DIM)  # (B, T-W, F)
                if self.penalty == "l1":
                    loss = delta.abs().mean()
                elif self.penalty == "l2":
                    loss = (delta**2).mean()
                else:
                    loss = rate.var(dim=TIME_DIM, correction=0).mean()
            losses.append(loss)
            changes.append(float(delta.detach().abs().mean()) if delta.numel() else 0.0)
        return torch.stack(losses).mean(), {"mean_abs_change": sum(changes) / len(changes)}


class ISIRegularization(LossTerm):
    r"""Penalize short inter-spike intervals with a causal exponential kernel (vectorized).

    .. math::
        \rho_{b,t,n} = \sum_{d=1}^{W} e^{-d/\tau} s_{b,t-d,n},\qquad
        \ell = \operatorname{mean}_{b,t,n}\; s_{b,t,n}\,\rho_{b,t,n}

    i.e. every pair of spikes of one neuron closer than ``W + 1`` steps costs ``e^{-d/\tau}``
    (``d`` = their distance), averaged over ``B*T*N`` so the loss does not scale with ``T``.
    Only *past* spikes count (a spike does not penalize itself).

    Implementation: one ``F.conv1d`` in float32 (autocast disabled) over the record flattened
    to ``(B, 1, T*F)`` with ``dilation=F``: tap ``k`` then reads the same neuron ``k`` steps
    earlier, so the convolution runs along time for every neuron at once without moving any
    axis, and without Python loops over neurons or time. (The seed's sketch reshapes
    ``(B, T, N) -> (B*N, 1, T)``, which mixes neurons and steps, and lets each spike
    penalize itself; neither is reproduced.)

    Args:
        window: ``W >= 1`` refractory window in steps (``LossConfig.isi_refractory_window``).
        tau: decay of the kernel in steps (> 0).
    Call:
        regularizes ``layers`` when given, else ``spikes``; each ``(B, T, ...)``.
    Diagnostics:
        ``violation_frac`` (fraction of spikes with another spike in the previous ``W`` steps).
    """

    name = "isi"

    def __init__(self, window: int = 3, *, tau: float = 1.0) -> None:
        where = "ISIRegularization"
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ConfigError(where, "window must be a positive int", got=window,
                              expected="an int >= 1", hint="the refractory window in steps")
        self.window = window
        self.tau = _check_positive(where, "tau", tau)

    def kernel(self, device: torch.device | None = None) -> Tensor:
        """The ``(1, 1, W)`` float32 conv weight: tap ``k`` weighs lag ``d = W - k``."""
        d = torch.arange(self.window, 0, -1, dtype=torch.float32, device=device)
        return torch.exp(-d / self.tau).view(1, 1, self.window)

    def refractory(self, spikes: Tensor) -> Tensor:
        """``rho`` of the class docstring: ``(B, T, *features)`` float32, same shape as input."""
        s = _check_sequence("ISIRegularization.refractory", "spikes", spikes)
        b, t = s.shape[0], s.shape[TIME_DIM]
        with _fp32_region(s):
            x = _flat_features(s).float()  # (B, T, F)
            f = x.shape[-1]
            flat = x.reshape(b, 1, t * f)
            padded = F.pad(flat, (self.window * f, 0))  # W zero steps before t = 0
            rho = F.conv1d(padded, self.kernel(s.device), dilation=f)[..., : t * f]
        return rho.reshape(s.shape)

    def __call__(
        self,
        spikes: Tensor,
        targets: Tensor | None = None,
        *,
        membrane: Tensor | None = None,
        layers: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        records = _activity_records("ISIRegularization", spikes, layers)
        losses: list[Tensor] = []
        n_spikes = n_viol = 0.0
        for s in records.values():
            rho = self.refractory(s)
            with _fp32_region(s):
                x = s.float()
                losses.append((x * rho).mean())
                with torch.no_grad():
                    fired = x != 0
                    n_spikes += float(fired.sum())
                    n_viol += float((fired & (rho > 0)).sum())
        frac = n_viol / n_spikes if n_spikes else 0.0
        return torch.stack(losses).mean(), {"violation_frac": frac}


class MembraneRegularization(LossTerm):
    r"""Keep membrane potentials bounded: ``mean(relu(|v| - v_max)^2)`` in float32.

    Args:
        max_membrane: ``v_max`` (>= 0), the magnitude above which the membrane is penalized.
    Call:
        ``membrane`` ``(B, T, ...)`` is required.
    Diagnostics:
        ``membrane_mean``, ``membrane_var`` (population variance), ``max_abs``,
        ``excess_frac`` (fraction of entries with ``|v| > v_max``).
    """

    name = "membrane"

    def __init__(self, max_membrane: float = 1.0) -> None:
        self.max_membrane = _check_positive("MembraneRegularization", "max_membrane",
                                            max_membrane, allow_zero=True)

    def __call__(
        self,
        spikes: Tensor,
        targets: Tensor | None = None,
        *,
        membrane: Tensor | None = None,
        layers: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        where = "MembraneRegularization"
        if membrane is None:
            raise ShapeError(where, "membrane is required", got=None,
                             expected="a (B, T, ...) membrane record",
                             hint="pass membrane=... (record it with return_details=True), or "
                                  "drop this term / set LossConfig.w_membrane=0")
        v = _check_sequence(where, "membrane", membrane, min_dim=2)
        with _fp32_region(v):
            v32 = v.float()
            excess = F.relu(v32.abs() - self.max_membrane)
            loss = (excess**2).mean()
            with torch.no_grad():
                diag = {
                    "membrane_mean": float(v32.mean()),
                    "membrane_var": float(v32.var(correction=0)),
                    "max_abs": float(v32.abs().max()),
                    "excess_frac": float((excess > 0).float().mean()),
                }
        return loss, diag


class SNNLossComposer:
    r"""Weighted sum of loss terms with per-component logging (seed 002 contract).

    .. math:: L = \sum_k w_k \, \ell_k

    Args:
        terms: ``[(term, weight), ...]``; names (``term.name``) must be unique and weights
            finite and ``>= 0``.
    Call:
        ``composer(spikes, targets, membrane=..., layers=...)`` -- the arguments of
        :class:`LossTerm`, passed to every term.
    Returns:
        ``(total, log)`` where ``total`` is a 0-d float32 tensor and ``log`` is::

            {"total": float,
             "components": {name: float},        # unweighted term losses
             "diagnostics": {name: {key: float}},
             "weights": {name: float}}

        so that ``log["total"] == sum(weights[k] * components[k])``.
    """

    def __init__(self, terms: Sequence[tuple[LossTerm, float]]) -> None:
        where = "SNNLossComposer"
        if len(terms) == 0:
            raise ConfigError(where, "no loss terms", got="[]", expected="[(term, weight), ...]",
                              hint="use SNNLossComposer.from_config(LossConfig())")
        self._terms: list[tuple[LossTerm, float]] = []
        seen: set[str] = set()
        for item in terms:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], LossTerm)):
                raise ConfigError(where, "each entry must be a (LossTerm, weight) pair",
                                  got=repr(item), expected="(LossTerm, float)",
                                  hint="e.g. (ProbSpikes(), 1.0)")
            term, weight = item
            w = _check_positive(f"{where}[{term.name!r}]", "weight", weight, allow_zero=True)
            if term.name in seen:
                raise ConfigError(where, "duplicate term name", got=repr(term.name),
                                  expected="unique names",
                                  hint="set a distinct .name on one of the two terms")
            seen.add(term.name)
            self._terms.append((term, w))

    @property
    def terms(self) -> list[tuple[LossTerm, float]]:
        """The ``(term, weight)`` pairs, in order."""
        return list(self._terms)

    @property
    def weights(self) -> dict[str, float]:
        """``{name: weight}``."""
        return {t.name: w for t, w in self._terms}

    @classmethod
    def from_config(cls, config: LossConfig) -> SNNLossComposer:
        """The seed's default pack from a :class:`~brain_ai.config.LossConfig`.

        ``probspikes`` (temperature ``probspikes_temperature``, counts normalized by ``T``),
        ``rate_reg`` (``target_rate``), ``temporal`` (defaults: window 5, so records need
        ``T >= 6``), ``isi``
        (``isi_refractory_window``) and ``membrane`` (defaults), weighted by
        ``w_probspikes``, ``w_rate``, ``w_temporal``, ``w_isi``, ``w_membrane``. Terms whose
        weight is 0 are left out (so ``w_membrane=0`` means no membrane record is needed).
        """
        if not isinstance(config, LossConfig):
            raise ConfigError("SNNLossComposer.from_config", "config is not a LossConfig",
                              got=type(config).__name__, expected="brain_ai.config.LossConfig",
                              hint="build one with LossConfig(...) or LossConfig.from_dict(d)")
        candidates: list[tuple[LossTerm, float]] = [
            (ProbSpikes(temperature=config.probspikes_temperature), config.w_probspikes),
            (SpikeRateRegularization(target_rate=config.target_rate), config.w_rate),
            (TemporalConsistency(), config.w_temporal),
            (ISIRegularization(window=config.isi_refractory_window), config.w_isi),
            (MembraneRegularization(), config.w_membrane),
        ]
        chosen = [(t, w) for t, w in candidates if w != 0]
        return cls(chosen)

    def __call__(
        self,
        spikes: Tensor,
        targets: Tensor | None = None,
        *,
        membrane: Tensor | None = None,
        layers: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, Any]]:
        total: Tensor | None = None
        components: dict[str, float] = {}
        diagnostics: dict[str, dict[str, float]] = {}
        for term, weight in self._terms:
            loss, diag = term(spikes, targets, membrane=membrane, layers=layers)
            with _fp32_region(loss):
                contrib = loss.float() * weight
            total = contrib if total is None else total + contrib
            components[term.name] = float(loss.detach())
            diagnostics[term.name] = diag
        if total is None:  # unreachable: __init__ requires at least one term
            raise ConfigError("SNNLossComposer", "no loss terms", got="[]",
                              expected="[(term, weight), ...]", hint="add a term")
        log = {
            "total": float(total.detach()),
            "components": components,
            "diagnostics": diagnostics,
            "weights": self.weights,
        }
        return total, log

    def __repr__(self) -> str:
        inner = ", ".join(f"({t!r}, {w})" for t, w in self._terms)
        return f"SNNLossComposer([{inner}])"


# ----------------------------------------------------------------------------------------
# debug probes (seed 000)
# ----------------------------------------------------------------------------------------

#: Healthy ranges of the seed-000 debug probes, as ``(low, high)`` with ``None`` for an open
#: side; bounds are exclusive for ``membrane_var > 0`` and the ``< 0.05`` fractions and
#: inclusive elsewhere. ``membrane_mean`` is checked as ``|mean| < 10 * threshold``.
HEALTHY_RANGES: dict[str, tuple[float | None, float | None]] = {
    "firing_rate": (0.01, 0.50),
    "membrane_mean": (None, 10.0),  # times threshold, on |mean|
    "membrane_var": (0.0, None),
    "spike_sparsity": (0.50, 0.99),
    "dead_neuron_frac": (None, 0.05),
    "saturated_neuron_frac": (None, 0.05),
}


@dataclass(frozen=True)
class SNNMetrics:
    """Seed-000 debug probes of one layer (plain floats; ``None`` without a membrane record).

    Attributes:
        firing_rate: mean of the spike record (spikes per neuron per step).
        spike_sparsity: fraction of ``(b, t, n)`` entries without a spike.
        dead_neuron_frac: fraction of neurons that never fire (rate ``<= dead_rate``).
        saturated_neuron_frac: fraction of neurons firing at every step
            (rate ``>= saturated_rate``).
        membrane_mean: mean membrane potential, or ``None``.
        membrane_var: population variance of the membrane record, or ``None``.
        threshold: the ``v_th`` used by the ``membrane_mean`` health check.
    """

    firing_rate: float
    spike_sparsity: float
    dead_neuron_frac: float
    saturated_neuron_frac: float
    membrane_mean: float | None = None
    membrane_var: float | None = None
    threshold: float = 1.0

    def healthy(self) -> dict[str, bool]:
        """Probe name -> inside its :data:`HEALTHY_RANGES` range (membrane probes only when
        recorded)."""
        out = {
            "firing_rate": 0.01 <= self.firing_rate <= 0.50,
            "spike_sparsity": 0.50 <= self.spike_sparsity <= 0.99,
            "dead_neuron_frac": self.dead_neuron_frac < 0.05,
            "saturated_neuron_frac": self.saturated_neuron_frac < 0.05,
        }
        if self.membrane_mean is not None:
            out["membrane_mean"] = (math.isfinite(self.membrane_mean)
                                    and abs(self.membrane_mean) < 10.0 * self.threshold)
        if self.membrane_var is not None:
            out["membrane_var"] = math.isfinite(self.membrane_var) and self.membrane_var > 0.0
        return out

    @property
    def is_healthy(self) -> bool:
        """Every recorded probe is inside its healthy range."""
        return all(self.healthy().values())

    def as_dict(self) -> dict[str, float | None]:
        """The probes as a flat dict (for logging)."""
        return {
            "firing_rate": self.firing_rate,
            "spike_sparsity": self.spike_sparsity,
            "dead_neuron_frac": self.dead_neuron_frac,
            "saturated_neuron_frac": self.saturated_neuron_frac,
            "membrane_mean": self.membrane_mean,
            "membrane_var": self.membrane_var,
        }


def compute_snn_metrics(
    spikes: Tensor,
    membrane: Tensor | None = None,
    *,
    threshold: float = 1.0,
    dead_rate: float = 0.0,
    saturated_rate: float = 1.0,
) -> SNNMetrics:
    """Debug probes of one layer (seed 000), computed in float32 without gradients.

    Args:
        spikes: ``(B, T, ...)`` spike record.
        membrane: optional ``(B, T, ...)`` membrane record.
        threshold: ``v_th`` for the ``membrane_mean`` check (> 0).
        dead_rate, saturated_rate: see :func:`neuron_activity`.
    Returns:
        :class:`SNNMetrics`; call ``.healthy()`` for the per-probe verdicts.
    """
    where = "compute_snn_metrics"
    _check_sequence(where, "spikes", spikes)
    _check_positive(where, "threshold", threshold)
    _check_unit(where, "dead_rate", dead_rate)
    _check_unit(where, "saturated_rate", saturated_rate)
    with torch.no_grad(), _fp32_region(spikes):
        s = spikes.detach().float()
        rate = float(s.mean())
        sparsity = float((s == 0).float().mean())
        _, dead, sat = neuron_activity(s, dead_rate=dead_rate, saturated_rate=saturated_rate)
        mean = var = None
        if membrane is not None:
            _check_sequence(where, "membrane", membrane, min_dim=2)
            if membrane.shape[:2] != spikes.shape[:2]:
                raise ShapeError(where, "membrane and spikes disagree on (B, T)",
                                 got=f"{tuple(membrane.shape)} vs {tuple(spikes.shape)}",
                                 expected="the same batch and time axes",
                                 hint="pass the membrane record of the same layer and run")
            v = membrane.detach().float()
            mean = float(v.mean())
            var = float(v.var(correction=0))
    return SNNMetrics(rate, sparsity, dead, sat, mean, var, float(threshold))
