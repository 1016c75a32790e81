r"""Surrogate gradients: the one place where surrogate math lives.

Forward is always the exact Heaviside step (spikes are exactly 0.0 or 1.0); backward multiplies
the incoming gradient by the surrogate derivative :math:`\sigma'(x)` with ``x = v - v_th``.
The comparator of the step (``>`` as in snnTorch, ``>=`` as in SpikingJelly) is a reset/fire
*rule* (see :mod:`brain_ai.physics.rules`), passed in, never decided here.

Each surrogate is a small frozen dataclass: picklable, with a readable repr, swappable per
neuron. ``derivative(x)`` is written in the peer's own operation order so that a converted
model reproduces the peer's gradient bit for bit where the peer uses the same formula:

==========================  ===================================================  ==============
class (defaults)            derivative ``σ'(x)``                                  origin (order)
==========================  ===================================================  ==============
``ATan(alpha=2)``           ``alpha/2 / (1 + (π/2·alpha·x)²)``, peak ``alpha/2``  snnTorch atan
``FastSigmoid(slope=25)``   ``1 / (slope·|x| + 1)²``, peak 1                      snnTorch
``STE()``                   ``1``                                                 snnTorch
``Sigmoid(alpha=4)``        ``(1 - s)·s·alpha``, ``s = sigmoid(alpha·x)``         SpikingJelly
``Triangular(threshold=1)``  ``threshold`` for ``x < 0``, ``-threshold`` else      snnTorch 1.0.0
``PiecewiseQuadratic(1)``   ``max(alpha - alpha²·|x|, 0)``                        SpikingJelly
``PiecewiseExp(1)``         ``alpha/2 · exp(-alpha·|x|)``                         SpikingJelly
``SoftSign(2)``             ``1 / (2·alpha·(1/alpha + |x|)²)``                    SpikingJelly
``SuperSpike(1)``           ``alpha / (1 + |x|)²``                                SpikingJelly
``Erf(2)``                  ``alpha/√π · exp(-(alpha·x)²)``                       SpikingJelly
``Rect(1)``                 ``alpha·(|x| < 0.5/alpha)``                           SpikingJelly
``SpikeRateEscape(1, 25)``  ``slope·exp(-beta·|x - 1|)``                          snnTorch
==========================  ===================================================  ==============

``Triangular`` reproduces snnTorch 1.0.0's ``surrogate.triangular`` exactly (its backward is
``±threshold``, not a triangle); use ``PiecewiseQuadratic`` for a true triangular window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

from brain_ai.errors import ConfigError

__all__ = [
    "STE",
    "SURROGATE_CODES",
    "SURROGATE_NAMES",
    "ATan",
    "Erf",
    "FastSigmoid",
    "PiecewiseExp",
    "PiecewiseQuadratic",
    "Rect",
    "Sigmoid",
    "SoftSign",
    "SpikeRateEscape",
    "SuperSpike",
    "Surrogate",
    "Triangular",
    "heaviside",
    "kernel_parameter",
    "step_function",
    "surrogate_from_name",
]


def step_function(x: Tensor, inclusive: bool) -> Tensor:
    """The exact Heaviside step, no gradient: ``x >= 0`` if ``inclusive`` else ``x > 0``.

    The one place the tie rule is written; :func:`heaviside` adds the surrogate backward.
    """
    return (x >= 0).to(x.dtype) if inclusive else (x > 0).to(x.dtype)


class _SpikeFn(torch.autograd.Function):
    """Heaviside forward, surrogate backward. ``inclusive`` selects ``>=`` over ``>``."""

    generate_vmap_rule = True  # works under torch.func.vmap / grad as well

    @staticmethod
    def forward(x: Tensor, surrogate: Surrogate, inclusive: bool) -> Tensor:  # type: ignore[override]
        return step_function(x, inclusive)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, surrogate, _ = inputs
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return ctx.surrogate.backward(x, grad_output), None, None


def heaviside(x: Tensor, surrogate: Surrogate, inclusive: bool = False) -> Tensor:
    """Spikes ``H(x)`` (``x > 0``, or ``x >= 0`` if ``inclusive``) with ``surrogate``'s gradient.

    Args:
        x: ``v - v_th``, any shape, floating dtype.
        surrogate: provides the backward pass.
        inclusive: ``True`` fires at ``x == 0`` (SpikingJelly), ``False`` does not (snnTorch).
    Returns:
        Tensor of ``x``'s shape and dtype holding exactly 0.0 or 1.0.
    """
    return _SpikeFn.apply(x, surrogate, inclusive)


@dataclass(frozen=True)
class Surrogate:
    """Base class. Subclasses implement :meth:`derivative` (or :meth:`backward`)."""

    name: ClassVar[str] = "surrogate"

    def derivative(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, x: Tensor, grad_output: Tensor) -> Tensor:
        """``grad_output * σ'(x)`` (subclasses may reorder to match a peer bit for bit)."""
        return grad_output * self.derivative(x)

    def __call__(self, x: Tensor, inclusive: bool = False) -> Tensor:
        return heaviside(x, self, inclusive)

    def _positive(self, field: str) -> None:
        value = getattr(self, field)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ConfigError(
                f"{type(self).__name__}", f"{field} must be a positive finite number",
                got=repr(value), expected=f"{field} > 0",
                hint=f"larger {field} gives a narrower, taller surrogate",
            )


@dataclass(frozen=True)
class ATan(Surrogate):
    """Arctan surrogate; ``alpha=2`` gives peak gradient 1 (snnTorch and SJ default shape)."""

    alpha: float = 2.0
    name: ClassVar[str] = "atan"

    def __post_init__(self) -> None:
        self._positive("alpha")

    def derivative(self, x: Tensor) -> Tensor:
        return self.alpha / 2 / (1 + (torch.pi / 2 * self.alpha * x).pow(2))

    def backward(self, x: Tensor, grad_output: Tensor) -> Tensor:
        # snnTorch: alpha / 2 / (1 + (pi/2*alpha*x)^2) * grad  (surrogate.py:197-202)
        return self.derivative(x) * grad_output


@dataclass(frozen=True)
class FastSigmoid(Surrogate):
    """Fast sigmoid (SuperSpike-style): ``1 / (slope·|x| + 1)²``, peak 1 at ``x = 0``."""

    slope: float = 25.0
    name: ClassVar[str] = "fast_sigmoid"

    def __post_init__(self) -> None:
        self._positive("slope")

    def derivative(self, x: Tensor) -> Tensor:
        return 1.0 / (self.slope * torch.abs(x) + 1.0) ** 2

    def backward(self, x: Tensor, grad_output: Tensor) -> Tensor:
        # snnTorch: grad / (slope*|x| + 1.0)**2  (surrogate.py:142)
        return grad_output / (self.slope * torch.abs(x) + 1.0) ** 2


@dataclass(frozen=True)
class STE(Surrogate):
    """Straight-through estimator: the gradient passes unchanged."""

    name: ClassVar[str] = "ste"

    def derivative(self, x: Tensor) -> Tensor:
        return torch.ones_like(x)

    def backward(self, x: Tensor, grad_output: Tensor) -> Tensor:
        return grad_output.clone()


@dataclass(frozen=True)
class Sigmoid(Surrogate):
    """Sigmoid surrogate ``(1 - s)·s·alpha``; ``alpha=4`` is SpikingJelly's default (peak 1)."""

    alpha: float = 4.0
    name: ClassVar[str] = "sigmoid"

    def __post_init__(self) -> None:
        self._positive("alpha")

    def derivative(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(self.alpha * x)
        return (1 - s) * s * self.alpha


@dataclass(frozen=True)
class Triangular(Surrogate):
    """snnTorch 1.0.0 ``triangular``: gradient ``threshold`` for ``x < 0``, else ``-threshold``."""

    threshold: float = 1.0
    name: ClassVar[str] = "triangular"

    def derivative(self, x: Tensor) -> Tensor:
        t = torch.full_like(x, self.threshold)
        return torch.where(x >= 0, -t, t)

    def backward(self, x: Tensor, grad_output: Tensor) -> Tensor:
        grad = grad_output * self.threshold
        return torch.where(x >= 0, -grad, grad)


@dataclass(frozen=True)
class PiecewiseQuadratic(Surrogate):
    """Triangular window ``max(alpha - alpha²|x|, 0)`` (SpikingJelly)."""

    alpha: float = 1.0
    name: ClassVar[str] = "piecewise_quadratic"

    def __post_init__(self) -> None:
        self._positive("alpha")

    def derivative(self, x: Tensor) -> Tensor:
        return (self.alpha - self.alpha * self.alpha * x.abs()).clamp_min(0)


@dataclass(frozen=True)
class PiecewiseExp(Surrogate):
    """``alpha/2 · exp(-alpha|x|)`` (SpikingJelly)."""

    alpha: float = 1.0
    name: ClassVar[str] = "piecewise_exp"

    def __post_init__(self) -> None:
        self._positive("alpha")

    def derivative(self, x: Tensor) -> Tensor:
        return (self.alpha / 2) * torch.exp(-self.alpha * x.abs())


@dataclass(frozen=True)
class SoftSign(Surrogate):
    """``1 / (2·alpha·(1/alpha + |x|)²)`` (SpikingJelly)."""

    alpha: float = 2.0
    name: ClassVar[str] = "soft_sign"

    def __post_init__(self) -> None:
        self._positive("alpha")

    def derivative(self, x: Tensor) -> Tensor:
        z = 1 / self.alpha + x.abs()
        return 1 / (2 * self.alpha * z * z)


@dataclass(frozen=True)
class SuperSpike(Surrogate):
    """``alpha / (1 + |x|)²`` (SpikingJelly)."""

    alpha: float = 1.0
    name: ClassVar[str] = "super_spike"

    def __post_init__(self) -> None:
        self._positive("alpha")

    def derivative(self, x: Tensor) -> Tensor:
        z = 1 + x.abs()
        return self.alpha / (z * z)


@dataclass(frozen=True)
class Erf(Surrogate):
    """``alpha/√π · exp(-(alpha·x)²)`` (SpikingJelly)."""

    alpha: float = 2.0
    name: ClassVar[str] = "erf"

    def __post_init__(self) -> None:
        self._positive("alpha")

    def derivative(self, x: Tensor) -> Tensor:
        z = self.alpha * x
        return (self.alpha / math.sqrt(math.pi)) * torch.exp(-z * z)


@dataclass(frozen=True)
class Rect(Surrogate):
    """``alpha·(|x| < 0.5/alpha)``: a rectangle of area 1 (SpikingJelly ``Rect``, class order)."""

    alpha: float = 1.0
    name: ClassVar[str] = "rect"

    def __post_init__(self) -> None:
        self._positive("alpha")

    def derivative(self, x: Tensor) -> Tensor:
        return self.alpha * (x.abs() < 0.5 / self.alpha).to(x)

    def backward(self, x: Tensor, grad_output: Tensor) -> Tensor:
        # SpikingJelly: alpha * (x.abs() < 0.5 / alpha).to(x) * grad_output (surrogate.py)
        return self.alpha * (x.abs() < 0.5 / self.alpha).to(x) * grad_output


@dataclass(frozen=True)
class SpikeRateEscape(Surrogate):
    """``slope·exp(-beta·|x - 1|)``, peak ``slope`` at ``x = 1`` (snnTorch
    ``spike_rate_escape``)."""

    beta: float = 1.0
    slope: float = 25.0
    name: ClassVar[str] = "spike_rate_escape"

    def __post_init__(self) -> None:
        self._positive("beta")
        self._positive("slope")

    def derivative(self, x: Tensor) -> Tensor:
        return self.slope * torch.exp(-self.beta * torch.abs(x - 1))

    def backward(self, x: Tensor, grad_output: Tensor) -> Tensor:
        # snnTorch: grad * slope * exp(-beta * |x - 1|)  (surrogate.py SpikeRateEscape)
        return grad_output * self.slope * torch.exp(-self.beta * torch.abs(x - 1))


SURROGATE_NAMES: dict[str, type[Surrogate]] = {
    cls.name: cls
    for cls in (ATan, FastSigmoid, STE, Sigmoid, Triangular, PiecewiseQuadratic, PiecewiseExp,
                SoftSign, SuperSpike, Erf, Rect, SpikeRateEscape)
}

#: The surrogate kernel ids: the integer by which a compiled kernel knows each built-in
#: surrogate (its position in :data:`SURROGATE_NAMES`; the C++ enum is generated from it).
#: Exact classes only: a subclass may change the math, so it runs on the pure-PyTorch path.
SURROGATE_CODES: dict[type[Surrogate], int] = {
    cls: code for code, cls in enumerate(SURROGATE_NAMES.values())
}


def kernel_parameter(surrogate: Surrogate) -> float:
    """The one number a kernel needs of a built-in surrogate (its only field; 0 for none)."""
    values = [getattr(surrogate, f.name) for f in fields(surrogate)]
    return float(values[0]) if values else 0.0


def surrogate_from_name(name: str, scale: float | None = None) -> Surrogate:
    """Build a surrogate from its name (``"atan"``, ...); ``scale`` sets alpha/slope/threshold."""
    cls = SURROGATE_NAMES.get(name)
    if cls is None:
        raise ConfigError("surrogate_from_name", "unknown surrogate", got=repr(name),
                          expected=" | ".join(sorted(SURROGATE_NAMES)),
                          hint="or pass a Surrogate instance directly")
    if scale is None or cls is STE:
        return cls()
    field = {"fast_sigmoid": "slope", "triangular": "threshold",
             "spike_rate_escape": "slope"}.get(name, "alpha")
    return cls(**{field: scale})
