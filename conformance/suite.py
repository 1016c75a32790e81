"""The suite: finds the ``cases_*`` modules and imports them, so that their cases register.

:mod:`.registry` holds the case type and the registry; the case modules import it to
register. This module sits above both, so discovery is no import cycle.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from brain_ai.conformance.registry import CASES, Case, filter_cases
from brain_ai.errors import PeerMissingError

__all__ = ["CASE_PACKAGE", "INSTALL_HINT", "load_all", "load_modules", "select"]

_LOADED = False
CASE_PACKAGE: str | None = None  # where ``cases_*`` modules live: None is this package
LOAD_ERRORS: dict[str, Exception] = {}  # case module name -> the exception its import raised
INSTALL_HINT = (
    'install the peers with the README\'s set-up command: pip install torch==2.13.0 && '
    'pip install --no-deps spikingjelly==2.0.0 && pip install -e ".[peers,dev]"'
)


def load_modules() -> dict[str, Exception]:
    """Import every ``cases_*`` module of :data:`CASE_PACKAGE` once; record, don't raise.

    Returns:
        case module name -> the exception raised while importing it (empty when all loaded).
        The cases of the modules that did import are in :data:`CASES`.
    """
    global _LOADED
    if not _LOADED:
        package, path = (__package__, [str(Path(__file__).parent)]) if CASE_PACKAGE is None \
            else (CASE_PACKAGE, importlib.import_module(CASE_PACKAGE).__path__)
        for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
            if info.name.startswith("cases_"):
                try:
                    importlib.import_module(f"{package}.{info.name}")
                except Exception as exc:  # recorded; load_all re-raises, the CLI reports it
                    LOAD_ERRORS[info.name] = exc
        _LOADED = True
    return dict(LOAD_ERRORS)


def load_all() -> list[Case]:
    """Import every ``cases_*`` module of this package (once) and return the registry.

    Raises:
        PeerMissingError: (an ``ImportError``) if a case module cannot be imported, typically
            because its peer is not installed; other import-time exceptions propagate as they
            are. Every module is attempted first, and the error is raised on every call.
    """
    errors = load_modules()
    for name, exc in errors.items():
        if isinstance(exc, ImportError):
            raise PeerMissingError(
                "brain_ai.conformance.load_all", f"case module {name} cannot be imported",
                got=f"{type(exc).__name__}: {exc}", expected="every peer importable",
                hint=INSTALL_HINT,
            ) from exc
        raise exc
    return CASES


def select(
    peer: str | None = None, family: str | None = None, keyword: str | None = None
) -> list[Case]:
    """Cases filtered by peer, family (case-insensitive) and a substring of the name."""
    return filter_cases(load_all(), peer, family, keyword)
