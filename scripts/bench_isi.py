"""Benchmark: vectorized ISIRegularization (one dilated F.conv1d) vs a naive Python loop.

Both are measured in the same run, on the same spike records, for a grid of window lengths
``T`` and neuron counts ``N`` (batch ``B`` fixed), and their losses are checked to agree. The
naive reference loops over neurons and time steps (and lags), vectorized only over the batch:
the "ISI timeout on large N" failure mode of the seed.

    python scripts/bench_isi.py            # full grid
    python scripts/bench_isi.py --quick    # small grid (a few seconds)

Not a test: it prints a table and exits 0, or 1 if the two implementations disagree.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable

import torch
from torch import Tensor

from brain_ai.core.losses import ISIRegularization


def isi_naive(spikes: Tensor, window: int, tau: float) -> Tensor:
    """``mean_{b,t,n} s[b,t,n] * sum_{d=1..W} e^{-d/tau} s[b,t-d,n]`` with Python loops
    (float64, so that the difference column measures the float32 error of the fast path)."""
    b, t, n = spikes.shape
    x = spikes.double()
    kernel = [math.exp(-d / tau) for d in range(1, window + 1)]
    total = torch.zeros(b, dtype=torch.float64)
    for j in range(n):
        for i in range(t):
            rho = torch.zeros(b, dtype=torch.float64)
            for d in range(1, window + 1):
                if i - d >= 0:
                    rho = rho + kernel[d - 1] * x[:, i - d, j]
            total = total + x[:, i, j] * rho
    return total.sum() / (b * t * n)


def best_of(fn: Callable[[], Tensor], repeats: int) -> tuple[float, Tensor]:
    """Smallest wall time of ``repeats`` calls (seconds) and the last result."""
    best, out = float("inf"), torch.zeros(())
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--window", type=int, default=3)
    parser.add_argument("--tau", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--quick", action="store_true", help="small grid")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = (25, 100) if args.quick else (25, 100, 400)
    neurons = (16, 64) if args.quick else (32, 128, 512)
    term = ISIRegularization(args.window, tau=args.tau)
    g = torch.Generator().manual_seed(0)
    print(f"ISIRegularization(window={args.window}, tau={args.tau}), B={args.batch}, "
          f"rate={args.rate}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    header = f"{'T':>5} {'N':>5} {'vectorized [ms]':>16} {'naive loop [ms]':>16} " \
             f"{'speed-up':>9} {'|diff|':>9}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for t in steps:
        for n in neurons:
            s = (torch.rand(args.batch, t, n, generator=g) < args.rate).float()
            best_of(lambda s=s: term(s)[0], repeats=3)  # warm-up (workspace, thread pool)
            fast_s, fast = best_of(lambda s=s: term(s)[0], repeats=20)
            slow_s, slow = best_of(lambda s=s: isi_naive(s, args.window, args.tau), repeats=1)
            diff = abs(float(fast) - float(slow))
            worst = max(worst, diff / max(abs(float(slow)), 1e-12))
            print(f"{t:>5} {n:>5} {fast_s * 1e3:>16.3f} {slow_s * 1e3:>16.1f} "
                  f"{slow_s / fast_s:>8.0f}x {diff:>9.2e}")
    ok = worst <= 1e-5
    print(f"\nlargest relative difference {worst:.2e} ({'agree' if ok else 'DISAGREE'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
