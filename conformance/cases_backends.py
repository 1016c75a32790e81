"""Conformance cases: the same brain_ai module on the native backend and on a peer's engine.

Spikes, membranes and gradients (input and every parameter) must not change when only the
backend changes (see :mod:`brain_ai.core.backends`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from brain_ai.adapters.metrics import max_abs_diff, max_rel_diff, spike_mismatches
from brain_ai.conformance.registry import Case, register
from brain_ai.core.backends import use_backend
from brain_ai.core.neurons import LIFNeuron, RecurrentLIFNeuron, SpikingNeuronBase

T, B, N = 100, 4, 16
_PEER: dict[str, object] = dict(beta_clamp=(0.0, 1.0), learn_beta=True, learn_threshold=True)


def compare_backends(neuron: SpikingNeuronBase, backend: str, x: torch.Tensor,
                     chunk_size: int | None = None) -> dict[str, float]:
    results = []
    for name in ("native", backend):
        xx = x.clone().requires_grad_()
        with use_backend(name):
            s, _, traces = neuron.sequence(xx, chunk_size=chunk_size, record=("v",))
        gen = torch.Generator().manual_seed(5)
        w_s, w_v = torch.randn(s.shape, generator=gen), torch.randn(s.shape, generator=gen)
        (s * w_s + traces["v"] * w_v).sum().backward()
        grads = [xx.grad] + [p.grad.clone() for p in neuron.parameters()]
        neuron.zero_grad(set_to_none=True)
        results.append((s.detach(), traces["v"].detach(), grads))
    (s0, v0, g0), (s1, v1, g1) = results
    return {"spikes": spike_mismatches(s1, s0), "membrane": max_abs_diff(v1, v0),
            "grad": max(max_rel_diff(a, b) for a, b in zip(g1, g0, strict=True)),
            "rate": float(s0.mean()), "silent": float(float(s0.mean()) == 0.0)}


def _register(name: str, backend: str, build: Callable[[int], SpikingNeuronBase],
              lo: float, hi: float, chunk_size: int | None = None) -> None:
    def run(seed: int) -> dict[str, float]:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand((B, T, N), generator=gen) * (hi - lo) + lo
        return compare_backends(build(seed), backend, x, chunk_size)

    register(Case(name=f"{backend}/backend/{name}", family="backend", peer=backend, run=run,
                  tolerances={"spikes": 0, "membrane": 0.0, "grad": 1e-6, "silent": 0},
                  direction="native", steps=T, config={"backend": backend, "neuron": name}))


_register("LIF-delayed-subtract", "snntorch",
          lambda s: LIFNeuron(beta=torch.rand(N) * 0.3 + 0.6, reset_timing="delayed", **_PEER),
          -0.1, 0.6)
_register("LIF-delayed_pre-zero-tbptt", "snntorch",
          lambda s: LIFNeuron(beta=0.8, reset="zero", reset_timing="delayed_pre", **_PEER),
          -0.1, 0.6, chunk_size=25)
_register("LIF-immediate-zero", "snntorch",
          lambda s: LIFNeuron(beta=0.8, reset="zero", **_PEER), -0.1, 0.6)
_register("CuBa-compensated-subtract", "snntorch",
          lambda s: LIFNeuron(beta=0.9, alpha=0.6, reset_timing="compensated", **_PEER),
          -0.1, 0.3)
_register("Recurrent-delayed-subtract", "snntorch",
          lambda s: RecurrentLIFNeuron(N, beta=0.85, reset_timing="delayed", **_PEER),
          -0.1, 0.6)


_SJ: dict[str, object] = dict(comparator=">=")
_register("LIF-tau_input-hard", "spikingjelly",
          lambda s: LIFNeuron(tau=2.0, charge="tau_input", reset="zero", **_SJ), 0.0, 2.5)
_register("LIF-tau-soft-tbptt", "spikingjelly",
          lambda s: LIFNeuron(tau=3.3, charge="tau", reset="subtract", **_SJ), -0.1, 0.8,
          chunk_size=25)
_register("PLIF-rate_input-learnable", "spikingjelly",
          lambda s: LIFNeuron(tau=2.0, charge="rate_input", reset="zero", learn_tau=True,
                              **_SJ), 0.0, 2.5)
_register("IF-hard", "spikingjelly",
          lambda s: LIFNeuron(beta=1.0, beta_clamp=(0.0, 1.0), reset="zero", **_SJ), -0.2, 0.6)
