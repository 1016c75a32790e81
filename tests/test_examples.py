"""The examples run and do what they say."""

from __future__ import annotations

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_training_example_learns_the_synthetic_task() -> None:
    accuracy = runpy.run_path(str(EXAMPLES / "train_synthetic.py"))["main"](epochs=4)
    assert accuracy >= 0.9  # chance is 0.25


def test_migration_example_reports_equivalence() -> None:
    assert runpy.run_path(str(EXAMPLES / "migrate_snntorch.py"))["main"]() is True
