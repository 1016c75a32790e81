"""``brain-ai build-kernels``: build the native kernel ahead of time; the status of every kernel.

Prints one line per kernel of :data:`brain_ai.kernels.KERNELS`: ``reference`` and ``fused``
(pure PyTorch, always available), ``native`` (built now, cached, or failed and why, with the
cache directory) and ``triton`` (importable or not, and whether a CUDA device is there to run
it). ``--force`` discards the cached library and any recorded failure and compiles again.
Exit code 0 when the native kernel is built and loads, 1 when it is not, 2 on a malformed
environment variable.
"""

from __future__ import annotations

import argparse
import sys

import torch

from brain_ai.errors import BrainAIError
from brain_ai.kernels import KERNELS, native, triton_lif

__all__ = ["add_arguments", "kernel_status", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="rebuild the native kernel even if it is cached or failed before")


def _native_line(force: bool) -> tuple[bool, str]:
    report = native.build_report(force=force)
    where = f"cache {report.cache_dir}"
    if report.path is None:
        retry = "" if report.status == "unavailable" else f"; retry: {native.RETRY_COMMAND}"
        return False, f"{report.status}: {report.error} ({where}{retry})"
    what = (f"built in {report.seconds:.1f} s" if report.status == "built" else "cached")
    if not native.available():
        return False, f"{what} but not loadable: {native.load_error()} ({report.path})"
    return True, f"{what} (-std={report.std}, buffer pool {native.pool_limit_mb()} MiB): " \
                 f"{report.path}"


def _triton_line() -> str:
    if not triton_lif.available():
        return "unavailable: triton is not installed (pip install triton; CUDA tensors only)"
    import triton

    cuda = "a CUDA device is present" if torch.cuda.is_available() else \
        "no CUDA device here, so it never runs"
    return (f"available (triton {triton.__version__}; {cuda}; opt-in for CUDA tensors: "
            "BRAIN_AI_KERNEL=triton)")


def kernel_status(force: bool = False) -> tuple[bool, dict[str, str]]:
    """``(native kernel usable, one status line per kernel)``; builds the native kernel."""
    ok, native_line = _native_line(force)
    lines = {"reference": "available (pure PyTorch, per-step autograd; always)",
             "fused": "available (pure PyTorch, one autograd node per window; always)",
             "native": native_line, "triton": _triton_line()}
    return ok, {k: lines[k] for k in KERNELS}


def run(args: argparse.Namespace) -> int:
    try:
        native.pool_limit_mb()
        ok, lines = kernel_status(args.force)
    except BrainAIError as err:
        print(" ".join(str(err).split()), file=sys.stderr)
        return 2
    width = max(map(len, lines))
    for name, line in lines.items():
        print(f"{name + ':':<{width + 1}} {line}")
    return 0 if ok else 1
