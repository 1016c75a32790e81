"""brain_ai.conformance: the equivalence matrix between brain_ai, snnTorch and SpikingJelly.

Run it with ``brain-ai conformance`` or ``pytest conformance``.
"""

from brain_ai.conformance.registry import (
    CASES,
    Case,
    CaseResult,
    load_all,
    register,
    run_case,
    select,
)

__all__ = ["CASES", "Case", "CaseResult", "load_all", "register", "run_case", "select"]
