"""Truncated-BPTT windows: the one place ``chunk_size`` is checked and resolved.

``chunk_size`` is the length, in steps, of a truncated-BPTT window; ``None`` is full BPTT.
It can be given in four places: a neuron's constructor (its *own* window), a neuron's
``forward`` / ``sequence`` call, :func:`~brain_ai.core.unroll.snn_unroll`, and a
:class:`~brain_ai.core.snn.SpikingSequential` (``SNNConfig.chunk_size`` reaches the
architectures through it). Every place that decides a window length asks
:func:`resolve_chunk_size`, with one precedence:

1. an explicit ``chunk_size`` of the caller (the call's argument, or the container's
   ``chunk_size`` for every neuron in it) wins;
2. otherwise (``None`` there) the neuron's own ``chunk_size``;
3. otherwise ``None``: full BPTT.

``None`` from a caller means "not given", never "full BPTT over the neuron's own window".

A window is a property of one neuron's state along time: its edges are the steps ``t > 0``
with ``t % chunk_size == 0`` (:func:`is_window_edge`), where the neuron's state is detached
before the step. Layer by layer (a neuron unrolls its whole sequence) and step by step (every
layer per time step) cut at the same edges, so both give the same numbers and gradients; in a
network each neuron is cut at its own edges.
"""

from __future__ import annotations

from brain_ai.errors import ConfigError, is_int

__all__ = ["check_chunk_size", "is_window_edge", "resolve_chunk_size"]


def check_chunk_size(where: str, chunk_size: object) -> None:
    """A truncated-BPTT window is a positive int, or ``None`` for full BPTT."""
    if chunk_size is not None and (not is_int(chunk_size) or chunk_size <= 0):  # type: ignore[operator]
        raise ConfigError(where, "chunk_size must be a positive int or None",
                          got=repr(chunk_size), expected="int > 0 or None",
                          hint="None runs full BPTT")


def resolve_chunk_size(where: str, call: object = None, own: object = None) -> int | None:
    """The window length that applies: ``call`` if given, else ``own``, else ``None``.

    Args:
        where: public name for errors.
        call: the caller's explicit ``chunk_size`` (a neuron call's argument, a
            container's ``chunk_size``, ``snn_unroll``'s); ``None`` = not given.
        own: the neuron's own ``chunk_size`` (from its constructor).
    Returns:
        the window in steps, or ``None`` for full BPTT.
    Raises:
        ConfigError: either value is not a positive int or ``None`` (both are checked, so a
            bad setting is reported even where the other one wins).
    """
    check_chunk_size(where, call)
    check_chunk_size(where, own)
    return call if call is not None else own  # type: ignore[return-value]


def is_window_edge(t: int, chunk_size: int | None) -> bool:
    """Whether step ``t`` starts a new window: the state is detached before it."""
    return chunk_size is not None and t > 0 and t % chunk_size == 0
