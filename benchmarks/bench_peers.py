"""Each peer neuron against the brain_ai neuron that reproduces it: identical work, one process.

Every case is a peer neuron module and the brain_ai neuron converted from it
(``from_spikingjelly`` / ``from_snntorch``), run on the same input: the peer in its own
fastest form (SpikingJelly ``step_mode="m"`` over time-first data; snnTorch's per-step loop
over ``x.unbind``), brain_ai batch-first on the fast kernel (``kernel=None``) and on the
reference kernel (``kernel="reference"``, what converted neurons use by default). Before any
timing the run checks, in this process, that the work is identical: spikes equal (0
mismatches), and reports how many input-gradient (and learnable-parameter-gradient) elements
differ from the peer's bits (0: bit for bit), for the loss ``(spikes · w).sum() + v_T.sum()``
(``w`` fixed random: every step and neuron gets its own gradient).

Timing: forward+backward of the neuron alone, loss ``spikes.sum() + v_T.sum()`` (as in
``bench_kernels.py``), the input made once (no copy timed); rounds interleave the contestants
in a seeded random order, medians; printed as ratios ``peer time / brain_ai time`` (above 1:
brain_ai is faster). Peak memory (``--memory``): the
most CPU tensor bytes live at once in one forward+backward, above the inputs, measured as in
``bench_kernels.py`` in a child process with ``BRAIN_AI_POOL_MB=0``.

Truncated BPTT (``--tbptt``): one brain_ai neuron (SpikingJelly ``LIFNode`` semantics) over a
long sequence with ``chunk_size`` 1, 10, 100 and ``None``; ratios to full BPTT.

Usage::

    python benchmarks/bench_peers.py                       # (32, 100, 512), 2 threads
    python benchmarks/bench_peers.py --large               # also (128, 100, 1024)
    python benchmarks/bench_peers.py --tbptt --memory

It is a script, not a test: it prints ratios and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from timing import memory_from_child, timed
from torch import Tensor, nn

from brain_ai.core.neurons import SpikingNeuronBase
from brain_ai.kernels import native

SIZES = [(32, 100, 512)]
LARGE = (128, 100, 1024)


def _sj() -> tuple[object, object, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from spikingjelly.activation_based import functional, neuron, surrogate
    return functional, neuron, surrogate


def _snn() -> object:
    import snntorch

    return snntorch


@dataclass
class Case:
    """A peer neuron (``make``) and how it runs (``kind``: ``"sj"`` multi-step over
    ``(T, B, N)``, ``"snntorch"`` per-step loop returning the final membrane)."""

    name: str
    kind: str
    make: Callable[[], nn.Module]
    gain: float = 1.0


CASES = [
    Case("SJ LIFNode (tau=2, decay_input, hard reset, Sigmoid)", "sj",
         lambda: _sj()[1].LIFNode(step_mode="m"), 2.5),
    Case("SJ LIFNode (tau=10, no decay_input, soft reset, ATan)", "sj",
         lambda: _sj()[1].LIFNode(tau=10.0, decay_input=False, v_reset=None,
                                  surrogate_function=_sj()[2].ATan(), step_mode="m"), 0.3),
    Case("SJ ParametricLIFNode (learnable w)", "sj",
         lambda: _sj()[1].ParametricLIFNode(step_mode="m"), 2.5),
    Case("snnTorch Leaky (subtract, delayed reset)", "snntorch",
         lambda: _snn().Leaky(beta=0.9), 0.4),
    Case("snnTorch Leaky (zero reset, delayed_pre)", "snntorch",
         lambda: _snn().Leaky(beta=0.9, reset_mechanism="zero"), 0.4),
    Case("snnTorch Leaky (reset_delay=False: compensated)", "snntorch",
         lambda: _snn().Leaky(beta=0.9, reset_delay=False), 0.4),
    Case("snnTorch Leaky (learnable beta and threshold)", "snntorch",
         lambda: _snn().Leaky(beta=0.9, learn_beta=True, learn_threshold=True), 0.4),
]


def convert(peer: nn.Module, kind: str) -> SpikingNeuronBase:
    if kind == "sj":
        from brain_ai.adapters.spikingjelly import from_spikingjelly

        return from_spikingjelly(peer)
    from brain_ai.adapters.snntorch import from_snntorch

    return from_snntorch(peer)


def runners(case: Case, x: Tensor, w: Tensor | None
            ) -> dict[str, tuple[Callable[[], tuple[Tensor, ...]], list[Tensor]]]:
    """name -> (forward+backward returning (spikes, grad x, grads of learnables), learnables).
    The loss is ``(spikes·w).sum() + v_T.sum()``, or ``spikes.sum() + v_T.sum()`` for
    ``w=None``; the input tensor is made once per contestant."""
    peer = case.make()
    out: dict[str, tuple[Callable[[], tuple[Tensor, ...]], list[Tensor]]] = {}
    x_tf = x.transpose(0, 1).contiguous().requires_grad_()
    w_tf = w.transpose(0, 1).contiguous() if w is not None else None
    xb = x.clone().requires_grad_()
    # learnable parameters by name (the converted neuron's have the peer's names)
    learn = [p for _, p in sorted(peer.named_parameters()) if p.requires_grad]

    if case.kind == "sj":
        functional = _sj()[0]

        def run_peer() -> tuple[Tensor, ...]:
            functional.reset_net(peer)
            s = peer(x_tf)
            loss = (s if w_tf is None else s * w_tf).sum() + peer.v.sum()
            grads = torch.autograd.grad(loss, [x_tf, *learn])
            return (s.transpose(0, 1), grads[0].transpose(0, 1), *grads[1:])
    else:
        def run_peer() -> tuple[Tensor, ...]:
            mem = peer.init_leaky()
            spk = []
            for x_t in xb.unbind(1):
                s_t, mem = peer(x_t, mem)
                spk.append(s_t)
            s = torch.stack(spk, 1)
            grads = torch.autograd.grad((s if w is None else s * w).sum() + mem.sum(),
                                        [xb, *learn])
            return (s, *grads)

    out["peer"] = (run_peer, learn)
    for kernel in (None, "reference"):
        ours = convert(peer, case.kind)
        ours.kernel = kernel
        mine = [p for _, p in sorted(ours.named_parameters()) if p.requires_grad]

        def run_ours(ours: SpikingNeuronBase = ours, mine: list[Tensor] = mine
                     ) -> tuple[Tensor, ...]:
            s, st, _ = ours.sequence(xb)
            grads = torch.autograd.grad((s if w is None else s * w).sum() + st.v.sum(),
                                        [xb, *mine])
            return (s, *grads)

        out["brain_ai fast" if kernel is None else "brain_ai reference"] = (run_ours, mine)
    return out


def mismatches(a: tuple[Tensor, ...], b: tuple[Tensor, ...]) -> list[int]:
    """Differing elements per output (spikes, input gradient, parameter gradients)."""
    return [int((u != v).sum()) for u, v in zip(a, b, strict=True)]


def _input(size: tuple[int, int, int], gain: float) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(size, generator=g) * gain
    w = torch.randn(size, generator=g)
    return x, w


def memory_child(size: tuple[int, int, int]) -> None:
    """Child process (``BRAIN_AI_POOL_MB=0``): JSON of case -> contestant -> peak bytes."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_kernels import _check_peak_method, _peak_bytes

    _check_peak_method()
    peaks: dict[str, dict[str, int]] = {}
    for case in CASES:
        x, _ = _input(size, case.gain)
        fns = runners(case, x, None)
        peaks[case.name] = {}
        for name, (fn, _) in fns.items():
            fn()
            peaks[case.name][name] = max(_peak_bytes(fn), _peak_bytes(fn))
    print(json.dumps(peaks))


def measure_memory(size: tuple[int, int, int]) -> dict[str, dict[str, int]]:
    return memory_from_child(__file__, ",".join(map(str, size)))


def bench(size: tuple[int, int, int], repeat: int, budget: float, memory: bool) -> None:
    b, t, n = size
    print(f"\n(B={b}, T={t}, N={n})  fwd+bwd ms (median); ratio = peer / brain_ai")
    peaks = measure_memory(size) if memory else {}
    head = (f"  {'case':55s} {'peer':>8s} {'fast':>8s} {'ref':>8s} {'peer/fast':>9s} "
            f"{'peer/ref':>8s}  mismatches fast (spikes, grad x, grad params)")
    print(head + ("   peak MiB peer/fast" if memory else ""))
    for case in CASES:
        x, w = _input(size, case.gain)
        check = runners(case, x, w)
        ref = check["peer"][0]()
        mm = mismatches(check["brain_ai fast"][0](), ref)
        mm_ref = mismatches(check["brain_ai reference"][0](), ref)
        del check, ref
        fns = runners(case, x, None)
        med = timed({k: v[0] for k, v in fns.items()}, repeat, budget, min_rounds=5)
        p, f, r = med["peer"], med["brain_ai fast"], med["brain_ai reference"]
        line = (f"  {case.name:55s} {p * 1e3:8.2f} {f * 1e3:8.2f} {r * 1e3:8.2f} "
                f"{p / f:9.2f} {p / r:8.2f}  {mm} (reference kernel: {mm_ref})")
        if memory:
            pk = peaks[case.name]
            line += (f"   {pk['peer'] / 2**20:7.1f}/{pk['brain_ai fast'] / 2**20:.1f} "
                     f"({pk['brain_ai fast'] / pk['peer']:.2f}x)")
        print(line)


def bench_tbptt(size: tuple[int, int, int], repeat: int, budget: float) -> None:
    """One neuron (SpikingJelly LIFNode semantics, fast kernel) over a long sequence:
    truncated BPTT windows against full BPTT, ratios (1.0: windows cost nothing)."""
    from brain_ai.core.neurons import LIFNeuron
    from brain_ai.core.surrogates import Sigmoid

    x, _ = _input(size, 2.5)
    neuron = LIFNeuron(tau=2.0, charge="tau_input", reset="zero", comparator=">=",
                       surrogate=Sigmoid(4.0), beta_clamp=(0.0, 1.0))

    xg = x.clone().requires_grad_()

    def run(chunk: int | None) -> Callable[[], None]:
        def f() -> None:
            s, st, _ = neuron.sequence(xg, chunk_size=chunk)
            (s.sum() + st.v.sum()).backward()
            xg.grad = None
        return f

    chunks: list[int | None] = [None, 100, 10, 1]
    med = timed({str(c): run(c) for c in chunks}, repeat, budget, min_rounds=5)
    base = med["None"]
    b, t, n = size
    print(f"\ntruncated BPTT, one neuron (B={b}, T={t}, N={n}): fwd+bwd ms and ratio to full")
    for c in chunks:
        print(f"  chunk_size={c!s:5s} {med[str(c)] * 1e3:9.2f} ms  {med[str(c)] / base:5.2f}x")


def _size(text: str) -> tuple[int, int, int]:
    b, t, n = (int(v) for v in text.split(","))
    return b, t, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--large", action="store_true", help=f"also {LARGE}")
    ap.add_argument("--size", type=_size, default=None, metavar="B,T,N")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--budget", type=float, default=40.0, help="seconds per case at most")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory", action="store_true", help="peak memory (child process)")
    ap.add_argument("--tbptt", action="store_true", help="truncated BPTT ratios")
    ap.add_argument("--memory-child", type=_size, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native kernel: "
          f"{'yes' if native.available() else 'no (' + str(native.load_error()) + ')'}")
    sizes = [args.size] if args.size else list(SIZES) + ([LARGE] if args.large else [])
    for size in sizes:
        bench(size, args.repeat, args.budget, args.memory)
    if args.tbptt:
        bench_tbptt((16, 1000, 256), args.repeat, args.budget)


if __name__ == "__main__":
    main()
