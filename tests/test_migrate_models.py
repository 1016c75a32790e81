"""migrate() on whole models of either peer: in-place conversion, hidden state, verification.

Numbers are compared against the installed peer: 0 spike mismatches, identical membranes,
gradients within 1e-6 relative (in fact 0 here); the zoo-wide matrix is
conformance/cases_zoo.py.
"""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from snntorch import surrogate as sn_sg
from spikingjelly.activation_based import functional as sj_functional
from spikingjelly.activation_based import layer as sj_layer
from spikingjelly.activation_based import neuron as sj_neuron
from spikingjelly.activation_based import surrogate as sj_surrogate
from torch import nn
from torch.testing import assert_close

from brain_ai.adapters import spikingjelly_layers as sjl
from brain_ai.adapters.hidden_state import (
    call_with_state,
    hidden_state,
    reset_hidden,
)
from brain_ai.adapters.snntorch import from_snntorch
from brain_ai.adapters.snntorch import migrate as migrate_snntorch
from brain_ai.adapters.spikingjelly import migrate, verify_spikingjelly_migration
from brain_ai.adapters.verify import verify_migration
from brain_ai.conformance.cases_snntorch import compare
from brain_ai.conformance.cases_spikingjelly import paired_run
from brain_ai.conformance.cases_zoo import _neuron_kwargs, run_zoo, zoo_module
from brain_ai.conformance.models_snntorch import (
    SNNTORCH_MODELS,
    sae_init_hidden,
    sigmoid_mlp,
    tutorial_mlp,
)
from brain_ai.errors import ConversionError, ShapeError


def _exact(report) -> None:  # type: ignore[no-untyped-def]
    assert all(r.spike_mismatches == 0 and r.max_abs_membrane == 0.0 for r in report.layers), \
        report
    assert report.output_spike_mismatches == 0, report
    assert max(report.grads.values()) <= 1e-6, report.grads


def _peer_modules(model: nn.Module) -> list[str]:
    return [f"{n}: {type(m).__module__}.{type(m).__name__}" for n, m in model.named_modules()
            if type(m).__module__.startswith(("spikingjelly.", "snntorch"))
            and not type(m).__module__.startswith("spikingjelly.activation_based.model.")]


# ================================================================= SpikingJelly, in place


@pytest.mark.parametrize("mode", ["s", "m"])
def test_zoo_sew_resnet_in_place_exact_and_free_of_peer_modules(mode: str) -> None:
    """SEW-ResNet (residual ADD, downsample branches): the zoo's own forward over brain_ai
    modules; no SpikingJelly neuron, layer or container is left; every neuron bit-exact."""
    net, migrated, report = run_zoo("sew_resnet-ADD", mode, True,
                                    _neuron_kwargs("PLIF", "ATan", True))
    assert type(migrated) is type(net) and _peer_modules(migrated) == []
    assert len(report.layers) == 12 and report.verdict == "EQUIVALENT", report
    _exact(report)
    assert report.grads["input"] == 0.0 and report.grads["sn1.w"] == 0.0  # PLIF's w
    assert migrated.avgpool.step_mode == mode  # the zoo's forward reads it


def test_zoo_transformers_and_attention_blocks_convert() -> None:
    for key in ("Spikformer", "SpikeDrivenTransformer", "QKFormer", "masnn"):
        _, migrated, report = run_zoo(key, "m", False, {})
        assert _peer_modules(migrated) == [], key
        assert report.verdict == "EQUIVALENT", (key, str(report))
        _exact(report)


def test_rect_surrogate_matches_spikingjelly_class_backward() -> None:
    """ms_resnet's default surrogate: SJ neurons call Rect's class backward
    ``alpha·(|x| < 0.5/alpha)·g``; brain_ai's Rect writes it in the same order."""
    node = sj_neuron.LIFNode(tau=4.0 / 3.0, decay_input=False, v_threshold=0.5,
                             v_reset=None, detach_reset=True,
                             surrogate_function=sj_surrogate.Rect(alpha=2.0))
    x = torch.randn(4, 50, 16, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.2
    from brain_ai.adapters.spikingjelly import from_spikingjelly

    m = paired_run(node, from_spikingjelly(node), x, "m").metrics()
    assert m["spikes"] == 0 and m["membrane"] == 0.0 and m["grad"] == 0.0
    assert 0.05 < m["rate"] < 0.5


class _Residual(nn.Module):
    """A single-step custom block: conv -> IF, plus a skip connection and a second IF."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = sj_layer.Conv2d(2, 2, 3, padding=1)
        self.sn1 = sj_neuron.IFNode(surrogate_function=sj_surrogate.ATan())
        self.sn2 = sj_neuron.LIFNode(tau=2.0, surrogate_function=sj_surrogate.ATan())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sn2(self.sn1(self.conv(x)) + x)


def _single_step_net() -> nn.Module:
    torch.manual_seed(0)
    return _Residual()


def test_single_step_model_keeps_sj_convention_in_one_store() -> None:
    """``out = net(x_t)`` per step, state between calls: in the model's one HiddenState;
    reset_hidden (or SJ's own functional.reset_net) starts it fresh; call_with_state is the
    explicit form and leaves the store as it was."""
    net = _single_step_net()
    migrated = migrate(net)
    x = torch.rand(6, 3, 2, 5, 5, generator=torch.Generator().manual_seed(1)) * 2
    with torch.no_grad():
        ref = torch.stack([net(x_t) for x_t in x])
        sj_functional.reset_net(net)
        ours = torch.stack([migrated(x_t) for x_t in x])
    assert_close(ours, ref, rtol=0, atol=0)
    store = hidden_state(migrated)
    assert sorted(store.snapshot()) == ["sn1", "sn2"]
    assert all(not vars(m).get("v") for m in migrated.modules())  # nothing on the modules
    with pytest.raises(ShapeError, match="reset_hidden"):
        migrated(x[0, :2])  # another batch size without a reset
    reset_hidden(migrated)
    assert len(store) == 0
    state = None
    with torch.no_grad():
        for t, x_t in enumerate(x):
            out, state = call_with_state(migrated, x_t, state=state)
            assert_close(out, ref[t], rtol=0, atol=0)
    assert len(store) == 0  # the explicit form did not touch the store
    migrated(x[0])
    sj_functional.reset_net(migrated)  # SJ's own reset works on the converted modules
    assert len(store) == 0
    report = verify_spikingjelly_migration(net, migrated, x)
    assert report.verdict == "EQUIVALENT", report


def test_multi_step_calls_keep_no_state() -> None:
    net = _single_step_net()
    sj_functional.set_step_mode(net, "m")
    migrated = migrate(net)
    x = torch.rand(4, 2, 2, 5, 5, generator=torch.Generator().manual_seed(2)) * 2
    first, second = migrated(x), migrated(x)
    assert_close(first, second, rtol=0, atol=0)
    assert sum(len(s) for s in [hidden_state(migrated)]) == 0


class _Layers(nn.Module):
    """Dropout (one mask per sequence), SynapseFilter, LinearRecurrentContainer,
    ElementWiseRecurrentContainer, MultiStepContainer and VotingLayer in one model."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.fc1 = sj_layer.Linear(6, 20)
        self.drop = sj_layer.Dropout(0.5)
        self.filt = sj_layer.SynapseFilter(tau=3.0, learnable=True)
        self.rec = sj_layer.LinearRecurrentContainer(
            sj_neuron.IFNode(surrogate_function=sj_surrogate.ATan()), 20, 20)
        self.ew = sj_layer.ElementWiseRecurrentContainer(
            sj_neuron.ParametricLIFNode(init_tau=2.0, decay_input=False,
                                        surrogate_function=sj_surrogate.ATan()),
            lambda y, x: y * 0.5 + x)
        self.loop = (sj_layer.MultiStepContainer(sj_neuron.IFNode()) if mode == "m"
                     else sj_neuron.IFNode())
        self.vote = sj_layer.VotingLayer(5)
        sj_functional.set_step_mode(self, mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vote(self.loop(self.ew(self.rec(self.filt(self.drop(self.fc1(x)))))))


@pytest.mark.parametrize("mode", ["s", "m"])
def test_stateful_layers_and_containers_exact_in_training(mode: str) -> None:
    torch.manual_seed(0)
    net = _Layers(mode).train()
    migrated = migrate(net)
    assert isinstance(migrated.drop, sjl.Dropout) and isinstance(migrated.vote, sjl.VotingLayer)
    assert _peer_modules(migrated) == []
    x = torch.rand(8, 3, 6, generator=torch.Generator().manual_seed(3)) * 3
    report = verify_spikingjelly_migration(net, migrated, x)
    _exact(report)
    assert report.grads["filt.w"] == 0.0 and report.grads["rec.rc.weight"] == 0.0
    assert all(r.firing_rate > 0 for r in report.layers), report


def test_refusals_name_the_path_and_one_line_reason() -> None:
    ottt = zoo_module("spiking_vggws_ottt")
    with pytest.raises(ConversionError, match=r"features: SpikingJelly OTTTSequential is not "
                                              r"supported: routes OTTT's"):
        migrate(ottt.OTTTSpikingVGG(cfg=[8, "M"], num_classes=10,
                                    spiking_neuron=sj_neuron.OTTTLIFNode))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = nn.Sequential(nn.Linear(3, 3), sj_neuron.QIFNode())

    with pytest.raises(ConversionError, match=r"block\.1: SpikingJelly QIFNode is not supported: "
                                              r"its dynamics are not a LIF-family rule"):
        migrate(Net())


# ================================================================= snnTorch


def test_tutorial3_unbatched_leaky_matches_snntorch() -> None:
    """``lif(cur_in[step], mem)`` with a 0-d current and ``mem = torch.zeros(1)``."""
    lif = snn.Leaky(beta=0.8)
    ours = migrate_snntorch(lif)
    cur = torch.cat((torch.zeros(10), torch.ones(40) * 0.21))
    mem_p, mem_o = torch.zeros(1), torch.zeros(1)
    for step in range(cur.shape[0]):
        spk_p, mem_p = lif(cur[step], mem_p)
        spk_o, mem_o = ours(cur[step], mem_o)
        assert spk_o.shape == spk_p.shape == ()
        assert_close(mem_o, mem_p, rtol=0, atol=0)
        assert_close(spk_o, spk_p, rtol=0, atol=0)


def test_every_snntorch_tutorial_model_verifies() -> None:
    for name, (factory, make_input) in SNNTORCH_MODELS.items():
        model = factory()
        report = verify_migration(model, migrate_snntorch(model), make_input(0))
        assert report.verdict == "EQUIVALENT", (name, str(report))
        _exact(report)


def test_unused_neuron_is_listed_not_crashing() -> None:
    factory, make_input = SNNTORCH_MODELS["unused-neuron-mlp"]
    model = factory()
    report = verify_migration(model, migrate_snntorch(model), make_input(0))
    assert [r.status for r in report.layers] == ["equal", "equal", "unused"]
    assert "unused (never ran): spare" in str(report)


def test_a_silent_layer_makes_the_verdict_untested() -> None:
    model = tutorial_mlp()
    report = verify_migration(model, migrate_snntorch(model), torch.zeros(5, 2, 784))
    assert report.equivalent and report.verdict == "UNTESTED"
    assert report.untested == ["lif1", "lif2"] and "UNTESTED" in str(report)


def test_sigmoid_nan_gradients_are_reported_and_ours_stay_finite() -> None:
    model = sigmoid_mlp()
    migrated = migrate_snntorch(model)
    x = SNNTORCH_MODELS["sigmoid-surrogate-mlp"][1](0)
    report = verify_migration(model, migrated, x)
    assert report.nonfinite["input"] > 0 and report.equivalent
    assert "equal wherever the peer is finite; the peer is non-finite at" in str(report)
    xm = x.clone().requires_grad_()
    migrated(xm)[1].sum().backward()
    assert torch.isfinite(xm.grad).all()


def test_init_hidden_inside_a_custom_module_uses_one_store() -> None:
    model = sae_init_hidden()
    migrated = migrate_snntorch(model)
    x = SNNTORCH_MODELS["sae-init_hidden-custom"][1](0)
    out = migrated(x)
    assert sorted(hidden_state(migrated).snapshot()) == ["decoder.1", "encoder.2", "encoder.5"]
    reset_hidden(migrated)
    assert_close(migrated(x), out, rtol=0, atol=0)  # fresh again: same numbers
    reset_hidden(migrated)
    again, state = call_with_state(migrated, x)
    assert_close(again, out, rtol=0, atol=0) and len(state) == 3


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda: snn.LeakyParallel(4, 4), "LeakyParallel is not supported: an nn.RNN"),
    (lambda: snn.SLSTM(4, 4), "SLSTM is not supported: an LSTM cell"),
])
def test_unsupported_snntorch_modules_are_refused_not_passed_through(make, fragment: str
                                                                     ) -> None:  # type: ignore[no-untyped-def]
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.cell = make()

    with pytest.raises(ConversionError, match=fragment):
        migrate_snntorch(Net())
    with pytest.raises(ConversionError, match=fragment):
        migrate_snntorch(nn.Sequential(nn.Linear(4, 4), snn.Leaky(0.9, init_hidden=True),
                                       make()))


def test_spike_rate_escape_converts_exactly() -> None:
    peer = snn.Leaky(beta=0.9, spike_grad=sn_sg.spike_rate_escape(beta=1.5, slope=10))
    x = torch.rand(60, 4, 8, generator=torch.Generator().manual_seed(0)) * 0.5
    m = compare(peer, from_snntorch(peer), x, 0)
    assert m["spikes"] == 0 and m["membrane"] == 0.0 and m["grad"] == 0.0 and m["rate"] > 0
