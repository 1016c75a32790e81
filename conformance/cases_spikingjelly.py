"""Conformance cases: SpikingJelly 2.0.0 <-> brain_ai (neurons, surrogates, models, guards).

Every supported SJ neuron x option x direction (``from``: SJ -> brain_ai,
``to``: brain_ai -> SJ) x step mode (``s``: one call per step, brain_ai ``neuron.step`` per
step; ``m``: one time-first call, brain_ai ``neuron.sequence``), fp32 CPU, ``B=8, N=32,
T=100`` with random inputs giving 5–50 % firing. Metrics: ``spikes`` (mismatches),
``membrane`` (max ``|Δv|`` of the post-reset trace = SJ ``v_seq``), ``grad`` (max relative
``|Δ|`` of the gradients of ``Σ Gs·spikes + Gv·v`` w.r.t. the input and PLIF's ``w``),
``rate`` (SJ firing rate, informational).

Guards pin the deliberate differences: the tie rule, PLIF's ``·sigmoid(w)`` versus LIF's
``/τ``, brain_ai's ``β·v`` charge versus SJ's ``v - v/τ``, CUBALIF's class-order surrogate
gradient, PLIF's single-step ``w`` gradient, and the time-folding order of whole models.

The configuration table :data:`NEURON_CONFIGS` and :func:`paired_run` are also used by
``tests/test_adapter_spikingjelly.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from spikingjelly._ops.surrogate import _SURROGATE_IDS, _surrogate_spike
from spikingjelly.activation_based import functional as sj_functional
from spikingjelly.activation_based import layer as sj_layer
from spikingjelly.activation_based import neuron as sj_neuron
from spikingjelly.activation_based import surrogate as sj_surrogate
from torch import Tensor, nn

from brain_ai.adapters.metrics import max_abs_diff, max_rel_grad, spike_mismatches
from brain_ai.adapters.spikingjelly import (
    from_spikingjelly,
    migrate,
    run_spikingjelly,
    surrogate_from_spikingjelly,
    to_spikingjelly,
    verify_spikingjelly_migration,
)
from brain_ai.conformance.registry import Case, register
from brain_ai.core.neurons import LIFNeuron
from brain_ai.physics.surrogates import ATan, Sigmoid, Surrogate, heaviside

__all__ = ["NEURON_CONFIGS", "NeuronConfig", "PairedRun", "csnn", "paired_run"]

B, N, T = 8, 32, 100
PEER = "spikingjelly"
EXACT = {"spikes": 0, "membrane": 0.0, "grad": 1e-6}


# ============================================================================ configurations


def _ba(**kwargs: Any) -> LIFNeuron:
    """A brain_ai neuron with SJ's fixed rules (the ``to`` direction starts here)."""
    return LIFNeuron(comparator=">=", reset_timing="immediate", dtype_policy="input", **kwargs)


IF_KW = {"beta": 1.0, "beta_clamp": (0.0, 1.0)}


@dataclass(frozen=True)
class NeuronConfig:
    """One SJ neuron configuration and the brain_ai neuron written independently for it.

    Attributes:
        family: SJ class name. label: option words. sj / ba: factories of the two sides.
        mean, std: the input is ``mean + std·randn`` (chosen for 5–50 % firing).
    """

    family: str
    label: str
    sj: Callable[[], nn.Module]
    ba: Callable[[], LIFNeuron]
    mean: float
    std: float


def _if(v_reset: float | None, detach: bool) -> NeuronConfig:
    reset = {"reset": "subtract"} if v_reset is None else {"reset": "zero", "v_reset": v_reset}
    label = ("soft" if v_reset is None else "hard") + ("-detach" if detach else "")
    return NeuronConfig(
        "IFNode", label,
        lambda: sj_neuron.IFNode(v_reset=v_reset, detach_reset=detach),
        lambda: _ba(**IF_KW, **reset, detach_reset=detach, surrogate=Sigmoid(4.0)),
        0.25, 0.6)


def _lif(decay_input: bool, v_reset: float | None, detach: bool = False,
         tau: float = 3.3) -> NeuronConfig:
    reset = {"reset": "subtract"} if v_reset is None else {"reset": "zero", "v_reset": v_reset}
    label = (("decay_input" if decay_input else "no_decay_input")
             + ("-soft" if v_reset is None else "-hard" if v_reset == 0.0 else f"-hard{v_reset}")
             + ("-detach" if detach else "") + f"-tau{tau}")
    return NeuronConfig(
        "LIFNode", label,
        lambda: sj_neuron.LIFNode(tau=tau, decay_input=decay_input, v_reset=v_reset,
                                  detach_reset=detach, surrogate_function=sj_surrogate.ATan()),
        lambda: _ba(charge="tau_input" if decay_input else "tau", tau=tau, **reset,
                    detach_reset=detach, surrogate=ATan(2.0)),
        1.2 if decay_input else 0.4, 0.8)


def _plif(decay_input: bool, v_reset: float | None, detach: bool = False) -> NeuronConfig:
    reset = {"reset": "subtract"} if v_reset is None else {"reset": "zero", "v_reset": v_reset}
    label = (("decay_input" if decay_input else "no_decay_input")
             + ("-soft" if v_reset is None else "-hard") + ("-detach" if detach else ""))
    return NeuronConfig(
        "ParametricLIFNode", label + "-tau3.0",
        lambda: sj_neuron.ParametricLIFNode(init_tau=3.0, decay_input=decay_input,
                                            v_reset=v_reset, detach_reset=detach),
        lambda: _ba(charge="rate_input" if decay_input else "rate", tau=3.0, learn_tau=True,
                    **reset, detach_reset=detach, surrogate=Sigmoid(4.0)),
        1.2 if decay_input else 0.4, 0.8)


def _cuba(v_reset: float | None, detach: bool) -> NeuronConfig:
    reset = {"reset": "subtract"} if v_reset is None else {"reset": "zero", "v_reset": v_reset}

    def sj() -> nn.Module:
        node = sj_neuron.CUBALIFNode(c_decay=0.3, v_decay=0.7, v_reset=v_reset,
                                     surrogate_function=sj_surrogate.ATan())
        node.detach_reset = detach
        return node

    return NeuronConfig(
        "CUBALIFNode", ("soft" if v_reset is None else "hard") + ("-detach" if detach else ""),
        sj, lambda: _ba(beta=0.7, beta_clamp=(0.0, 1.0), alpha=0.3, threshold=0.5, **reset,
                        detach_reset=detach, surrogate=ATan(2.0)),
        0.1, 0.3)


NEURON_CONFIGS: tuple[NeuronConfig, ...] = (
    _if(0.0, False), _if(0.0, True), _if(None, False), _if(None, True),
    NeuronConfig("HalfThresholdIFNode", "soft",
                 lambda: sj_neuron.HalfThresholdIFNode(surrogate_function=sj_surrogate.ATan()),
                 lambda: _ba(**IF_KW, reset="subtract", v_reset=0.5, surrogate=ATan(2.0)),
                 0.25, 0.6),
    _lif(True, 0.0), _lif(True, -0.2), _lif(True, None), _lif(True, 0.0, detach=True),
    _lif(True, 0.0, tau=2.0), _lif(False, 0.0), _lif(False, None),
    _lif(False, None, detach=True),
    _plif(True, 0.0), _plif(True, None), _plif(False, 0.0), _plif(False, None, detach=True),
    _cuba(0.0, False), _cuba(None, True),
)
"""Every supported SJ neuron x option (the ``from``/``to`` x ``s``/``m`` matrix runs each)."""


# ============================================================================ paired runs


@dataclass(eq=False)
class PairedRun:
    """The same input through an SJ node and a brain_ai neuron (all batch-first ``(B,T,N)``)."""

    spikes_sj: Tensor
    spikes_ba: Tensor
    v_sj: Tensor
    v_ba: Tensor
    grads_sj: list[Tensor]
    grads_ba: list[Tensor]

    def metrics(self) -> dict[str, float]:
        return {"spikes": spike_mismatches(self.spikes_ba, self.spikes_sj),
                "membrane": max_abs_diff(self.v_ba, self.v_sj),
                "grad": max_rel_grad(self.grads_ba, self.grads_sj),
                "rate": float(self.spikes_sj.detach().float().mean())}


def run_brain_ai(neuron: LIFNeuron, x: Tensor, step_mode: str) -> tuple[Tensor, Tensor]:
    """``(spikes, v)`` ``(B, T, *f)``; ``"s"`` mirrors SJ's single-step mode (``step`` per step)."""
    if step_mode == "m":
        spikes, _, traces = neuron.sequence(x, record=("v",))
        return spikes, traces["v"]
    state, spikes, vs = None, [], []
    for x_t in x.unbind(1):
        s, state = neuron.step(x_t, state)
        spikes.append(s)
        vs.append(state.v)
    return torch.stack(spikes, 1), torch.stack(vs, 1)


def paired_run(node: nn.Module, neuron: LIFNeuron, x: Tensor, step_mode: str,
               seed: int = 0, ba_step_mode: str | None = None, params: bool = True
               ) -> PairedRun:
    """Run ``x`` ``(B, T, N)`` through both; gradients of ``Σ Gs·s + Gv·v`` (random G).

    ``node.step_mode`` is set to ``step_mode``; the brain_ai side runs in ``ba_step_mode``
    (default: the same). Gradients: the input, then (``params``) each learnable parameter
    (PLIF ``w``), paired in order.
    """
    node.step_mode = step_mode
    x_sj = x.detach().clone().requires_grad_()
    x_ba = x.detach().clone().requires_grad_()
    s_sj, _, v_sj = run_spikingjelly(node, x_sj)
    s_ba, v_ba = run_brain_ai(neuron, x_ba, ba_step_mode or step_mode)
    g = torch.Generator().manual_seed(seed + 1)
    gs, gv = torch.randn(x.shape, generator=g), torch.randn(x.shape, generator=g)
    p_sj = [p for p in node.parameters() if p.requires_grad] if params else []
    p_ba = [p for p in neuron.parameters() if p.requires_grad] if params else []
    grads_sj = torch.autograd.grad((s_sj * gs).sum() + (v_sj * gv).sum(), [x_sj, *p_sj])
    grads_ba = torch.autograd.grad((s_ba * gs).sum() + (v_ba * gv).sum(), [x_ba, *p_ba])
    return PairedRun(s_sj.detach(), s_ba.detach(), v_sj.detach(), v_ba.detach(),
                     list(grads_sj), list(grads_ba))


def _input(cfg: NeuronConfig, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, N, generator=g) * cfg.std + cfg.mean


def _neuron_case(cfg: NeuronConfig, direction: str, step_mode: str
                 ) -> Callable[[int], dict[str, float]]:
    def run(seed: int) -> dict[str, float]:
        if direction == "from":
            node = cfg.sj()
            neuron = from_spikingjelly(node)
        else:
            neuron = cfg.ba()
            node = to_spikingjelly(neuron, step_mode=step_mode)
        return paired_run(node, neuron, _input(cfg, seed), step_mode, seed).metrics()
    return run


for _cfg in NEURON_CONFIGS:
    for _direction in ("from", "to"):
        for _mode in ("s", "m"):
            register(Case(
                name=f"{PEER}/{_cfg.family}/{_cfg.label}/{_mode}/{_direction}",
                family=_cfg.family, peer=PEER, run=_neuron_case(_cfg, _direction, _mode),
                tolerances=EXACT, direction=_direction, steps=T,
                config={"options": _cfg.label, "step_mode": _mode, "B": B, "N": N,
                        "input": f"{_cfg.mean} + {_cfg.std}·randn"}))


# ============================================================================ surrogates

SURROGATES: tuple[nn.Module, ...] = (
    sj_surrogate.Sigmoid(alpha=4.0), sj_surrogate.ATan(alpha=2.0),
    sj_surrogate.PiecewiseQuadratic(alpha=1.0), sj_surrogate.PiecewiseExp(alpha=2.0),
    sj_surrogate.SoftSign(alpha=2.0), sj_surrogate.SuperSpike(alpha=1.5),
    sj_surrogate.Erf(alpha=2.0),
)
"""The seven SJ surrogates neurons evaluate with the ``_ops`` formulas (non-default alphas)."""


def _surrogate_in_lif(sg: nn.Module, direction: str) -> Callable[[int], dict[str, float]]:
    def run(seed: int) -> dict[str, float]:
        cfg = _lif(False, None)
        node = sj_neuron.LIFNode(tau=3.3, decay_input=False, v_reset=None,
                                 surrogate_function=sg)
        neuron = from_spikingjelly(node)
        if direction == "to":
            node = to_spikingjelly(neuron, step_mode="m")
        return paired_run(node, neuron, _input(cfg, seed), "m", seed).metrics()
    return run


def surrogate_grid(alpha: float) -> Tensor:
    """Points ``v - θ`` covering the window, exact ties (0) and the kinks ``±1/alpha``."""
    g = torch.Generator().manual_seed(0)
    edges = torch.tensor([0.0, -0.0, 1 / alpha, -1 / alpha, 1e-8, -1e-8])
    return torch.cat([torch.linspace(-3, 3, 2001), edges, torch.randn(4000, generator=g)])


def _surrogate_formula(sg: nn.Module) -> Callable[[int], dict[str, float]]:
    def run(seed: int) -> dict[str, float]:
        x = surrogate_grid(float(sg.alpha))
        g_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        x_sj, x_ba = x.clone().requires_grad_(), x.clone().requires_grad_()
        y_sj = _surrogate_spike(x_sj, float(sg.alpha), _SURROGATE_IDS[type(sg).__name__])
        ours: Surrogate = surrogate_from_spikingjelly(sg)
        y_ba = heaviside(x_ba, ours, inclusive=True)
        (gx_sj,) = torch.autograd.grad((y_sj * g_out).sum(), x_sj)
        (gx_ba,) = torch.autograd.grad((y_ba * g_out).sum(), x_ba)
        return {"spikes": spike_mismatches(y_ba, y_sj), "grad": max_rel_grad([gx_ba], [gx_sj]),
                "grad_abs": max_abs_diff(gx_ba, gx_sj)}
    return run


for _sg in SURROGATES:
    _name = type(_sg).__name__
    register(Case(
        name=f"{PEER}/surrogate/{_name}/formula", family="surrogate", peer=PEER,
        run=_surrogate_formula(_sg), tolerances={"spikes": 0, "grad": 1e-6},
        config={"surrogate": f"{_name}(alpha={_sg.alpha})",
                "against": "spikingjelly._ops.surrogate (the formula SJ neurons use)"}))
    for _direction in ("from", "to"):
        register(Case(
            name=f"{PEER}/surrogate/{_name}/LIFNode/m/{_direction}", family="surrogate",
            peer=PEER, run=_surrogate_in_lif(_sg, _direction), tolerances=EXACT,
            direction=_direction, steps=T,
            config={"surrogate": f"{_name}(alpha={_sg.alpha})",
                    "neuron": "LIFNode(tau=3.3, decay_input=False, v_reset=None)"}))


# ============================================================================ guards


def _tie_guard(comparator: str) -> Callable[[int], dict[str, float]]:
    """IF with input 0.25 every step: ``v`` hits θ = 1 exactly at steps 4, 8, ..."""
    def run(seed: int) -> dict[str, float]:
        node = sj_neuron.IFNode(v_reset=0.0, surrogate_function=sj_surrogate.ATan())
        neuron = LIFNeuron(**IF_KW, comparator=comparator, reset="zero", surrogate=ATan(2.0))
        x = torch.full((4, T, 8), 0.25)
        return paired_run(node, neuron, x, "m", seed).metrics()
    return run


register(Case(
    name=f"{PEER}/IFNode/tie-rule/m/from", family="IFNode", peer=PEER, run=_tie_guard(">="),
    tolerances={"spikes": 0, "membrane": 0.0}, direction="from", steps=T,
    config={"input": "0.25 every step (h == θ exactly every 4th step)", "comparator": ">="}))
register(Case(
    name=f"{PEER}/IFNode/tie-rule-guard/m", family="IFNode", peer=PEER, run=_tie_guard(">"),
    tolerances={"spikes": 0}, expect="differs", direction="native", steps=T,
    config={"input": "0.25 every step", "brain_ai": "LIFNeuron(comparator='>') (default)"},
    why="SpikingJelly fires at h >= θ (ties fire); brain_ai's default comparator '>' (snnTorch, "
        "NIR) does not: from_spikingjelly sets comparator='>='"))


def _plif_vs_lif(seed: int) -> dict[str, float]:
    cfg = _plif(True, 0.0)
    node = sj_neuron.ParametricLIFNode(init_tau=3.0, decay_input=True)
    neuron = _ba(charge="tau_input", tau=3.0, reset="zero", surrogate=Sigmoid(4.0))
    return paired_run(node, neuron, _input(cfg, seed), "m", seed, params=False).metrics()


register(Case(
    name=f"{PEER}/ParametricLIFNode/vs-LIF-tau-guard/m", family="ParametricLIFNode", peer=PEER,
    run=_plif_vs_lif, tolerances={"membrane": 0.0}, expect="differs", steps=T,
    config={"sj": "ParametricLIFNode(init_tau=3.0)", "brain_ai": "charge='tau_input', tau=3.0"},
    why="PLIF multiplies by q = sigmoid(w) (w = -ln 2), LIF divides by τ = 3: (x - v)·q and "
        "(x - v)/3 differ in the last bit; PLIF converts to charge='rate_input' with w copied"))


def _beta_vs_tau(seed: int) -> dict[str, float]:
    cfg = _lif(False, None)
    node = sj_neuron.LIFNode(tau=3.3, decay_input=False, v_reset=None,
                             surrogate_function=sj_surrogate.ATan())
    neuron = _ba(beta=1.0 - 1.0 / 3.3, reset="subtract", surrogate=ATan(2.0))
    return paired_run(node, neuron, _input(cfg, seed), "m", seed).metrics()


register(Case(
    name=f"{PEER}/LIFNode/beta-charge-guard/m", family="LIFNode", peer=PEER, run=_beta_vs_tau,
    tolerances={"membrane": 0.0}, expect="differs", steps=T,
    config={"sj": "LIFNode(tau=3.3, decay_input=False)", "brain_ai": "beta = 1 - 1/3.3"},
    why="SJ charges v - v/τ + x; brain_ai's default charge β·v + x with β = 1 - 1/τ is the same "
        "in exact arithmetic only: from_spikingjelly uses charge='tau' (SJ's expression)"))


def _cuba_class_order(seed: int) -> dict[str, float]:
    cfg = _cuba(0.0, False)
    node = sj_neuron.CUBALIFNode(c_decay=0.3, v_decay=0.7,
                                 surrogate_function=sj_surrogate.Sigmoid())
    return paired_run(node, from_spikingjelly(node), _input(cfg, seed), "s", seed).metrics()


register(Case(
    name=f"{PEER}/CUBALIFNode/sigmoid-class-order-guard/s", family="CUBALIFNode", peer=PEER,
    run=_cuba_class_order, tolerances={"grad": 0.0}, expect="differs", direction="from", steps=T,
    config={"surrogate": "Sigmoid(alpha=4)", "step_mode": "s (brain_ai's autograd step path)",
            "note": "spikes and membrane stay bit-identical; with ATan the s-mode gradient is"
                    " bit-identical too (the CUBALIFNode/*/s cases)"},
    why="CUBALIFNode calls the surrogate module (class formula ((g·(1-s))·s)·alpha), not the _ops "
        "formula g·((1-s)·s·alpha) that brain_ai's Sigmoid and SJ's IF/LIF/PLIF use: gradients "
        "differ at ulp level (≈1e-7 relative, within the 1e-6 bar); ATan is identical"))


def _plif_single_step_w(seed: int) -> dict[str, float]:
    cfg = _plif(True, 0.0)
    node = sj_neuron.ParametricLIFNode(init_tau=3.0)
    return paired_run(node, from_spikingjelly(node), _input(cfg, seed), "s", seed,
                      ba_step_mode="m").metrics()


register(Case(
    name=f"{PEER}/ParametricLIFNode/single-step-w-guard", family="ParametricLIFNode", peer=PEER,
    run=_plif_single_step_w, tolerances={"grad": 0.0}, expect="differs", direction="from",
    steps=T, config={"sj": "step_mode='s'", "brain_ai": "neuron.sequence (one sigmoid(w))"},
    why="SJ's single-step PLIF recomputes sigmoid(w) every step, so w's gradient accumulates in "
        "another order than one sigmoid per sequence (ulp level); brain_ai's neuron.step per step "
        "mirrors SJ bit for bit (the s-mode cases)"))


# ============================================================================ whole model


def csnn(step_mode: str, channels: int = 4, seed: int = 0) -> nn.Sequential:
    """SJ's Fashion-MNIST CSNN architecture (``examples/conv_fashion_mnist.py``), shrunk to
    ``(1, 12, 12)`` images; BatchNorm running statistics set to non-trivial values."""
    torch.manual_seed(seed)
    ch = channels
    net = nn.Sequential(
        sj_layer.Conv2d(1, ch, kernel_size=3, padding=1, bias=False),
        sj_layer.BatchNorm2d(ch),
        sj_neuron.IFNode(surrogate_function=sj_surrogate.ATan()),
        sj_layer.MaxPool2d(2, 2),
        sj_layer.Conv2d(ch, ch, kernel_size=3, padding=1, bias=False),
        sj_layer.BatchNorm2d(ch),
        sj_neuron.IFNode(surrogate_function=sj_surrogate.ATan()),
        sj_layer.MaxPool2d(2, 2),
        sj_layer.Flatten(),
        sj_layer.Linear(ch * 3 * 3, ch * 4, bias=False),
        sj_neuron.IFNode(surrogate_function=sj_surrogate.ATan()),
        sj_layer.Linear(ch * 4, 10, bias=False),
        sj_neuron.IFNode(surrogate_function=sj_surrogate.ATan()),
    )
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.8, 1.5)
                m.bias.uniform_(0.0, 0.3)
        net[4].weight.mul_(2.0)
        net[9].weight.mul_(2.0)
        net[11].weight.mul_(2.5)
    sj_functional.set_step_mode(net, step_mode)
    return net.eval()


def csnn_input(seed: int, steps: int = T, batch: int = 4) -> Tensor:
    """Time-first ``(T, B, 1, 12, 12)`` images in ``[0, 1.5)``."""
    return torch.rand(steps, batch, 1, 12, 12, generator=torch.Generator().manual_seed(seed)) * 1.5


def _model_case(step_mode: str, train: bool) -> Callable[[int], dict[str, float]]:
    def run(seed: int) -> dict[str, float]:
        net = csnn(step_mode).train(train)
        report = verify_spikingjelly_migration(net, migrate(net), csnn_input(seed), seed=seed)
        return {"spikes": sum(r.spike_mismatches for r in report.layers),
                "membrane": max(r.max_abs_membrane for r in report.layers),
                "value": report.output_spike_mismatches, "grad": max(report.grads.values()),
                "rate_min": min(layer.firing_rate for layer in report.layers),
                "rate_max": max(layer.firing_rate for layer in report.layers)}
    return run


_MODEL_CONFIG = {"model": "CSNN (conv-BN-IF-pool x2, linear-IF x2), 4 channels, 12x12",
                 "B": 4, "T": T}
register(Case(
    name=f"{PEER}/model/CSNN/s/from", family="model", peer=PEER, run=_model_case("s", False),
    tolerances={**EXACT, "value": 0.0}, direction="from", steps=T,
    config={**_MODEL_CONFIG, "step_mode": "s", "mode": "eval"}))
register(Case(
    name=f"{PEER}/model/CSNN/s-train/from", family="model", peer=PEER,
    run=_model_case("s", True), tolerances={**EXACT, "value": 0.0}, direction="from", steps=T,
    config={**_MODEL_CONFIG, "step_mode": "s", "mode": "train (BatchNorm batch statistics)"}))
for _train in (False, True):
    _suffix = "-train" if _train else ""
    _mode_word = "train (BatchNorm statistics over T·B)" if _train else "eval"
    register(Case(
        name=f"{PEER}/model/CSNN/m{_suffix}/from", family="model", peer=PEER,
        run=_model_case("m", _train), tolerances={**EXACT, "value": 0.0},
        direction="from", steps=T,
        config={**_MODEL_CONFIG, "step_mode": "m", "mode": _mode_word}))

