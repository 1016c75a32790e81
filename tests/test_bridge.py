"""snnTorch -> brain_ai -> SpikingJelly: what is exact, what needs opt-in, what raises."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch

from brain_ai.adapters.bridge import canonical_timing, snntorch_to_spikingjelly
from brain_ai.adapters.snntorch import from_snntorch
from brain_ai.core.neurons import LIFNeuron
from brain_ai.errors import ConversionError


def test_default_leaky_has_no_spikingjelly_counterpart() -> None:
    with pytest.raises(ConversionError, match="reset timing 'delayed'"):
        snntorch_to_spikingjelly(snn.Leaky(beta=0.9), allow_tie_rule_change=True)


def test_tie_rule_change_needs_opt_in() -> None:
    with pytest.raises(ConversionError, match="h >= θ"):
        snntorch_to_spikingjelly(snn.Leaky(beta=0.9, reset_mechanism="zero",
                                           reset_delay=False))


def test_compensated_zero_is_rewritten_only_where_provably_immediate() -> None:
    ours = from_snntorch(snn.Leaky(beta=0.9, reset_mechanism="zero", reset_delay=False))
    assert ours.reset_timing == "compensated_pre"
    assert canonical_timing(ours).reset_timing == "immediate"
    negative = LIFNeuron(beta=0.9, threshold=-0.5, reset="zero",
                         reset_timing="compensated")  # a reset membrane (0) is above θ
    assert canonical_timing(negative).reset_timing == "compensated"
    sub = from_snntorch(snn.Leaky(beta=0.9, reset_delay=False))
    assert canonical_timing(sub).reset_timing == "compensated"


def test_compensated_zero_equals_immediate_zero_numerically() -> None:
    """The rule behind the rewrite, on inputs that spike often (hand-checkable: x=1.5 ->
    spike, reset to 0, and the carried reset never fires)."""
    x = torch.rand(3, 200, 5, generator=torch.Generator().manual_seed(0)) * 2.0
    a = LIFNeuron(beta=0.8, reset="zero", reset_timing="compensated", features=5)
    b = LIFNeuron(beta=0.8, reset="zero", reset_timing="immediate", features=5)
    sa, _, ta = a.sequence(x, record=("v",))
    sb, _, tb = b.sequence(x, record=("v",))
    torch.testing.assert_close(sa, sb, rtol=0, atol=0)
    torch.testing.assert_close(ta["v"], tb["v"], rtol=0, atol=0)
    assert 0.05 < float(sa.mean()) < 0.9
