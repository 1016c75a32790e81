"""brain_ai as a PyTorch citizen: compile, vmap, functional_call, export, state_dict, pickle."""

from __future__ import annotations

import io
import pickle

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from brain_ai.core.neurons import LIFNeuron
from brain_ai.core.snn import SpikingSequential
from brain_ai.core.surrogates import ATan, FastSigmoid, Sigmoid
from brain_ai.physics.functional import lif_step
from brain_ai.physics.state import SpikingState


def _x(*shape: int, seed: int = 0, scale: float = 3.0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * scale - 0.5


def test_compile_fullgraph_step_and_unroll_no_recompile_on_beta_change() -> None:
    """No graph break (fullgraph=True); changing a learnable beta does not recompile."""
    from torch._dynamo.testing import CompileCounter

    neuron = LIFNeuron(beta=0.9, learn_beta=True, features=8)
    counter = CompileCounter()

    def unroll(x: torch.Tensor) -> torch.Tensor:
        return neuron(x)[0]

    compiled = torch.compile(unroll, fullgraph=True, backend=counter)
    x = _x(4, 10, 8)
    torch.testing.assert_close(compiled(x), unroll(x), rtol=0, atol=0)
    with torch.no_grad():
        neuron.beta.fill_(0.7)
    torch.testing.assert_close(compiled(x), unroll(x), rtol=0, atol=0)
    assert counter.frame_count == 1

    def step(x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, st = neuron.step(x, SpikingState(v))
        return s, st.v

    cstep = torch.compile(step, fullgraph=True, backend="aot_eager")
    v0 = torch.zeros(4, 8)
    for got, want in zip(cstep(x[:, 0], v0), step(x[:, 0], v0), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_vmap_over_explicit_state_equals_loop() -> None:
    neuron = LIFNeuron(beta=0.8, features=6)
    p = neuron.params()

    def f(x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, st = lif_step(x, SpikingState(v), p)
        return s, st.v

    x, v = _x(5, 3, 6), _x(5, 3, 6, seed=1, scale=1.0)
    s, v2 = vmap(f)(x, v)
    for i in range(5):
        si, vi = f(x[i], v[i])
        torch.testing.assert_close(s[i], si, rtol=0, atol=0)
        torch.testing.assert_close(v2[i], vi, rtol=0, atol=0)


def test_functional_call_and_func_grad_through_surrogate() -> None:
    """d(sum spikes)/dx at v=0, beta irrelevant: ATan(2) derivative 1/(1+(pi*(x-1))^2)."""
    neuron = LIFNeuron(beta=0.9, features=4)
    x = torch.tensor([[0.0, 0.5, 1.0, 2.0]])
    buffers = {k: v.clone() for k, v in neuron.named_buffers()}
    buffers["threshold"] = torch.tensor(0.5)
    out = functional_call(neuron, buffers, (x,))[0]
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 1.0, 1.0]]), rtol=0, atol=0)

    def total(x: torch.Tensor) -> torch.Tensor:
        return neuron.step(x)[0].sum()

    g = grad(total)(x)
    want = 1.0 / (1.0 + (torch.pi * (x - 1.0)) ** 2)
    torch.testing.assert_close(g, want)


def test_export_of_a_model_step() -> None:
    class Step(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(5, 4)
            self.lif = LIFNeuron(beta=0.9, features=4)

        def forward(self, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            s, st = self.lif.step(self.fc(x), SpikingState(v))
            return s, st.v

    torch.manual_seed(0)
    model = Step()
    ep = torch.export.export(model, (_x(2, 5), torch.zeros(2, 4)))
    x, v = _x(2, 5, seed=3), _x(2, 4, seed=4, scale=1.0)
    for got, want in zip(ep.module()(x, v), model(x, v), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_state_dict_round_trip_weights_only() -> None:
    torch.manual_seed(0)
    net = SpikingSequential(nn.Linear(6, 5), LIFNeuron(beta=torch.rand(5), learn_beta=True,
                                                     threshold=torch.rand(5) + 0.5))
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    fresh = SpikingSequential(nn.Linear(6, 5), LIFNeuron(beta=torch.zeros(5), learn_beta=True,
                                                       threshold=torch.ones(5)))
    fresh.load_state_dict(loaded)
    x = _x(3, 7, 6)
    torch.testing.assert_close(fresh(x)[0], net(x)[0], rtol=0, atol=0)


@pytest.mark.parametrize("surrogate", [ATan(3.0), FastSigmoid(10.0), Sigmoid()])
def test_pickle_neuron_and_surrogate(surrogate: object) -> None:
    neuron = LIFNeuron(beta=0.7, surrogate=surrogate, features=3)  # type: ignore[arg-type]
    clone = pickle.loads(pickle.dumps(neuron))
    assert clone.surrogate == surrogate
    assert repr(clone.surrogate) == repr(surrogate)
    x = _x(2, 9, 3)
    torch.testing.assert_close(clone(x)[0], neuron(x)[0], rtol=0, atol=0)


def test_autocast_bf16_keeps_fp32_state() -> None:
    torch.manual_seed(0)
    net = SpikingSequential(nn.Linear(8, 8), LIFNeuron(beta=0.9))
    x = _x(2, 5, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, state = net(x)
    assert state[1].v.dtype == torch.float32
    assert set(out.unique().tolist()) <= {0.0, 1.0}
