"""The SpikingJelly adapter against the installed SpikingJelly 2.0.0 (never skipped).

Claims: every supported node x option converts both ways; in both step modes spikes and
membranes (SJ's post-reset ``v_seq``) are bit-identical and gradients agree within 1e-6
relative, at T = 100 with firing rates between 5 % and 50 %; the tie rule; explicit state
bridging; whole CSNN-style models; and the ConversionError cases.
"""

from __future__ import annotations

import math

import pytest
import torch
from spikingjelly._ops.surrogate import _SURROGATE_IDS, _surrogate_spike
from spikingjelly.activation_based import functional as sj_functional
from spikingjelly.activation_based import layer as sj_layer
from spikingjelly.activation_based import neuron as sj_neuron
from spikingjelly.activation_based import surrogate as sj_surrogate
from torch import nn
from torch.testing import assert_close

from brain_ai.adapters.metrics import max_rel_diff
from brain_ai.adapters.spikingjelly import (
    from_spikingjelly,
    migrate,
    run_spikingjelly,
    state_from_spikingjelly,
    state_to_spikingjelly,
    surrogate_from_spikingjelly,
    surrogate_to_spikingjelly,
    to_spikingjelly,
    verify_spikingjelly_migration,
)
from brain_ai.conformance.cases_spikingjelly import (
    NEURON_CONFIGS,
    SURROGATES,
    NeuronConfig,
    csnn,
    csnn_input,
    paired_run,
    run_brain_ai,
    surrogate_grid,
)
from brain_ai.core.neurons import AdaptiveLIFNeuron, LIFNeuron
from brain_ai.core.snn import SpikingSequential
from brain_ai.core.surrogates import ATan, FastSigmoid, Sigmoid, heaviside
from brain_ai.errors import ConversionError, ShapeError
from brain_ai.physics.axes import batch_to_time_first, time_to_batch_first
from brain_ai.physics.state import SpikingState

B, T, N = 8, 100, 32
GRAD_TOL = 1e-6


def _x(cfg: NeuronConfig, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, N, generator=g) * cfg.std + cfg.mean


def _cfg(family: str, label: str) -> NeuronConfig:
    return next(c for c in NEURON_CONFIGS if c.family == family and c.label == label)


LIF_CFG = _cfg("LIFNode", "decay_input-hard-tau3.3")
PLIF_CFG = _cfg("ParametricLIFNode", "decay_input-hard-tau3.0")
CUBA_CFG = _cfg("CUBALIFNode", "soft-detach")


def _assert_bit_exact(run) -> None:
    assert_close(run.spikes_ba, run.spikes_sj, rtol=0, atol=0)
    assert_close(run.v_ba, run.v_sj, rtol=0, atol=0)
    assert len(run.grads_ba) == len(run.grads_sj)
    for g_ba, g_sj in zip(run.grads_ba, run.grads_sj, strict=True):
        assert max_rel_diff(g_ba, g_sj) <= GRAD_TOL


# ================================================================= the neuron matrix


@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("direction", ["from", "to"])
@pytest.mark.parametrize("cfg", NEURON_CONFIGS, ids=lambda c: f"{c.family}-{c.label}")
def test_neuron_bit_exact(cfg: NeuronConfig, direction: str, step_mode: str) -> None:
    """Spikes and membranes bit-identical, gradients (x, PLIF w) within 1e-6 relative."""
    if direction == "from":
        node = cfg.sj()
        neuron = from_spikingjelly(node)
    else:
        neuron = cfg.ba()
        node = to_spikingjelly(neuron, step_mode=step_mode)
        assert type(node).__name__ == cfg.family
    run = paired_run(node, neuron, _x(cfg), step_mode)
    rate = float(run.spikes_sj.mean())
    assert 0.05 <= rate <= 0.5, f"firing rate {rate:.3f} outside 5–50 %"
    _assert_bit_exact(run)
    if cfg.family == "ParametricLIFNode":
        assert len(run.grads_sj) == 2 and run.grads_sj[1].abs() > 0  # w's gradient is compared


def test_step_modes_agree_in_spikingjelly_and_brain_ai() -> None:
    """SJ 's' and 'm' give the same bits, and so do brain_ai step and sequence."""
    cfg = LIF_CFG
    x = _x(cfg)
    node = cfg.sj()
    neuron = from_spikingjelly(node)
    outs = {}
    for mode in ("s", "m"):
        node.step_mode = mode
        outs[mode] = run_spikingjelly(node, x)
        s_ba, v_ba = run_brain_ai(neuron, x, mode)
        assert_close(s_ba, outs[mode][0], rtol=0, atol=0)
        assert_close(v_ba, outs[mode][2], rtol=0, atol=0)
    assert_close(outs["s"][0], outs["m"][0], rtol=0, atol=0)
    assert_close(outs["s"][2], outs["m"][2], rtol=0, atol=0)


# ================================================================= options and mapping


def test_mapping_of_each_option() -> None:
    """The table's rows, read one by one (values worked out from SJ's arguments)."""
    n = from_spikingjelly(sj_neuron.LIFNode(tau=3.3, decay_input=False, v_threshold=0.7,
                                            v_reset=-0.2, detach_reset=True))
    assert (n.charge, n.comparator, n.reset, n.reset_timing, n.detach_reset) == (
        "tau", ">=", "zero", "immediate", True)
    assert n.v_reset == -0.2 and float(n.threshold) == pytest.approx(0.7)
    assert float(n.tau) == float(torch.tensor(3.3))  # fp32(3.3), what SJ divides by
    assert n.surrogate == Sigmoid(4.0)
    n = from_spikingjelly(sj_neuron.IFNode(v_reset=None))
    assert (n.charge, float(n.leak()), n.reset) == ("beta", 1.0, "subtract")
    n = from_spikingjelly(sj_neuron.CUBALIFNode(c_decay=0.25, v_decay=0.5, v_reset=None,
                                                surrogate_function=sj_surrogate.ATan()))
    assert (n.charge, float(n.leak()), float(n.alpha), float(n.threshold)) == (
        "beta", 0.5, 0.25, 0.5)


@pytest.mark.parametrize("node", [
    sj_neuron.IFNode(v_reset=-0.3), sj_neuron.IFNode(v_reset=None),
    sj_neuron.LIFNode(v_reset=0.2), sj_neuron.HalfThresholdIFNode(v_threshold=0.8),
    sj_neuron.CUBALIFNode(v_reset=-0.1, surrogate_function=sj_surrogate.ATan()),
], ids=["IF-hard", "IF-soft", "LIF-hard", "HalfThresholdIF", "CUBALIF"])
def test_initial_state_matches(node: nn.Module) -> None:
    """SJ starts v at v_reset (0 for soft reset, θ/2 for HalfThresholdIF); so does brain_ai."""
    x = torch.zeros(2, 3)
    node(x)
    expected = node.v  # after one zero-input step from the initial value (no spike)
    node.reset()
    neuron = from_spikingjelly(node)
    state = neuron.reset_state(2, (3,))
    _, state = neuron.step(x, state)
    assert_close(state.v, expected, rtol=0, atol=0)


def test_plif_w_copied_exactly_and_learnable() -> None:
    node = sj_neuron.ParametricLIFNode(init_tau=3.0)
    with torch.no_grad():
        node.w.fill_(0.123456789)
    neuron = from_spikingjelly(node)
    assert isinstance(neuron.w, nn.Parameter) and neuron.w.requires_grad
    assert_close(neuron.w, node.w, rtol=0, atol=0)
    assert neuron.w.data_ptr() != node.w.data_ptr()  # a copy, not shared
    back = to_spikingjelly(neuron)
    assert isinstance(back, sj_neuron.ParametricLIFNode)
    assert_close(back.w, node.w, rtol=0, atol=0)
    node.w.requires_grad_(False)
    frozen = from_spikingjelly(node)
    assert not isinstance(frozen.w, nn.Parameter) and "w" in dict(frozen.named_buffers())
    assert not to_spikingjelly(frozen).w.requires_grad


def test_large_plif_w_round_trips() -> None:
    """w = 40 gives sigmoid(w) == 1 in float64 (τ = 1): still copied, never rebuilt from τ."""
    node = sj_neuron.ParametricLIFNode(init_tau=2.0)
    with torch.no_grad():
        node.w.fill_(40.0)
    assert float(from_spikingjelly(node).w.detach()) == 40.0


@pytest.mark.parametrize("neuron", [
    LIFNeuron(beta=1.0, beta_clamp=(0.0, 1.0), comparator=">=", reset="zero"),
    LIFNeuron(beta=1.0, beta_clamp=(0.0, 1.0), comparator=">=", reset="subtract",
              v_reset=0.5, threshold=1.0),
    LIFNeuron(charge="tau", tau=4.0, comparator=">=", reset="zero", v_reset=-0.1),
    LIFNeuron(charge="rate_input", tau=3.0, comparator=">=", reset="subtract"),
    LIFNeuron(beta=0.8, comparator=">=", reset="subtract", surrogate=ATan(3.0)),
    LIFNeuron(beta=0.8, alpha=0.6, comparator=">=", reset="zero"),
], ids=["IF", "HalfThresholdIF", "LIF", "PLIF", "beta-as-CUBALIF", "CUBALIF"])
def test_round_trip_brain_ai_sj_brain_ai(neuron: LIFNeuron) -> None:
    """to then from gives back the same rule set (β-without-synapse gains alpha = 0)."""
    back = from_spikingjelly(to_spikingjelly(neuron))
    for attr in ("charge", "comparator", "reset", "reset_timing", "v_reset", "detach_reset",
                 "surrogate"):
        assert getattr(back, attr) == getattr(neuron, attr), attr
    assert_close(back.leak(), neuron.leak(), rtol=0, atol=0)
    assert_close(back.threshold, neuron.threshold, rtol=0, atol=0)
    if neuron.alpha is not None:
        assert_close(back.alpha, neuron.alpha, rtol=0, atol=0)


def test_beta_without_synapse_exports_as_cubalif_with_zero_current_decay() -> None:
    """c' = 0·c + x = x exactly, so β·v + x survives the trip to SJ bit for bit."""
    neuron = LIFNeuron(beta=0.8, comparator=">=", reset="subtract", surrogate=ATan(2.0))
    node = to_spikingjelly(neuron, step_mode="m")
    assert isinstance(node, sj_neuron.CUBALIFNode) and node.c_decay == 0.0
    x = torch.randn(4, T, 16, generator=torch.Generator().manual_seed(3)) * 0.4 + 0.25
    run = paired_run(node, neuron, x, "m")
    assert 0.05 <= float(run.spikes_sj.mean()) <= 0.5
    _assert_bit_exact(run)


# ================================================================= surrogates


@pytest.mark.parametrize("sg", SURROGATES, ids=lambda s: type(s).__name__)
def test_surrogate_gradient_equals_sj_ops_formula(sg: nn.Module) -> None:
    """brain_ai's backward is SJ's ``_ops`` expression, bit for bit, ties included."""
    x = surrogate_grid(float(sg.alpha))
    g_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    x_sj, x_ba = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_sj = _surrogate_spike(x_sj, float(sg.alpha), _SURROGATE_IDS[type(sg).__name__])
    y_ba = heaviside(x_ba, surrogate_from_spikingjelly(sg), inclusive=True)
    assert_close(y_ba, y_sj, rtol=0, atol=0)
    (g_sj,) = torch.autograd.grad((y_sj * g_out).sum(), x_sj)
    (g_ba,) = torch.autograd.grad((y_ba * g_out).sum(), x_ba)
    assert_close(g_ba, g_sj, rtol=0, atol=0)


@pytest.mark.parametrize("sg", SURROGATES, ids=lambda s: type(s).__name__)
def test_surrogate_round_trip(sg: nn.Module) -> None:
    back = surrogate_to_spikingjelly(surrogate_from_spikingjelly(sg))
    assert type(back) is type(sg) and back.alpha == sg.alpha and back.spiking


def test_sj_default_sigmoid_is_alpha_4() -> None:
    assert surrogate_from_spikingjelly(sj_surrogate.Sigmoid()) == Sigmoid(4.0)
    assert surrogate_from_spikingjelly(None) == Sigmoid(4.0)


# ================================================================= the tie rule


def test_tie_rule_inputs_hitting_threshold_fire_in_both() -> None:
    """IF, θ = 1, input 0.25 every step: v = 0.25, 0.5, 0.75, 1.0 == θ -> fires at steps
    3, 7, 11, ... (0-based) in SJ and in the converted neuron; brain_ai's default '>' waits
    one more step (v = 1.25)."""
    x = torch.full((2, 12, 3), 0.25)
    node = sj_neuron.IFNode(v_reset=0.0, step_mode="m")
    s_sj, _, _ = run_spikingjelly(node, x)
    s_ba, _ = run_brain_ai(from_spikingjelly(node), x, "m")
    expected = torch.zeros(12)
    expected[3::4] = 1.0
    assert_close(s_sj[0, :, 0], expected, rtol=0, atol=0)
    assert_close(s_ba, s_sj, rtol=0, atol=0)
    strict = LIFNeuron(beta=1.0, beta_clamp=(0.0, 1.0), reset="zero")  # comparator '>'
    s_strict, _ = run_brain_ai(strict, x, "m")
    expected_strict = torch.zeros(12)
    expected_strict[4::5] = 1.0
    assert_close(s_strict[0, :, 0], expected_strict, rtol=0, atol=0)


# ================================================================= state bridging


@pytest.mark.parametrize("cfg", [LIF_CFG, PLIF_CFG, CUBA_CFG], ids=lambda c: c.family)
@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_stream_continues_across_frameworks(cfg: NeuronConfig, step_mode: str) -> None:
    """First half in SJ, second half in brain_ai from SJ's state (and the reverse) equals
    one uninterrupted run."""
    x = _x(cfg)[:, :40]
    node = cfg.sj()
    node.step_mode = step_mode
    neuron = from_spikingjelly(node)
    s_full, _, v_full = run_spikingjelly(node, x)

    node(x[:, 0] if step_mode == "s" else batch_to_time_first(x[:, :1]))  # stale: replaced
    state_to_spikingjelly(None, node)
    s1, mid, _ = run_spikingjelly(node, x[:, :20])
    s2, state = neuron.sequence(x[:, 20:], mid)[:2]
    assert_close(torch.cat([s1, s2], 1), s_full, rtol=0, atol=0)

    s1, state = neuron.sequence(x[:, :20])[:2]
    state_to_spikingjelly(state, node)
    node.step_mode = "m"
    s2 = time_to_batch_first(node(batch_to_time_first(x[:, 20:])))
    assert_close(torch.cat([s1, s2], 1), s_full, rtol=0, atol=0)
    final = state_from_spikingjelly(node)
    assert_close(final.v, v_full[:, -1], rtol=0, atol=0)


def test_state_take_leaves_no_hidden_state() -> None:
    node = sj_neuron.CUBALIFNode(v_reset=-0.1, surrogate_function=sj_surrogate.ATan())
    assert state_from_spikingjelly(node) is None  # fresh: brain_ai's state=None
    node(torch.rand(2, 3))
    v, c = node.v, node.c
    state = state_from_spikingjelly(node)
    assert state.v is v and state.i is c  # handed out untouched (graph kept)
    assert node.v == -0.1 and node.c == 0.0  # back at the reset values, as Python floats
    v_before = v.clone()
    node.reset()
    assert_close(v, v_before, rtol=0, atol=0)  # reset() never writes into handed-out tensors


def test_state_errors() -> None:
    node = sj_neuron.LIFNode(step_mode="m")
    with pytest.raises(ShapeError, match="silently restart"):
        run_spikingjelly(node, torch.rand(4, 5, 3), SpikingState(v=torch.zeros(2, 3)))
    with pytest.raises(ConversionError, match="LIFNode keeps"):
        state_to_spikingjelly(SpikingState(v=torch.zeros(2, 3), a=torch.zeros(2, 3)), node)
    with pytest.raises(ConversionError, match="CUBALIFNode keeps"):
        state_to_spikingjelly(SpikingState(v=torch.zeros(2, 3)),
                              sj_neuron.CUBALIFNode(surrogate_function=sj_surrogate.ATan()))


# ================================================================= ConversionError


@pytest.mark.parametrize(("node", "name"), [
    (sj_neuron.QIFNode(), "QIFNode"), (sj_neuron.EIFNode(), "EIFNode"),
    (sj_neuron.KLIFNode(), "KLIFNode"), (sj_neuron.IzhikevichNode(), "IzhikevichNode"),
    (sj_neuron.SimpleLIFNode(tau=2.0, decay_input=True), "SimpleLIFNode"),
    (sj_neuron.LIAFNode(torch.relu, False), "LIAFNode"),
    (sj_neuron.LIFNode(surrogate_function=sj_surrogate.S2NN()), "S2NN"),
    (sj_neuron.LIFNode(surrogate_function=sj_surrogate.PiecewiseLeakyReLU()),
     "PiecewiseLeakyReLU"),
    (sj_neuron.LIFNode(surrogate_function=sj_surrogate.ATan(spiking=False)), "spiking=False"),
    (sj_neuron.LIFNode(surrogate_function=sj_surrogate.ATan(alpha=torch.tensor(2.0))),
     "tensor alpha"),
    (sj_neuron.CUBALIFNode(v_decay=1.5, surrogate_function=sj_surrogate.ATan()), "v_decay"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_from_spikingjelly_refuses(node: nn.Module, name: str) -> None:
    with pytest.raises(ConversionError, match=name):
        from_spikingjelly(node)


def test_surrogate_subclass_is_refused() -> None:
    class MyATan(sj_surrogate.ATan):
        pass

    with pytest.raises(ConversionError, match="MyATan"):
        surrogate_from_spikingjelly(MyATan())


SJ_RULES = {"comparator": ">=", "beta_clamp": (0.0, 1.0)}


@pytest.mark.parametrize(("neuron", "fragment"), [
    (LIFNeuron(beta=1.0, beta_clamp=(0.0, 1.0)), "fires at h >= θ"),
    (LIFNeuron(beta=0.5, reset_timing="delayed", comparator=">="), "reset timing"),
    (LIFNeuron(beta=0.5, reset="none", comparator=">="), "reset='none'"),
    (LIFNeuron(beta=0.5, learn_threshold=True, comparator=">="), "learnable threshold"),
    (LIFNeuron(beta=0.5, threshold=torch.ones(3), comparator=">="), "per-neuron threshold"),
    (LIFNeuron(beta=0.5, learn_beta=True, comparator=">="), "learnable beta"),
    (LIFNeuron(charge="tau", tau=3.0, learn_tau=True, comparator=">="), "learnable tau"),
    (LIFNeuron(charge="tau", tau=torch.full((3,), 3.0), comparator=">="), "per-neuron tau"),
    (LIFNeuron(charge="tau", tau=1.0, comparator=">="), "tau > 1"),
    (LIFNeuron(charge="tau_input", tau=2.0, reset="subtract", v_reset=0.1, comparator=">="),
     "toward v_reset"),
    (LIFNeuron(charge="rate", tau=torch.full((3,), 3.0), comparator=">="), "per-neuron PLIF"),
    (LIFNeuron(beta=0.5, surrogate=FastSigmoid(), comparator=">="), "FastSigmoid"),
    (LIFNeuron(beta=0.5, refractory_steps=2, comparator=">="), "refractory"),
    (LIFNeuron(beta=0.5, graded_spikes_factor=2.0, comparator=">="), "graded"),
    (LIFNeuron(beta=0.5, input_gain=2.0, comparator=">="), "input_gain"),
    (LIFNeuron(beta=1.0, beta_clamp=(0.0, 1.0), reset="subtract", v_reset=0.3,
               comparator=">="), "starting at v_reset"),
    (LIFNeuron(beta=0.5, beta_param="sigmoid", comparator=">="), "sigmoid-parameterized"),
    (AdaptiveLIFNeuron(comparator=">="), "AdaptiveLIFNeuron"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_to_spikingjelly_refuses(neuron: LIFNeuron, fragment: str) -> None:
    with pytest.raises(ConversionError, match=fragment):
        to_spikingjelly(neuron)


def test_tie_rule_change_is_opt_in() -> None:
    strict = LIFNeuron(beta=1.0, beta_clamp=(0.0, 1.0), reset="zero", surrogate=ATan(2.0))
    node = to_spikingjelly(strict, allow_tie_rule_change=True)
    assert isinstance(node, sj_neuron.IFNode)


def test_error_message_has_house_format() -> None:
    with pytest.raises(ConversionError) as info:
        from_spikingjelly(sj_neuron.QIFNode())
    text = str(info.value)
    assert text.startswith("from_spikingjelly: SpikingJelly QIFNode has no exact brain_ai")
    assert "(got QIFNode; expected IFNode, HalfThresholdIFNode" in text and "\n  Hint: " in text


# ================================================================= whole models


def test_fold_time_is_time_major_like_spikingjelly() -> None:
    """SpikingSequential(fold_time=True) hands a stateless layer (T·B) rows, time-major."""
    seen: list[list[float]] = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.flatten().tolist())
            return x

    SpikingSequential(Probe(), fold_time=True)(torch.arange(6.0).reshape(2, 3, 1))
    assert seen[0] == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_csnn_migrates_bit_exact(step_mode: str, train: bool) -> None:
    """SJ's CSNN (conv-BN-IF-pool x2, linear-IF x2): 0 spike mismatches, identical
    membranes and outputs; every gradient within 1e-6 except the time-folded weight sums of
    multi-step models (see the next test). BatchNorm in train mode (statistics over T·B in
    'm') does not change a bit of the forward pass."""
    net = csnn(step_mode).train(train)
    migrated = migrate(net)
    assert migrated.fold_time is (step_mode == "m") and migrated.training is train
    assert type(migrated[0]) is nn.Conv2d and type(migrated[1]) is nn.BatchNorm2d
    assert_close(migrated[0].weight, net[0].weight, rtol=0, atol=0)
    bn_before = net[1].running_mean.clone()
    report = verify_spikingjelly_migration(net, migrated, csnn_input(0))
    assert [r.name for r in report.layers] == ["2", "6", "10", "12"]
    for row in report.layers:
        assert row.spike_mismatches == 0 and row.max_abs_membrane == 0.0, row
        assert 0.05 <= row.firing_rate <= 0.5, row
    assert report.output_spike_mismatches == 0
    for name, rel in report.grads.items():
        assert rel <= GRAD_TOL, (name, rel)
    assert report.grads["input"] == 0.0
    # nothing left behind: SJ memories reset, BN statistics restored, no .grad
    assert all(m.v == 0.0 for m in net if isinstance(m, sj_neuron.IFNode))
    assert_close(net[1].running_mean, bn_before, rtol=0, atol=0)
    assert all(p.grad is None for p in [*net.parameters(), *migrated.parameters()])


def test_csnn_multi_step_weight_gradients_within_bar() -> None:
    """fold_time folds time-major like SJ's SeqToANNContainer: weight gradients match."""
    net = csnn("m")
    report = verify_spikingjelly_migration(net, migrate(net), csnn_input(0))
    assert max(report.grads.values()) <= GRAD_TOL, report.grads


def test_containers_migrate() -> None:
    """SeqToANNContainer (plain torch layers, time folded), MultiStepContainer (a single-step
    PLIF looped over time), nested nn.Sequential, layer.Dropout(p=0)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        sj_layer.SeqToANNContainer(nn.Linear(6, 12), nn.BatchNorm1d(12)),
        sj_neuron.LIFNode(tau=2.5, surrogate_function=sj_surrogate.ATan()),
        nn.Sequential(sj_layer.Linear(12, 12), sj_layer.Dropout(0.0)),
        sj_layer.MultiStepContainer(sj_neuron.ParametricLIFNode(init_tau=3.0)),
        sj_layer.Linear(12, 4),
    )
    sj_functional.set_step_mode(net, "m")
    with torch.no_grad():  # firing rates of 12 % and 10 %
        net[0][1].bias.fill_(0.8)
        net[2][0].weight.mul_(3.0)
        net[2][0].bias.fill_(1.0)
    net.eval()
    migrated = migrate(net)
    assert list(migrated._modules) == ["0_0", "0_1", "1", "2_0", "2_1", "3_0", "4"]
    x = torch.rand(T, 4, 6, generator=torch.Generator().manual_seed(0)) * 2.0
    report = verify_spikingjelly_migration(net, migrate(net), x)
    assert [r.spike_mismatches for r in report.layers] == [0, 0]
    assert all(r.max_abs_membrane == 0.0 for r in report.layers)
    assert all(0.05 <= r.firing_rate <= 0.5 for r in report.layers), report
    assert report.output_spike_mismatches == 0  # output of the last Linear: exact values
    # the input gradient is exact; weight gradients carry the time-folding order (see above)
    # and the looped single-step PLIF's per-step sigmoid(w) (the single-step-w guard)
    assert report.grads["input"] <= GRAD_TOL, report.grads


def test_single_step_model_migrates_step_by_step() -> None:
    net = nn.Sequential(sj_layer.Linear(5, 8), sj_neuron.IFNode(),
                        sj_layer.Linear(8, 3), sj_neuron.LIFNode(tau=2.0))
    migrated = migrate(net)
    assert migrated.fold_time is False
    x = torch.rand(T, 2, 5, generator=torch.Generator().manual_seed(1)) * 1.5
    report = verify_spikingjelly_migration(net, migrated, x)
    assert report.equivalent, report


@pytest.mark.parametrize(("build", "fragment"), [
    (lambda: nn.Sequential(sj_layer.Linear(3, 3), nn.LSTM(3, 3)), "1: LSTM is not supported"),
    (lambda: nn.Sequential(sj_layer.Linear(3, 3, step_mode="m"), sj_neuron.IFNode()),
     "mixes single-step and multi-step"),
    (lambda: nn.Sequential(nn.Conv2d(1, 1, 3), sj_neuron.IFNode(step_mode="m")),
     "plain Conv2d at the top level"),
    (lambda: nn.Sequential(nn.Sequential(nn.Conv2d(1, 1, 3)), sj_neuron.IFNode(step_mode="m")),
     "0.0: plain Conv2d"),
    (lambda: nn.Sequential(sj_layer.Linear(3, 3), sj_layer.Dropout(0.5)),
     "Dropout keeps one mask"),
    (lambda: nn.Sequential(sj_layer.SeqToANNContainer(nn.Linear(3, 3), sj_neuron.IFNode())),
     "neuron inside SeqToANNContainer"),
    (lambda: nn.Sequential(sj_layer.MaxPool2d(2, return_indices=True)), "return_indices"),
    (lambda: nn.Sequential(sj_neuron.QIFNode()), "QIFNode"),
    (lambda: nn.Sequential(sj_layer.ElementWiseRecurrentContainer(
        sj_neuron.IFNode(), lambda a, b: a + b)), "ElementWiseRecurrentContainer"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_migrate_refuses(build, fragment: str) -> None:
    with pytest.raises(ConversionError, match=fragment):
        migrate(build())


def test_dropout_identity_is_opt_in_and_exact_in_eval() -> None:
    net = nn.Sequential(sj_layer.Linear(4, 6), sj_neuron.IFNode(), sj_layer.Dropout(0.5),
                        sj_layer.Linear(6, 3), sj_neuron.IFNode()).eval()
    migrated = migrate(net, dropout="identity")
    assert type(migrated[2]) is nn.Identity
    x = torch.rand(50, 2, 4, generator=torch.Generator().manual_seed(2)) * 2
    assert verify_spikingjelly_migration(net, migrated, x).equivalent


def test_no_warnings_or_nans_in_a_long_run() -> None:
    """T = 300 in 'm' mode stays exact (no drift)."""
    cfg = PLIF_CFG
    x = torch.randn(4, 300, 16, generator=torch.Generator().manual_seed(5)) * cfg.std + cfg.mean
    node = cfg.sj()
    run = paired_run(node, from_spikingjelly(node), x, "m")
    _assert_bit_exact(run)
    assert math.isfinite(float(run.v_sj.abs().max()))
