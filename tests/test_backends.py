"""Backends: unsupported combinations raise with the reason; defaults and scoping."""

from __future__ import annotations

import pytest
import torch

from brain_ai.core.backends import get_default_backend, set_default_backend, use_backend
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
    from brain_ai.adapters.backends import _SNNTORCH_PEERS

    peer = _SNNTORCH_PEERS[neuron][1]
    assert "_peer_modules" not in vars(neuron)  # nothing stored on the neuron
    assert peer.beta is neuron.beta
    assert float(peer.mem.abs().sum()) == 0.0
    # hand-computed (delayed subtract, beta 0.8, thr 1): t0 v=[.6,1.2,0] s=[0,1,0];
    # t1 v=[.8*.6+.6, .8*1.2+0-1, 2] = [1.08, -0.04, 2] s=[1,0,1]
    torch.testing.assert_close(spikes, torch.tensor([[[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]]),
                               rtol=0, atol=0)
    torch.testing.assert_close(state.v, torch.tensor([[1.08, -0.04, 2.0]]))


def test_set_backend_on_a_whole_model_gives_identical_numbers() -> None:
    from torch import nn

    from brain_ai.adapters.backends import set_backend
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


def test_spikingjelly_backend_follows_load_state_dict() -> None:
    """SJ keeps θ and τ as floats: the backend must see parameters loaded after first use."""
    neuron = LIFNeuron(tau=2.0, charge="tau_input", reset="zero", comparator=">=",
                       backend="spikingjelly", features=4)
    x = torch.full((1, 6, 4), 0.9)
    neuron(x)
    state = neuron.state_dict()
    state["threshold"] = torch.tensor(2.5)
    state["tau"] = torch.tensor(5.0)
    neuron.load_state_dict(state)
    peer_spikes, _ = neuron(x)
    neuron.backend = "native"
    native_spikes, _ = neuron(x)
    torch.testing.assert_close(peer_spikes, native_spikes, rtol=0, atol=0)
    assert float(native_spikes.sum()) == 0.0  # v -> 0.9 < 2.5: never fires


def test_detach_reset_cannot_run_on_snntorch() -> None:
    neuron = LIFNeuron(beta=0.8, reset="zero", detach_reset=True, beta_clamp=(0.0, 1.0),
                       backend="snntorch", features=2)
    with pytest.raises(ConversionError, match="detach_reset"):
        neuron(torch.rand(1, 3, 2))


def test_changing_a_rule_rebuilds_the_snntorch_peer_and_rechecks_it() -> None:
    neuron = LIFNeuron(beta=0.8, reset_timing="delayed", beta_clamp=(0.0, 1.0),
                       backend="snntorch", features=2)
    neuron(torch.rand(1, 3, 2))
    neuron.reset_timing = "immediate"  # immediate subtract: snnTorch has no such rule
    with pytest.raises(ConversionError, match="immediate subtract"):
        neuron(torch.rand(1, 3, 2))
