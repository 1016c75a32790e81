"""Regression tests for review findings: shapes, dtypes and modes that used to slip through."""

from __future__ import annotations

import pytest
import torch

from brain_ai.core.neurons import LIFNeuron, RecurrentLIFNeuron
from brain_ai.errors import ConfigError, DTypeError, ShapeError


def test_declared_features_are_checked_against_the_input() -> None:
    with pytest.raises(ShapeError, match="feature shape"):
        LIFNeuron(features=4)(torch.rand(2, 3, 5))


@pytest.mark.parametrize("beta", [torch.rand(3), torch.rand(2, 4)])
def test_per_neuron_parameters_must_fit_the_features(beta: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="does not fit"):
        LIFNeuron(beta=beta * 0.5, features=4)


@pytest.mark.parametrize("bad", [0, -3, True])
def test_features_must_be_positive_ints(bad: object) -> None:
    with pytest.raises(ConfigError, match="Hint:"):
        LIFNeuron(features=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["chunk_size", "refractory_steps"])
def test_bools_are_not_counts(name: str) -> None:
    with pytest.raises(ConfigError, match="Hint:"):
        LIFNeuron(features=2, **{name: True})


def test_float64_parameter_keeps_the_state_dtype_fixed() -> None:
    """A float64 per-neuron beta: the state starts float64 (not float32 turning float64)."""
    lif = LIFNeuron(beta=torch.full((3,), 0.5, dtype=torch.float64), features=3)
    state = lif.reset_state(2)
    assert state.v.dtype == torch.float64
    _, after = lif(torch.ones(2, 4, 3))
    assert after.v.dtype == torch.float64


def test_converted_conv_recurrence_tells_step_from_sequence_by_rank() -> None:
    neuron = RecurrentLIFNeuron(2, recurrent="conv2d", beta=0.5)
    s_step, _ = neuron(torch.rand(3, 2, 5, 5))
    s_seq, _ = neuron(torch.rand(3, 4, 2, 5, 5))
    assert s_step.shape == (3, 2, 5, 5) and s_seq.shape == (3, 4, 2, 5, 5)


def test_recurrent_dtype_mismatch_is_a_house_error() -> None:
    neuron = RecurrentLIFNeuron(4, beta=0.5)
    with pytest.raises(DTypeError, match=r"\.to\(torch.float64\)"):
        neuron(torch.rand(2, 3, 4, dtype=torch.float64))
    double = RecurrentLIFNeuron(4, beta=0.5).double()
    spikes, state = double(torch.rand(2, 3, 4, dtype=torch.float64) * 3)
    assert state.v.dtype == torch.float64 and spikes.dtype == torch.float64


def test_stale_state_on_a_sequence_is_reported_as_a_sequence_error() -> None:
    lif = LIFNeuron(beta=0.9)
    stale = lif.reset_state(16, 4)
    with pytest.raises(ShapeError, match=r"LIFNeuron\.sequence: state\.v has shape \(16, 4\)"):
        lif(torch.rand(8, 3, 4), state=stale)
