"""Conformance cases: whole models of SpikingJelly's zoo and snnTorch's tutorials, migrated.

snnTorch: the tutorial-style models of :data:`~.models_snntorch.SNNTORCH_MODELS` (unbatched
0-d/1-d inputs, hand-written loops, ``init_hidden`` neurons inside a custom module, a neuron
the model never calls, the ``sigmoid`` surrogate whose snnTorch gradient is NaN far below
threshold: compared where snnTorch's gradients are finite) through ``verify_migration``.

Each case builds a real model of the peer's own model zoo (``spikingjelly.activation_based
.model``; tiny widths where the constructor allows, otherwise the smallest stage counts),
migrates it with ``migrate(model)`` (in place: the zoo's own ``forward``, residuals and
attention included) and runs :func:`verify_spikingjelly_migration`: every neuron of the
model is probed, whatever the topology. Inputs are small (``T = 2``, ``B = 2``); the
BatchNorm running statistics are calibrated on the input (one training-mode pass), so eval
firing is as healthy as training firing.

Metrics: ``spikes`` (mismatches summed over every neuron layer and the output), ``membrane``
(max ``|Δv|``), ``grad`` (max relative ``|Δ|`` over the input's and every parameter's
gradient), ``silent`` (neuron layers that never spiked: an equality they cannot prove),
``layers`` and ``rate_min``/``rate_max`` (informational).

Thresholds are calibrated once on the input (every neuron fires about a quarter of its units
at its first step: see :func:`_calibrate`), so that no layer is silent and its equality means
something. SpikingJelly's ResNet and VGG modules import torchvision only to download
pretrained weights; the README installs SpikingJelly without torchvision, so they are
imported with a stand-in that refuses downloads (:func:`zoo_module`). Nothing else is
stubbed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
from spikingjelly.activation_based import functional as sj_functional
from spikingjelly.activation_based import layer as sj_layer
from spikingjelly.activation_based import neuron as sj_neuron
from spikingjelly.activation_based import surrogate as sj_surrogate
from torch import Tensor, nn

from brain_ai.adapters.spikingjelly import migrate, verify_spikingjelly_migration
from brain_ai.adapters.verify import MigrationReport
from brain_ai.conformance.models_snntorch import SNNTORCH_MODELS
from brain_ai.conformance.registry import Case, register

__all__ = ["ZOO", "ZooModel", "report_metrics", "run_zoo", "zoo_module"]

PEER = "spikingjelly"
T, B = 2, 2
EXACT = {"spikes": 0, "membrane": 0.0, "grad": 1e-6, "silent": 0}


@contextlib.contextmanager
def _pretrained_downloads_refused() -> Iterator[None]:
    """A stand-in for ``torchvision._internally_replaced_utils`` while a zoo module imports
    (only when torchvision is absent; removed again afterwards)."""
    if importlib.util.find_spec("torchvision") is not None:
        yield
        return

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("pretrained weights need torchvision (not installed)")

    stub = types.ModuleType("torchvision._internally_replaced_utils")
    stub.load_state_dict_from_url = refuse  # type: ignore[attr-defined]
    names = ("torchvision", "torchvision._internally_replaced_utils")
    sys.modules.update({names[0]: types.ModuleType(names[0]), names[1]: stub})
    try:
        yield
    finally:
        for name in names:
            sys.modules.pop(name, None)


def zoo_module(name: str) -> types.ModuleType:
    """``spikingjelly.activation_based.model.<name>``, imported without torchvision."""
    full = f"spikingjelly.activation_based.model.{name}"
    if full not in sys.modules:
        with _pretrained_downloads_refused():
            return importlib.import_module(full)
    return sys.modules[full]


# ============================================================================ neurons


NEURONS: dict[str, Callable[..., dict[str, Any]]] = {
    "IF": lambda sg, detach: {"spiking_neuron": sj_neuron.IFNode, "surrogate_function": sg,
                              "detach_reset": detach},
    "LIF": lambda sg, detach: {"spiking_neuron": sj_neuron.LIFNode, "tau": 2.0,
                               "surrogate_function": sg, "detach_reset": detach},
    "PLIF": lambda sg, detach: {"spiking_neuron": sj_neuron.ParametricLIFNode,
                                "init_tau": 2.0, "surrogate_function": sg,
                                "detach_reset": detach},
}
SURROGATES: dict[str, Callable[[], nn.Module]] = {
    "ATan": sj_surrogate.ATan, "Sigmoid": sj_surrogate.Sigmoid,
    "Rect": lambda: sj_surrogate.Rect(alpha=2.0),
}


def _neuron_kwargs(kind: str, sg: str, detach: bool) -> dict[str, Any]:
    return NEURONS[kind](SURROGATES[sg](), detach)


# ============================================================================ builders


def _resnet(module: str, **extra: Any) -> Callable[[dict[str, Any]], nn.Module]:
    def build(kw: dict[str, Any]) -> nn.Module:
        zoo = zoo_module(module)
        net = (zoo.SEWResNet if module == "sew_resnet" else zoo.SpikingResNet)(
            zoo.BasicBlock, [1, 1, 1, 1], num_classes=10, **extra, **kw)
        with torch.no_grad():  # a residual stream that keeps every stage firing
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.bias.fill_(0.3)
        return net
    return build


def _vgg(batch_norm: bool) -> Callable[[dict[str, Any]], nn.Module]:
    """SpikingVGG with a small ``cfg``; its classifier (``512·7·7 -> 4096 -> 4096``, fixed by
    the constructor) is built on the meta device and replaced by the same structure at width
    32 (the model's own ``forward`` is unchanged)."""
    def build(kw: dict[str, Any]) -> nn.Module:
        zoo = zoo_module("spiking_vgg")
        with torch.device("meta"):
            net = zoo.SpikingVGG([8, "M", 16, "M"], batch_norm=batch_norm, num_classes=10,
                                 init_weights=False, **kw)
        neuron_cls = kw["spiking_neuron"]
        nkw = {k: v for k, v in kw.items() if k != "spiking_neuron"}
        net.features = nn.Sequential(*[_rebuild(m, neuron_cls, nkw) for m in net.features])
        net.avgpool = sj_layer.AdaptiveAvgPool2d((2, 2))
        net.classifier = nn.Sequential(
            sj_layer.Linear(16 * 2 * 2, 32), neuron_cls(**nkw), sj_layer.Dropout(0.5),
            sj_layer.Linear(32, 32), neuron_cls(**nkw), sj_layer.Dropout(0.5),
            sj_layer.Linear(32, 10))
        net._initialize_weights()
        return net
    return build


def _rebuild(m: nn.Module, neuron_cls: type, nkw: dict[str, Any]) -> nn.Module:
    """A real (CPU) copy of a meta-device VGG feature layer."""
    if isinstance(m, sj_layer.Conv2d):
        return sj_layer.Conv2d(m.in_channels, m.out_channels, 3, padding=1)
    if isinstance(m, sj_layer.BatchNorm2d):
        return sj_layer.BatchNorm2d(m.num_features)
    if isinstance(m, sj_layer.MaxPool2d):
        return sj_layer.MaxPool2d(2, 2)
    return neuron_cls(**nkw)


def _plif_net(cls: str) -> Callable[[dict[str, Any]], nn.Module]:
    def build(kw: dict[str, Any]) -> nn.Module:
        return getattr(zoo_module("parametric_lif_net"), cls)(channels=4, **kw)
    return build


def _ms(cls: str) -> Callable[[dict[str, Any]], nn.Module]:
    def build(kw: dict[str, Any]) -> nn.Module:
        return getattr(zoo_module("ms_resnet"), cls)(T=T, num_classes=10, layers=(1, 1, 1),
                                                     base_channels=4, **kw)
    return build


def _spikformer(kw: dict[str, Any]) -> nn.Module:
    return zoo_module("spikformer").Spikformer(
        T=T, img_size_h=16, img_size_w=16, patch_size=4, num_classes=10, embed_dims=16,
        num_heads=2, depths=1, **kw)


def _sdt(kw: dict[str, Any]) -> nn.Module:
    return zoo_module("spike_driven_transformer").SpikeDrivenTransformer(
        T=T, num_classes=10, embed_dims=16, num_heads=2, depths=1, mlp_ratio=2.0, **kw)


def _qkformer(kw: dict[str, Any]) -> nn.Module:
    return zoo_module("qkformer").QKFormer(
        T=T, num_classes=10, embed_dims=16, num_heads=(1, 2, 2), depths=(1, 1, 1),
        mlp_ratio=2.0, **kw)


def _masnn(kw: dict[str, Any]) -> nn.Module:
    return zoo_module("masnn").MASNN(
        T=T, in_channels=2, num_classes=4, input_size=(8, 8), channels=(4, 8), pools=(1, 2),
        fc_hidden=16, reduction_t=1, reduction_c=2, **kw)


def _att_ms(kw: dict[str, Any]) -> nn.Module:
    return zoo_module("masnn").AttMSResNet(
        T=T, num_classes=10, layers=(1, 1, 1), base_channels=4, reduction_c=2, **kw)


# ============================================================================ the zoo


def _images(shape: tuple[int, ...], scale: float, sequence: bool
            ) -> Callable[[int], Tensor]:
    def make(seed: int) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        full = (T, B, *shape) if sequence else (B, *shape)
        return torch.rand(full, generator=gen) * scale
    return make


class ZooModel:
    """One zoo family: how to build it (from neuron keyword arguments) and feed it."""

    def __init__(self, family: str, build: Callable[[dict[str, Any]], nn.Module],
                 make_input: Callable[[int], Tensor], modes: tuple[str, ...] = ("s", "m"),
                 default_neuron: bool = False) -> None:
        self.family = family
        self.build = build
        self.make_input = make_input
        self.modes = modes
        self.default_neuron = default_neuron  # the family's own neuron (kwargs ignored)


ZOO: dict[str, ZooModel] = {
    "spiking_resnet": ZooModel("spiking_resnet", _resnet("spiking_resnet"),
                               _images((3, 16, 16), 3.0, True)),
    "sew_resnet-ADD": ZooModel("sew_resnet", _resnet("sew_resnet", cnf="ADD"),
                               _images((3, 16, 16), 3.0, True)),
    "sew_resnet-AND": ZooModel("sew_resnet", _resnet("sew_resnet", cnf="AND"),
                               _images((3, 16, 16), 3.0, True)),
    "sew_resnet-IAND": ZooModel("sew_resnet", _resnet("sew_resnet", cnf="IAND"),
                                _images((3, 16, 16), 3.0, True)),
    "spiking_vgg": ZooModel("spiking_vgg", _vgg(False), _images((3, 16, 16), 3.0, True)),
    "spiking_vgg_bn": ZooModel("spiking_vgg", _vgg(True), _images((3, 16, 16), 3.0, True)),
    "MNISTNet": ZooModel("parametric_lif_net", _plif_net("MNISTNet"),
                         _images((1, 28, 28), 3.0, True)),
    "FashionMNISTNet": ZooModel("parametric_lif_net", _plif_net("FashionMNISTNet"),
                                _images((1, 28, 28), 3.0, True)),
    "NMNISTNet": ZooModel("parametric_lif_net", _plif_net("NMNISTNet"),
                          _images((2, 34, 34), 3.0, True)),
    "CIFAR10Net": ZooModel("parametric_lif_net", _plif_net("CIFAR10Net"),
                           _images((3, 32, 32), 3.0, True)),
    "CIFAR10DVSNet": ZooModel("parametric_lif_net", _plif_net("CIFAR10DVSNet"),
                              _images((2, 128, 128), 3.0, True)),
    "DVSGestureNet": ZooModel("parametric_lif_net", _plif_net("DVSGestureNet"),
                              _images((2, 128, 128), 3.0, True)),
    "ms_resnet": ZooModel("ms_resnet", _ms("MSResNet"), _images((3, 16, 16), 4.0, False),
                          ("m",), True),
    "max_resnet": ZooModel("max_resnet", _ms("MaxResNet"), _images((3, 16, 16), 4.0, False),
                           ("m",), True),
    "Spikformer": ZooModel("Spikformer", _spikformer, _images((3, 16, 16), 3.0, False),
                           ("m",), True),
    "SpikeDrivenTransformer": ZooModel("SpikeDrivenTransformer", _sdt,
                                       _images((3, 32, 32), 3.0, False), ("m",), True),
    "QKFormer": ZooModel("QKFormer", _qkformer, _images((3, 16, 16), 3.0, False), ("m",),
                         True),
    "masnn": ZooModel("masnn", _masnn, _images((2, 8, 8), 3.0, False), ("m",), True),
    "att_ms_resnet": ZooModel("masnn", _att_ms, _images((3, 16, 16), 4.0, False), ("m",),
                              True),
}
"""The zoo families (SpikingJelly 2.0.0 ``activation_based.model``) the cases run."""


def _first_charge(node: nn.Module, x: Tensor) -> Tensor:
    """The membrane a fresh SJ node reaches at its first step for input ``x``."""
    if isinstance(node, sj_neuron.ParametricLIFNode):
        return x * node.w.detach().sigmoid() if node.decay_input else x
    if isinstance(node, sj_neuron.LIFNode) and node.decay_input:
        return x / node.tau
    return x


def _calibrate(net: nn.Module, x: Tensor, mode: str, rate: float = 0.25) -> None:
    """Make every layer fire: one pass (no gradient, training mode) in which each neuron
    takes the threshold its first step would cross at ``rate`` (``v_threshold`` becomes the
    ``1 - rate`` quantile of its first-step membrane; at least 1e-4), and BatchNorm takes the
    statistics of ``x`` as running statistics. The thresholds are the model's from then on
    (a built model, as if trained); SJ and brain_ai see the same model."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum) for m in bns]
    done: set[int] = set()

    def set_threshold(node: nn.Module, args: tuple[Tensor, ...]) -> None:
        if id(node) in done:
            return
        done.add(id(node))
        first = args[0][0] if node.step_mode == "m" else args[0]
        q = torch.quantile(_first_charge(node, first).detach().float().flatten()[:100_000],
                           1.0 - rate)
        node.v_threshold = max(float(q), 1e-4)

    nodes = [m for m in net.modules()
             if type(m) in (sj_neuron.IFNode, sj_neuron.LIFNode, sj_neuron.ParametricLIFNode)]
    handles = [m.register_forward_pre_hook(set_threshold) for m in nodes]
    was = net.training
    net.train()
    try:
        with torch.no_grad():
            for m in bns:
                m.momentum = 1.0
            if mode == "m":
                net(x)
            else:
                for x_t in x.unbind(0):
                    net(x_t)
    finally:
        for h in handles:
            h.remove()
        for m, momentum in saved:
            m.momentum = momentum
        sj_functional.reset_net(net)
        net.train(was)


def report_metrics(report: MigrationReport) -> dict[str, float]:
    """The case metrics of a migration report (see the module docstring)."""
    rates = [r.firing_rate for r in report.layers if r.calls]
    return {"spikes": sum(r.spike_mismatches for r in report.layers)
            + report.output_spike_mismatches,
            "membrane": max((r.max_abs_membrane for r in report.layers), default=math.inf),
            "grad": max(report.grads.values(), default=math.inf),
            "silent": float(len(report.untested)), "layers": float(len(report.layers)),
            "rate_min": min(rates, default=0.0), "rate_max": max(rates, default=0.0)}


def run_zoo(key: str, mode: str, train: bool, neuron: dict[str, Any], seed: int = 0
            ) -> tuple[nn.Module, nn.Module, MigrationReport]:
    """Build, migrate and verify one zoo model; returns ``(model, migrated, report)``."""
    zoo = ZOO[key]
    torch.manual_seed(seed)
    net = zoo.build(neuron)
    sj_functional.set_step_mode(net, mode)
    x = zoo.make_input(seed)
    _calibrate(net, x, mode)
    net.train(train)
    migrated = migrate(net)
    return net, migrated, verify_spikingjelly_migration(net, migrated, x, seed=seed,
                                                        step_mode=mode)


def _case(key: str, mode: str, train: bool, neuron: tuple[str, str, bool] | None
          ) -> Callable[[int], dict[str, float]]:
    def run(seed: int) -> dict[str, float]:
        kw = {} if neuron is None else _neuron_kwargs(*neuron)
        return report_metrics(run_zoo(key, mode, train, kw, seed)[2])
    return run


Neuron = tuple[str, str, bool]  # kind, surrogate, detach_reset
_IF_ATAN: Neuron = ("IF", "ATan", False)
# (neuron, step mode, train) per model: every family in both step modes where it has two and
# in train and eval; IF/LIF/PLIF, ATan/Sigmoid/Rect and detach_reset on/off spread over the
# families that take any neuron (the others run their own: LIF with Rect for ms_resnet/masnn).
_GRID: dict[str, tuple[tuple[Neuron | None, str, bool], ...]] = {
    "spiking_resnet": ((_IF_ATAN, "s", False), (_IF_ATAN, "m", True),
                       (("LIF", "Sigmoid", True), "s", True),
                       (("LIF", "Sigmoid", True), "m", False)),
    "sew_resnet-ADD": ((("PLIF", "ATan", True), "s", False),),
    "sew_resnet-AND": ((("IF", "Rect", False), "m", True),),
    "sew_resnet-IAND": ((("LIF", "ATan", False), "s", True),),
    "spiking_vgg": ((("IF", "ATan", True), "s", True), (("IF", "ATan", True), "m", False)),
    "spiking_vgg_bn": ((("LIF", "Rect", False), "s", False), (("LIF", "Rect", False), "m", True)),
    "MNISTNet": ((("PLIF", "Sigmoid", False), "s", True), (("PLIF", "Sigmoid", False), "m", False)),
    "FashionMNISTNet": ((("IF", "ATan", True), "m", True),),
    "NMNISTNet": ((("PLIF", "ATan", True), "s", False),),
    "CIFAR10Net": ((("LIF", "Sigmoid", False), "m", True), (("LIF", "Sigmoid", False), "s", False)),
    "CIFAR10DVSNet": ((("PLIF", "Rect", False), "m", False), (("PLIF", "Rect", False), "s", True)),
    "DVSGestureNet": ((("LIF", "ATan", True), "m", True),),
}

for _key, _zoo in ZOO.items():
    for _neuron, _mode, _train in _GRID.get(_key, ((None, "m", False), (None, "m", True))):
        _words = [_key]
        if _neuron is not None:
            _words.append(f"{_neuron[0]}-{_neuron[1]}" + ("-detach" if _neuron[2] else ""))
        _words += [_mode, "train" if _train else "eval"]
        register(Case(
            name=f"{PEER}/zoo/{'/'.join(_words)}", family="zoo", peer=PEER,
            run=_case(_key, _mode, _train, _neuron), tolerances=EXACT, direction="from",
            steps=T,
            config={"model": _key, "zoo family": _zoo.family, "step_mode": _mode,
                    "mode": "train" if _train else "eval (BN calibrated)",
                    "neuron": "the family's default" if _neuron is None else
                    f"{_neuron[0]}, {_neuron[1]}, detach_reset={_neuron[2]}",
                    "T": T, "B": B}))


# ============================================================================ snnTorch tutorials


def _snntorch_case(name: str) -> Callable[[int], dict[str, float]]:
    def run(seed: int) -> dict[str, float]:
        from brain_ai.adapters.snntorch import migrate as migrate_snntorch
        from brain_ai.adapters.verify import verify_migration

        factory, make_input = SNNTORCH_MODELS[name]
        model = factory()
        report = verify_migration(model, migrate_snntorch(model), make_input(seed), seed=seed)
        return {**report_metrics(report),
                "peer_nonfinite_grads": float(sum(report.nonfinite.values()))}
    return run


for _name in SNNTORCH_MODELS:
    register(Case(
        name=f"snntorch/zoo/{_name}", family="zoo", peer="snntorch", run=_snntorch_case(_name),
        tolerances=EXACT, direction="from",
        config={"model": _name, "migrate": "in place (the model's own forward) or "
                "SpikingSequential (init_hidden Sequential)",
                "gradients": "compared where snnTorch's are finite"}))
