"""``brain-ai validate`` run in-process: every variant passes, failures give a non-zero exit."""

from __future__ import annotations

import sys

import pytest
import torch

from brain_ai.apps import validate
from brain_ai.apps.cli import main
from brain_ai.apps.validate_codecs import codec_checks


def test_validate_passes_and_lists_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["validate"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
            if line.split() and line.split()[0] in {v.name for v in validate.VARIANTS}}
    assert sorted(rows) == sorted(v.name for v in validate.VARIANTS)
    for name, cells in rows.items():
        assert cells == ["ok"] * len(validate.CHECKS), (name, cells)
    header = next(line for line in out.splitlines() if line.startswith("variant"))
    assert header.split() == ["variant", *validate.CHECKS]
    codec_rows = [line.split() for line in out.splitlines()
                  if line.split()[:1] and "/" in line.split()[0] and line.split()[1:2] == ["ok"]]
    assert len(codec_rows) == len(codec_checks()) == 24  # 7 encoders x 2, 3 + 5 decoders + 2
    n = len(validate.VARIANTS) * len(validate.CHECKS)  # 17 x 9 = 153
    assert out.splitlines()[-1] == (
        f"PASS: {n + 24}/{n + 24} checks passed ({n}/{n} neuron checks over "
        f"{len(validate.VARIANTS)} variants, 24/24 codec checks)")


def test_validate_covers_the_seed_variants() -> None:
    """LIF plain / alpha synapse / refractory / graded / tau / rate charges, adaptive,
    recurrent linear / one_to_one / conv2d / input projection, advanced."""
    names = {v.name for v in validate.VARIANTS}
    assert {"lif", "lif_alpha_synapse", "lif_refractory", "lif_graded", "lif_tau", "lif_rate",
            "adaptive", "recurrent_linear", "recurrent_one_to_one", "recurrent_conv2d",
            "recurrent_in_features", "advanced"} <= names
    assert len(names) == len(validate.VARIANTS)


def test_a_failing_check_gives_exit_code_one(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def broken(v: validate.Variant, g: torch.Generator) -> str:
        return "" if v.name == "lif" else "spikes were 0.5"

    def raising(v: validate.Variant, g: torch.Generator) -> str:
        raise RuntimeError("kaboom")

    monkeypatch.setitem(validate.CHECKS, "broken", broken)
    monkeypatch.setitem(validate.CHECKS, "raising", raising)
    rc = main(["validate", "--only", "lif", "--only", "adaptive", "--no-codecs"])
    out = capsys.readouterr().out
    assert rc == 1
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()
             if len(line.split()) > 1 and line.split()[1] in ("ok", "FAIL")}
    assert lines["lif"][-2:] == ["ok", "FAIL"]
    assert lines["adaptive"][-2:] == ["FAIL", "FAIL"]
    assert "adaptive / broken: spikes were 0.5" in out
    assert "lif / raising: raised RuntimeError: kaboom" in out
    n = 2 * len(validate.CHECKS)
    assert out.splitlines()[-1] == (
        f"FAIL: {n - 3}/{n} checks passed ({n - 3}/{n} neuron checks over 2 variants, "
        "codec checks not run)")


def test_missing_codec_module_is_a_note(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "brain_ai.apps.validate_codecs", None)  # import now fails
    rc = main(["validate", "--only", "lif"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "codecs: skipped (brain_ai.apps.validate_codecs is not installed)" in out
    n = len(validate.CHECKS)
    assert out.splitlines()[-1] == (
        f"PASS: {n}/{n} checks passed ({n}/{n} neuron checks over 1 variant, "
        "codec checks skipped)")


def test_failing_codec_rows_fail_the_run(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    class FakeCodecs:
        @staticmethod
        def codec_checks() -> list[tuple[str, bool, str]]:
            return [("encoder/x/contract", True, "fine"), ("decoder/y/contract", False, "bad")]

    monkeypatch.setitem(sys.modules, "brain_ai.apps.validate_codecs", FakeCodecs)
    rc = main(["validate", "--only", "lif"])
    out = capsys.readouterr().out
    assert rc == 1
    assert any(line.split()[:3] == ["decoder/y/contract", "FAIL", "bad"]
               for line in out.splitlines())
    n = len(validate.CHECKS)  # all neuron checks pass; one of the two codec checks fails
    assert out.splitlines()[-1] == (
        f"FAIL: {n + 1}/{n + 2} checks passed ({n}/{n} neuron checks over 1 variant, "
        "1/2 codec checks)")


def test_run_checks_is_deterministic() -> None:
    a = validate.run_checks(seed=3, only=["lif", "advanced"])
    b = validate.run_checks(seed=3, only=["lif", "advanced"])
    assert a == b == {"lif": dict.fromkeys(validate.CHECKS, ""),
                      "advanced": dict.fromkeys(validate.CHECKS, "")}
