"""``brain-ai conformance``: run the equivalence matrix and report it.

With no arguments every registered case runs on its built-in defaults against the installed
peers. A case module that cannot be imported (a peer is missing) is reported as a failing
``ERROR`` row naming the missing module and the install command; nothing is skipped.

Output: a progress bar on stderr (a TTY only; elsewhere one line every
:data:`PROGRESS_EVERY` cases), then a table on stdout grouped by family, the failures in
detail, and the summary line ``conformance: N passed, M failed``. ``--json`` and ``--html``
write the same results with the environment. Exit code: 0 when every case passed, 1 on any
failure or error, 2 on bad usage (filters that match no case).
"""

from __future__ import annotations

import argparse
import datetime
import html
import importlib.metadata
import json
import logging
import math
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

import torch

from brain_ai.conformance import registry, suite
from brain_ai.conformance.registry import Case, CaseResult
from brain_ai.errors import BrainAIError, ConfigError

__all__ = ["add_arguments", "environment", "format_number", "run", "verdict_label"]

PROGRESS_EVERY = 50
COLUMNS = ("spikes", "membrane", "grad", "value")  # standard metrics shown in the table
PEER_DISTRIBUTIONS = {  # report field -> distribution name
    "brain_ai": "brain-ai-snn", "torch": "torch", "snntorch": "snntorch",
    "spikingjelly": "spikingjelly", "nir": "nir", "numpy": "numpy",
}


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


def _table(results: list[CaseResult], out: TextIO) -> None:
    """The terminal table: one block per family."""
    header = ("case", "peer", *COLUMNS, "other", "verdict")
    rows = [(r.case.name, r.case.peer, *(format_number(r.metrics.get(c)) for c in COLUMNS),
             _other(r), verdict_label(r)) for r in results]
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]

    def line(cells: tuple[str, ...]) -> str:
        left = [cells[0].ljust(widths[0]), cells[1].ljust(widths[1])]
        right = [c.rjust(w) for c, w in zip(cells[2:-1], widths[2:-1], strict=True)]
        return "  ".join([*left, *right, cells[-1]]).rstrip()

    print(line(header), file=out)
    by_name = dict(zip((r.case.name for r in results), rows, strict=True))
    for family, group in _groups(results).items():
        bad = sum(not r.passed for r in group)
        print(f"== {family} ({len(group)} cases, {bad} not passed)", file=out)
        for r in group:
            print(line(by_name[r.case.name]), file=out)


class _Progress:
    """A text progress bar on a TTY; elsewhere one line every :data:`PROGRESS_EVERY` cases."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream, self.t0 = total, stream, time.perf_counter()
        self.tty = stream.isatty()
        self.width = min(shutil.get_terminal_size((120, 24)).columns - 1, 119)

    def update(self, done: int, name: str) -> None:
        """``done`` cases finished; ``name`` runs next."""
        elapsed = time.perf_counter() - self.t0
        if self.tty:
            filled = int(30 * done / max(self.total, 1))
            text = f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} {elapsed:5.1f}s "
            self.stream.write((text + name)[: self.width + 1].ljust(self.width + 1))
            self.stream.flush()
        elif done and done % PROGRESS_EVERY == 0:
            print(f"conformance: {done}/{self.total} cases run ({elapsed:.1f} s)",
                  file=self.stream, flush=True)

    def close(self) -> None:
        """Erase the bar (TTY only)."""
        if self.tty:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


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


_CSS = """body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
td.n{text-align:right;font-family:monospace}tr.FAIL,tr.ERROR{background:#fdd}
tr.GUARD-OK{background:#eef}.err{font-family:monospace;white-space:pre-wrap;color:#900}
h2{margin-top:1.5em}"""


def _html(summary: dict[str, object], env: dict[str, object], results: list[CaseResult]) -> str:
    """A self-contained HTML page: summary, one table per family, environment."""
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>brain_ai conformance"
             f"</title><style>{_CSS}</style></head><body><h1>brain_ai conformance</h1>",
             "<p>" + ", ".join(f"<b>{e(str(k))}</b>: {e(str(v))}" for k, v in summary.items())
             + "</p>"]
    head = ("case", "peer", "config", "expect", "dtype", "steps", *COLUMNS, "other", "verdict",
            "s")
    for family, group in _groups(results).items():
        parts.append(f"<h2>{e(family)}</h2><table><tr>"
                     + "".join(f"<th>{h}</th>" for h in head) + "</tr>")
        for r in group:
            c, label = r.case, verdict_label(r)
            cells = [e(c.name), e(c.peer), e(json.dumps(_jsonable(dict(c.config)))),
                     e(c.expect), e(c.dtype), e(format_number(c.steps))]
            nums = [*(format_number(r.metrics.get(k)) for k in COLUMNS), e(_other(r))]
            parts.append(f"<tr class='{label}'>" + "".join(f"<td>{x}</td>" for x in cells)
                         + "".join(f"<td class='n'>{x}</td>" for x in nums)
                         + f"<td>{label}</td><td class='n'>{r.seconds:.3f}</td></tr>")
            if not r.passed:
                parts.append(f"<tr class='{label}'><td colspan='{len(head)}' class='err'>"
                             f"{e(_why_failed(r))}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Environment</h2><table>" + "".join(
        f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in env.items())
        + "</table></body></html>")
    return "\n".join(parts)


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
        for r in failures:
            print(f"{r.case.name}  ERROR  {r.error}")
        width = max((len(c.name) for c in cases), default=0)
        for c in cases:
            steps = "" if c.steps is None else f" T={c.steps}"
            print(f"{c.name.ljust(width)}  {c.family}  {c.peer}  {c.expect}  {c.dtype}{steps}")
        print(f"{len(cases)} cases, {len(failures)} case modules failed to import")
        return 1 if failures else 0

    progress = _Progress(len(cases), sys.stderr)
    results = list(failures)
    if not (failures and args.fail_fast):
        results += _run_all(cases, args.seed, args.fail_fast, progress.update)
    progress.close()
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
    _table(results, sys.stdout)
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
        args.html.write_text(_html(summary, env, results), encoding="utf-8")
    return 1 if failed else 0
