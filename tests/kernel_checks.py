"""What the kernel tests share (tests/test_kernels.py, tests/test_kernels_triton.py): the rule
lists, bit-for-bit comparison, and the scale that parameter gradients are compared against.

Parameter gradients are sums over batch and time of many, often cancelling, terms; a reordered
fp32 sum of n terms moves by about ``n_eff·2^-24`` of the sum of their absolute values
(:func:`contribution_scale`), whatever the cancellation, so that sum is the yardstick (for a
scalar threshold the fp32 reference itself is up to ~1e-5 of the value off a float64 run).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import torch
from torch import Tensor

from brain_ai.core import surrogates as S
from brain_ai.core.neurons import _OneToOne
from brain_ai.physics.functional import LIFParams, lif_step
from brain_ai.physics.state import SpikingState

SURROGATES = [S.ATan(), S.FastSigmoid(), S.STE(), S.Sigmoid(alpha=3.0), S.Triangular(),
              S.PiecewiseQuadratic(alpha=0.8), S.PiecewiseExp(), S.SoftSign(), S.SuperSpike(),
              S.Erf()]
RESETS = ["subtract", "zero", "none"]
TIMINGS = ["immediate", "delayed", "delayed_pre", "compensated", "compensated_pre"]
CHARGES = ["beta", "tau", "tau_input", "rate", "rate_input"]
PARAM_NAMES = ("leak", "threshold", "alpha", "adapt_scale", "adapt_decay", "recurrent",
               "graded")


def bits(t: Tensor) -> Tensor:
    return t.detach().contiguous().view({4: torch.int32, 8: torch.int64}[t.element_size()])


def assert_bitwise(a: Tensor, b: Tensor, what: str) -> None:
    torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"{what} differs")
    assert torch.equal(bits(a), bits(b)), f"{what}: same values, different bits (signed zero?)"


def param(p: LIFParams, name: str) -> Tensor | None:
    """The tensor of parameter ``name`` (a one-to-one recurrence's weight for "recurrent")."""
    t = getattr(p, name)
    return t.V if isinstance(t, _OneToOne) else t


def with_param(p: LIFParams, name: str, value: Tensor) -> LIFParams:
    from dataclasses import replace

    return replace(p, **{name: _OneToOne(value, False) if name == "recurrent" else value})


def leaves(p: LIFParams) -> list[Tensor]:
    """The learnable parameters of ``p``, in :data:`PARAM_NAMES` order."""
    return [t for t in (param(p, n) for n in PARAM_NAMES) if t is not None and t.requires_grad]


def contribution_scale(p: LIFParams, x: Tensor, st: SpikingState,
                       loss_fn: Callable[[Tensor, SpikingState, Tensor], Tensor]
                       ) -> list[Tensor]:
    """Per learnable parameter (:func:`leaves` order): the sum over steps and batch of the
    absolute values of its gradient terms, each step getting its own copy of the parameter
    (``loss_fn(spikes, final_state, v_trace)``)."""
    per_step: list[dict[str, Tensor]] = []
    state = st
    spikes, vs = [], []
    for x_t in x.unbind(1):
        copies = {name: param(p, name).detach().expand_as(x_t).clone().requires_grad_()
                  for name in PARAM_NAMES
                  if param(p, name) is not None and param(p, name).requires_grad}
        q = p
        for name, value in copies.items():
            q = with_param(q, name, value)
        s, state = lif_step(x_t, state, q)
        per_step.append(copies)
        spikes.append(s)
        vs.append(state.v)
    if not per_step or not per_step[0]:
        return []
    loss = loss_fn(torch.stack(spikes, 1), state, torch.stack(vs, 1))
    names = list(per_step[0])
    flat = [c[n] for c in per_step for n in names]
    grads = torch.autograd.grad(loss, flat, allow_unused=True)
    scale = []
    for j, name in enumerate(names):
        total = sum((g.abs() for g in grads[j::len(names)] if g is not None),
                    torch.zeros_like(x[:, 0]))
        scale.append(total.sum_to_size(param(p, name).shape))
    return scale


def native_unbuildable() -> bool:
    """No C++ compiler on this machine: the native kernel's tests skip. Never under
    ``CI=true``: CI has a compiler, and a native test that cannot run there fails instead."""
    if os.environ.get("CI"):
        return False
    return not any(shutil.which(c) for c in ("c++", "g++", "clang++"))
