"""The axis convention and the only place where the time axis is moved.

brain_ai is batch-first, time-second: ``(B, T, ...)``. Peers (snnTorch utilities,
SpikingJelly multi-step mode) are time-first ``(T, B, ...)``. Conversion at the boundary goes
through :func:`time_to_batch_first` / :func:`batch_to_time_first`; nothing else permutes.
"""

from __future__ import annotations

from torch import Tensor

from brain_ai.errors import ShapeError

__all__ = ["BATCH_DIM", "TIME_DIM", "batch_to_time_first", "time_to_batch_first"]

BATCH_DIM = 0
TIME_DIM = 1


def _check_rank(where: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise ShapeError(
            where,
            "input is not a tensor",
            got=type(x).__name__,
            expected="a torch.Tensor of rank >= 2",
            hint="convert with torch.as_tensor(...) first",
        )
    if x.dim() < 2:
        raise ShapeError(
            where,
            "a sequence needs a batch and a time axis",
            got=f"shape {tuple(x.shape)}",
            expected="rank >= 2",
            hint="add the missing axis with x.unsqueeze(0)",
        )


def time_to_batch_first(x: Tensor) -> Tensor:
    """``(T, B, ...) -> (B, T, ...)``. Returns a view (no copy)."""
    _check_rank("time_to_batch_first", x)
    return x.transpose(0, 1)


def batch_to_time_first(x: Tensor) -> Tensor:
    """``(B, T, ...) -> (T, B, ...)``. Returns a view (no copy)."""
    _check_rank("batch_to_time_first", x)
    return x.transpose(0, 1)
