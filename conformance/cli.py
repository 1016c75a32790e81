"""``brain-ai conformance``: run the equivalence matrix and report it.

With no arguments every registered case runs on its built-in defaults against the installed
peers. A case module that cannot be imported (a peer is missing) is reported as a failing
``ERROR`` row naming the missing module and the install command; nothing is skipped.

Output: a tqdm progress bar on stderr (on a terminal only; quiet when stderr is not a TTY or
the ``CI`` environment variable is set), then a table on stdout grouped by family, the
failures in detail, and the summary line ``conformance: N passed, M failed``. ``--json``
writes every result with the environment; ``--html`` renders the same results through the
Jinja2 template ``templates/report.html.j2`` (summary by verdict and by peer/family,
environment, per-family navigation, coloured verdicts, and for every case its expectation,
metrics against tolerances and the documented ``why``). Exit code: 0 when every case passed,
1 on any failure or error, 2 on bad usage (filters that match no case).

:func:`text_table` is the one plain-text table formatter of the command line (``brain-ai
validate``, ``amp-stress`` and ``debug-report`` use it too).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import logging
import math
import os
import platform
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

import jinja2
import torch
from tqdm import tqdm

from brain_ai.conformance import registry, suite
from brain_ai.conformance.registry import Case, CaseResult
from brain_ai.errors import BrainAIError, ConfigError
from brain_ai.text_table import text_table

__all__ = [
    "VERDICTS",
    "add_arguments",
    "environment",
    "format_number",
    "render_html",
    "run",
    "text_table",
    "verdict_label",
]

COLUMNS = ("spikes", "membrane", "grad", "value")  # standard metrics shown in the table
VERDICTS = ("PASS", "GUARD-OK", "FAIL", "ERROR")  # every label verdict_label can return
PEER_DISTRIBUTIONS = {  # report field -> distribution name
    "brain_ai": "brain-ai-snn", "torch": "torch", "snntorch": "snntorch",
    "spikingjelly": "spikingjelly", "nir": "nir", "numpy": "numpy",
}
TEMPLATE = "report.html.j2"  # in this package's templates/ folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``brain-ai conformance`` on ``parser``."""
    parser.add_argument("--peer", help="only cases against this peer (snntorch, spikingjelly)")
    parser.add_argument("--family", help="only this family (Leaky, LIFNode, codec, loss, ...)")
    parser.add_argument("-k", dest="keyword", metavar="KEYWORD",
                        help="only cases whose name contains KEYWORD (case-insensitive)")
    parser.add_argument("--seed", type=int, default=0, help="seed passed to every case (0)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    parser.add_argument("--html", type=Path, metavar="PATH",
                        help="write a self-contained HTML report")
    parser.add_argument("--list", action="store_true", help="list the cases without running")
    parser.add_argument("--fail-fast", action="store_true",
                        help="stop at the first case that does not pass")


# --------------------------------------------------------------------------- formatting

# Plain ASCII: a rule of dashes under the header, columns three spaces apart, no frame.




def format_number(value: float | None) -> str:
    """Compact number for tables: ``0``, ``3``, ``0.25``, ``1.2e-07``, ``inf``, ``-``."""
    if value is None:
        return "-"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == 0:
        return "0"
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    if 1e-3 <= abs(value) < 1e3:
        return f"{value:.3g}"
    return f"{value:.1e}"


def verdict_label(result: CaseResult) -> str:
    """``PASS``, ``GUARD-OK`` (a guard whose expected difference was seen), ``FAIL``, ``ERROR``."""
    if result.error:
        return "ERROR"
    if not result.passed:
        return "FAIL"
    return "GUARD-OK" if result.case.expect == "differs" else "PASS"


def _why_failed(result: CaseResult) -> str:
    """One line saying which metric broke the verdict (or the error text)."""
    if result.error:
        return result.error
    case, parts = result.case, []
    for key, tol in case.tolerances.items():
        value = result.metrics.get(key)
        if value is None:
            parts.append(f"{key} missing")
        elif case.expect == "equal" and not value <= tol:
            parts.append(f"{key} {format_number(value)} > {format_number(tol)}")
        elif case.expect == "differs":
            parts.append(f"{key} {format_number(value)} vs tol {format_number(tol)}")
    prefix = "guard: expected a difference, none observed: " if case.expect == "differs" else ""
    return prefix + "; ".join(parts)


def _other(result: CaseResult) -> str:
    """Non-standard metrics as ``name=value`` (``-`` when none)."""
    extra = [f"{k}={format_number(v)}" for k, v in result.metrics.items() if k not in COLUMNS]
    return ",".join(extra) or "-"


def _groups(results: Iterable[CaseResult]) -> dict[str, list[CaseResult]]:
    """Results grouped by family, families in order of first appearance."""
    groups: dict[str, list[CaseResult]] = {}
    for r in results:
        groups.setdefault(r.case.family, []).append(r)
    return groups


def _table(results: list[CaseResult]) -> str:
    """The terminal table: one block per family, under a ``== family`` heading line."""
    rows: list[Sequence[str] | str] = []
    for family, group in _groups(results).items():
        bad = sum(not r.passed for r in group)
        rows.append(f"== {family} ({len(group)} cases, {bad} not passed)")
        rows += [(r.case.name, r.case.peer, *(format_number(r.metrics.get(c)) for c in COLUMNS),
                  _other(r), verdict_label(r)) for r in group]
    return text_table(("case", "peer", *COLUMNS, "other", "verdict"), rows,
                      right=range(2, 3 + len(COLUMNS)))


def _progress(total: int, stream: TextIO) -> tqdm:
    """A tqdm bar on ``stream``; disabled when it is not a terminal or under CI."""
    quiet = not stream.isatty() or bool(os.environ.get("CI"))
    return tqdm(total=total, file=stream, disable=quiet, desc="conformance", unit="case",
                leave=False, dynamic_ncols=True)


# --------------------------------------------------------------------------- reports


def environment() -> dict[str, object]:
    """Versions of brain_ai, torch and the peers, and the machine the matrix ran on."""
    versions: dict[str, str | None] = {}
    for key, dist in PEER_DISTRIBUTIONS.items():
        try:
            versions[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[key] = None
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        **versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(affinity(0)) if affinity else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _jsonable(value: object) -> object:
    """``value`` with non-finite floats as strings and unknown objects as their ``str``."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def _record(result: CaseResult) -> dict[str, object]:
    """One case of the JSON report."""
    c = result.case
    return {
        "name": c.name, "family": c.family, "peer": c.peer, "config": _jsonable(dict(c.config)),
        "direction": c.direction, "dtype": c.dtype, "steps": c.steps, "expect": c.expect,
        "why": c.why, "tolerances": _jsonable(dict(c.tolerances)),
        "metrics": _jsonable(result.metrics), "passed": result.passed,
        "verdict": verdict_label(result), "error": result.error, "seconds": result.seconds,
    }


def _slug(text: str) -> str:
    """``text`` as an HTML id fragment: letters, digits and ``-`` only."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def _checks(result: CaseResult) -> list[dict[str, str]]:
    """Each toleranced metric against its tolerance, as the verdict reads it.

    ``state`` is ``ok`` (the metric supports the verdict the case expects: within tolerance
    for ``equal``, over it for a guard), ``bad`` (it breaks an ``equal`` case, or is missing),
    or ``neutral`` (a guard metric within tolerance: another metric may show the difference;
    or the case raised, so nothing was measured).
    """
    case, out = result.case, []
    for key, tol in case.tolerances.items():
        value = result.metrics.get(key)
        missing = value is None or math.isnan(value)
        over = not missing and value > tol  # type: ignore[operator]
        if result.error:  # the case raised: nothing was measured
            state = "neutral"
        elif missing:
            state = "bad"
        elif case.expect == "equal":
            state = "bad" if over else "ok"
        else:
            state = "ok" if over else "neutral"
        shown = "not measured" if result.error else "missing" if value is None else \
            format_number(value)
        out.append({"metric": key, "value": shown,
                    "exact": repr(value), "op": ">" if over else "≤",
                    "tol": format_number(tol), "tol_exact": repr(tol), "state": state})
    return out


def _case_view(result: CaseResult, anchor: str) -> dict[str, Any]:
    """What the template shows of one case."""
    c = result.case
    config = [f"{k}={v}" for k, v in c.config.items()]
    config += [f"direction={c.direction}", f"dtype={c.dtype}"]
    if c.steps is not None:
        config.append(f"T={c.steps}")
    return {
        "name": c.name, "anchor": anchor, "peer": c.peer, "family": c.family,
        "expect": c.expect, "why": c.why, "verdict": verdict_label(result),
        "passed": result.passed, "checks": _checks(result),
        "others": [(k, format_number(v)) for k, v in result.metrics.items()
                   if k not in c.tolerances],
        "config": config, "seconds": result.seconds, "error": result.error,
        "detail": "" if result.passed or result.error else _why_failed(result),
    }


def _report_context(summary: dict[str, Any], env: dict[str, object],
                    results: list[CaseResult]) -> dict[str, Any]:
    """Everything the HTML template needs, computed here so the template only lays it out."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    used: set[str] = set()
    for r in results:
        anchor = base = "case-" + _slug(r.case.name)
        n = 1
        while anchor in used:  # two names that differ only in punctuation
            n += 1
            anchor = f"{base}-{n}"
        used.add(anchor)
        groups.setdefault((r.case.peer, r.case.family), []).append(_case_view(r, anchor))
    sections = []
    for (peer, family), cases in groups.items():
        counts = Counter(c["verdict"] for c in cases)
        sections.append({"peer": peer, "family": family, "anchor": _slug(f"{peer}-{family}"),
                         "cases": cases, "counts": {v: counts[v] for v in VERDICTS},
                         "not_passed": sum(not c["passed"] for c in cases),
                         "seconds": sum(c["seconds"] for c in cases)})
    peers: dict[str, list[dict[str, Any]]] = {}
    for s in sections:
        peers.setdefault(s["peer"], []).append(s)
    sections = [s for group in peers.values() for s in group]  # page order = navigation order
    counts = Counter(verdict_label(r) for r in results)
    return {
        "summary": summary, "total": len(results), "ok": summary["failed"] == 0,
        "verdicts": {v: counts[v] for v in VERDICTS},
        "sections": sections,
        "peers": [{"peer": p, "sections": s, "total": sum(len(x["cases"]) for x in s),
                   "counts": {v: sum(x["counts"][v] for x in s) for v in VERDICTS}}
                  for p, s in peers.items()],
        "not_passed": [c for s in sections for c in s["cases"] if not c["passed"]],
        "case_seconds": sum(r.seconds for r in results),
        "versions": [(k, env.get(k)) for k in ("brain_ai", "torch", "snntorch", "spikingjelly",
                                               "nir", "numpy", "python")],
        "date": env.get("date"), "environment": list(env.items()),
    }


def render_html(summary: dict[str, Any], env: dict[str, object],
                results: list[CaseResult]) -> str:
    """The self-contained HTML report (no scripts, no external resources).

    Rendered from ``templates/report.html.j2`` of this package with autoescaping on.

    Args:
        summary: the ``summary`` object of the JSON report (counts, seconds, seed, filters).
        env: :func:`environment`.
        results: every case result, in run order.
    """
    jinja = jinja2.Environment(loader=jinja2.PackageLoader("brain_ai.conformance", "templates"),
                               autoescape=True, trim_blocks=True, lstrip_blocks=True,
                               undefined=jinja2.StrictUndefined)
    jinja.filters["num"] = format_number
    return jinja.get_template(TEMPLATE).render(_report_context(summary, env, results))


# --------------------------------------------------------------------------- running


def _import_failure(module: str, exc: Exception) -> CaseResult:
    """A failing pseudo-row for a case module that could not be imported."""
    missing = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    peer = (missing or "?").split(".")[0]
    hint = suite.INSTALL_HINT if isinstance(exc, ImportError) else "fix the case module"
    error = (f"case module {module} cannot be imported, so its cases did not run "
             f"({type(exc).__name__}: {exc}).\n  Hint: {hint}")

    def not_run(seed: int) -> dict[str, float]:
        raise RuntimeError(error)

    case = Case(name=f"{module} (import)", family="import", peer=peer, run=not_run,
                tolerances={}, config={"module": module})
    return CaseResult(case, {}, False, error)


def _select(args: argparse.Namespace) -> tuple[list[Case], list[CaseResult]]:
    """Load the case modules; return the selected cases and the import-failure rows."""
    failures = [_import_failure(m, exc) for m, exc in suite.load_modules().items()]
    cases = registry.filter_cases(registry.CASES, args.peer, args.family, args.keyword)
    if not cases and not failures:
        peers = sorted({c.peer for c in registry.CASES})
        families = sorted({c.family for c in registry.CASES})
        raise ConfigError(
            "brain-ai conformance", "no case matches the filters",
            got=f"--peer {args.peer} --family {args.family} -k {args.keyword}",
            expected=f"peers {peers}, families {families}, {len(registry.CASES)} cases",
            hint="run `brain-ai conformance --list` to see the case names",
        )
    return cases, failures


def _run_all(cases: list[Case], seed: int, fail_fast: bool,
             on_start: Callable[[int, str], None]) -> list[CaseResult]:
    """Run ``cases`` in order (stopping at the first non-pass with ``fail_fast``)."""
    results = []
    for i, case in enumerate(cases):
        on_start(i, case.name)
        result = registry.run_case(case, seed=seed)
        results.append(result)
        if fail_fast and not result.passed:
            break
    return results


def _list(cases: list[Case], failures: list[CaseResult]) -> int:
    """``--list``: the selected cases as a table, import failures first."""
    rows = [(r.case.name, "import", r.case.peer, "ERROR", r.error.splitlines()[0], "")
            for r in failures]
    rows += [(c.name, c.family, c.peer, c.expect, c.dtype, "" if c.steps is None else str(c.steps))
             for c in cases]
    print(text_table(("case", "family", "peer", "expect", "dtype", "T"), rows, right=(5,)))
    print(f"{len(cases)} cases, {len(failures)} case modules failed to import")
    return 1 if failures else 0


def run(args: argparse.Namespace) -> int:
    """Run the selected cases, print the table and write the reports; return the exit code."""
    # SpikingJelly's CUDA-op registration makes torch log "Triton not available" on a CPU
    # machine; it is noise in this report.
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)
    t0 = time.perf_counter()  # the total includes importing the case modules and the peers
    try:
        cases, failures = _select(args)
    except BrainAIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        return _list(cases, failures)

    results = list(failures)
    with _progress(len(cases), sys.stderr) as bar:
        def on_start(i: int, name: str) -> None:  # i cases done, ``name`` runs next
            bar.update(i - bar.n)
            bar.set_postfix_str(name)  # redraws: a slow case shows its name while it runs

        if not (failures and args.fail_fast):
            results += _run_all(cases, args.seed, args.fail_fast, on_start)
        bar.update(len(results) - len(failures) - bar.n)
    seconds = time.perf_counter() - t0

    passed = sum(r.passed for r in results)
    failed = len(results) - passed
    env = environment()
    summary = {
        "passed": passed, "failed": failed,
        "guards_ok": sum(verdict_label(r) == "GUARD-OK" for r in results),
        "errors": sum(bool(r.error) for r in results),
        "not_run": len(cases) + len(failures) - len(results), "seconds": round(seconds, 3),
        "seed": args.seed,
        "filters": {"peer": args.peer, "family": args.family, "keyword": args.keyword},
    }
    print(_table(results))
    bad = [r for r in results if not r.passed]
    if bad:
        print("\nfailures:")
        for r in bad:
            print(f"  {r.case.name}: {_why_failed(r)}")
    if summary["not_run"]:
        print(f"{summary['not_run']} cases not run (--fail-fast)")
    print(f"conformance: {passed} passed, {failed} failed")
    print(f"total {seconds:.2f} s, {env['cpus_usable']} CPUs, {env['torch_threads']} torch "
          f"threads, torch {env['torch']}, snntorch {env['snntorch']}, "
          f"spikingjelly {env['spikingjelly']}")
    if args.json:
        report = {"summary": summary, "environment": env, "cases": [_record(r) for r in results]}
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    if args.html:
        args.html.write_text(render_html(summary, env, results), encoding="utf-8")
    return 1 if failed else 0
