"""Whole-model training steps: each peer model against its brain_ai migration, one process.

Models (peer, as its tutorial or example writes it):

* snnTorch tutorial 5 MLP (``784-1000-10``, ``Leaky(beta=0.95)``, ``init_hidden`` Sequential,
  stepped by a Python loop), B=128, T=25;
* snnTorch tutorial 7 CSNN (``12C5-MP2-64C5-MP2-10``), B=32, T=25, 28x28;
* SpikingJelly's CSNN (``conv-BN-IF-pool`` x2, ``linear-IF`` x2, multi-step), 32 channels,
  B=32, T=8, 12x12;
* SpikingJelly ``spiking_resnet18`` (multi-step ``LIFNode``), B=8, T=4, 3x32x32.

Contestants: the peer; the migration (``brain_ai.adapters.<peer>.migrate``) on the fast kernel
(every neuron ``kernel=None``); the migration as it comes (converted neurons on
``kernel="reference"``); and the free-neuron floor: the migration with every neuron replaced by
an identity, what the model's other layers cost (no neuron can make a step cheaper).

One training step: ``zero_grad``, forward, cross-entropy of the output spike counts against
fixed labels, backward, ``SGD.step`` (plain: identical arithmetic on identical gradients). The
run checks first, in this process, that the work is identical: output spikes of the first
forward (0 mismatches), and how many weight-gradient elements differ from the peer's bits.
Timing: interleaved rounds, medians, ratios ``peer / contestant``. Peak memory
(``--memory``): the most CPU tensor bytes live at once during one step, above what was live
before it (``bench_kernels.py``'s profiler method, child process, ``BRAIN_AI_POOL_MB=0``).

Usage::

    python benchmarks/bench_models.py [--models mlp,csnn,sj-csnn,resnet18] [--memory]

A script, not a test: it prints ratios and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import copy
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


@dataclass
class Model:
    """A peer model: how to build it, its input (time-first, peer layout), how the peer runs
    one forward (output spikes ``(T, B, classes)``), and which adapter migrates it."""

    name: str
    build: Callable[[], nn.Module]
    make_input: Callable[[], Tensor]
    run_peer: Callable[[nn.Module, Tensor], Tensor]
    peer: str  # "snntorch" | "spikingjelly"


def _snntorch_loop(net: nn.Module, x: Tensor) -> Tensor:
    from snntorch import utils

    utils.reset(net)
    out = []
    for x_t in x.unbind(0):
        spk, _ = net(x_t)
        out.append(spk)
    return torch.stack(out)


def _sj_multi_step(net: nn.Module, x: Tensor) -> Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from spikingjelly.activation_based import functional
    functional.reset_net(net)
    return net(x)


def _mlp() -> nn.Module:
    import snntorch as snn

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 1000), snn.Leaky(beta=0.95, init_hidden=True),
                         nn.Linear(1000, 10),
                         snn.Leaky(beta=0.95, init_hidden=True, output=True))


def _csnn() -> nn.Module:
    from brain_ai.conformance.models_snntorch import tutorial_conv

    torch.manual_seed(0)
    return tutorial_conv()


def _sj_csnn() -> nn.Module:
    from brain_ai.conformance.cases_spikingjelly import csnn

    return csnn("m", channels=32)


def _resnet18() -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from spikingjelly.activation_based import functional, neuron, surrogate

        from brain_ai.conformance.cases_zoo import zoo_module
    torch.manual_seed(0)
    net = zoo_module("spiking_resnet").spiking_resnet18(
        spiking_neuron=neuron.LIFNode, surrogate_function=surrogate.ATan(), detach_reset=True,
        num_classes=10)
    with torch.no_grad():  # a residual stream that keeps every stage firing
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.bias.fill_(0.3)
    functional.set_step_mode(net, "m")
    return net


def _rand(*shape: int, scale: float = 1.0) -> Callable[[], Tensor]:
    return lambda: torch.rand(shape, generator=torch.Generator().manual_seed(0)) * scale


MODELS = {
    "mlp": Model("snnTorch tutorial 5 MLP (B=128, T=25)", _mlp, _rand(25, 128, 784),
                 _snntorch_loop, "snntorch"),
    "csnn": Model("snnTorch tutorial 7 CSNN (B=32, T=25)", _csnn,
                  _rand(25, 32, 1, 28, 28, scale=2.0), _snntorch_loop, "snntorch"),
    "sj-csnn": Model("SpikingJelly CSNN, 32 ch (B=32, T=8, 12x12)", _sj_csnn,
                     _rand(8, 32, 1, 12, 12, scale=1.5), _sj_multi_step, "spikingjelly"),
    "resnet18": Model("SpikingJelly spiking_resnet18 (B=8, T=4, 3x32x32)", _resnet18,
                      _rand(4, 8, 3, 32, 32, scale=3.0), _sj_multi_step, "spikingjelly"),
}


def migrate(model: Model, net: nn.Module) -> nn.Module:
    if model.peer == "snntorch":
        from brain_ai.adapters.snntorch import migrate as mig
    else:
        from brain_ai.adapters.spikingjelly import migrate as mig
    return mig(net)


class _Free(nn.Module):
    """The free neuron: its input passed on (for the floor)."""

    def forward(self, x: Tensor, *args: object, **kwargs: object) -> Tensor:
        return x


def _free(net: nn.Module) -> nn.Module:
    """``net`` with every brain_ai neuron replaced by :class:`_Free`."""
    from brain_ai.core.snn import SpikingSequential

    net = copy.deepcopy(net)
    done: set[str] = set()
    for name, m in list(net.named_modules()):
        if any(name.startswith(d + ".") for d in done) or not name:
            continue
        # a neuron, or the adapter module wrapping one (an in-place migration)
        if isinstance(m, SpikingNeuronBase) or isinstance(getattr(m, "neuron", None),
                                                          SpikingNeuronBase):
            parent = net.get_submodule(name.rpartition(".")[0]) if "." in name else net
            setattr(parent, name.rpartition(".")[2], _Free())
            done.add(name)
    if isinstance(net, SpikingSequential):
        net.fold_time = net.fold_time  # stateless now: the fold plan measures the identities
    return net


def _run_ours(net: nn.Module, x_tf: Tensor) -> Tensor:
    """Output spikes ``(T, B, classes)`` of a migrated model (batch-first for a
    SpikingSequential, the peer's convention for an in-place migration)."""
    from brain_ai.core.snn import SpikingSequential

    if isinstance(net, SpikingSequential):
        out, _ = net(x_tf.transpose(0, 1))
        return out.transpose(0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from brain_ai.adapters.hidden_state import reset_hidden
    reset_hidden(net)
    return net(x_tf)


def contestants(model: Model) -> dict[str, tuple[nn.Module, Callable[[nn.Module, Tensor], Tensor]]]:
    peer = model.build()
    ours = migrate(model, peer)
    fast = copy.deepcopy(ours)
    for m in fast.modules():
        if isinstance(m, SpikingNeuronBase):
            m.kernel = None
    return {"peer": (peer, model.run_peer), "brain_ai fast": (fast, _run_ours),
            "brain_ai reference": (ours, _run_ours), "free-neuron floor": (_free(fast), _run_ours)}


def train_step(net: nn.Module, run: Callable[[nn.Module, Tensor], Tensor], x: Tensor,
               labels: Tensor, opt: torch.optim.Optimizer) -> Tensor:
    opt.zero_grad(set_to_none=True)
    out = run(net, x)
    loss = nn.functional.cross_entropy(out.sum(0), labels)
    loss.backward()
    opt.step()
    return out


def _check(model: Model, fns: dict[str, tuple[nn.Module, Callable]], x: Tensor,
           labels: Tensor) -> dict[str, tuple[int, int, int]]:
    """Per brain_ai contestant: (output spike mismatches, weight-gradient elements differing
    from the peer's bits, of how many), after one step from the same weights."""
    res = {}
    grads = {}
    outs = {}
    for name, (net, run) in fns.items():
        if name == "free-neuron floor":
            continue
        net = copy.deepcopy(net)
        opt = torch.optim.SGD(net.parameters(), lr=0.0)
        outs[name] = train_step(net, run, x, labels, opt).detach()
        grads[name] = [p.grad for p in net.parameters() if p.grad is not None]
    for name in outs:
        if name == "peer":
            continue
        pairs = list(zip(grads[name], grads["peer"], strict=False))
        diff = sum(int((a != b).sum()) for a, b in pairs if a.shape == b.shape)
        res[name] = (int((outs[name] != outs["peer"]).sum()), diff,
                     sum(a.numel() for a, _ in pairs))
    return res


def _steps(model: Model) -> tuple[dict[str, Callable[[], object]], Tensor, Tensor,
                                  dict[str, tuple[nn.Module, Callable]]]:
    fns = contestants(model)
    x = model.make_input()
    labels = torch.arange(x.shape[1]) % 10
    steps = {}
    for name, (net, run) in fns.items():
        opt = torch.optim.SGD(net.parameters(), lr=1e-6)
        steps[name] = (lambda net=net, run=run, opt=opt: train_step(net, run, x, labels, opt))
    return steps, x, labels, fns


def memory_child(names: list[str]) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_kernels import _check_peak_method, _peak_bytes

    _check_peak_method()
    peaks: dict[str, dict[str, int]] = {}
    for key in names:
        steps, *_ = _steps(MODELS[key])
        peaks[key] = {}
        for name, f in steps.items():
            f()
            peaks[key][name] = max(_peak_bytes(f), _peak_bytes(f))
    print(json.dumps(peaks))


def measure_memory(names: list[str]) -> dict[str, dict[str, int]]:
    return memory_from_child(__file__, ",".join(names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated: " +
                    ", ".join(MODELS))
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--budget", type=float, default=60.0, help="seconds per model at most")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    if args.memory_child:
        memory_child(args.memory_child.split(","))
        return
    names = args.models.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native kernel: "
          f"{'yes' if native.available() else 'no'}")
    peaks = measure_memory(names) if args.memory else {}
    for key in names:
        model = MODELS[key]
        steps, x, labels, fns = _steps(model)
        checks = _check(model, fns, x, labels)
        med = timed(steps, args.repeat, args.budget)
        print(f"\n{model.name}: one training step, ms (median) and peer / contestant")
        for name, t in med.items():
            line = f"  {name:20s} {t * 1e3:9.2f} ms  {med['peer'] / t:6.2f}x"
            if name in checks:
                sm, gd, gn = checks[name]
                line += f"   output spike mismatches {sm}, weight-grad elements off {gd}/{gn}"
            if key in peaks:
                pk = peaks[key]
                line += (f"   peak {pk[name] / 2**20:8.1f} MiB "
                         f"({pk[name] / pk['peer']:.2f}x peer)")
            print(line)


if __name__ == "__main__":
    main()
