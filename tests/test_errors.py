"""Bad input raises a clear error: the right class (also a ``ValueError``), the public name of
the function first, what was wrong with ``got`` / ``expected``, and a ``Hint:``. Nothing is
silently repaired."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from brain_ai.config import SNNConfig
from brain_ai.core.neurons import (
    AdaptiveLIFNeuron,
    AdvancedLIFNeuron,
    LIFNeuron,
    RecurrentLIFNeuron,
)
from brain_ai.core.surrogates import ATan, FastSigmoid, Sigmoid, surrogate_from_name
from brain_ai.core.unroll import snn_unroll
from brain_ai.errors import BrainAIError, ConfigError, ShapeError, format_error
from brain_ai.physics.axes import batch_to_time_first, time_to_batch_first
from brain_ai.physics.state import SpikingState


def _lif() -> LIFNeuron:
    return LIFNeuron(features=4)


def _cell(x, s):
    return x, s


CASES: list[tuple[str, Callable[[], object], type[BrainAIError], str]] = [
    # ---- state / input shape
    ("state batch mismatch, step", lambda: _lif()(torch.zeros(2, 4), _lif().reset_state(3)),
     ShapeError, "LIFNeuron.step"),
    ("state feature mismatch, step", lambda: _lif()(torch.zeros(2, 4),
                                                     LIFNeuron().reset_state(2, 5)),
     ShapeError, "LIFNeuron.step"),
    ("state batch mismatch, sequence", lambda: _lif().sequence(torch.zeros(2, 5, 4),
                                                                _lif().reset_state(3)),
     ShapeError, "LIFNeuron.sequence"),
    ("state batch mismatch, sequence via forward",
     lambda: _lif()(torch.zeros(2, 5, 4), _lif().reset_state(3)), ShapeError, "LIFNeuron."),
    ("state missing a field", lambda: AdaptiveLIFNeuron(features=4)(
        torch.zeros(2, 4), LIFNeuron(features=4).reset_state(2)),
     ShapeError, "AdaptiveLIFNeuron.step"),
    ("state of the wrong type", lambda: _lif()(torch.zeros(2, 4), {"v": torch.zeros(2, 4)}),
     ShapeError, "LIFNeuron."),
    ("rank too high", lambda: _lif()(torch.zeros(2, 5, 4, 4)), ShapeError, "LIFNeuron.forward"),
    ("rank too low", lambda: _lif()(torch.zeros(4)), ShapeError, "LIFNeuron.forward"),
    ("mode unknown", lambda: LIFNeuron()(torch.zeros(4, 3)), ShapeError, "LIFNeuron.forward"),
    ("integer input", lambda: _lif()(torch.zeros(2, 4, dtype=torch.long)), ShapeError,
     "LIFNeuron.forward"),
    ("sequence of rank 1", lambda: _lif().sequence(torch.zeros(4)), ShapeError,
     "LIFNeuron.sequence"),
    ("reset_state batch 0", lambda: _lif().reset_state(0), ShapeError, "LIFNeuron.reset_state"),
    ("reset_state shape unknown", lambda: LIFNeuron().reset_state(2), ShapeError,
     "LIFNeuron.reset_state"),
    ("unroll rank 1", lambda: snn_unroll(_cell, torch.zeros(5), None), ShapeError, "snn_unroll"),
    ("unroll no steps", lambda: snn_unroll(_cell, torch.zeros(2, 0, 3), None), ShapeError,
     "snn_unroll"),
    ("time_to_batch_first rank 1", lambda: time_to_batch_first(torch.zeros(3)), ShapeError,
     "time_to_batch_first"),
    ("batch_to_time_first not a tensor", lambda: batch_to_time_first([[1.0]]), ShapeError,
     "batch_to_time_first"),
    # ---- beta / tau / ranges
    ("beta above 1", lambda: LIFNeuron(beta=1.5), ConfigError, "LIFNeuron"),
    ("beta negative", lambda: LIFNeuron(beta=-0.1), ConfigError, "LIFNeuron"),
    ("beta 1 outside the default clamp", lambda: LIFNeuron(beta=1.0), ConfigError, "LIFNeuron"),
    ("per-neuron beta out of range", lambda: LIFNeuron(beta=torch.tensor([0.5, 1.2])),
     ConfigError, "LIFNeuron"),
    ("beta NaN", lambda: LIFNeuron(beta=float("nan")), ConfigError, "LIFNeuron"),
    ("beta None with the beta charge", lambda: LIFNeuron(beta=None), ConfigError, "LIFNeuron"),
    ("sigmoid beta at 0", lambda: LIFNeuron(beta=0.0, beta_param="sigmoid"), ConfigError,
     "LIFNeuron"),
    ("beta_clamp reversed", lambda: LIFNeuron(beta_clamp=(0.5, 0.2)), ConfigError, "LIFNeuron"),
    ("tau below 1", lambda: LIFNeuron(beta=None, tau=0.5), ConfigError, "LIFNeuron"),
    ("tau missing for a tau charge", lambda: LIFNeuron(charge="tau"), ConfigError, "LIFNeuron"),
    ("rate tau below 1", lambda: LIFNeuron(beta=None, tau=0.9, charge="rate"), ConfigError,
     "LIFNeuron"),
    ("alpha above 1", lambda: LIFNeuron(alpha=1.2), ConfigError, "LIFNeuron"),
    ("refractory negative", lambda: LIFNeuron(refractory_steps=-1), ConfigError, "LIFNeuron"),
    ("refractory with a delayed timing",
     lambda: LIFNeuron(refractory_steps=2, reset_timing="delayed"), ConfigError, "LIFNeuron"),
    ("adapt_decay above 1", lambda: AdaptiveLIFNeuron(adapt_decay=2.0), ConfigError,
     "AdaptiveLIFNeuron"),
    ("adapt_scale negative", lambda: AdaptiveLIFNeuron(adapt_scale=-1.0), ConfigError,
     "AdaptiveLIFNeuron"),
    ("tau_range below 1", lambda: AdvancedLIFNeuron(4, tau_range=(0.5, 2.0)), ConfigError,
     "AdvancedLIFNeuron"),
    ("tau charge on the advanced neuron",
     lambda: AdvancedLIFNeuron(4, charge="tau", tau=2.0), ConfigError, "AdvancedLIFNeuron"),
    ("max_delay negative", lambda: AdvancedLIFNeuron(4, max_delay=-1), ConfigError,
     "AdvancedLIFNeuron"),
    ("linear recurrence on (C, H, W)", lambda: RecurrentLIFNeuron((2, 4, 4)), ConfigError,
     "RecurrentLIFNeuron"),
    ("conv recurrence on (H, W)", lambda: RecurrentLIFNeuron((4, 4), recurrent="conv2d"),
     ConfigError, "RecurrentLIFNeuron"),
    ("input projection on (C, H, W)",
     lambda: RecurrentLIFNeuron((2, 4, 4), recurrent="conv2d", in_features=3), ConfigError,
     "RecurrentLIFNeuron"),
    # ---- unknown names
    ("unknown reset", lambda: LIFNeuron(reset="soft"), ConfigError, "LIFNeuron"),
    ("unknown reset_timing", lambda: LIFNeuron(reset_timing="late"), ConfigError, "LIFNeuron"),
    ("unknown comparator", lambda: LIFNeuron(comparator="=>"), ConfigError, "LIFNeuron"),
    ("unknown charge", lambda: LIFNeuron(charge="exp"), ConfigError, "LIFNeuron"),
    ("unknown beta_param", lambda: LIFNeuron(beta_param="tanh"), ConfigError, "LIFNeuron"),
    ("unknown dtype_policy", lambda: LIFNeuron(dtype_policy="fp16"), ConfigError, "LIFNeuron"),
    ("unknown recurrence", lambda: RecurrentLIFNeuron(4, recurrent="dense"), ConfigError,
     "RecurrentLIFNeuron"),
    ("unknown surrogate name", lambda: surrogate_from_name("arctan"), ConfigError,
     "surrogate_from_name"),
    ("surrogate given as a string", lambda: LIFNeuron(surrogate="atan"), ConfigError,
     "LIFNeuron"),
    ("surrogate alpha 0", lambda: ATan(alpha=0.0), ConfigError, "ATan"),
    ("surrogate slope negative", lambda: FastSigmoid(slope=-1.0), ConfigError, "FastSigmoid"),
    ("surrogate alpha NaN", lambda: Sigmoid(alpha=float("nan")), ConfigError, "Sigmoid"),
    ("SNNConfig beta", lambda: SNNConfig(beta=1.5), ConfigError, "SNNConfig.beta"),
    ("SNNConfig reset", lambda: SNNConfig(reset="soft"), ConfigError, "SNNConfig.reset"),
    ("SNNConfig chunk_size", lambda: SNNConfig(chunk_size=0), ConfigError,
     "SNNConfig.chunk_size"),
    # ---- chunk size
    ("chunk_size 0 at construction", lambda: LIFNeuron(chunk_size=0), ConfigError, "LIFNeuron"),
    ("chunk_size 0 at call", lambda: _lif()(torch.zeros(2, 5, 4), chunk_size=0), ConfigError,
     "snn_unroll"),
    ("chunk_size negative", lambda: snn_unroll(_cell, torch.zeros(2, 5), None, chunk_size=-1),
     ConfigError, "snn_unroll"),
    ("chunk_size float", lambda: _lif()(torch.zeros(2, 5, 4), chunk_size=2.5), ConfigError,
     "snn_unroll"),
    ("chunk_size string", lambda: _lif()(torch.zeros(2, 5, 4), chunk_size="3"), ConfigError,
     "snn_unroll"),
]


@pytest.mark.parametrize(("name", "call", "cls", "where"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(name: str, call: Callable[[], object],
                                        cls: type[BrainAIError], where: str) -> None:
    with pytest.raises(cls) as info:
        call()
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, BrainAIError)
    msg = str(err)
    assert msg.startswith(where), msg
    assert "(got " in msg and "; expected " in msg, msg
    assert "\n  Hint: " in msg and len(msg.split("Hint: ")[1].strip()) > 5, msg
    assert err.hint and err.where.startswith(where.rstrip("."))


def test_shape_mismatch_names_both_shapes() -> None:
    """The house example: a stale state meets a new batch size; never broadcast."""
    n = LIFNeuron(features=100)
    with pytest.raises(ShapeError) as info:
        n(torch.zeros(8, 100), n.reset_state(16))
    msg = str(info.value)
    assert "(16, 100)" in msg and "(8, 100)" in msg and "never broadcast" in msg
    assert "reset_state" in msg.split("Hint:")[1]


def test_nothing_is_silently_repaired() -> None:
    """snnTorch replaces a mis-shaped state with zeros; brain_ai raises instead, and a state
    of the right shape with nonzero values is used as given (not reset)."""
    n = LIFNeuron(beta=0.5, reset="none", features=2)
    with pytest.raises(ShapeError):
        n(torch.zeros(1, 2), SpikingState(v=torch.ones(1, 3)))
    _, st = n(torch.zeros(1, 2), SpikingState(v=torch.ones(1, 2)))
    assert st.v.tolist() == [[0.5, 0.5]]


def test_format_error_shape() -> None:
    msg = format_error("f", "x is bad", got=1, expected=2, hint="fix it")
    assert msg == "f: x is bad (got 1; expected 2).\n  Hint: fix it"
