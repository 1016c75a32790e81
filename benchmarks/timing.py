"""What every benchmark script shares: interleaved timing and the peak-memory child process.

Imported by the scripts of this folder (``python benchmarks/<script>.py`` puts the folder on
``sys.path``).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["memory_from_child", "timed"]


def timed(fns: dict[str, Callable[[], object]], repeat: int, budget_s: float,
          min_rounds: int = 4) -> dict[str, float]:
    """Median seconds per contestant; each round runs every contestant once, in a seeded
    random order (interleaved: a slow phase of the machine hits all of them). Stops after
    ``repeat`` rounds, or after ``budget_s`` seconds once ``min_rounds`` rounds are done."""
    times: dict[str, list[float]] = {n: [] for n in fns}
    for f in fns.values():
        f()  # warm-up
    order = random.Random(0)
    stop = time.perf_counter() + budget_s
    for r in range(repeat):
        names = list(fns)
        order.shuffle(names)
        for n in names:
            t0 = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - t0)
        if time.perf_counter() > stop and r + 1 >= min_rounds:
            break
    return {n: statistics.median(v) for n, v in times.items()}


def memory_from_child(script: str, arg: str) -> Any:
    """Run ``script --memory-child arg`` with the native op's pool off (so freed blocks are not
    counted as live) and this process's thread count; returns the JSON it prints last."""
    env = dict(os.environ, BRAIN_AI_POOL_MB="0")
    cmd = [sys.executable, os.path.abspath(script), "--memory-child", arg,
           "--threads", str(torch.get_num_threads())]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"memory child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])
