"""Truncated-BPTT windows: the one place ``chunk_size`` is checked and resolved."""

from __future__ import annotations

from brain_ai.errors import ConfigError, is_int

__all__ = ["check_chunk_size"]


def check_chunk_size(where: str, chunk_size: object) -> None:
    """A truncated-BPTT window is a positive int, or ``None`` for full BPTT."""
    if chunk_size is not None and (not is_int(chunk_size) or chunk_size <= 0):  # type: ignore[operator]
        raise ConfigError(where, "chunk_size must be a positive int or None",
                          got=repr(chunk_size), expected="int > 0 or None",
                          hint="None runs full BPTT")
