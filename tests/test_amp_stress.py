"""``brain-ai amp-stress`` on a tiny setting: every row passes and the table is printed."""

from __future__ import annotations

import argparse

import pytest

from brain_ai.apps import amp_stress


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    amp_stress.add_arguments(parser)
    return parser.parse_args(["--device", "cpu", "--batch", "2", "--steps", "12", *argv])


def test_amp_stress_tiny_run_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert amp_stress.run(_args()) == 0
    out = capsys.readouterr().out
    assert "ProbSpikes" in out and "rate_bernoulli" in out and "ensemble" in out
    assert "FAIL" not in out


def test_amp_stress_catches_a_loss_that_scales_with_t() -> None:
    """count_cross_entropy on raw counts is not T-invariant: the ratio check would flag it."""
    rows = amp_stress.stress(_args("--only", "losses"))
    by_name = {r.name: r for r in rows}
    assert by_name["ProbSpikes"].t_ratio == 1.0
    assert by_name["l1_rate_sparsity"].t_ratio == 2.0  # lam * total count: exactly doubles
    assert by_name["l1_rate_sparsity"].t_inv == "n/a"
    assert all(r.out_dtype == "float32" and r.grad == "finite" for r in rows)


def test_amp_stress_rejects_bad_sizes() -> None:
    assert amp_stress.run(_args("--steps", "4")) == 2


def test_amp_stress_table_rows(capsys: pytest.CaptureFixture[str]) -> None:
    """One row per check under a header; a T-invariant loss reads ratio 1, ``ok``, PASS."""
    assert amp_stress.run(_args("--only", "losses")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["kind", "name", "device", "autocast"]
    assert set(lines[1]) == {"-"}
    rows = {line.split()[1]: line.split() for line in lines[2:] if line.startswith("loss ")}
    assert len(rows) == 16 and lines[-1] == "16/16 checks passed"
    assert rows["ProbSpikes"][5:] == ["float32", "yes", "finite", "1", "ok", "PASS"]
    assert rows["l1_rate_sparsity"][8:11] == ["2", "n/a", "PASS"]
