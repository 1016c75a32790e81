"""The equivalence matrix as pytest: one test per registered conformance case.

Never skipped: a case module whose peer cannot be imported is a collection error (raised by
:func:`~brain_ai.conformance.suite.load_all`), and an empty registry is a failing test.
"""

from __future__ import annotations

import pytest

from brain_ai.conformance.registry import Case, run_case
from brain_ai.conformance.suite import load_all

CASES: list[Case] = list(load_all())


@pytest.mark.parametrize("case", CASES or [None], ids=[c.name for c in CASES] or ["no-cases"])
def test_case(case: Case | None) -> None:
    """The case's metrics meet its tolerances (``expect="differs"``: exceed them)."""
    if case is None:
        pytest.fail("no conformance case is registered (no conformance/cases_*.py module)")
    result = run_case(case, seed=0)
    assert result.passed, (
        f"{case.name} ({case.expect}): metrics {result.metrics}, tolerances "
        f"{dict(case.tolerances)}, config {dict(case.config)}"
        + (f", why: {case.why}" if case.why else "")
        + (f"\nerror: {result.error}" if result.error else "")
    )
