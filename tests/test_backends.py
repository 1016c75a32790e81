"""Backends: unsupported combinations raise with the reason; defaults and scoping."""

from __future__ import annotations

import pytest
import torch

from brain_ai.backends import get_default_backend, set_default_backend, use_backend
from brain_ai.core.neurons import AdaptiveLIFNeuron, LIFNeuron
from brain_ai.errors import ConfigError, ConversionError


def test_native_default_subtract_cannot_run_on_snntorch() -> None:
    """brain_ai's immediate subtract reset has no snnTorch counterpart: it must raise."""
    neuron = LIFNeuron(beta=0.9, backend="snntorch", features=4)
    with pytest.raises(ConversionError, match="immediate subtract"):
        neuron(torch.rand(2, 5, 4))


def test_adaptive_neuron_cannot_run_on_snntorch() -> None:
    neuron = AdaptiveLIFNeuron(beta=0.9, backend="snntorch", features=4)
    with pytest.raises(ConversionError, match="no counterpart"):
        neuron(torch.rand(2, 5, 4))


def test_use_backend_scopes_and_restores() -> None:
    assert get_default_backend() == "native"
    with use_backend("snntorch"):
        assert get_default_backend() == "snntorch"
    assert get_default_backend() == "native"
    set_default_backend("native")
    with pytest.raises(ConfigError, match="Hint:"):
        set_default_backend("norse")


def test_snntorch_backend_leaves_no_hidden_state_and_shares_parameters() -> None:
    """After a call the peer module holds no membrane; the peer's beta IS the neuron's."""
    neuron = LIFNeuron(beta=0.8, reset_timing="delayed", beta_clamp=(0.0, 1.0),
                       learn_beta=True, backend="snntorch", features=3)
    x = torch.tensor([[[0.6, 1.2, 0.0], [0.6, 0.0, 2.0]]])
    spikes, state = neuron(x)
    peer = neuron.__dict__["_peer_modules"]["snntorch"]
    assert peer.beta is neuron.beta
    assert float(peer.mem.abs().sum()) == 0.0
    # hand-computed (delayed subtract, beta 0.8, thr 1): t0 v=[.6,1.2,0] s=[0,1,0];
    # t1 v=[.8*.6+.6, .8*1.2+0-1, 2] = [1.08, -0.04, 2] s=[1,0,1]
    torch.testing.assert_close(spikes, torch.tensor([[[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]]),
                               rtol=0, atol=0)
    torch.testing.assert_close(state.v, torch.tensor([[1.08, -0.04, 2.0]]))


def test_set_backend_on_a_whole_model_gives_identical_numbers() -> None:
    from torch import nn

    from brain_ai.backends import set_backend
    from brain_ai.core.snn import SpikingSequential

    torch.manual_seed(0)
    net = SpikingSequential(
        nn.Linear(6, 8), LIFNeuron(beta=0.9, reset_timing="delayed", beta_clamp=(0.0, 1.0)),
        nn.Linear(8, 3), LIFNeuron(beta=0.8, reset="zero", beta_clamp=(0.0, 1.0)))
    x = torch.rand(2, 40, 6, generator=torch.Generator().manual_seed(1)) * 2
    native = net(x, return_details=True)
    set_backend(net, "snntorch")
    peer = net(x, return_details=True)
    for name in native.spikes:
        torch.testing.assert_close(peer.spikes[name], native.spikes[name], rtol=0, atol=0)
        torch.testing.assert_close(peer.membrane[name], native.membrane[name], rtol=0, atol=0)
    assert float(native.spikes["1"].detach().mean()) > 0.05
