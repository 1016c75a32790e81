"""Surrogate gradients: the seed's public module (``brain_ai/core/surrogates.py``).

The surrogate math is part of the physics specification, one layer below the neurons: the
fire rule and every kernel read it (the kernels by each surrogate's kernel id). Its one home
is :mod:`brain_ai.physics.surrogates`; this module is the name users import it by. It defines
nothing of its own.
"""

from brain_ai.physics.surrogates import (
    STE,
    SURROGATE_NAMES,
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
    step_function,
    surrogate_from_name,
)

__all__ = [
    "STE",
    "SURROGATE_NAMES",
    "ATan",
    "Erf",
    "FastSigmoid",
    "PiecewiseExp",
    "PiecewiseQuadratic",
    "Sigmoid",
    "SoftSign",
    "SuperSpike",
    "Surrogate",
    "Triangular",
    "heaviside",
    "step_function",
    "surrogate_from_name",
]
