"""brain_ai.conformance: the equivalence matrix between brain_ai, snnTorch and SpikingJelly.

Run it with ``brain-ai conformance`` or ``pytest conformance``.
"""

from brain_ai.conformance.registry import CASES, Case, CaseResult, register, run_case
from brain_ai.conformance.suite import load_all, select

__all__ = ["CASES", "Case", "CaseResult", "load_all", "register", "run_case", "select"]
