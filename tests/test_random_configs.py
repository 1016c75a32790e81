"""Random configurations: converted neurons equal their peers on every draw (seeded fuzz)."""

from __future__ import annotations

import random

import pytest
import snntorch as snn
import torch
from snntorch import surrogate as sn_sg
from spikingjelly.activation_based import neuron as sj_neuron
from spikingjelly.activation_based import surrogate as sj_surrogate

from brain_ai.adapters.snntorch import from_snntorch, to_snntorch
from brain_ai.adapters.spikingjelly import from_spikingjelly, to_spikingjelly
from brain_ai.conformance.cases_snntorch import compare
from brain_ai.conformance.cases_spikingjelly import paired_run

T, B, N = 60, 3, 8


def _snntorch_neuron(rng: random.Random) -> torch.nn.Module:
    kind = rng.choice(["Leaky", "Synaptic", "RLeaky", "RSynaptic"])
    learn = rng.random() < 0.5
    per_neuron = rng.random() < 0.5

    def value(lo: float, hi: float) -> float | torch.Tensor:
        if per_neuron:
            return torch.rand(N, generator=torch.Generator().manual_seed(rng.randrange(1 << 30))
                              ) * (hi - lo) + lo
        return rng.uniform(lo, hi)

    kw: dict[str, object] = dict(
        beta=value(0.5, 1.0), threshold=value(0.5, 1.5),
        reset_mechanism=rng.choice(["subtract", "zero", "none"]),
        reset_delay=rng.random() < 0.5, learn_beta=learn, learn_threshold=learn,
        spike_grad=rng.choice([sn_sg.atan(alpha=rng.uniform(1, 4)),
                               sn_sg.fast_sigmoid(slope=rng.uniform(5, 30)),
                               sn_sg.straight_through_estimator()]))
    if kind in ("Synaptic", "RSynaptic"):
        kw.update(alpha=value(0.3, 0.95), learn_alpha=learn)
    if kind in ("RLeaky", "RSynaptic"):
        if rng.random() < 0.5:
            kw.update(linear_features=N)
        else:
            kw.update(all_to_all=False, V=value(-0.5, 0.5))
    if kind == "Leaky" and rng.random() < 0.3:
        kw.update(graded_spikes_factor=rng.uniform(0.5, 2.0))
    return getattr(snn, kind)(**kw)


@pytest.mark.parametrize("seed", range(40))
def test_random_snntorch_neuron_converts_exactly(seed: int) -> None:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    peer = _snntorch_neuron(rng)
    x = torch.rand(T, B, N, generator=torch.Generator().manual_seed(seed)) * 0.8 - 0.15
    m = compare(peer, from_snntorch(peer), x, seed)
    assert m["spikes"] == 0 and m["membrane"] == 0.0, m
    assert m["grad"] <= 1e-6, m


@pytest.mark.parametrize("seed", range(10))
def test_random_snntorch_neuron_round_trips(seed: int) -> None:
    """peer -> brain_ai -> peer keeps every parameter and rule (where snnTorch has them)."""
    peer = _snntorch_neuron(random.Random(seed))
    back = to_snntorch(from_snntorch(peer))
    assert type(back) is type(peer)
    assert back.state_function.__name__ == peer.state_function.__name__
    for name, p in peer.state_dict().items():
        torch.testing.assert_close(back.state_dict()[name], p, rtol=0, atol=0)


def _sj_node(rng: random.Random) -> torch.nn.Module:
    surrogate = rng.choice([sj_surrogate.Sigmoid(alpha=rng.uniform(2, 6)),
                            sj_surrogate.ATan(alpha=rng.uniform(1, 3)),
                            sj_surrogate.PiecewiseQuadratic(), sj_surrogate.Erf()])
    v_reset = rng.choice([None, 0.0, -0.2])
    common = dict(v_threshold=rng.uniform(0.5, 1.5), v_reset=v_reset,
                  surrogate_function=surrogate, detach_reset=rng.random() < 0.5)
    kind = rng.choice(["IF", "LIF", "PLIF"])
    if kind == "IF":
        return sj_neuron.IFNode(**common)
    if kind == "LIF":
        return sj_neuron.LIFNode(tau=rng.uniform(1.5, 5.0), decay_input=rng.random() < 0.5,
                                 **common)
    return sj_neuron.ParametricLIFNode(init_tau=rng.uniform(1.5, 5.0),
                                       decay_input=rng.random() < 0.5, **common)


@pytest.mark.parametrize("seed", range(30))
def test_random_spikingjelly_node_converts_exactly(seed: int) -> None:
    rng = random.Random(seed)
    node = _sj_node(rng)
    step_mode = rng.choice(["s", "m"])
    x = torch.randn(B, T, N, generator=torch.Generator().manual_seed(seed)) * 0.6 + 0.4
    if rng.random() < 0.5:
        m = paired_run(node, from_spikingjelly(node), x, step_mode, seed).metrics()
    else:
        neuron = from_spikingjelly(node)
        m = paired_run(to_spikingjelly(neuron, step_mode=step_mode), neuron, x, step_mode,
                       seed).metrics()
    assert m["spikes"] == 0 and m["membrane"] == 0.0, m
    assert m["grad"] <= 1e-6, m
