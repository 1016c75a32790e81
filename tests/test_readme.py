"""The README's Python blocks run as written and compute what they say."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _block(heading: str) -> str:
    section = README.split(f"## {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, heading
    return match.group(1)


def test_quick_start_and_engines_blocks() -> None:
    torch.manual_seed(0)
    ns: dict[str, object] = {}
    exec(_block("Quick start"), ns)
    out, spikes = ns["out"], ns["spikes"]
    assert out.shape == (8, 25, 10) and spikes.shape == (32, 25, 100)  # type: ignore[attr-defined]
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}  # type: ignore[attr-defined]
    exec(_block("One model, several engines"), ns)
    lif, x = ns["lif"], ns["x"]
    native_spikes, native_state = lif(x)  # type: ignore[operator]
    torch.testing.assert_close(ns["spikes"], native_spikes, rtol=0, atol=0)
    torch.testing.assert_close(ns["state"].v, native_state.v, rtol=0, atol=0)  # type: ignore[attr-defined]
