"""The conformance case registry: one list of cases, one mapping table per peer module.

A *case* is one configuration compared between brain_ai and a peer. Running it returns
*metrics* (numbers); the verdict compares them with the case's tolerances:

* ``expect="equal"``: every metric must be ``<=`` its tolerance (a missing metric fails);
* ``expect="differs"`` (a *guard*): at least one metric must exceed its tolerance. Guards pin
  known, deliberate non-equivalences, so that a semantic change in a peer is detected.

Standard metric names (a case reports the ones that apply):

``spikes``
    number of spike elements that differ (``0`` = identical trains).
``membrane``
    max ``|Δ|`` of membrane traces.
``grad``
    max relative ``|Δ|`` over the gradients of the input and every parameter
    (see :func:`brain_ai.adapters.metrics.max_rel_diff`).
``value``
    max ``|Δ|`` of any other output (loss values, decoded logits, encoded trains).

Case modules are the ``cases_*.py`` files of this package; :func:`load_all` imports them
(and raises if one cannot be imported); :func:`load_modules` imports them and records the
errors instead, so that ``brain-ai conformance`` reports a missing peer as a failing row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from brain_ai.errors import ConfigError

__all__ = [
    "CASES",
    "Case",
    "CaseResult",
    "filter_cases",
    "register",
    "run_case",
]

Metrics = dict[str, float]


@dataclass(frozen=True, eq=False)
class Case:
    """One comparison between brain_ai and a peer.

    Attributes:
        name: unique id, ``"<peer>/<family>/<config words>"``; used by ``-k`` filters.
        family: what is compared (``"Leaky"``, ``"LIFNode"``, ``"surrogate"``, ``"codec"``,
            ``"loss"``, ``"model"`` ...); rows of the report are grouped by it.
        peer: ``"snntorch"`` or ``"spikingjelly"`` (or ``"brain_ai"`` for self-consistency).
        run: ``run(seed) -> metrics``; deterministic for a given seed.
        tolerances: metric name -> largest value that still counts as equal.
        expect: ``"equal"`` or ``"differs"`` (guard case).
        config: human-readable description of the configuration (shown in reports).
        direction: ``"from"`` (peer -> brain_ai), ``"to"`` (brain_ai -> peer), ``"native"``
            (independent implementations compared), or ``"both"``.
        dtype: dtype the case runs in.
        steps: number of time steps (``None`` when not a sequence case).
        why: for guards, the documented reason the two differ.
    """

    name: str
    family: str
    peer: str
    run: Callable[[int], Metrics]
    tolerances: Mapping[str, float]
    expect: Literal["equal", "differs"] = "equal"
    config: Mapping[str, object] = field(default_factory=dict)
    direction: str = "native"
    dtype: str = "float32"
    steps: int | None = None
    why: str = ""


@dataclass
class CaseResult:
    """Outcome of one case: the metrics, the verdict, and an error text if it crashed."""

    case: Case
    metrics: Metrics
    passed: bool
    error: str = ""
    seconds: float = 0.0


CASES: list[Case] = []


def register(case: Case) -> Case:
    """Add ``case`` to the registry; names must be unique."""
    if any(c.name == case.name for c in CASES):
        raise ConfigError("register", "duplicate conformance case name", got=case.name,
                          expected="a name no other case uses",
                          hint="add the distinguishing option to the name")
    CASES.append(case)
    return case


def verdict(case: Case, metrics: Metrics) -> bool:
    """Apply the case's tolerances to ``metrics`` (see the module docstring)."""
    over = []
    for key, tol in case.tolerances.items():
        value = metrics.get(key)
        if value is None or math.isnan(value):
            over.append(True)
        else:
            over.append(value > tol)
    if case.expect == "equal":
        return not any(over)
    return any(over) and all(
        metrics.get(k) is not None and not math.isnan(metrics[k]) for k in case.tolerances
    )


def run_case(case: Case, seed: int = 0) -> CaseResult:
    """Run one case; an exception is a failed result carrying the error text."""
    import time

    t0 = time.perf_counter()
    try:
        metrics = {k: float(v) for k, v in case.run(seed).items()}
    except Exception as exc:  # reported, never swallowed: the case fails
        return CaseResult(case, {}, False, f"{type(exc).__name__}: {exc}",
                          time.perf_counter() - t0)
    return CaseResult(case, metrics, verdict(case, metrics), "", time.perf_counter() - t0)


def filter_cases(
    cases: list[Case],
    peer: str | None = None,
    family: str | None = None,
    keyword: str | None = None,
) -> list[Case]:
    """``cases`` filtered by peer, family (case-insensitive) and a substring of the name."""
    out = []
    for case in cases:
        if peer and case.peer != peer:
            continue
        if family and case.family.lower() != family.lower():
            continue
        if keyword and keyword.lower() not in case.name.lower():
            continue
        out.append(case)
    return out
