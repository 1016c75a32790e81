"""Backends: the engine a neuron's step runs on, as a registry of providers.

The neuron layer owns this registry; it knows one engine of its own, ``"native"`` (brain_ai's
step and kernels). The peers' engines are *providers* that the adapters register
(:mod:`brain_ai.adapters.backends`: ``"snntorch"``, ``"spikingjelly"``), so the neurons never
import a peer. A provider is a factory ``make_cell(neuron) -> cell`` where the cell is
``(x_t, state) -> (spikes, state)``: the module, its parameters and the explicit state stay
brain_ai's; only the engine of the step changes.

Choose per neuron (``LIFNeuron(..., backend="snntorch")``), per block of code
(``with use_backend("snntorch"): ...``) or globally (:func:`set_default_backend`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from torch import Tensor, nn

from brain_ai.errors import ConfigError
from brain_ai.physics.state import SpikingState

__all__ = ["NATIVE", "backend_names", "check_backend", "get_default_backend", "peer_cell",
           "register_backend", "set_default_backend", "use_backend"]

#: The engine of brain_ai itself (the reference step and the fused kernels).
NATIVE = "native"

Cell = Callable[[Tensor, SpikingState], tuple[Tensor, SpikingState]]
_PROVIDERS: dict[str, Callable[[nn.Module], Cell]] = {}
_default = [NATIVE]


def register_backend(name: str, make_cell: Callable[[nn.Module], Cell]) -> None:
    """Register a peer engine: ``make_cell(neuron)`` returns ``(x_t, state) -> (s, state)``.

    ``make_cell`` raises :class:`~brain_ai.errors.ConversionError` for a neuron whose rules
    the engine cannot reproduce. Registering a name again replaces its provider.
    """
    if not isinstance(name, str) or not name or name == NATIVE:
        raise ConfigError("register_backend", "the name must be a new non-empty string",
                          got=repr(name), expected=f"a str other than {NATIVE!r}",
                          hint="name the peer engine, e.g. 'snntorch'")
    if not callable(make_cell):
        raise ConfigError("register_backend", "make_cell must be callable",
                          got=type(make_cell).__name__, expected="neuron -> cell",
                          hint="pass the cell class or a factory function")
    _PROVIDERS[name] = make_cell


def backend_names() -> tuple[str, ...]:
    """Every engine a neuron can run on now: ``"native"`` and the registered providers."""
    return (NATIVE, *_PROVIDERS)


def check_backend(where: str, name: object) -> None:
    """Raise a clear error unless ``name`` is a registered engine."""
    if name not in backend_names():
        raise ConfigError(where, "unknown backend", got=repr(name),
                          expected=" | ".join(repr(n) for n in backend_names()),
                          hint="the peers' engines are registered by brain_ai.adapters "
                               "(imported with brain_ai)")


def set_default_backend(name: str) -> None:
    """Backend of neurons constructed with ``backend=None`` (the default)."""
    check_backend("set_default_backend", name)
    _default[0] = name


def get_default_backend() -> str:
    return _default[0]


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Temporarily change the default backend."""
    check_backend("use_backend", name)
    old = _default[0]
    _default[0] = name
    try:
        yield
    finally:
        _default[0] = old


def peer_cell(neuron: nn.Module, backend: str) -> Any:
    """A ``(x_t, state) -> (spikes, state)`` cell running ``neuron`` on a registered peer."""
    check_backend(type(neuron).__name__, backend)
    if backend == NATIVE:
        raise ConfigError(type(neuron).__name__, "the native engine is not a peer",
                          got=repr(backend), expected=" | ".join(map(repr, _PROVIDERS)),
                          hint="use neuron.cell() for the native step")
    return _PROVIDERS[backend](neuron)
