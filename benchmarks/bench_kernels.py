"""Multi-step LIF speed: brain_ai (each kernel) vs snnTorch and SpikingJelly, one process.

Every contestant runs the same neuron: LIF, β = 0.9 (SpikingJelly: τ = 10, no input decay),
θ = 1, subtract reset, ATan surrogate (alpha = 2), fp32, input ``U(0, 0.2)`` (about 10 %
firing), batch-first ``(B, T, N)`` for brain_ai, time-first for the peers (the transpose is not
timed). snnTorch runs in its fastest form, ``Leaky`` over ``x.unbind(0)``; SpikingJelly runs
``LIFNode(step_mode="m")``. The loss is ``spikes.sum() + v_T.sum()``.

``brain_ai native, op only`` calls :func:`brain_ai.kernels.fused_multi_step` directly (no
module, no ``snn_unroll``), to show what the wrapper costs.

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
import random
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from brain_ai.core.neurons import LIFNeuron
from brain_ai.kernels import fused_multi_step, native

SIZES = [(1, 100, 128), (32, 100, 512), (16, 500, 256)]
LARGE = (128, 100, 1024)
TBPTT = (16, 1000, 256, 100)  # B, T, N, chunk


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
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


def brain_ai_op_runner(chunk: int | None = None) -> Callable[[Tensor], tuple] | None:
    """The native op through :func:`fused_multi_step` alone, without the module and
    ``snn_unroll`` around it (shows what the wrapper costs); ``None`` under TBPTT."""
    if chunk:
        return None
    neuron = LIFNeuron(beta=0.9, threshold=1.0)
    params = neuron.params()

    def run(x: Tensor) -> tuple[Tensor, Tensor]:
        os.environ["BRAIN_AI_KERNEL"] = "native"
        state = neuron.reset_state(x.shape[0], tuple(x.shape[2:]))
        spikes, final, _ = fused_multi_step(x, state, params)  # type: ignore[misc]
        return spikes, final.v

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
def _closures(run: Callable[[Tensor], tuple], x: Tensor
              ) -> tuple[Callable[[], None], Callable[[], None], Callable[[], Tensor]]:
    xg = x.clone().requires_grad_()

    def fwd() -> None:
        run(xg)

    def fwd_bwd() -> None:
        s, v = run(xg)
        (s.sum() + v.sum()).backward()
        xg.grad = None

    return fwd, fwd_bwd, lambda: run(xg)[0]


def bench(size: tuple[int, ...], repeat: int, bandwidth: float) -> None:
    """Time every contestant on one size; rounds interleave contestants in a fresh (seeded)
    random order, so that load from other processes on a shared machine spreads over all of
    them and no contestant always runs after the same one (whose memory traffic and freed
    buffers it would inherit); medians are printed."""
    b, t, n = size[:3]
    chunk = size[3] if len(size) > 3 else None
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, t, n, generator=g) * 0.2
    x_tf = x.transpose(0, 1).contiguous()
    kernels = ["reference", "fused"] + (["native"] if native.available() else [])
    runners: dict[str, tuple[Callable[[Tensor], tuple], Tensor]] = {
        f"brain_ai {k}": (brain_ai_runner(k, chunk), x) for k in kernels}
    op_runner = brain_ai_op_runner(chunk) if native.available() else None
    if op_runner is not None:
        runners["brain_ai native, op only"] = (op_runner, x)
    peers = {"snnTorch (unbind)": snntorch_runner(chunk),
             "SpikingJelly (multi-step)": spikingjelly_runner(chunk)}
    for name, runner in peers.items():
        if runner is not None:
            runners[name] = (runner, x_tf)
    fns = {name: _closures(r, xx) for name, (r, xx) in runners.items()}
    saved = {name: _saved_bytes(f[2]) for name, f in fns.items()}
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in fns}
    for f in fns.values():  # warm-up
        f[0]()
        f[1]()
    order = random.Random(0)
    budget = time.perf_counter() + 60.0  # at most ~1 min per size
    for r in range(repeat):
        names = list(fns)
        order.shuffle(names)
        for name in names:
            for j in (0, 1):
                t0 = time.perf_counter()
                fns[name][j]()
                times[name][j].append((time.perf_counter() - t0) * 1e3)
        if time.perf_counter() > budget and r >= 2:
            break
    rows = {name: (statistics.median(a), statistics.median(bb), saved[name])
            for name, (a, bb) in times.items()}
    label = f"(B={b}, T={t}, N={n})" + (f" truncated BPTT chunk={chunk}" if chunk else "")
    floor_ms = 24 * b * t * n / bandwidth * 1e3
    print(f"\n{label}   bandwidth floor fwd+bwd ~{floor_ms:.2f} ms, "
          f"{len(times[next(iter(times))][0])} rounds")
    print(f"  {'':28s} {'fwd ms':>9s} {'fwd+bwd ms':>11s} {'saved B/neuron-step':>20s}")
    for name, (f, fb, sv) in rows.items():
        print(f"  {name:28s} {f:9.3f} {fb:11.3f} {sv / (b * t * n):20.1f}")
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
    ap.add_argument("--repeat", type=int, default=15, help="rounds per size (max ~1 min)")
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
