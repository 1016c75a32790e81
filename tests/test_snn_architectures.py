"""SNNCore (MLP) and ConvSNN: one unroll path, fold/per-step equality, hand-checked probes."""

from __future__ import annotations

import statistics

import pytest
import torch
from torch import nn

import brain_ai.core.neurons as neurons_mod
import brain_ai.core.snn as snn_mod
from brain_ai.config import SNNConfig
from brain_ai.core.losses import SNNMetrics, compute_snn_metrics
from brain_ai.core.neurons import (
    AdaptiveLIFNeuron,
    AdvancedLIFNeuron,
    LIFNeuron,
    RecurrentLIFNeuron,
    SpikingNeuronBase,
)
from brain_ai.core.snn import (
    ConvSNN,
    NetworkOutput,
    ProbedOutput,
    SNNCore,
    SpikingSequential,
    fold_time,
    network_probes,
)
from brain_ai.errors import BrainAIError, ConfigError, ShapeError

EPS32 = torch.finfo(torch.float32).eps
KINDS = ("lif", "adaptive", "recurrent", "advanced")


def _seeded(model: nn.Module, seed: int) -> nn.Module:
    """Re-draw Linear/Conv2d weights and biases from a seeded generator.

    ``U(-2, 2) / sqrt(fan_in)``: twice PyTorch's default range, so that every layer fires.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                bound = m.weight[0].numel() ** -0.5
                for p in (m.weight, m.bias):
                    if p is not None:
                        p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * bound * 2.0)
    return model


def _twin(model: nn.Module, cls: type, **kwargs: object) -> nn.Module:
    other = cls(**kwargs)
    other.load_state_dict(model.state_dict())
    other.train(model.training)
    return other


def _order_tolerance(net: SpikingSequential, x: torch.Tensor,
                     out: NetworkOutput) -> dict[str, float]:
    """Per neuron layer: ``eps32 · max|I| / (1 - β_max)``.

    ``I`` is the layer's input current (recomputed folded from the recorded spikes). Folding
    time into the batch changes the batch size a kernel sees and, with it, the summation order
    of a dot product: each step's current can move by about one ulp of the largest current.
    With identical spikes the membrane is a leaky sum of currents, so the difference grows at
    most to ``max|ΔI| · Σ β^k = max|ΔI| / (1 - β)``.
    """
    tol: dict[str, float] = {}
    h = x
    for name, layer in net.named_children():
        if isinstance(layer, SpikingNeuronBase):
            beta = float(layer.leak().detach().max())  # β (charge="beta" and Advanced)
            tol[name] = EPS32 * float(h.abs().max()) / (1.0 - beta)
            h = out.spikes[name]
        else:
            with torch.no_grad():
                h = fold_time(layer, h)
    return tol


def _assert_orders_agree(a: NetworkOutput, b: NetworkOutput, tol: dict[str, float]) -> None:
    assert list(a.spikes) == list(b.spikes)
    for name in a.spikes:
        torch.testing.assert_close(a.spikes[name], b.spikes[name], rtol=0, atol=0)
        torch.testing.assert_close(a.membrane[name], b.membrane[name], rtol=0,
                                   atol=tol[name])
    torch.testing.assert_close(a.output, b.output, rtol=0, atol=0)


# ---------------------------------------------------------------- fold vs per step


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_norm", [False, True])
def test_convsnn_fold_equals_per_step(kind: str, batch_norm: bool) -> None:
    """Time-folded ConvSNN (SeqToANNContainer order) vs the per-step loop.

    Spikes are bit-identical in every layer. Membranes agree within the summation-order bound
    of :func:`_order_tolerance`. Measured on CPU (torch 2.13, 2 threads): the conv layers'
    membranes are bit-identical; the linear readout differs by up to ~3 eps·max|I| (about 0.3
    of the bound) because sgemm blocks ``(B·T, F)`` differently from ``(B, F)``.
    Batch-norm is compared in eval mode (running statistics); see the guard below for train
    mode.
    """
    cfg = SNNConfig(neuron=kind, output_size=5)
    net = _seeded(ConvSNN(cfg, input_hw=8, channels=(4, 6), batch_norm=batch_norm,
                          fold_time=True), 3)
    if batch_norm:
        g = torch.Generator().manual_seed(4)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        net.eval()
    step = _twin(net, ConvSNN, config=cfg, input_hw=8, channels=(4, 6), batch_norm=batch_norm,
                 fold_time=False)
    x = torch.rand(3, 6, 1, 8, 8, generator=torch.Generator().manual_seed(5)) * 1.5
    with torch.no_grad():
        a, b = net(x, return_details=True), step(x, return_details=True)
    assert any(float(s.sum()) > 0 for s in a.spikes.values())
    _assert_orders_agree(a, b, _order_tolerance(net, x, a))


def test_convsnn_batchnorm_train_mode_differs_on_purpose() -> None:
    """Guard: in train mode batch-norm normalizes with the statistics of the batch it sees,
    ``B`` samples per step (per-step loop) or ``B·T`` (folded, SpikingJelly's behaviour), so the
    two orders give different numbers by design."""
    cfg = SNNConfig(output_size=5)
    net = _seeded(ConvSNN(cfg, input_hw=8, channels=(4,), batch_norm=True), 3)
    step = _twin(net, ConvSNN, config=cfg, input_hw=8, channels=(4,), batch_norm=True,
                 fold_time=False)
    x = torch.rand(3, 6, 1, 8, 8, generator=torch.Generator().manual_seed(5)) * 1.5
    with torch.no_grad():
        a, b = net(x, return_details=True), step(x, return_details=True)
    assert float((a.membrane["lif1"] - b.membrane["lif1"]).abs().max()) > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_snncore_fold_equals_per_step(kind: str) -> None:
    """SNNCore in both orders: identical spikes, membranes within the summation-order bound."""
    cfg = SNNConfig(neuron=kind, input_size=12, hidden_sizes=(16, 8), output_size=4)
    net = _seeded(SNNCore(cfg, fold_time=True), 7)
    step = _twin(net, SNNCore, config=cfg, fold_time=False)
    x = torch.rand(4, 9, 12, generator=torch.Generator().manual_seed(8)) * 2
    with torch.no_grad():
        a, b = net(x, return_details=True), step(x, return_details=True)
    assert any(float(s.sum()) > 0 for s in a.spikes.values())
    _assert_orders_agree(a, b, _order_tolerance(net, x, a))


@pytest.mark.parametrize("arch", ["mlp", "conv", "mlp-dropout"])
@pytest.mark.parametrize("folded", [False, True])
def test_every_architecture_runs_through_snn_unroll(monkeypatch: pytest.MonkeyPatch,
                                                    arch: str, folded: bool) -> None:
    """Both architectures, in both orders, unroll time only through ``snn_unroll``
    ("ConvSNN works but MLP breaks" cannot come from two loops): layer by layer, one
    ``snn_unroll`` per neuron (its multi-step kernel); with a dropout layer in training mode
    and ``fold_time=False``, one ``snn_unroll`` over the whole network (step by step, the
    masks drawn in the step loop's order)."""
    calls: list[str] = []

    def spy(module: object) -> object:
        real = module.snn_unroll  # type: ignore[attr-defined]

        def wrapped(*args: object, **kwargs: object) -> object:
            calls.append(module.__name__)  # type: ignore[attr-defined]
            return real(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(snn_mod, "snn_unroll", spy(snn_mod))
    monkeypatch.setattr(neurons_mod, "snn_unroll", spy(neurons_mod))
    if arch == "mlp":
        net: SpikingSequential = SNNCore(input_size=3, hidden_sizes=(4,), output_size=2,
                                         fold_time=folded)
        x = torch.rand(2, 3, 3)
    elif arch == "mlp-dropout":
        net = SpikingSequential(nn.Linear(3, 4), LIFNeuron(features=4), nn.Dropout(0.2),
                                nn.Linear(4, 2), LIFNeuron(features=2), fold_time=folded)
        x = torch.rand(2, 3, 3)
    else:
        net = ConvSNN(input_hw=4, channels=(2,), num_classes=2, fold_time=folded)
        x = torch.rand(2, 3, 1, 4, 4)
    net(x)
    steps = arch == "mlp-dropout" and not folded
    expected = ["brain_ai.core.snn"] if steps else ["brain_ai.core.neurons"] * 2
    assert calls == expected


# ---------------------------------------------------------------- probes by hand

# One input step x_t = [0.625, 0, 2.0] for T = 4 steps, identity weights, zero bias,
# beta = 0.5, threshold = 1, subtract reset, comparator ">" (all values dyadic: exact in fp32).
#
# layer 1 (current = x):
#   n0: v = 0.625, 0.9375, 1.09375 -> spike -> 0.09375, 0.046875 + 0.625 = 0.671875
#   n1: v = 0 always, never fires                                      (dead)
#   n2: v = 2 -> 1, 0.5+2 -> 1.5, 0.75+2 -> 1.75, 0.875+2 -> 1.875; fires every step (saturated)
# readout (current = 2 · spikes of layer 1):
#   n0: current 0, 0, 2, 0 -> v = 0, 0, 2 -> spike -> 1, 0.5
#   n1: dead; n2: current 2 every step -> the same trace as layer-1 n2 (saturated)
HAND_SPIKES = {
    "lif1": [[0, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]],
    "lif_out": [[0, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]],
}
HAND_MEMBRANE = {
    "lif1": [[0.625, 0.9375, 0.09375, 0.671875], [0, 0, 0, 0], [1.0, 1.5, 1.75, 1.875]],
    "lif_out": [[0, 0, 1.0, 0.5], [0, 0, 0, 0], [1.0, 1.5, 1.75, 1.875]],
}


def _hand_net(arch: str, folded: bool) -> SpikingSequential:
    cfg = SNNConfig(beta=0.5, threshold=1.0)
    net: SpikingSequential
    if arch == "mlp":
        net = SNNCore(cfg, input_size=3, hidden_sizes=(3,), output_size=3, fold_time=folded)
        first = net.fc1
    else:
        net = ConvSNN(cfg, in_channels=1, input_hw=(1, 3), channels=(1,), kernel_size=1,
                      pool=None, num_classes=3, fold_time=folded)
        first = net.conv1
    with torch.no_grad():
        first.weight.copy_(torch.ones_like(first.weight) if arch == "conv" else torch.eye(3))
        first.bias.zero_()
        net.fc_out.weight.copy_(2 * torch.eye(3))
        net.fc_out.bias.zero_()
    return net


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("folded", [False, True])
def test_probes_match_hand_computation(arch: str, folded: bool) -> None:
    """Every probe of both layers equals the value worked out above.

    Per layer (12 entries, 5 spikes): firing_rate 5/12, spike_sparsity 7/12, dead 1/3,
    saturated 1/3; membrane_mean / membrane_var are the mean and population variance of the
    12 membrane values listed in HAND_MEMBRANE (computed here in float64).
    """
    net = _hand_net(arch, folded)
    step = torch.tensor([0.625, 0.0, 2.0])
    x = step.expand(1, 4, 3) if arch == "mlp" else step.reshape(1, 1, 1, 3).expand(1, 4, 1, 1, 3)
    out = net(x.contiguous(), return_details=True)
    assert isinstance(out, ProbedOutput) and isinstance(out, NetworkOutput)
    assert list(out.probes) == ["lif1", "lif_out"]
    for name in ("lif1", "lif_out"):
        spikes = torch.tensor(HAND_SPIKES[name], dtype=torch.float32).T.unsqueeze(0)
        membrane = torch.tensor(HAND_MEMBRANE[name], dtype=torch.float32).T.unsqueeze(0)
        torch.testing.assert_close(out.spikes[name].reshape(1, 4, 3), spikes, rtol=0, atol=0)
        torch.testing.assert_close(out.membrane[name].reshape(1, 4, 3), membrane, rtol=0,
                                   atol=0)
        values = [v for row in HAND_MEMBRANE[name] for v in row]
        p = out.probes[name]
        assert p.firing_rate == pytest.approx(5 / 12, rel=1e-6)
        assert p.spike_sparsity == pytest.approx(7 / 12, rel=1e-6)
        assert p.dead_neuron_frac == pytest.approx(1 / 3, rel=1e-6)
        assert p.saturated_neuron_frac == pytest.approx(1 / 3, rel=1e-6)
        assert p.membrane_mean == pytest.approx(statistics.fmean(values), rel=1e-6)
        assert p.membrane_var == pytest.approx(statistics.pvariance(values), rel=1e-6)
        assert p.threshold == 1.0
    # 1/3 dead and 1/3 saturated are outside "< 0.05"; rate, sparsity, membrane are healthy
    assert out.unhealthy() == {"lif1": ["dead_neuron_frac", "saturated_neuron_frac"],
                               "lif_out": ["dead_neuron_frac", "saturated_neuron_frac"]}


def test_probes_are_compute_snn_metrics_of_the_records() -> None:
    """The architecture's probes are exactly compute_snn_metrics of its recorded layers."""
    net = _seeded(SNNCore(input_size=6, hidden_sizes=(5,), output_size=3), 1)
    x = torch.rand(2, 5, 6, generator=torch.Generator().manual_seed(2)) * 2
    out = net(x, return_details=True)
    for name, p in out.probes.items():
        assert isinstance(p, SNNMetrics)
        assert p == compute_snn_metrics(out.spikes[name], out.membrane[name], threshold=1.0)
    assert network_probes(net, out) == out.probes
    plain, _ = net(x)
    torch.testing.assert_close(plain, out.output, rtol=0, atol=0)
    assert ProbedOutput.HEALTHY_RANGES["firing_rate"] == (0.01, 0.50)


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize("kind, cls", [("lif", LIFNeuron), ("adaptive", AdaptiveLIFNeuron),
                                       ("recurrent", RecurrentLIFNeuron),
                                       ("advanced", AdvancedLIFNeuron)])
def test_snncore_from_config(kind: str, cls: type) -> None:
    cfg = SNNConfig(neuron=kind, input_size=10, hidden_sizes=(7, 5), output_size=3,
                    threshold=0.7, chunk_size=2)
    net = SNNCore(cfg)
    assert list(net._modules) == ["fc1", "lif1", "fc2", "lif2", "fc_out", "lif_out"]
    assert [type(m) for m in net.children() if isinstance(m, SpikingNeuronBase)] == [cls] * 3
    assert net.lif2.features == (5,) and net.chunk_size == 2
    assert float(net.lif_out.threshold) == pytest.approx(0.7)
    out, state = net(torch.rand(2, 5, 10))
    assert out.shape == (2, 5, 3) and len(state) == 6
    assert state[0] is None and state[1].v.shape == (2, 7)


def test_convsnn_shapes_and_names() -> None:
    net = ConvSNN(in_channels=2, input_hw=(9, 7), channels=(3, 4), num_classes=6,
                  batch_norm=True, pool="avg")
    assert list(net._modules) == ["conv1", "bn1", "pool1", "lif1", "conv2", "bn2", "pool2",
                                  "lif2", "flatten", "fc_out", "lif_out"]
    assert net.lif1.features == (3, 4, 3) and net.lif2.features == (4, 2, 1)
    assert net.conv1.bias is None
    out = net(torch.rand(2, 3, 2, 9, 7), return_details=True)
    assert out.output.shape == (2, 3, 6)
    assert out.spikes["lif2"].shape == (2, 3, 4, 2, 1)


def test_gradients_reach_every_layer() -> None:
    net = _seeded(ConvSNN(input_hw=8, channels=(4,), num_classes=3), 0)
    out, _ = net(torch.rand(2, 5, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2)
    out.sum().backward()
    for name in ("conv1", "fc_out"):
        grad = getattr(net, name).weight.grad
        assert grad is not None and float(grad.abs().sum()) > 0, name


def test_truncated_bptt_forward_is_unchanged() -> None:
    full = _seeded(SNNCore(input_size=4, hidden_sizes=(6,), output_size=2), 0)
    cut = _twin(full, SNNCore, config=SNNConfig(chunk_size=2), input_size=4, hidden_sizes=(6,),
                output_size=2)
    x = torch.rand(2, 7, 4, generator=torch.Generator().manual_seed(1)) * 2
    torch.testing.assert_close(full(x)[0], cut(x)[0], rtol=0, atol=0)


@pytest.mark.parametrize("build, exc, text", [
    (lambda: SNNCore(input_size=0), ConfigError, "input_size must be an int > 0"),
    (lambda: SNNCore(hidden_sizes=(4, -1)), ConfigError, "hidden_sizes[i]"),
    (lambda: SNNCore(config={"input_size": 3}), ConfigError, "config must be an SNNConfig"),
    (lambda: ConvSNN(pool="median"), ConfigError, "unknown pool"),
    (lambda: ConvSNN(channels=()), ConfigError, "channels is empty"),
    (lambda: ConvSNN(input_hw=2, channels=(2, 2, 2)), ConfigError, "shrinks to nothing"),
])
def test_bad_construction_raises(build: object, exc: type, text: str) -> None:
    with pytest.raises(exc) as info:
        build()  # type: ignore[operator]
    assert text in str(info.value) and "Hint:" in str(info.value)
    assert isinstance(info.value, BrainAIError)


def test_wrong_input_shape_raises() -> None:
    with pytest.raises(ShapeError, match=r"SNNCore.forward: x must be \(B, T, input_size\)"):
        SNNCore(input_size=4, hidden_sizes=(), output_size=2)(torch.rand(2, 4))
    with pytest.raises(ShapeError, match=r"ConvSNN.forward.*expected \(B, T, 1, 8, 8\)"):
        ConvSNN(input_hw=8, channels=(2,))(torch.rand(2, 3, 1, 8, 9))


# ---------------------------------------------------------------- layer by layer = step by step
def _layers_vs_steps(net: SpikingSequential, x: torch.Tensor) -> None:
    """The layer-major forward (neurons on their multi-step kernels, stateless layers per step
    or folded where measured exact) against the step loop (every layer per step, the neurons'
    reference step): output, final state, input gradient and every parameter gradient, bit for
    bit."""
    res = []
    for order in ("layers", "steps"):
        net.zero_grad(set_to_none=True)
        xg = x.clone().requires_grad_()
        run = net._forward_layers if order == "layers" else net._forward_steps
        out, final, _, _ = run(xg, None, net.chunk_sizes(), False)
        w = torch.rand(out.shape, generator=torch.Generator().manual_seed(9))
        ((out * w).sum() + final[-1].v.sum()).backward()
        res.append([out.detach(), final[-1].v.detach(), xg.grad,
                    *(p.grad for p in net.parameters())])
    for a, b in zip(*res, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("chunk", [None, 5], ids=["full-bptt", "tbptt-5"])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_layer_major_order_equals_the_step_loop_bit_for_bit(chunk: int | None,
                                                              train: bool) -> None:
    """conv -> batch-norm -> max-pool -> LIF (learnable β, θ) -> flatten -> linear -> LIF
    (delayed reset): batch-norm's statistics over each step's batch in training mode, its
    reduction over the gradient's layout, the weight gradients' per-step sums: all as the step
    loop computes them."""
    torch.manual_seed(0)
    net = SpikingSequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.MaxPool2d(2),
        LIFNeuron(beta=0.9, learn_beta=True, learn_threshold=True, features=(4, 4, 4)),
        nn.Flatten(1), nn.Linear(64, 10),
        LIFNeuron(beta=0.8, reset_timing="delayed", features=10, learn_beta=True),
        chunk_size=chunk).train(train)
    x = torch.rand(6, 12, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2
    _layers_vs_steps(net, x)
    plan = net.fold_plan(x)
    # measured: parameter-free per-sample layers fold; learnable ones (and batch-norm) do not
    assert plan == {"0": False, "1": False, "2": True, "4": True, "5": False}


def test_neurons_record_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``return_details`` no neuron records its membrane (no per-step traces kept)."""
    records: list[tuple[str, ...]] = []
    real = LIFNeuron.sequence

    def spy(self, x, state=None, chunk_size=None, record=()):  # type: ignore[no-untyped-def]
        records.append(tuple(record))
        return real(self, x, state, chunk_size, record)

    monkeypatch.setattr(LIFNeuron, "sequence", spy)
    net = SNNCore(input_size=3, hidden_sizes=(4,), output_size=2)
    x = torch.rand(2, 5, 3)
    net(x)
    assert records == [(), ()]
    records.clear()
    out = net(x, return_details=True)
    assert records == [("v",), ("v",)] and set(out.membrane) == {"lif1", "lif_out"}
