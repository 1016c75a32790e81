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

Peak memory (``peak MiB``): the most bytes of CPU tensors live at once during one
forward+backward (the same loss; the spikes and ``v_T`` stay referenced through the backward,
as in a training step; ``x.grad`` is counted, it is made inside), above what was live before the
forward, so inputs (and parameters) are excluded. It is measured with
``torch.profiler.profile(activities=[CPU], profile_memory=True)``: every allocation and free of
c10's CPU allocator in the window is an event in the profiler's event tree, and their sizes are
summed in time order (frees of tensors made before the window are not reported, so they never
lower the count). The method is checked on a hand-computed case at start-up (known tensors must
give a 5 MiB peak). The native op's buffer pool allocates with its own allocator, which the
profiler does not see, so the memory runs in a child process with ``BRAIN_AI_POOL_MB=0`` (every
contestant, same process): the pool changes only where the op's tensors come from, not which are
live, so this is the same peak with every byte counted. What the pool keeps on top with its
default setting (freed blocks held for the next call, like a CUDA caching allocator's reserve)
is printed on its own line: the blocks held after one forward+backward from an empty pool
(``native.empty_cache()`` hands them back; ``BRAIN_AI_POOL_MB=0`` disables the pool). Ratios
are brain_ai's peak over each peer's (below 1: brain_ai needs less); at (128, 100, 1024) the
``memory bar`` line says whether the default kernel's peak is at most 0.75x snnTorch's and 0.6x
SpikingJelly's (the target set there).

Usage::

    python benchmarks/bench_kernels.py            # the default sizes
    python benchmarks/bench_kernels.py --large    # also (128, 100, 1024)
    python benchmarks/bench_kernels.py --repeat 20 --threads 2
    python benchmarks/bench_kernels.py --memory-only --size 128,100,1024   # one size, no timing

It is a script, not a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from timing import memory_from_child
from torch import Tensor

from brain_ai.core.neurons import LIFNeuron
from brain_ai.kernels import fused_multi_step, native

SIZES = [(1, 100, 128), (32, 100, 512), (16, 500, 256)]
LARGE = (128, 100, 1024)
TBPTT = (16, 1000, 256, 100)  # B, T, N, chunk
# brain_ai's peak fwd+bwd memory at most this fraction of each peer's (set at LARGE)
MEMORY_BAR = {"snnTorch (unbind)": 0.75, "SpikingJelly (multi-step)": 0.6}


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


def _peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes of CPU tensors live at once during ``fn()`` above those live before it: the
    profiler's allocation events (sizes, negative for frees) summed in time order.

    Only c10's CPU allocator reports to the profiler: the native op's pool must be off
    (``BRAIN_AI_POOL_MB=0``) for its tensors to be counted."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())  # type: ignore[union-attr]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.tag == _EventType.Allocation and str(node.extra_fields.device) == "cpu":
            events.append((node.start_time_ns, node.extra_fields.alloc_size))
    events.sort()
    live = peak = 0
    for _, size in events:
        live += size
        peak = max(peak, live)
    return peak


def _check_peak_method() -> None:
    """A hand-computed case: 1 MiB and 2 MiB live, the 1 MiB freed, 3 MiB made: a 5 MiB peak."""
    mib = 2**20

    def case() -> None:
        a = torch.empty(mib // 4)
        b = torch.empty(2 * mib // 4)
        del a
        c = torch.empty(3 * mib // 4)
        del b, c

    got = _peak_bytes(case)
    if got != 5 * mib:
        raise RuntimeError(f"peak-memory method broken: {got} bytes measured, {5 * mib} made")


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


def _contestants(size: tuple[int, ...]
                 ) -> tuple[list[str], list[str], dict[str, tuple[Callable[[], None], ...]]]:
    """(brain_ai kernels, peer names, name -> (fwd, fwd_bwd, fwd returning spikes)) for one
    size; the input is seeded, so every process builds the same one."""
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
    return kernels, list(peers), fns


def _parse_size(text: str) -> tuple[int, ...]:
    size = tuple(int(v) for v in text.split(","))
    if len(size) not in (3, 4):
        raise argparse.ArgumentTypeError("size is B,T,N or B,T,N,chunk")
    return size


def memory_child(size: tuple[int, ...]) -> None:
    """Runs in the child process (``BRAIN_AI_POOL_MB=0``): prints one JSON line, name -> peak
    bytes of one forward+backward (after a warm-up one; measured twice, the larger kept)."""
    if os.environ.get("BRAIN_AI_POOL_MB") != "0":
        raise SystemExit("--memory-child needs BRAIN_AI_POOL_MB=0 (the pool hides allocations)")
    _check_peak_method()
    _, _, fns = _contestants(size)
    peaks = {}
    for name, (_, fwd_bwd, _) in fns.items():
        fwd_bwd()  # warm-up: lazy state, first-call caches
        peaks[name] = max(_peak_bytes(fwd_bwd), _peak_bytes(fwd_bwd))
    print(json.dumps(peaks))


def measure_memory(size: tuple[int, ...]) -> dict[str, int]:
    """Peak bytes per contestant, from a child process with the native op's pool off."""
    return memory_from_child(__file__, ",".join(map(str, size)))


def pool_held(size: tuple[int, ...]) -> int | None:
    """Bytes the native op's pool (as configured in this process) holds after one
    forward+backward through the module, starting from an empty pool; ``None`` without it."""
    if not native.available():
        return None
    fwd_bwd = _contestants(size)[2]["brain_ai native"][1]
    native.empty_cache()
    fwd_bwd()
    held = native.cached_bytes()
    native.empty_cache()
    return held


def _time(fns: dict[str, tuple[Callable[[], None], ...]], repeat: int
          ) -> dict[str, tuple[float, float, int]]:
    """Medians (fwd ms, fwd+bwd ms) per contestant and the number of rounds; rounds interleave
    contestants in a fresh (seeded) random order, so that load from other processes on a shared
    machine spreads over all of them and no contestant always runs after the same one (whose
    memory traffic and freed buffers it would inherit)."""
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
    return {name: (statistics.median(a), statistics.median(bb), len(a))
            for name, (a, bb) in times.items()}


def bench(size: tuple[int, ...], repeat: int, bandwidth: float, timing: bool = True,
          memory: bool = True) -> None:
    """Time (``timing``) and measure peak memory (``memory``) of every contestant on one size,
    and print the table; medians for the times."""
    b, t, n = size[:3]
    chunk = size[3] if len(size) > 3 else None
    kernels, peers, fns = _contestants(size)
    peers = [p for p in peers if p in fns]
    mib = 2**20
    peaks = measure_memory(size) if memory else {}
    saved = {name: _saved_bytes(f[2]) for name, f in fns.items()}
    rows = _time(fns, repeat) if timing else {}
    held = pool_held(size) if memory else None
    label = f"(B={b}, T={t}, N={n})" + (f" truncated BPTT chunk={chunk}" if chunk else "")
    floor_ms = 24 * b * t * n / bandwidth * 1e3
    head = f"\n{label}"
    if timing:
        head += (f"   bandwidth floor fwd+bwd ~{floor_ms:.2f} ms, "
                 f"{next(iter(rows.values()))[2]} rounds")
    print(head)
    cols = ((f"{'fwd ms':>9s} {'fwd+bwd ms':>11s} " if timing else "")
            + f"{'saved B/neuron-step':>20s}")
    print(f"  {'':28s} {cols}" + (f" {'peak MiB':>9s}" if memory else ""))
    for name in fns:
        line = f"  {name:28s} "
        if timing:
            line += f"{rows[name][0]:9.3f} {rows[name][1]:11.3f} "
        line += f"{saved[name] / (b * t * n):20.1f}"
        if memory:
            line += f" {peaks[name] / mib:9.1f}"
        print(line)
    for k in kernels:
        ours = f"brain_ai {k}"
        if timing:
            f0, fb0, _ = rows[ours]
            parts = [f"{fb0 / floor_ms:.1f}x floor"]
            for name in peers:
                f1, fb1, _ = rows[name]
                parts.append(f"{name.split()[0]}: fwd {f1 / f0:.1f}x, fwd+bwd {fb1 / fb0:.1f}x")
            print(f"  speed-up of brain_ai {k:9s} " + " | ".join(parts))
        if memory and peers:
            parts = [f"{peaks[ours] / peaks[name]:.3f}x {name.split()[0]}" for name in peers]
            print(f"  peak memory of brain_ai {k:9s} " + ", ".join(parts))
    if memory and tuple(size) == LARGE and all(name in peaks for name in MEMORY_BAR):
        ours = f"brain_ai {kernels[-1]}"  # the default: native where it is built
        ok = all(peaks[ours] <= r * peaks[name] for name, r in MEMORY_BAR.items())
        want = " and ".join(f"<= {r}x {name.split()[0]}" for name, r in MEMORY_BAR.items())
        print(f"  memory bar ({ours}: peak {want}): {'met' if ok else 'NOT met'}")
    if held is not None:
        print(f"  native pool (BRAIN_AI_POOL_MB={os.environ.get('BRAIN_AI_POOL_MB', '512')}) "
              f"holds {held / mib:.1f} MiB of freed blocks after one fwd+bwd "
              "(reused by the next call; not in peak MiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--large", action="store_true", help="also run (128, 100, 1024)")
    ap.add_argument("--repeat", type=int, default=15, help="rounds per size (max ~1 min)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--no-tbptt", action="store_true", help="skip the T=1000 TBPTT size")
    ap.add_argument("--size", type=_parse_size, default=None, metavar="B,T,N[,chunk]",
                    help="run this one size only")
    ap.add_argument("--memory-only", action="store_true", help="peak memory only, no timing")
    ap.add_argument("--no-memory", action="store_true", help="timing only, no peak memory")
    ap.add_argument("--memory-child", type=_parse_size, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native kernel: "
          f"{'yes' if native.available() else 'no (' + str(native.load_error()) + ')'}")
    timing, memory = not args.memory_only, not args.no_memory
    bandwidth = 1.0
    if timing:
        bandwidth = _copy_bandwidth()
        print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s")
    if memory:
        print("peak MiB: most CPU tensor bytes live at once in one fwd+bwd, above the inputs "
              "(profiler allocation events; child process with BRAIN_AI_POOL_MB=0 so the "
              "native pool's tensors are counted); 'peak memory' ratios: brain_ai / peer")
    if args.size:
        sizes: list[tuple[int, ...]] = [args.size]
    else:
        sizes = list(SIZES) + ([LARGE] if args.large else [])
        if not args.no_tbptt:
            sizes.append(TBPTT)
    for size in sizes:
        bench(size, args.repeat, bandwidth, timing, memory)


if __name__ == "__main__":
    main()
