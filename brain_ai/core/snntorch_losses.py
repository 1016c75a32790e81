r"""snnTorch-compatible functional losses (the migration path from ``snntorch.functional``).

These functions mirror snnTorch 1.0.0's ``snntorch.functional`` losses and its
``accuracy_rate`` metric one for one, but take **batch-first** inputs: spike and membrane
records are ``(B, T, C)`` (snnTorch: time-first ``(T, B, C)``) and class targets are integer
indices ``(B,)``. For a record ``x`` they reproduce snnTorch's numbers on
``batch_to_time_first(x)`` -- bit-identical values and matching input gradients, proven by the
conformance cases in ``conformance/cases_losses.py``. The seed's own loss terms
(:class:`~brain_ai.core.losses.ProbSpikes` etc.), the composer and the debug probes live in
:mod:`brain_ai.core.losses`, whose validation and float32-region helpers these functions share.

==================================  =====================================================
brain_ai (batch-first)              snnTorch 1.0.0 (time-first ``(T, B, C)``)
==================================  =====================================================
``count_cross_entropy``             ``SF.ce_count_loss``
``rate_cross_entropy``              ``SF.ce_rate_loss``
``mse_count``                       ``SF.mse_count_loss``
``mse_membrane``                    ``SF.mse_membrane_loss(time_var_targets=False)``
``max_membrane_cross_entropy``      ``SF.ce_max_membrane_loss``
``temporal_cross_entropy``          ``SF.ce_temporal_loss``
``mse_temporal``                    ``SF.mse_temporal_loss(target_is_time=False)``
``l1_rate_sparsity``                ``SF.l1_rate_sparsity``
``accuracy_rate``                   ``SF.accuracy_rate``
``first_spike_time``                ``SpikeTime.FirstSpike`` (inside the temporal losses)
==================================  =====================================================

Deliberate differences (each pinned by a guard case where it shows in numbers):

1. snnTorch returns shape ``(1,)`` from ``ce_rate_loss`` and ``mse_membrane_loss``; these
   functions return a 0-d scalar (``reduction="mean"``/``"sum"``).
2. Class targets follow the *documented* rule "correct class -> ``on``, every other class ->
   ``off``". snnTorch's ``targets_convert`` computes ``clamp(one_hot * on, min=off)`` when
   ``on > off``, which turns a negative ``off`` into ``0``: ``mse_temporal_loss()`` with its
   defaults ``(on=0, off=-1)`` asks *every* neuron to fire at ``t=0`` (guard
   ``snntorch/loss/mse_temporal/defaults``), and ``mse_membrane_loss(off_target<0)`` targets
   ``0`` instead of ``off`` (guard ``snntorch/loss/mse_membrane/negative_off``). Whenever
   ``off >= 0`` or ``on <= off`` the two rules agree exactly.
3. Counts are accumulated in float32 (AMP rule); for float32 inputs this is what snnTorch
   does too.
4. ``weight`` with ``reduction="sum"`` sums the weighted per-sample losses; snnTorch returns
   them unreduced. ``weight`` is not offered for the MSE family: snnTorch multiplies a
   ``(B, C)`` loss by ``weight[targets]`` of shape ``(B,)``, which only broadcasts when
   ``B == C``.
5. ``mse_membrane_loss(time_var_targets=True)`` indexes batch rows as time steps in
   snnTorch; it is not reproduced.
6. Out-of-range arguments raise :class:`~brain_ai.errors.ConfigError` (e.g. a
   ``correct_rate`` above 1), where snnTorch computes a target regardless.

AMP hardening (seed 002, as in :mod:`brain_ai.core.losses`): every reduction over time runs
in float32 with autocast disabled locally, and ``log_softmax`` runs in float32.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from brain_ai.core.losses import (
    Reduction,
    _check_reduction,
    _check_sequence,
    _check_targets,
    _check_unit,
    _fp32_region,
)
from brain_ai.errors import ConfigError, ShapeError
from brain_ai.physics.axes import TIME_DIM, batch_to_time_first

__all__ = [
    "accuracy_rate",
    "count_cross_entropy",
    "first_spike_time",
    "l1_rate_sparsity",
    "max_membrane_cross_entropy",
    "mse_count",
    "mse_membrane",
    "mse_temporal",
    "rate_cross_entropy",
    "temporal_cross_entropy",
]


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def _output_record(where: str, x: Tensor, name: str = "spikes") -> Tensor:
    _check_sequence(where, name, x, min_dim=3)
    if x.dim() != 3:
        raise ShapeError(where, f"{name} must be (B, T, C)", got=f"shape {tuple(x.shape)}",
                         expected="rank 3", hint=f"flatten the class axes: {name}.flatten(2)")
    return x


def _population_counts(where: str, counts: Tensor, num_classes: int | None) -> Tensor:
    """``(B, N) -> (B, num_classes)``: sum contiguous groups of ``N / num_classes`` neurons."""
    if num_classes is None:
        return counts
    n = counts.shape[-1]
    if not isinstance(num_classes, int) or num_classes < 1 or n % num_classes:
        raise ConfigError(where, "num_classes must divide the number of output neurons",
                          got=f"num_classes={num_classes}, outputs={n}",
                          expected="a positive divisor of the output size",
                          hint="use num_outputs = num_classes * neurons_per_class")
    return counts.reshape(counts.shape[0], num_classes, n // num_classes).sum(dim=-1)


def _weighted_nll(where: str, logp: Tensor, targets: Tensor, weight: Tensor | None,
                  reduction: str) -> Tensor:
    """snnTorch's ``LossFunctions`` reduction: with a weight, NLL 'none' then mean."""
    _check_reduction(where, reduction)
    if weight is None:
        return F.nll_loss(logp, targets, reduction=reduction)
    per = F.nll_loss(logp, targets, weight=weight, reduction="none")  # w[y_b] * nll_b
    if reduction == "mean":
        return per.mean()
    return per.sum() if reduction == "sum" else per


def _class_targets(targets: Tensor, num_classes: int, on: float, off: float,
                   dtype: torch.dtype = torch.float32) -> Tensor:
    """``(B,) -> (B, C)``: ``on`` at the target class, ``off`` elsewhere (documented rule)."""
    hot = F.one_hot(targets, num_classes).bool()
    on_t = torch.tensor(on, dtype=dtype, device=targets.device)
    off_t = torch.tensor(off, dtype=dtype, device=targets.device)
    return torch.where(hot, on_t, off_t)


# ----------------------------------------------------------------------------------------
# the functions (batch-first inputs, bit-identical values)
# ----------------------------------------------------------------------------------------


def count_cross_entropy(
    spikes: Tensor,
    targets: Tensor,
    *,
    num_classes: int | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Cross-entropy of spike counts: ``CE(sum_t s[:, t], y)``.

    snnTorch: ``SF.ce_count_loss(population_code=num_classes is not None,
    num_classes=num_classes, reduction=reduction, weight=weight)(batch_to_time_first(spikes),
    targets)``; equal values (conformance ``snntorch/loss/ce_count*``).

    Args:
        spikes: ``(B, T, N)``; counts are summed in float32.
        targets: ``(B,)`` class indices.
        num_classes: population code: ``N`` must be a multiple; classes own contiguous groups.
        weight: ``(C,)`` class weights; the weighted mean is ``mean_b(w[y_b] * nll_b)``
            (snnTorch's rule, not PyTorch's ``sum / sum(w)``).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).
    Returns:
        0-d tensor (or ``(B,)`` for ``"none"``).
    """
    where = "count_cross_entropy"
    _output_record(where, spikes)
    with _fp32_region(spikes):
        counts = _population_counts(where, spikes.float().sum(dim=TIME_DIM), num_classes)
        y = _check_targets(where, targets, counts.shape[0], counts.shape[1])
        logp = F.log_softmax(counts, dim=-1)
        return _weighted_nll(where, logp, y, weight, reduction)


def rate_cross_entropy(
    spikes: Tensor,
    targets: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Mean over time of the per-step cross-entropy: ``(1/T) sum_t CE(s[:, t], y)``.

    snnTorch: ``SF.ce_rate_loss(reduction=reduction, weight=weight)(batch_to_time_first(
    spikes), targets)``, which returns shape ``(1,)``; this returns a 0-d scalar (``(B,)`` for
    ``"none"``). The per-step losses are accumulated step by step in float32, in snnTorch's
    order, which is what makes the values bit-identical (a loop over ``T`` scalars; the work
    per step is vectorized over ``B`` and ``C``). The population-code branch of snnTorch needs
    a two-entry ``weight`` and is not reproduced.

    Args:
        spikes: ``(B, T, C)``.
        targets: ``(B,)`` class indices.
        weight: ``(C,)`` class weights (snnTorch's rule, see :func:`count_cross_entropy`).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
    """
    where = "rate_cross_entropy"
    _output_record(where, spikes)
    _check_reduction(where, reduction)
    b, t, c = spikes.shape
    y = _check_targets(where, targets, b, c)
    with _fp32_region(spikes):
        logp = batch_to_time_first(F.log_softmax(spikes.float(), dim=-1))  # (T, B, C) view
        inner: str = reduction if weight is None else "none"
        loss: Tensor = torch.zeros((b,) if inner == "none" else (), dtype=torch.float32,
                                   device=spikes.device)
        for logp_t in logp.unbind(0):  # snnTorch's summation order, no per-step indexing
            loss = loss + F.nll_loss(logp_t, y, weight=weight, reduction=inner)
        loss = loss / t
        if weight is not None and reduction == "mean":
            return loss.mean()
        if weight is not None and reduction == "sum":
            return loss.sum()
        return loss


def _count_targets(t: int, num_outputs: int, correct_rate: float, incorrect_rate: float,
                   num_classes: int | None) -> tuple[int, int]:
    """snnTorch's integer spike-count targets (``int()`` truncates toward zero)."""
    if num_classes is None:
        return int(t * correct_rate), int(t * incorrect_rate)
    per_class = num_outputs / num_classes
    return int(t * correct_rate * per_class), int(t * incorrect_rate * per_class)


def mse_count(
    spikes: Tensor,
    targets: Tensor,
    *,
    correct_rate: float = 1.0,
    incorrect_rate: float = 0.0,
    num_classes: int | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""MSE between spike counts and integer target counts, divided by ``T``.

    .. math::
        on = \lfloor T\,r_{on} \cdot g \rfloor,\; off = \lfloor T\,r_{off} \cdot g\rfloor,\quad
        \ell = \mathrm{MSE}\big(\textstyle\sum_t s_t,\ on\cdot[c = y] + off\cdot[c \ne y]\big) / T

    with ``g = N / num_classes`` for a population code (else 1) and the floor being Python's
    ``int()`` (e.g. ``T=7, correct_rate=0.75``: ``on = int(5.25) = 5``).

    snnTorch: ``SF.mse_count_loss(correct_rate, incorrect_rate, population_code=num_classes
    is not None, num_classes=num_classes, reduction=reduction)(batch_to_time_first(spikes),
    targets)``; equal values. ``weight`` is not offered (see the module docstring, item 4).

    Args:
        spikes: ``(B, T, N)``.
        targets: ``(B,)`` class indices.
        correct_rate, incorrect_rate: target firing probabilities in ``[0, 1]``.
        num_classes: population code (see :func:`count_cross_entropy`).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B, C)``).
    """
    where = "mse_count"
    _output_record(where, spikes)
    _check_reduction(where, reduction)
    _check_unit(where, "correct_rate", correct_rate)
    _check_unit(where, "incorrect_rate", incorrect_rate)
    t = spikes.shape[TIME_DIM]
    with _fp32_region(spikes):
        counts = _population_counts(where, spikes.float().sum(dim=TIME_DIM), num_classes)
        y = _check_targets(where, targets, counts.shape[0], counts.shape[1])
        on, off = _count_targets(t, spikes.shape[-1], correct_rate, incorrect_rate, num_classes)
        target = _class_targets(y, counts.shape[1], float(on), float(off))
        return F.mse_loss(counts, target, reduction=reduction) / t


def mse_membrane(
    membrane: Tensor,
    targets: Tensor,
    *,
    on_target: float = 1.0,
    off_target: float = 0.0,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Mean over time of ``MSE(v[:, t], on*[c = y] + off*[c != y])``.

    snnTorch: ``SF.mse_membrane_loss(time_var_targets=False, on_target, off_target,
    reduction)(batch_to_time_first(membrane), targets)``, which returns shape ``(1,)``; equal
    values whenever ``off_target >= 0`` or ``on_target <= off_target``. With
    ``on_target > off_target`` and ``off_target < 0`` snnTorch's ``clamp`` targets ``0`` for
    the incorrect classes instead of ``off_target`` (guard
    ``snntorch/loss/mse_membrane/negative_off``); this function targets ``off_target``.
    Accumulated per step in snnTorch's order (see :func:`rate_cross_entropy`).

    Args:
        membrane: ``(B, T, C)``.
        targets: ``(B,)`` class indices.
        on_target, off_target: membrane targets of the correct / other classes.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B, C)``).
    """
    where = "mse_membrane"
    _output_record(where, membrane, "membrane")
    _check_reduction(where, reduction)
    b, t, c = membrane.shape
    y = _check_targets(where, targets, b, c)
    with _fp32_region(membrane):
        target = _class_targets(y, c, float(on_target), float(off_target))
        v = batch_to_time_first(membrane.float())  # (T, B, C) view
        loss: Tensor = torch.zeros((b, c) if reduction == "none" else (), dtype=torch.float32,
                                   device=membrane.device)
        for v_t in v.unbind(0):  # snnTorch's summation order, no per-step indexing
            loss = loss + F.mse_loss(v_t, target, reduction=reduction)
        return loss / t


def max_membrane_cross_entropy(
    membrane: Tensor,
    targets: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Cross-entropy of the per-neuron maximum over time: ``CE(max_t v[:, t], y)``.

    The maximum is ``Tensor.max(dim)`` (gradient to one arg-max step, as in snnTorch; not
    ``amax``, which splits it among ties). snnTorch: ``SF.ce_max_membrane_loss(reduction,
    weight)(batch_to_time_first(membrane), targets)``; equal values.

    Args:
        membrane: ``(B, T, C)``.
        targets: ``(B,)`` class indices.
        weight: ``(C,)`` class weights (snnTorch's rule, see :func:`count_cross_entropy`).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
    """
    where = "max_membrane_cross_entropy"
    _output_record(where, membrane, "membrane")
    b, _, c = membrane.shape
    y = _check_targets(where, targets, b, c)
    with _fp32_region(membrane):
        peak = membrane.float().max(dim=TIME_DIM).values  # (B, C)
        return _weighted_nll(where, F.log_softmax(peak, dim=-1), y, weight, reduction)


class _FirstSpikeTime(torch.autograd.Function):
    """First spike step with snnTorch's sign-estimator gradient, vectorized.

    Forward: ``(B, T, N) -> (B, N)``, index of the first nonzero step, ``T - 1`` if none.
    Backward: ``-grad`` at ``[b, t_first, n]`` (also when ``t_first = T - 1`` is a no-spike
    placeholder, as in snnTorch), zero elsewhere.
    """

    @staticmethod
    def forward(ctx: Any, spikes: Tensor) -> Tensor:
        fired = spikes != 0
        t = spikes.shape[TIME_DIM]
        first = fired.to(torch.uint8).argmax(dim=TIME_DIM)  # first max index; 0 if none
        first = torch.where(fired.any(dim=TIME_DIM), first, torch.full_like(first, t - 1))
        ctx.save_for_backward(first)
        ctx.spike_shape = spikes.shape
        ctx.spike_dtype = spikes.dtype
        return first.to(torch.float32)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (first,) = ctx.saved_tensors
        out = grad.new_zeros(ctx.spike_shape, dtype=ctx.spike_dtype)
        src = (-grad).to(ctx.spike_dtype).unsqueeze(TIME_DIM)
        out.scatter_(TIME_DIM, first.unsqueeze(TIME_DIM), src)
        return out


def first_spike_time(spikes: Tensor) -> Tensor:
    """Index of the first spike of each neuron, ``T - 1`` where a neuron never fires.

    The gradient is snnTorch's ``SpikeTime.FirstSpike`` sign estimator: ``-1`` times the
    incoming gradient at the first-spike step.

    Args:
        spikes: ``(B, T, N)`` binary spike record (float, requires grad or not).
    Returns:
        ``(B, N)`` first-spike steps, float32 (exact integers for any ``T``; snnTorch uses the
        spike dtype, the same for float32 records).
    """
    _output_record("first_spike_time", spikes)
    out: Tensor = _FirstSpikeTime.apply(spikes)
    return out


def temporal_cross_entropy(
    spikes: Tensor,
    targets: Tensor,
    *,
    inverse: Literal["negate", "reciprocal"] = "negate",
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Cross-entropy of the inverted first-spike time (earlier spike = larger logit).

    ``logits = -t_first`` (``"negate"``) or ``1 / (t_first + 1)`` (``"reciprocal"``), with
    ``t_first`` from :func:`first_spike_time`; then ``F.cross_entropy(logits, y, weight,
    reduction)`` (PyTorch's weighted mean, as snnTorch here). snnTorch:
    ``SF.ce_temporal_loss(inverse, reduction, weight)(batch_to_time_first(spikes), targets)``;
    equal values and gradients (snnTorch's backward is a Python loop over ``B x N``; this one is
    a scatter). Defined for binary spike records.

    Args:
        spikes: ``(B, T, C)`` binary.
        targets: ``(B,)`` class indices.
        inverse: ``"negate"`` | ``"reciprocal"``.
        weight: ``(C,)`` class weights.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
    """
    where = "temporal_cross_entropy"
    _output_record(where, spikes)
    _check_reduction(where, reduction)
    if inverse not in ("negate", "reciprocal"):
        raise ConfigError(where, "unknown inverse", got=repr(inverse),
                          expected="'negate' | 'reciprocal'", hint="pick one of the two")
    b, _, c = spikes.shape
    y = _check_targets(where, targets, b, c)
    t_first = first_spike_time(spikes)
    logits = -t_first if inverse == "negate" else 1 / (t_first + 1)
    with _fp32_region(spikes):
        return F.cross_entropy(logits.float(), y, weight=weight, reduction=reduction)


def mse_temporal(
    spikes: Tensor,
    targets: Tensor,
    *,
    on_target: int = 0,
    off_target: int = -1,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""MSE between first-spike times and target times, both divided by ``T``.

    Target time: ``on_target`` for the correct class, ``off_target`` for the others; a negative
    time ``t`` means ``T + t`` (``-1`` = last step). The defaults ask the correct neuron to fire
    at ``t = 0`` and the others at ``T - 1``, which is what snnTorch's docstring describes.

    snnTorch: ``SF.mse_temporal_loss(target_is_time=False, on_target, off_target,
    tolerance=0, multi_spike=False, reduction)(batch_to_time_first(spikes), targets)``. Equal
    values whenever ``off_target >= 0`` or ``on_target <= off_target`` (case
    ``snntorch/loss/mse_temporal/on2_off8``). snnTorch's *defaults* differ: its ``clamp`` turns
    every target into ``0`` (guard ``snntorch/loss/mse_temporal/defaults``). ``tolerance`` and
    ``multi_spike`` are not reproduced.

    Args:
        spikes: ``(B, T, C)`` binary.
        targets: ``(B,)`` class indices.
        on_target, off_target: target steps (negative counts from the end).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B, C)``).
    """
    where = "mse_temporal"
    _output_record(where, spikes)
    _check_reduction(where, reduction)
    b, t, c = spikes.shape
    y = _check_targets(where, targets, b, c)
    steps = []
    for name, value in (("on_target", on_target), ("off_target", off_target)):
        if not isinstance(value, int) or isinstance(value, bool) or value < -t:
            raise ConfigError(where, f"{name} is not a valid step", got=value,
                              expected=f"an int >= -{t} (T={t})",
                              hint="negative steps count from the end (-1 = last step); steps "
                                   ">= T mean 'not within the window'")
        steps.append(float(value if value >= 0 else t + value))
    t_first = first_spike_time(spikes)
    with _fp32_region(spikes):
        target = _class_targets(y, c, steps[0], steps[1])
        return F.mse_loss(t_first.float() / t, target / t, reduction=reduction)


def l1_rate_sparsity(spikes: Tensor, lam: float = 1e-5) -> Tensor:
    """``lam * sum(spikes)`` over every element (float32 accumulation).

    snnTorch: ``SF.l1_rate_sparsity(Lambda=lam)(batch_to_time_first(spikes))``; equal values
    (the sum is over all axes, so the layout does not matter for binary records). Note that
    this *does* scale with ``B``, ``T`` and ``N``;
    :class:`~brain_ai.core.losses.SpikeRateRegularization` does not.

    Args:
        spikes: ``(B, T, ...)``.
        lam: the factor (snnTorch's ``Lambda``).
    """
    _check_sequence("l1_rate_sparsity", "spikes", spikes, min_dim=2)
    with _fp32_region(spikes):
        return lam * torch.sum(spikes.float())


def accuracy_rate(spikes: Tensor, targets: Tensor, *, num_classes: int | None = None) -> float:
    """Fraction of samples whose most active output (by count) is the target.

    Ties go to the lowest index (``Tensor.max(dim)``, as snnTorch). snnTorch:
    ``SF.accuracy_rate(batch_to_time_first(spikes), targets, population_code=num_classes is
    not None, num_classes=num_classes)`` (a ``numpy.float64``); this returns a Python float
    with the same value.

    Args:
        spikes: ``(B, T, N)``.
        targets: ``(B,)`` class indices.
        num_classes: population code (see :func:`count_cross_entropy`).
    """
    where = "accuracy_rate"
    _output_record(where, spikes)
    with torch.no_grad(), _fp32_region(spikes):
        counts = _population_counts(where, spikes.float().sum(dim=TIME_DIM), num_classes)
        y = _check_targets(where, targets, counts.shape[0], counts.shape[1])
        idx = counts.max(dim=1).indices
        return float((idx == y).double().mean())
