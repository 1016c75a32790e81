"""Numbers for the snnTorch-compatible functional losses (brain_ai.core.snntorch_losses).

Peer parity with ``snntorch.functional`` is proven by the registered conformance cases
(``conformance/cases_losses.py``); here the hand-checkable details are pinned: integer count
targets, the first-spike-time gradient, and the house-format errors.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from brain_ai.core.snntorch_losses import first_spike_time, mse_count
from brain_ai.errors import ConfigError


def rec(*steps: list[float]) -> Tensor:
    """``rec([a, b], [c, d], ...)``: one sample, one row per time step -> ``(1, T, N)``."""
    return torch.tensor([list(s) for s in steps], dtype=torch.float32).unsqueeze(0)


def close(a: Tensor | float, b: float, tol: float = 1e-6) -> None:
    value = float(a.detach()) if isinstance(a, Tensor) else float(a)
    torch.testing.assert_close(torch.tensor(value, dtype=torch.float64),
                               torch.tensor(b, dtype=torch.float64), rtol=0, atol=tol)


def test_mse_count_truncation() -> None:
    """T=7, correct .75 -> on = int(5.25) = 5, incorrect .3 -> off = int(2.1) = 2.
    One sample, counts [7, 0], target class 0: ((7-5)^2 + (0-2)^2) / 2 / 7 = 4/7."""
    s = torch.zeros(1, 7, 2)
    s[0, :, 0] = 1
    close(mse_count(s, torch.tensor([0]), correct_rate=0.75, incorrect_rate=0.3), 4 / 7)


def test_first_spike_time_and_gradient() -> None:
    """Neuron 0 first fires at t=1, neuron 1 never (placeholder T-1 = 2, gradient there too,
    as snnTorch's sign estimator)."""
    s = rec([0, 0], [1, 0], [1, 0]).requires_grad_(True)
    t = first_spike_time(s)
    assert t.tolist() == [[1.0, 2.0]]
    t.sum().backward()
    assert s.grad is not None
    assert s.grad[0].tolist() == [[0, 0], [-1, 0], [0, -1]]


def test_errors_follow_house_format() -> None:
    with pytest.raises(ConfigError, match="correct_rate is outside"):
        mse_count(torch.zeros(1, 2, 2), torch.tensor([0]), correct_rate=1.5)
