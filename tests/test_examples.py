"""The examples run and do what they say."""

from __future__ import annotations

import io
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, so tqdm draws its bar."""

    def isatty(self) -> bool:
        return True


def test_training_example_learns_the_synthetic_task(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    accuracy = runpy.run_path(str(EXAMPLES / "train_synthetic.py"))["main"](epochs=4)
    assert accuracy >= 0.9  # chance is 0.25
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith(f"test accuracy: {accuracy:.3f}  (")
    frames = terminal.getvalue().split("\r")  # tqdm on stderr: epoch count and the loss
    assert any(f.startswith("training: 100%") and "4/4" in f and "loss=" in f for f in frames)


def test_training_example_bar_is_quiet_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    """Piped output (CI logs) gets no progress frames, only the result line."""
    runpy.run_path(str(EXAMPLES / "train_synthetic.py"))["main"](epochs=1)
    captured = capsys.readouterr()
    assert captured.err == "" and "\r" not in captured.out
    assert captured.out.startswith("test accuracy: ")


def test_migration_example_reports_equivalence() -> None:
    assert runpy.run_path(str(EXAMPLES / "migrate_snntorch.py"))["main"]() is True
