"""Conformance cases: snnTorch -> brain_ai -> SpikingJelly, compared peer against peer.

The converted SpikingJelly node must compute what the snnTorch neuron computes: spikes and
membranes bit-identical, input gradients within 1e-6 relative (the ATan surrogate is written
in another operation order by each peer). Inputs are continuous random numbers, so no step
hits the threshold exactly (where ``>`` and ``>=`` would differ).
"""

from __future__ import annotations

from collections.abc import Callable

import snntorch as snn
import torch
from torch import nn

from brain_ai.adapters.bridge import snntorch_to_spikingjelly
from brain_ai.adapters.metrics import max_abs_diff, max_rel_diff, spike_mismatches
from brain_ai.adapters.spikingjelly import run_spikingjelly
from brain_ai.conformance.cases_snntorch import run_snntorch
from brain_ai.conformance.registry import Case, register
from brain_ai.physics.axes import batch_to_time_first, time_to_batch_first

T, B, N = 100, 4, 16


def _register(name: str, make: Callable[[], nn.Module], lo: float, hi: float) -> None:
    def run(seed: int) -> dict[str, float]:
        torch.manual_seed(seed)
        peer = make()
        node = snntorch_to_spikingjelly(peer, allow_tie_rule_change=True)
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand((T, B, N), generator=gen) * (hi - lo) + lo
        x_p, x_j = x.clone().requires_grad_(), x.clone().requires_grad_()
        s_p, m_p = run_snntorch(peer, x_p)
        s_j, _, m_j = run_spikingjelly(node, time_to_batch_first(x_j))
        s_j, m_j = batch_to_time_first(s_j), batch_to_time_first(m_j)
        w_s, w_m = torch.randn(s_p.shape, generator=gen), torch.randn(s_p.shape, generator=gen)
        (s_p * w_s + m_p * w_m).sum().backward()
        (s_j * w_s + m_j * w_m).sum().backward()
        return {"spikes": spike_mismatches(s_j, s_p), "membrane": max_abs_diff(m_j, m_p),
                "grad": max_rel_diff(x_j.grad, x_p.grad), "rate": float(s_p.detach().mean()),
                "silent": float(float(s_p.detach().mean()) == 0.0)}

    register(Case(name=f"spikingjelly/bridge/snntorch-{name}", family="bridge",
                  peer="spikingjelly", run=run,
                  tolerances={"spikes": 0, "membrane": 0.0, "grad": 1e-6, "silent": 0},
                  direction="both", steps=T,
                  config={"path": "snnTorch -> brain_ai -> SpikingJelly", "snntorch": name}))


_register("Leaky-zero-no_delay", lambda: snn.Leaky(beta=0.9, reset_mechanism="zero",
                                                   reset_delay=False), -0.1, 0.6)
_register("Leaky-IF-zero-no_delay", lambda: snn.Leaky(beta=1.0, reset_mechanism="zero",
                                                      reset_delay=False), -0.2, 0.5)
_register("Synaptic-zero-no_delay", lambda: snn.Synaptic(alpha=0.7, beta=0.9,
                                                         reset_mechanism="zero",
                                                         reset_delay=False), -0.1, 0.3)
