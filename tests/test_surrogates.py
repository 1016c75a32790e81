"""Surrogate gradients: closed forms, gradcheck against a known primitive, peaks, ties, names.

Each case gives an independent closed form of ``σ'(x)`` (Python ``math``) and a primitive
``F`` with ``F' = σ'``; ``gradcheck`` in float64 then checks that the surrogate's *backward*
is the exact derivative of ``F`` (analytical backward vs finite differences of ``F``).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brain_ai.core.neurons import LIFNeuron
from brain_ai.core.surrogates import (
    STE,
    ATan,
    Erf,
    FastSigmoid,
    PiecewiseExp,
    PiecewiseQuadratic,
    Sigmoid,
    SoftSign,
    SuperSpike,
    Surrogate,
    Triangular,
    heaviside,
    surrogate_from_name,
)
from brain_ai.errors import ConfigError

PI = math.pi


@dataclass(frozen=True)
class Case:
    surrogate: Surrogate
    closed_form: Callable[[float], float]   # σ'(x)
    primitive: Callable[[torch.Tensor], torch.Tensor]  # F with F' = σ'
    kinks: tuple[float, ...] = ()           # where σ' is not differentiable / F' jumps

    def __repr__(self) -> str:
        return repr(self.surrogate)


def _pq_primitive(a: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def f(x: torch.Tensor) -> torch.Tensor:
        inner = -a * a * x * x.abs() / 2 + a * x + 0.5
        return torch.where(x < -1 / a, torch.zeros_like(x), torch.where(x > 1 / a,
                                                                        torch.ones_like(x), inner))
    return f


CASES = [
    Case(ATan(), lambda x: 1.0 / (1 + (PI * x) ** 2),
         lambda x: torch.atan(PI / 2 * 2.0 * x) / PI + 0.5),
    Case(ATan(alpha=3.0), lambda x: 1.5 / (1 + (1.5 * PI * x) ** 2),
         lambda x: torch.atan(PI / 2 * 3.0 * x) / PI + 0.5),
    Case(FastSigmoid(), lambda x: 1 / (25 * abs(x) + 1) ** 2,
         lambda x: x / (1 + 25 * x.abs()), kinks=(0.0,)),
    Case(FastSigmoid(slope=5.0), lambda x: 1 / (5 * abs(x) + 1) ** 2,
         lambda x: x / (1 + 5 * x.abs()), kinks=(0.0,)),
    Case(STE(), lambda x: 1.0, lambda x: x),
    Case(Sigmoid(), lambda x: 4 * math.exp(-4 * x) / (1 + math.exp(-4 * x)) ** 2,
         lambda x: torch.sigmoid(4 * x)),
    Case(Sigmoid(alpha=2.0), lambda x: 2 * math.exp(-2 * x) / (1 + math.exp(-2 * x)) ** 2,
         lambda x: torch.sigmoid(2 * x)),
    Case(Triangular(), lambda x: 1.0 if x < 0 else -1.0, lambda x: -x.abs(), kinks=(0.0,)),
    Case(Triangular(threshold=2.0), lambda x: 2.0 if x < 0 else -2.0,
         lambda x: -2 * x.abs(), kinks=(0.0,)),
    Case(PiecewiseQuadratic(), lambda x: max(1 - abs(x), 0.0), _pq_primitive(1.0),
         kinks=(-1.0, 0.0, 1.0)),
    Case(PiecewiseQuadratic(alpha=2.0), lambda x: max(2 - 4 * abs(x), 0.0), _pq_primitive(2.0),
         kinks=(-0.5, 0.0, 0.5)),
    Case(PiecewiseExp(), lambda x: 0.5 * math.exp(-abs(x)),
         lambda x: torch.where(x < 0, 0.5 * torch.exp(x), 1 - 0.5 * torch.exp(-x)),
         kinks=(0.0,)),
    Case(SoftSign(), lambda x: 2 / (2 * (1 + 2 * abs(x)) ** 2),
         lambda x: 0.5 * (2 * x / (1 + (2 * x).abs()) + 1), kinks=(0.0,)),
    Case(SuperSpike(), lambda x: 1 / (1 + abs(x)) ** 2, lambda x: x / (1 + x.abs()),
         kinks=(0.0,)),
    Case(SuperSpike(alpha=3.0), lambda x: 3 / (1 + abs(x)) ** 2,
         lambda x: 3 * x / (1 + x.abs()), kinks=(0.0,)),
    Case(Erf(), lambda x: 2 / math.sqrt(PI) * math.exp(-4 * x * x),
         lambda x: 0.5 * (1 + torch.erf(2 * x))),
]
cases = pytest.mark.parametrize("case", CASES, ids=[repr(c) for c in CASES])
POINTS = [-2.0, -0.7, -0.25, -0.05, 0.0, 0.05, 0.25, 0.7, 2.0]


@cases
def test_gradient_through_the_spike_equals_the_closed_form(case: Case) -> None:
    x = torch.tensor(POINTS, dtype=torch.float64, requires_grad=True)
    heaviside(x, case.surrogate).sum().backward()
    want = torch.tensor([case.closed_form(p) for p in POINTS], dtype=torch.float64)
    torch.testing.assert_close(x.grad, want, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(case.surrogate.derivative(x.detach()), want,
                               rtol=1e-12, atol=1e-15)


@cases
def test_backward_scales_the_incoming_gradient(case: Case) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, generator=g, dtype=torch.float64)
    go = torch.randn(50, generator=g, dtype=torch.float64)
    torch.testing.assert_close(case.surrogate.backward(x, go),
                               go * case.surrogate.derivative(x), rtol=1e-14, atol=1e-15)


class _Primitive(torch.autograd.Function):
    """Forward: a closed-form primitive F; backward: the surrogate under test."""

    @staticmethod
    def forward(ctx, x, surrogate, primitive):  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return primitive(x)

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return ctx.surrogate.backward(x, grad_output), None, None


@cases
def test_gradcheck_backward_is_the_derivative_of_the_primitive(case: Case) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(40, generator=g, dtype=torch.float64) * 4 - 2
    for k in case.kinks:  # finite differences are meaningless across a kink
        x = torch.where((x - k).abs() < 1e-3, x + 1e-2, x)
    x.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda inp: _Primitive.apply(inp, case.surrogate, case.primitive), (x,),
        eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize(
    "surrogate", [ATan(), ATan(alpha=3.0), Sigmoid(), Sigmoid(alpha=2.0), Erf(), SoftSign(),
                  SuperSpike(), PiecewiseExp(), PiecewiseQuadratic()], ids=repr)
def test_second_order_gradcheck_of_smooth_derivatives(surrogate: Surrogate) -> None:
    """The derivative itself is differentiable (double backward through a surrogate)."""
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(20, generator=g, dtype=torch.float64) * 3 - 1.5) + 0.0123
    x.requires_grad_()
    assert torch.autograd.gradcheck(surrogate.derivative, (x,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("surrogate", "peak"),
    [(ATan(), 1.0), (ATan(alpha=4.0), 2.0), (FastSigmoid(), 1.0), (FastSigmoid(slope=3.0), 1.0),
     (STE(), 1.0), (Sigmoid(), 1.0), (Sigmoid(alpha=8.0), 2.0), (PiecewiseQuadratic(), 1.0),
     (PiecewiseExp(), 0.5), (SoftSign(), 1.0), (SuperSpike(), 1.0),
     (Erf(), 2 / math.sqrt(PI))],
    ids=repr)
def test_peak_value_at_zero_is_the_maximum(surrogate: Surrogate, peak: float) -> None:
    zero = torch.zeros(1, dtype=torch.float64)
    assert surrogate.derivative(zero).item() == pytest.approx(peak, rel=1e-15)
    grid = torch.linspace(-3, 3, 601, dtype=torch.float64)
    assert surrogate.derivative(grid).max().item() <= surrogate.derivative(zero).item()


def test_seed_normalisation_peaks_are_exactly_one_in_float32() -> None:
    """Seed table: ATan(2), FastSigmoid and STE normalised to max gradient 1; Sigmoid(4) too."""
    zero = torch.zeros(3)
    for s in (ATan(2.0), FastSigmoid(), STE(), Sigmoid(4.0)):
        torch.testing.assert_close(s.derivative(zero), torch.ones(3), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_forward_is_exactly_heaviside_with_both_tie_rules(dtype: torch.dtype) -> None:
    tiny = torch.finfo(dtype).tiny
    x = torch.tensor([-5.0, -tiny, -0.0, 0.0, tiny, 5.0], dtype=dtype)
    for sur in (ATan(), FastSigmoid(), STE(), Triangular()):
        strict = heaviside(x, sur)
        inclusive = heaviside(x, sur, inclusive=True)
        assert strict.dtype == inclusive.dtype == dtype
        assert strict.tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
        assert inclusive.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
        assert sur(x).tolist() == strict.tolist()
        assert sur(x, inclusive=True).tolist() == inclusive.tolist()


def test_surrogate_from_name_builds_each_class_and_maps_scale() -> None:
    expected = {
        "atan": ATan, "fast_sigmoid": FastSigmoid, "ste": STE, "sigmoid": Sigmoid,
        "triangular": Triangular, "piecewise_quadratic": PiecewiseQuadratic,
        "piecewise_exp": PiecewiseExp, "soft_sign": SoftSign, "super_spike": SuperSpike,
        "erf": Erf,
    }
    for name, cls in expected.items():
        assert surrogate_from_name(name) == cls()
        assert cls.name == name
    assert surrogate_from_name("atan", 3.0) == ATan(alpha=3.0)
    assert surrogate_from_name("fast_sigmoid", 10.0) == FastSigmoid(slope=10.0)
    assert surrogate_from_name("triangular", 2.0) == Triangular(threshold=2.0)
    assert surrogate_from_name("ste", 5.0) == STE()
    with pytest.raises(ConfigError, match="surrogate_from_name: unknown surrogate"):
        surrogate_from_name("arctan")


@pytest.mark.parametrize("case", CASES, ids=[repr(c) for c in CASES])
def test_surrogates_pickle_and_compare_by_value(case: Case) -> None:
    s = case.surrogate
    back = pickle.loads(pickle.dumps(s))
    assert back == s and hash(back) == hash(s) and repr(back) == repr(s)
    x = torch.linspace(-1, 1, 7, dtype=torch.float64)
    torch.testing.assert_close(back.derivative(x), s.derivative(x), rtol=0, atol=0)


def test_readable_reprs() -> None:
    assert repr(ATan()) == "ATan(alpha=2.0)"
    assert repr(FastSigmoid(slope=10)) == "FastSigmoid(slope=10)"
    assert repr(STE()) == "STE()"
    assert repr(Sigmoid()) == "Sigmoid(alpha=4.0)"
    assert "surrogate=ATan(alpha=2.0)" in repr(LIFNeuron())


def test_surrogates_are_frozen() -> None:
    s = ATan()
    with pytest.raises(AttributeError):
        s.alpha = 3.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("surrogate", "expected"),
    [(ATan(), 1.0 / (1 + (PI * 0.25) ** 2)), (FastSigmoid(), 1 / 7.25 ** 2),
     (Sigmoid(), 4 * math.exp(-1) / (1 + math.exp(-1)) ** 2), (STE(), 1.0)],
    ids=repr)
def test_surrogate_is_swappable_per_neuron(surrogate: Surrogate, expected: float) -> None:
    """One step from rest, x = .75, θ = 1: ds/dx = σ'(x - θ) = σ'(-.25)."""
    n = LIFNeuron(beta=0.5, surrogate=surrogate, features=1)
    x = torch.tensor([[0.75]], dtype=torch.float64, requires_grad=True)
    s, _ = n(x)
    (g,) = torch.autograd.grad(s.sum(), x)
    assert g.item() == pytest.approx(expected, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(x=st.floats(-10, 10), alpha=st.floats(0.1, 10))
def test_symmetric_surrogates_are_even_and_positive(x: float, alpha: float) -> None:
    for s in (ATan(alpha), Sigmoid(alpha), PiecewiseExp(alpha), SoftSign(alpha),
              SuperSpike(alpha), Erf(alpha), FastSigmoid(alpha)):
        d = s.derivative(torch.tensor([x, -x], dtype=torch.float64))
        # Sigmoid: (1 - s)·s loses digits where s rounds towards 1, hence the tolerance
        assert d[0].item() == pytest.approx(d[1].item(), rel=1e-9, abs=1e-12)
        assert d[0].item() >= 0.0
        assert d[0].item() <= s.derivative(torch.zeros(1, dtype=torch.float64)).item()
