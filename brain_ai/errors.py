"""The error hierarchy of brain_ai.

Every error raised at a public boundary is a :class:`BrainAIError` and also a builtin
(``ValueError``/``TypeError``) so that ``except ValueError`` keeps working. Messages follow
one shape, built by :func:`format_error`::

    "<public name>: <what is wrong> (got <actual>; expected <expected>).\n  Hint: <fix>"
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BrainAIError",
    "ConfigError",
    "ConversionError",
    "DTypeError",
    "PeerMissingError",
    "ShapeError",
    "check_choice",
    "check_positive",
    "format_error",
    "is_int",
]


def format_error(where: str, what: str, got: object, expected: object, hint: str) -> str:
    """Build the house error message (see STYLE.md)."""
    return f"{where}: {what} (got {got}; expected {expected}).\n  Hint: {hint}"


class BrainAIError(Exception):
    """Base class of every error brain_ai raises on purpose."""

    def __init__(
        self,
        where: str,
        what: str,
        *,
        got: object,
        expected: object,
        hint: str,
    ) -> None:
        super().__init__(format_error(where, what, got, expected, hint))
        self.where = where
        self.got = got
        self.expected = expected
        self.hint = hint


class ShapeError(BrainAIError, ValueError):
    """A tensor has the wrong rank or shape (inputs and states are never broadcast)."""


class DTypeError(BrainAIError, TypeError):
    """Tensors that must share a dtype do not (brain_ai never casts them silently)."""


class ConfigError(BrainAIError, ValueError):
    """A configuration value is out of range or unknown."""


class ConversionError(BrainAIError, ValueError):
    """A model or neuron cannot be converted exactly (lossy paths raise unless opted in)."""


class PeerMissingError(BrainAIError, ImportError):
    """A peer framework (snnTorch, SpikingJelly) needed for this call is not installed."""


def is_int(value: object) -> bool:
    """An ``int`` that is not a ``bool`` (``True`` is not a window length or a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_choice(where: str, name: str, value: object, options: tuple[str, ...],
                 hint: str | None = None) -> None:
    """Raise :class:`ConfigError` (at ``where.name``) unless ``value`` is one of ``options``."""
    if value not in options:
        raise ConfigError(f"{where}.{name}", f"unknown {name}", got=repr(value),
                          expected=" | ".join(repr(o) for o in options),
                          hint=hint or f"pick one of the listed values for {name}")


def check_positive(where: str, name: str, value: Any, *, integer: bool = False,
                   allow_zero: bool = False) -> Any:
    """Return ``value`` if it is a number (an int if ``integer``) ``> 0`` (``>= 0``)."""
    kind = "an int" if integer else "a number"
    ok_type = is_int(value) if integer else (
        isinstance(value, (int, float)) and not isinstance(value, bool))
    bound = ">= 0" if allow_zero else "> 0"
    if not ok_type or not (value >= 0 if allow_zero else value > 0):
        raise ConfigError(f"{where}.{name}", f"{name} must be {kind} {bound}",
                          got=repr(value), expected=f"{kind} {bound}",
                          hint=f"set {name} to {kind} {bound}")
    return value
