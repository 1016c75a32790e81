"""Multi-step LIF speed: brain_ai (each kernel) vs snnTorch and SpikingJelly, one process.

Every contestant runs the same neuron: LIF, β = 0.9 (SpikingJelly: τ = 10, no input decay),
θ = 1, subtract reset, ATan surrogate (alpha = 2), fp32, input ``U(0, 0.2)`` (about 10 %
firing), batch-first ``(B, T, N)`` for brain_ai, time-first for the peers (the transpose is not
timed). snnTorch runs in its fastest form, ``Leaky`` over ``x.unbind(0)``; SpikingJelly runs
``LIFNode(step_mode="m")``. The loss is ``spikes.sum() + v_T.sum()``.

Printed per size: forward (with autograd recording) and forward+backward medians in ms, the
ratio of each peer's time to each brain_ai kernel's, the bytes each keeps for backward per
neuron-step (``saved_tensors_hooks``), and a memory-bandwidth floor for the fused op
(forward+backward moves 24 bytes per neuron-step: read x, write spikes and h; read h and the
spike gradient, write the input gradient) from a measured copy bandwidth.

Usage::

    python benchmarks/bench_kernels.py            # the default sizes
    python benchmarks/bench_kernels.py --large    # also (128, 100, 1024)
    python benchmarks/bench_kernels.py --repeat 20 --threads 2

It is a script, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from brain_ai.core.neurons import LIFNeuron
from brain_ai.kernels import native

SIZES = [(1, 100, 128), (32, 100, 512), (16, 500, 256)]
LARGE = (128, 100, 1024)
TBPTT = (16, 1000, 256, 100)  # B, T, N, chunk


def _median_ms(fn: Callable[[], object], repeat: int, min_time: float = 0.2) -> float:
    fn()  # warm-up (also builds / caches anything lazy)
    times = []
    start = time.perf_counter()
    while len(times) < repeat or (time.perf_counter() - start < min_time and len(times) < 200):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _saved_bytes(fn: Callable[[], Tensor]) -> int:
    """Bytes of distinct storages autograd keeps for backward during ``fn()``."""
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        st = t.untyped_storage()
        seen[st.data_ptr()] = max(seen.get(st.data_ptr(), 0), st.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def _copy_bandwidth() -> float:
    """Bytes per second of a 256 MiB tensor copy (read + write)."""
    a = torch.empty(64 * 2**20)
    b = torch.empty_like(a)
    ms = _median_ms(lambda: b.copy_(a), 5)
    return 2 * a.numel() * 4 / (ms / 1e3)


# ---------------------------------------------------------------- contestants
def brain_ai_runner(kernel: str, chunk: int | None = None) -> Callable[[Tensor], tuple]:
    neuron = LIFNeuron(beta=0.9, threshold=1.0, chunk_size=chunk)

    def run(x: Tensor) -> tuple[Tensor, Tensor]:
        os.environ["BRAIN_AI_KERNEL"] = kernel
        spikes, state = neuron.sequence(x)[:2]
        return spikes, state.v

    return run


def snntorch_runner(chunk: int | None = None) -> Callable[[Tensor], tuple] | None:
    try:
        import snntorch
        from snntorch import surrogate
    except ImportError:
        return None
    lif = snntorch.Leaky(beta=0.9, threshold=1.0, spike_grad=surrogate.atan(alpha=2.0),
                         reset_mechanism="subtract")

    def run(x_tf: Tensor) -> tuple[Tensor, Tensor]:
        mem = lif.init_leaky()
        spikes = []
        for t, x_t in enumerate(x_tf.unbind(0)):
            if chunk and t and t % chunk == 0:
                mem = mem.detach()
            s, mem = lif(x_t, mem)
            spikes.append(s)
        return torch.stack(spikes), mem

    return run


def spikingjelly_runner(chunk: int | None = None) -> Callable[[Tensor], tuple] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from spikingjelly.activation_based import functional, neuron, surrogate
    except ImportError:
        return None
    lif = neuron.LIFNode(tau=10.0, decay_input=False, v_threshold=1.0, v_reset=None,
                         surrogate_function=surrogate.ATan(alpha=2.0), step_mode="m")

    def run(x_tf: Tensor) -> tuple[Tensor, Tensor]:
        functional.reset_net(lif)
        if not chunk:
            return lif(x_tf), lif.v
        outs = []
        for w in x_tf.split(chunk, 0):
            if outs:
                lif.v = lif.v.detach()
            outs.append(lif(w))
        return torch.cat(outs), lif.v

    return run


# ---------------------------------------------------------------- timing
def measure(run: Callable[[Tensor], tuple], x: Tensor, repeat: int) -> tuple[float, float, int]:
    """(forward ms, forward+backward ms, saved bytes) for one contestant."""
    xg = x.clone().requires_grad_()

    def fwd() -> None:
        run(xg)

    def fwd_bwd() -> None:
        s, v = run(xg)
        (s.sum() + v.sum()).backward()
        xg.grad = None

    saved = _saved_bytes(lambda: run(xg)[0])
    return _median_ms(fwd, repeat), _median_ms(fwd_bwd, repeat), saved


def bench(size: tuple[int, ...], repeat: int, bandwidth: float) -> None:
    b, t, n = size[:3]
    chunk = size[3] if len(size) > 3 else None
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, t, n, generator=g) * 0.2
    x_tf = x.transpose(0, 1).contiguous()
    kernels = ["reference", "fused"] + (["native"] if native.available() else [])
    rows: dict[str, tuple[float, float, int]] = {}
    for k in kernels:
        rows[f"brain_ai {k}"] = measure(brain_ai_runner(k, chunk), x, repeat)
    peers = {"snnTorch (unbind)": snntorch_runner(chunk),
             "SpikingJelly (multi-step)": spikingjelly_runner(chunk)}
    for name, runner in peers.items():
        if runner is not None:
            rows[name] = measure(runner, x_tf, repeat)
    label = f"(B={b}, T={t}, N={n})" + (f" truncated BPTT chunk={chunk}" if chunk else "")
    floor_ms = 24 * b * t * n / bandwidth * 1e3
    print(f"\n{label}   bandwidth floor fwd+bwd ~{floor_ms:.2f} ms")
    print(f"  {'':28s} {'fwd ms':>9s} {'fwd+bwd ms':>11s} {'saved B/neuron-step':>20s}")
    for name, (f, fb, saved) in rows.items():
        print(f"  {name:28s} {f:9.3f} {fb:11.3f} {saved / (b * t * n):20.1f}")
    for k in kernels:
        f0, fb0, _ = rows[f"brain_ai {k}"]
        parts = [f"{fb0 / floor_ms:.1f}x floor"]
        for name in peers:
            if name in rows:
                f1, fb1, _ = rows[name]
                parts.append(f"{name.split()[0]}: fwd {f1 / f0:.1f}x, fwd+bwd {fb1 / fb0:.1f}x")
        print(f"  speed-up of brain_ai {k:9s} " + " | ".join(parts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--large", action="store_true", help="also run (128, 100, 1024)")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per measurement")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--no-tbptt", action="store_true", help="skip the T=1000 TBPTT size")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native kernel: "
          f"{'yes' if native.available() else 'no (' + str(native.load_error()) + ')'}")
    bandwidth = _copy_bandwidth()
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s")
    sizes: list[tuple[int, ...]] = list(SIZES) + ([LARGE] if args.large else [])
    if not args.no_tbptt:
        sizes.append(TBPTT)
    for size in sizes:
        bench(size, args.repeat, bandwidth)


if __name__ == "__main__":
    main()
