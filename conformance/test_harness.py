"""Tests of the conformance harness itself: it must fail a wrong mapping, with the right numbers.

The cases here are fakes in a temporary registry (the real case modules are not needed): a
reference subtract-reset LIF written out below is compared with itself (must pass), with a
wrong comparator and with a wrong beta (must fail, with mismatch counts and ``max |Δ|`` worked
out by hand in the docstrings).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor

from brain_ai.adapters.metrics import max_abs_diff, max_rel_grad, spike_mismatches
from brain_ai.apps.cli import main
from brain_ai.conformance import cli, registry, suite
from brain_ai.conformance.registry import Case, register, run_case, verdict
from brain_ai.errors import PeerMissingError

X = torch.tensor([[1.0, 0.5, 1.0, 0.25]])  # (B=1, T=4), binary fractions: exact arithmetic


def lif(x: Tensor, beta: float, comparator: str = ">") -> tuple[Tensor, Tensor]:
    """Subtract-reset LIF, threshold 1: ``v = βv + x; s = v ⋛ 1; v -= s``. ``x`` ``(B, T)``.

    Returns ``(spikes, membrane after reset)``, both ``(B, T)``. The comparison carries no
    gradient, so ``d Σ_t v_t / d x_k = Σ_{t≥k} β^(t-k)``.
    """
    v = torch.zeros_like(x[:, 0])
    spikes, mems = [], []
    for x_t in x.unbind(1):
        v = beta * v + x_t
        s = (v > 1.0 if comparator == ">" else v >= 1.0).to(x.dtype)
        v = v - s
        spikes.append(s)
        mems.append(v)
    return torch.stack(spikes, 1), torch.stack(mems, 1)


def compare(beta: float, comparator: str) -> dict[str, float]:
    """Metrics of ``lif(X, beta, comparator)`` (ours) against the reference ``lif(X, 0.5, ">")``."""
    runs = []
    for b, cmp in ((beta, comparator), (0.5, ">")):
        x = X.clone().requires_grad_(True)
        s, v = lif(x, b, cmp)
        v.sum().backward()
        runs.append((s, v, x.grad))
    (s1, v1, g1), (s2, v2, g2) = runs
    return {"spikes": spike_mismatches(s1, s2), "membrane": max_abs_diff(v1, v2),
            "grad": max_rel_grad([g1], [g2])}


TOL = {"spikes": 0.0, "membrane": 0.0, "grad": 1e-6}
WRONG_BETA_GRAD = 0.859375 / 1.875  # see test_wrong_beta_is_a_failure_with_exact_numbers


def fake_cases() -> list[Case]:
    """Five fake cases: pass, two wrong mappings, a guard that holds, and a crash."""
    return [
        Case("peerA/lif/correct", "lif", "peerA", lambda seed: compare(0.5, ">"), TOL,
             config={"beta": 0.5}, steps=4),
        Case("peerA/lif/wrong_beta", "lif", "peerA", lambda seed: compare(0.75, ">"), TOL,
             config={"beta": 0.75}, steps=4),
        Case("peerB/lif/wrong_comparator", "lif", "peerB", lambda seed: compare(0.5, ">="),
             TOL, config={"comparator": ">="}, steps=4),
        Case("peerB/guard/comparator", "guard", "peerB", lambda seed: compare(0.5, ">="),
             {"spikes": 0.0}, expect="differs", why="'>=' fires at v == threshold"),
        Case("peerB/crash/raises", "crash", "peerB", lambda seed: {"value": 1 / 0}, TOL),
    ]


@pytest.fixture
def fake_registry(monkeypatch: pytest.MonkeyPatch) -> list[Case]:
    """An isolated, already-loaded registry holding :func:`fake_cases`."""
    monkeypatch.setattr(registry, "CASES", [])
    monkeypatch.setattr(suite, "LOAD_ERRORS", {})
    monkeypatch.setattr(suite, "_LOADED", True)
    for case in fake_cases():
        register(case)
    return registry.CASES


def run_cli(argv: list[str]) -> int:
    """``brain-ai conformance ARGV`` in-process."""
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


# --------------------------------------------------------------------------- the harness


def test_reference_traces_are_the_hand_computed_ones() -> None:
    """β=0.5, '>': v = 1, 1, 1.5→0.5, 0.5 (spike at t=3 only).

    '>=': v = 1→0, 0.5, 1.25→0.25, 0.375 (spikes at t=1, t=3).
    β=0.75, '>': v = 1, 1.25→0.25, 1.1875→0.1875, 0.390625 (spikes at t=2, t=3).
    """
    cases = {
        (0.5, ">"): ([0, 0, 1, 0], [1.0, 1.0, 0.5, 0.5]),
        (0.5, ">="): ([1, 0, 1, 0], [0.0, 0.5, 0.25, 0.375]),
        (0.75, ">"): ([0, 1, 1, 0], [1.0, 0.25, 0.1875, 0.390625]),
    }
    for (beta, cmp), (spikes, mem) in cases.items():
        s, v = lif(X, beta, cmp)
        torch.testing.assert_close(s, torch.tensor([spikes], dtype=torch.float32), rtol=0, atol=0)
        torch.testing.assert_close(v, torch.tensor([mem]), rtol=0, atol=0)


def test_correct_mapping_passes_with_zero_metrics() -> None:
    result = run_case(fake_cases()[0])
    assert result.passed and result.error == ""
    assert result.metrics == {"spikes": 0.0, "membrane": 0.0, "grad": 0.0}


def test_wrong_comparator_is_a_failure_with_exact_numbers() -> None:
    """One spike differs (t=1); membranes differ by 1, 0.5, 0.25, 0.125 -> max 1.

    Gradients match: the reset carries none, and β is the same.
    """
    result = run_case(fake_cases()[2])
    assert not result.passed and result.error == ""
    assert result.metrics == {"spikes": 1.0, "membrane": 1.0, "grad": 0.0}


def test_wrong_beta_is_a_failure_with_exact_numbers() -> None:
    """One spike differs (t=2); membranes differ by 0, 0.75, 0.3125, 0.109375 -> max 0.75.

    ``d Σv / dx`` is (1.875, 1.75, 1.5, 1) for β=0.5 and (2.734375, 2.3125, 1.75, 1) for
    β=0.75: max |Δ| = 0.859375, relative to the reference's max 1.875.
    """
    result = run_case(fake_cases()[1])
    assert not result.passed and result.error == ""
    assert result.metrics == {"spikes": 1.0, "membrane": 0.75, "grad": WRONG_BETA_GRAD}


@pytest.mark.parametrize(
    ("expect", "metrics", "passed"),
    [
        ("equal", {"spikes": 0.0, "membrane": 1e-7}, True),
        ("equal", {"spikes": 0.0, "membrane": 2e-7}, False),
        ("equal", {"spikes": 0.0}, False),  # missing metric
        ("equal", {"spikes": 0.0, "membrane": float("nan")}, False),
        ("differs", {"spikes": 1.0, "membrane": 0.0}, True),  # one metric over is enough
        ("differs", {"spikes": 0.0, "membrane": 1e-7}, False),  # at tolerance: not a difference
        ("differs", {"spikes": 3.0}, False),  # missing metric
        ("differs", {"spikes": 3.0, "membrane": float("nan")}, False),
    ],
)
def test_verdict(expect: str, metrics: dict[str, float], passed: bool) -> None:
    case = Case("x", "f", "p", lambda seed: metrics, {"spikes": 0.0, "membrane": 1e-7},
                expect=expect)  # type: ignore[arg-type]
    assert verdict(case, metrics) is passed
    assert run_case(case).passed is passed


def test_exception_in_a_case_is_a_failed_result_with_the_error() -> None:
    result = run_case(fake_cases()[4])
    assert not result.passed and result.metrics == {}
    assert result.error == "ZeroDivisionError: division by zero"


# --------------------------------------------------------------------------- the CLI


def test_format_number() -> None:
    values = [None, 0.0, 3.0, 0.25, 1.2e-7, 12345.6, float("inf")]
    assert [cli.format_number(v) for v in values] == [
        "-", "0", "3", "0.25", "1.2e-07", "1.2e+04", "inf"]


def test_list(fake_registry: list[Case], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["case", "family", "peer", "expect", "dtype", "T"]
    assert set(lines[1]) == {"-"}
    assert [line.split()[0] for line in lines[2:-1]] == [c.name for c in fake_registry]
    assert lines[-1] == "5 cases, 0 case modules failed to import"


def test_table_summary_and_exit_code(
    fake_registry: list[Case], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli([]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^conformance: 2 passed, 3 failed$", out, re.MULTILINE)
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.startswith("peer")}
    assert rows["peerA/lif/correct"][2:] == ["0", "0", "0", "-", "-", "PASS"]
    assert rows["peerA/lif/wrong_beta"][2:] == ["1", "0.75", "0.458", "-", "-", "FAIL"]
    assert rows["peerB/lif/wrong_comparator"][2:] == ["1", "1", "0", "-", "-", "FAIL"]
    assert rows["peerB/guard/comparator"][-1] == "GUARD-OK"
    assert rows["peerB/crash/raises"][-1] == "ERROR"
    assert "peerB/crash/raises: ZeroDivisionError: division by zero" in out
    assert "peerA/lif/wrong_beta: spikes 1 > 0; membrane 0.75 > 0; grad 0.458 > 1.0e-06" in out


def test_filters_and_exit_code_zero(
    fake_registry: list[Case], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["-k", "CORRECT"]) == 0
    assert "conformance: 1 passed, 0 failed\n" in capsys.readouterr().out
    assert run_cli(["--peer", "peerB", "--family", "GUARD"]) == 0
    out = capsys.readouterr().out
    assert "peerB/guard/comparator" in out and "peerA" not in out
    assert run_cli(["--peer", "nobody"]) == 2
    assert "no case matches the filters" in capsys.readouterr().err


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, so the progress bar draws."""

    def isatty(self) -> bool:
        return True


def test_fail_fast_and_progress(
    fake_registry: list[Case], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--fail-fast stops after the 2nd case (the first failure); the bar is quiet off a TTY."""
    monkeypatch.delenv("CI", raising=False)
    assert run_cli(["--fail-fast"]) == 1
    captured = capsys.readouterr()
    assert "conformance: 1 passed, 1 failed" in captured.out
    assert "3 cases not run (--fail-fast)" in captured.out
    assert captured.err == ""  # not a terminal: no progress output at all

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run_cli(["--fail-fast"]) == 1
    frames = terminal.getvalue().split("\r")
    assert any(f.startswith("conformance:   0%") and "0/5" in f for f in frames)
    assert any(f.startswith("conformance:  20%") and "1/5" in f
               and f.endswith("peerA/lif/wrong_beta]") for f in frames)  # the case now running
    assert frames[-1].strip() == ""  # the bar erases itself (leave=False)
    capsys.readouterr()

    monkeypatch.setenv("CI", "true")  # CI logs stay clean even on a pseudo-terminal
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run_cli(["-k", "correct"]) == 0
    assert terminal.getvalue() == ""


def test_json_and_html(fake_registry: list[Case], tmp_path: Path) -> None:
    assert run_cli(["--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"),
                    "--seed", "7"]) == 1
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert {k: report["summary"][k] for k in ("passed", "failed", "guards_ok", "errors", "seed")}\
        == {"passed": 2, "failed": 3, "guards_ok": 1, "errors": 1, "seed": 7}
    cases = {c["name"]: c for c in report["cases"]}
    assert list(cases) == [c.name for c in fake_registry]
    wrong = cases["peerA/lif/wrong_beta"]
    assert wrong["metrics"] == {"spikes": 1.0, "membrane": 0.75, "grad": WRONG_BETA_GRAD}
    assert (wrong["passed"], wrong["verdict"], wrong["tolerances"], wrong["config"]) == (
        False, "FAIL", TOL, {"beta": 0.75})
    assert (wrong["family"], wrong["peer"], wrong["expect"], wrong["dtype"], wrong["steps"],
            wrong["direction"]) == ("lif", "peerA", "equal", "float32", 4, "native")
    assert cases["peerB/guard/comparator"]["verdict"] == "GUARD-OK"
    assert cases["peerB/crash/raises"]["error"] == "ZeroDivisionError: division by zero"
    env = report["environment"]
    assert env["torch"] == importlib.metadata.version("torch")
    assert env["torch_threads"] == torch.get_num_threads()
    for key in ("brain_ai", "snntorch", "spikingjelly", "nir", "numpy", "python", "platform",
                "cpu_count", "date"):
        assert key in env
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<script" not in page
    for case in fake_registry:
        assert case.name in page
    assert page.count('<tr class="case v-FAIL"') == 2  # tests/test_reports.py reads the rest


def test_missing_peer_is_a_failing_row_not_a_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = tmp_path / "fake_conformance_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "cases_needs_peer.py").write_text("import brain_ai_no_such_peer_xyz\n")
    (pkg / "cases_ok.py").write_text(
        "from brain_ai.conformance.registry import Case, register\n"
        "register(Case('p/f/ok', 'f', 'p', lambda seed: {'value': 0.0}, {'value': 0.0}))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(suite, "CASE_PACKAGE", "fake_conformance_pkg")
    monkeypatch.setattr(registry, "CASES", [])
    monkeypatch.setattr(suite, "LOAD_ERRORS", {})
    monkeypatch.setattr(suite, "_LOADED", False)
    for name in [m for m in sys.modules if m.startswith("fake_conformance_pkg")]:
        monkeypatch.delitem(sys.modules, name)

    assert run_cli([]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^cases_needs_peer \(import\) +brain_ai_no_such_peer_xyz .* ERROR$", out,
                     re.MULTILINE)
    assert "No module named 'brain_ai_no_such_peer_xyz'" in out
    assert suite.INSTALL_HINT in out
    assert "conformance: 1 passed, 1 failed\n" in out
    assert run_cli(["--list"]) == 1
    with pytest.raises(PeerMissingError, match="cases_needs_peer cannot be imported"):
        suite.load_all()


def test_brain_ai_main_wiring(
    fake_registry: list[Case], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["conformance", "--list", "-k", "wrong"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "case                         family   peer    expect   dtype     T",
        "------------------------------------------------------------------",
        "peerA/lif/wrong_beta         lif      peerA   equal    float32   4",
        "peerB/lif/wrong_comparator   lif      peerB   equal    float32   4",
        "2 cases, 0 case modules failed to import",
    ]
