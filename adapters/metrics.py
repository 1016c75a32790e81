"""Numbers that conformance cases report: the one place comparisons are defined."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from brain_ai.errors import ShapeError

__all__ = ["max_abs_diff", "max_rel_diff", "max_rel_grad", "spike_mismatches"]


def spike_mismatches(a: Tensor, b: Tensor) -> int:
    """Number of elements where two spike tensors differ (shapes must match)."""
    if a.shape != b.shape:
        raise ShapeError("spike_mismatches", "the spike tensors have different shapes",
                         got=tuple(a.shape), expected=tuple(b.shape),
                         hint="compare trains in the same layout (use the axis helpers)")
    return int((a.detach().float() != b.detach().float()).sum().item())


def max_abs_diff(a: Tensor, b: Tensor) -> float:
    """``max |a - b|`` in float64 (``inf`` if shapes differ, ``0`` for empty tensors)."""
    if a.shape != b.shape:
        return float("inf")
    if a.numel() == 0:
        return 0.0
    return float((a.detach().double() - b.detach().double()).abs().max().item())


def max_rel_diff(a: Tensor, b: Tensor) -> float:
    """``max |a - b| / max(|b|_inf, tiny)``: relative to the reference's largest entry.

    Scaling by the tensor's norm rather than elementwise keeps near-zero entries (where
    float rounding dominates) from inflating the number.
    """
    if a.shape != b.shape:
        return float("inf")
    if a.numel() == 0:
        return 0.0
    a64, b64 = a.detach().double(), b.detach().double()
    scale = max(float(b64.abs().max().item()), 1e-30)
    return float((a64 - b64).abs().max().item()) / scale


def max_rel_grad(
    ours: Iterable[Tensor | None], theirs: Iterable[Tensor | None]
) -> float:
    """Largest :func:`max_rel_diff` over paired gradients.

    A gradient missing on one side counts as zeros there: equal to an all-zero gradient on the
    other side, and a relative difference of 1 against any non-zero one.
    """
    worst = 0.0
    for a, b in zip(ours, theirs, strict=True):
        if a is None and b is None:
            continue
        if a is None:
            a = torch.zeros_like(b)  # type: ignore[arg-type]
        if b is None:
            b = torch.zeros_like(a)
        worst = max(worst, max_rel_diff(a, b))
    return worst
