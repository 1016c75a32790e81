"""Second-order gradients: exact on the reference kernel, a clear error on the fast ones.

Issue 16: with ``create_graph=True`` the native kernel returned exactly 0 for second-order
gradients and the fused kernel a partial value (reference 2688.4, fused 2240.4 on a 4x8x6
case), with only a torch warning.
"""

from __future__ import annotations

import pytest
import torch

from brain_ai.core.neurons import LIFNeuron
from brain_ai.kernels import native

B, T, N = 4, 8, 6


def _grad_penalty(kernel: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``d/dx sum(spikes)`` with create_graph, then the gradient of its square norm w.r.t. the
    threshold; returns ``(first-order dx, second-order d threshold)``."""
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(B, T, N, generator=g, dtype=torch.float64) * 1.5).requires_grad_()
    lif = LIFNeuron(beta=0.8, threshold=0.7, learn_threshold=True, features=N,
                    kernel=kernel).double()
    spikes, state = lif(x)
    loss = spikes.sum() + (state.v ** 2).sum()
    (dx,) = torch.autograd.grad(loss, x, create_graph=True)
    (dthr,) = torch.autograd.grad((dx ** 2).sum(), lif.threshold)
    return dx.detach(), dthr


def test_reference_double_backward_is_nonzero() -> None:
    """Guard: the case has a real second-order gradient (so "0" would be wrong)."""
    _, dthr = _grad_penalty("reference")
    assert dthr.abs().sum() > 1.0


@pytest.mark.parametrize("kernel", ["fused", "native"])
def test_fast_kernels_refuse_double_backward_by_name(kernel: str) -> None:
    if kernel == "native" and not native.available():
        pytest.fail(f"the native kernel must build here: {native.load_error()}")
    with pytest.raises(RuntimeError, match=rf"brain_ai kernel '{kernel}': second-order.*"
                                           r"\n  Hint: .*kernel='reference'"):
        _grad_penalty(kernel)


@pytest.mark.parametrize("kernel", ["fused", "native"])
def test_create_graph_keeps_first_order_values(kernel: str) -> None:
    """Under create_graph the first-order gradient is the reference's (same values as
    without create_graph: summation order only)."""
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(B, T, N, generator=g, dtype=torch.float64) * 1.5).requires_grad_()
    out = {}
    for k in ("reference", kernel):
        lif = LIFNeuron(beta=0.8, threshold=0.7, features=N, kernel=k).double()
        spikes, state = lif(x)
        (out[k],) = torch.autograd.grad(spikes.sum() + (state.v ** 2).sum(), x,
                                        create_graph=True)
    torch.testing.assert_close(out[kernel], out["reference"], rtol=1e-12, atol=1e-12)
