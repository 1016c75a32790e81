"""brain_ai.nir: import and export against hand computations, closed forms and NIR's equations.

The peers' NIR paths and the larger graphs are compared in the conformance family ``nir``
(``conformance/cases_nir.py``); here each claim is checked on a graph small enough to work
out by hand.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from torch import nn

import brain_ai.nir as bnir
from brain_ai.core.neurons import AdaptiveLIFNeuron, LIFNeuron, RecurrentLIFNeuron
from brain_ai.core.snn import SpikingSequential
from brain_ai.errors import ConfigError, ConversionError, ShapeError
from brain_ai.nir import NIRNetwork, from_nir, simulate, to_nir
from brain_ai.physics import surrogates as sg

DT = 1e-4


def _single(node: object, n: int = 1, type_check: bool = True) -> object:
    return nir.NIRGraph(nodes={"i": nir.Input(input_type=np.array([n])), "n": node,
                               "o": nir.Output(output_type=np.array([n]))},
                        edges=[("i", "n"), ("n", "o")], type_check=type_check)


def _lif(n: int = 1, **kw: object) -> object:
    p: dict[str, object] = dict(tau=np.full(n, 2e-4), r=np.full(n, 2.0), v_leak=np.zeros(n),
                                v_threshold=np.ones(n), v_reset=np.zeros(n))
    p.update(kw)
    return nir.LIF(**p)


def _run(model: nn.Module, x: torch.Tensor) -> object:
    with torch.no_grad():
        return model(x, return_details=True)


X5 = torch.tensor([0.3, 0.3, 0.6, 0.0, 1.0]).reshape(1, 5, 1)


def test_package_example_runs() -> None:
    import doctest

    result = doctest.testmod(bnir)
    assert result.failed == 0 and result.attempted >= 8


# ---------------------------------------------------------------- import, by hand
def test_lif_euler_by_hand() -> None:
    """τ = 2e-4, dt = 1e-4 (τ_s = 2), r = 2: ``v ← v + (2I - v)/2``; fire on v > 1, reset 0.

    I = 0.3, 0.3, 0.6, 0.0, 1.0 gives v = 0.3, 0.45, 0.825, 0.4125, 1.20625 -> spike -> 0.
    """
    model = from_nir(_single(_lif()), dt=DT)
    out = _run(model, X5)
    assert isinstance(model, SpikingSequential) and type(model.n) is LIFNeuron
    assert out.spikes["n"].flatten().tolist() == [0, 0, 0, 0, 1]
    torch.testing.assert_close(out.membrane["n"].flatten(),
                               torch.tensor([0.3, 0.45, 0.825, 0.4125, 0.0]))


def test_lif_exact_by_hand() -> None:
    """Exact: ``v ← 2I + (v - 2I)·e^{-1/2}``: 0.2360816, 0.3792723, 0.7022035, 0.4259080,
    1.0452649 -> spike -> 0 (worked out in float64)."""
    out = _run(from_nir(_single(_lif()), dt=DT, discretization="exact"), X5)
    assert out.spikes["n"].flatten().tolist() == [0, 0, 0, 0, 1]
    torch.testing.assert_close(out.membrane["n"].flatten(),
                               torch.tensor([0.2360816, 0.3792723, 0.7022035, 0.4259080, 0.0]))


def test_if_ties_do_not_fire() -> None:
    """IF with r = 5000, dt = 1e-4 (gain 0.5): I = 1, 1, 1 gives v = 0.5, 1.0 (== θ: NIR's
    strict ``>`` does not fire), 1.5 -> spike -> v_reset = -0.25."""
    node = nir.IF(r=np.array([5000.0]), v_threshold=np.ones(1), v_reset=np.array([-0.25]))
    out = _run(from_nir(_single(node), dt=DT), torch.ones(1, 3, 1))
    assert out.spikes["n"].flatten().tolist() == [0, 0, 1]
    assert out.membrane["n"].flatten().tolist() == [-0.25 + 0.5, -0.25 + 1.0, -0.25]


def test_integrators_output_the_membrane() -> None:
    """I: v = dt·r·ΣI (r = 2000: 0.2 per unit). LI (τ_s = 2, r = 1, v_leak = 1, v0 = v_leak):
    I = 1, 1, 1 keeps v = 1 + (1 - 0)/2 ... = 1.5, 1.75, 1.875."""
    i_out = _run(from_nir(_single(nir.I(r=np.array([2000.0]))), dt=DT), torch.ones(1, 3, 1))
    torch.testing.assert_close(i_out.output.flatten(), torch.tensor([0.2, 0.4, 0.6]))
    li = nir.LI(tau=np.array([2e-4]), r=np.ones(1), v_leak=np.ones(1))
    li_out = _run(from_nir(_single(li), dt=DT), torch.ones(1, 3, 1))
    torch.testing.assert_close(li_out.output.flatten(), torch.tensor([1.5, 1.75, 1.875]))


def test_cuba_lif_by_hand() -> None:
    """CubaLIF τ_syn = τ_mem = 2e-4 (α = 1/2, τ_s = 2), r = 1, w_in = 2, θ = 1, I = 1:
    i = 1, 1.5, 1.75, ...; v = 0.5, 1.0 (no spike: tie), 1.375 -> spike -> 0."""
    node = nir.CubaLIF(tau_syn=np.array([2e-4]), tau_mem=np.array([2e-4]), r=np.ones(1),
                       v_leak=np.zeros(1), v_threshold=np.ones(1), v_reset=np.zeros(1),
                       w_in=np.array([2.0]))
    out = _run(from_nir(_single(node), dt=DT), torch.ones(1, 3, 1))
    assert out.spikes["n"].flatten().tolist() == [0, 0, 1]
    assert out.membrane["n"].flatten().tolist() == [0.5, 1.0, 0.0]


def test_per_neuron_v_leak_and_v_reset_match_the_reference() -> None:
    """v_leak != v_reset, per neuron: run in the shifted frame, spikes equal NIR's equations,
    and the NIR membrane (state.v + offset) starts from v_reset."""
    rng = np.random.default_rng(3)
    n = 8
    node = _lif(n, tau=rng.uniform(3e-4, 1e-3, n), r=rng.uniform(1, 3, n),
                v_leak=rng.uniform(-0.3, 0.3, n), v_reset=rng.uniform(-0.5, 0.2, n),
                v_threshold=rng.uniform(0.5, 1.0, n))
    graph = _single(node, n)
    model = from_nir(graph, dt=DT)
    assert isinstance(model.n, bnir.OffsetLIFNeuron)
    x = torch.rand(3, 60, n, generator=torch.Generator().manual_seed(0)) * 1.5
    out, ref = _run(model, x), simulate(graph, x, DT)
    assert float(ref["n"].mean()) > 0.05
    assert torch.equal(out.spikes["n"], ref["n"].float())
    torch.testing.assert_close(model.n.membrane(out.membrane["n"]).double(),
                               _membrane_ref(graph, x), atol=1e-5, rtol=0)


def _membrane_ref(graph: object, x: torch.Tensor) -> torch.Tensor:
    node = graph.nodes["n"]  # type: ignore[attr-defined]
    v = torch.as_tensor(node.v_reset).expand(x.shape[0], -1).clone()
    mems = []
    for x_t in x.double().unbind(1):
        v = v + (DT / torch.as_tensor(node.tau)) * ((torch.as_tensor(node.v_leak) - v)
                                                     + torch.as_tensor(node.r) * x_t)
        s = v > torch.as_tensor(node.v_threshold)
        v = torch.where(s, torch.as_tensor(node.v_reset).expand_as(v), v)
        mems.append(v)
    return torch.stack(mems, 1)


# ---------------------------------------------------------------- export, closed forms
def test_export_beta_matches_the_euler_and_exact_closed_forms() -> None:
    """β (float32 0.9): Euler τ = dt/(1-β), r = 1/(1-β) (snnTorch's formulas, in float64);
    exact τ = -dt/ln β, r = 1/(1-β)."""
    beta = float(torch.tensor(0.9))
    net = LIFNeuron(beta=0.9, reset="zero", features=3)
    for disc, tau in (("euler", DT / (1 - beta)), ("exact", -DT / math.log(beta))):
        node = to_nir(net, dt=DT, discretization=disc).nodes["lifneuron"]
        np.testing.assert_allclose(node.tau, np.full(3, tau), rtol=1e-7)
        np.testing.assert_allclose(node.r, np.full(3, 1 / (1 - beta)), rtol=1e-7)
        assert node.tau.shape == (3,) and node.tau.dtype == np.float32


def test_export_tau_charges_match_spikingjelly_formulas() -> None:
    """SpikingJelly's LIFNode export: τ = τ_SJ·dt; r = 1 (decay_input) or τ_SJ; v_leak =
    v_reset. Our ``tau_input``/``tau`` charges are those two neurons."""
    for charge, r in (("tau_input", 1.0), ("tau", 4.0)):
        m = LIFNeuron(tau=4.0, charge=charge, v_reset=-0.5, reset="zero", features=2)
        node = to_nir(m, dt=DT).nodes["lifneuron"]
        np.testing.assert_allclose(node.tau, [4 * DT] * 2, rtol=1e-7)
        np.testing.assert_allclose(node.r, [r] * 2, rtol=1e-7)
        assert node.v_leak.tolist() == [-0.5, -0.5] == node.v_reset.tolist()


def test_export_synapse_and_integrator() -> None:
    """α = 0.5, β = 0.8: CubaLIF τ_syn = dt/(1-α), τ_mem = dt/(1-β), w_in = 1/(1-α),
    r = 1/(1-β) (snnTorch's Synaptic formulas); β = 1: IF with r = 1/dt (SpikingJelly's)."""
    cuba = to_nir(LIFNeuron(beta=0.8, alpha=0.5, reset="zero", features=2), dt=DT)
    node = cuba.nodes["lifneuron"]
    assert isinstance(node, nir.CubaLIF)
    np.testing.assert_allclose(node.tau_syn, [2 * DT] * 2, rtol=1e-6)
    np.testing.assert_allclose(node.tau_mem, [DT / (1 - float(torch.tensor(0.8)))] * 2,
                               rtol=1e-7)
    np.testing.assert_allclose(node.w_in, [2.0] * 2, rtol=1e-7)
    np.testing.assert_allclose(node.r, [1 / (1 - float(torch.tensor(0.8)))] * 2, rtol=1e-7)
    integ = to_nir(LIFNeuron(beta=1.0, beta_clamp=(0.0, 1.0), reset="zero", features=2),
                   dt=DT).nodes["lifneuron"]
    assert isinstance(integ, nir.IF)
    np.testing.assert_allclose(integ.r, [1 / DT] * 2, rtol=1e-7)


def test_exported_graph_has_population_shapes_and_metadata() -> None:
    """Scalar parameters are broadcast (no 0-d arrays: snnTorch's type-inference failure);
    the graph passes nir.read's type check; dt and the scheme are in the graph metadata."""
    net = SpikingSequential(nn.Linear(4, 8), LIFNeuron(beta=0.9, reset="zero"),
                            nn.Linear(8, 3), LIFNeuron(beta=0.8, reset="zero"))
    graph = to_nir(net, dt=DT)
    assert [graph.nodes[k].tau.shape for k in ("1", "3")] == [(8,), (3,)]
    assert graph.metadata["dt"] == DT and graph.metadata["discretization"] == "euler"
    assert graph.nodes["input"].input_type["input"].tolist() == [4]
    assert graph.nodes["output"].output_type["output"].tolist() == [3]


# ---------------------------------------------------------------- round trips
def _file(graph: object, tmp_path: Path) -> object:
    path = tmp_path / "m.nir"
    nir.write(str(path), graph)
    return nir.read(str(path))


def _models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "mlp": SpikingSequential(nn.Linear(4, 8), LIFNeuron(beta=torch.rand(8) * 0.3 + 0.6,
                                                            threshold=0.5, reset="zero"),
                                 nn.Linear(8, 3), LIFNeuron(beta=0.8, alpha=0.6, reset="zero")),
        "recurrent": SpikingSequential(nn.Linear(4, 6), RecurrentLIFNeuron(
            6, beta=0.85, threshold=0.5, reset="zero", bias=False)),
        "tau-charge": SpikingSequential(nn.Linear(4, 5), LIFNeuron(
            tau=torch.rand(5) * 3 + 1.5, v_reset=0.1, threshold=0.6, reset="zero")),
        "conv": SpikingSequential(nn.Conv2d(1, 2, 3, padding=1), LIFNeuron(beta=0.7,
                                                                          threshold=0.3,
                                                                          reset="zero"),
                                  bnir.SumPool2d(2, 2), nn.Flatten(), nn.Linear(8, 3),
                                  LIFNeuron(beta=0.9, threshold=0.3, reset="zero")),
    }


@pytest.mark.parametrize("name", list(_models()))
def test_roundtrip_through_a_file_is_spike_identical(name: str, tmp_path: Path) -> None:
    model = _models()[name]
    shape = (1, 4, 4) if name == "conv" else (4,)
    back = from_nir(_file(to_nir(model, dt=DT, input_shape=shape), tmp_path))
    x = torch.rand(3, 30, *shape, generator=torch.Generator().manual_seed(1)) * 2
    a, b = _run(model, x), _run(back, x)
    rates = [float(s.mean()) for s in a.spikes.values()]
    assert min(rates) > 0.02, rates
    for k in a.spikes:
        assert torch.equal(a.spikes[k], b.spikes[k]), k
        torch.testing.assert_close(b.membrane[k], a.membrane[k], atol=1e-6, rtol=1e-6)


def test_carry_metadata_restores_everything_bit_for_bit(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = SpikingSequential(
        nn.Linear(4, 6),
        LIFNeuron(beta=0.9, reset="subtract", comparator=">=", surrogate=sg.FastSigmoid(10.0),
                  graded_spikes_factor=1.5, learn_beta=True, reset_timing="delayed"),
        nn.Linear(6, 6), RecurrentLIFNeuron(6, beta=0.8, reset="subtract", learn_threshold=True),
        fold_time=False, chunk_size=7)
    with pytest.raises(ConversionError):
        to_nir(net, dt=DT)
    back = from_nir(_file(to_nir(net, dt=DT, carry="metadata"), tmp_path))
    assert isinstance(back, SpikingSequential) and back.chunk_size == 7
    for a, b in zip(net, back, strict=True):
        assert type(a) is type(b)
        assert {k: type(v) for k, v in a.named_parameters()} == \
               {k: type(v) for k, v in b.named_parameters()}
        for k, v in a.state_dict().items():
            assert torch.equal(v, b.state_dict()[k]), k
    assert back[1].surrogate == sg.FastSigmoid(10.0) and back[1].comparator == ">="
    x = torch.rand(2, 20, 4, generator=torch.Generator().manual_seed(2)) * 2
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = net(xa)[0], back(xb)[0]
    assert float(ya.detach().mean()) > 0.05
    torch.testing.assert_close(yb, ya, rtol=0, atol=0)
    ya.sum().backward()
    yb.sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad, rtol=0, atol=0)


def test_edited_metadata_is_refused_and_can_be_ignored() -> None:
    net = SpikingSequential(nn.Linear(2, 3), LIFNeuron(beta=0.9, reset="subtract"))
    graph = to_nir(net, dt=DT, carry="metadata")
    graph.nodes["1"].tau = graph.nodes["1"].tau * 2
    with pytest.raises(ConversionError, match="disagrees with the node's NIR parameter tau"):
        from_nir(graph)
    plain = from_nir(graph, use_metadata=False)
    assert plain[1].reset == "zero"  # NIR's semantics only
    with pytest.raises(ConversionError, match="another dt"):
        from_nir(graph, dt=2 * DT)


def test_foreign_graph_through_brain_ai_and_back_is_bit_identical(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 5
    nodes = {"inp": nir.Input(input_type=np.array([3])),
             "w": nir.Affine(weight=rng.uniform(-0.3, 1.0, (n, 3)).astype(np.float32),
                             bias=np.zeros(n, np.float32)),
             "cell": nir.CubaLIF(tau_syn=rng.uniform(2e-4, 8e-4, n),
                                 tau_mem=rng.uniform(4e-4, 2e-3, n), r=rng.uniform(1, 3, n),
                                 v_leak=np.full(n, -0.1), v_threshold=rng.uniform(0.3, 0.6, n),
                                 v_reset=np.full(n, -0.1), w_in=rng.uniform(0.5, 2, n)),
             "out": nir.Output(output_type=np.array([n]))}
    graph = nir.NIRGraph(nodes=nodes, edges=[("w", "cell"), ("inp", "w"), ("cell", "out")])
    first = from_nir(graph, dt=DT)
    again_graph = _file(to_nir(first, dt=DT), tmp_path)
    again = from_nir(again_graph)
    cell = again_graph.nodes["cell"]
    for field in ("tau_syn", "tau_mem", "v_leak", "v_threshold", "v_reset"):
        np.testing.assert_allclose(getattr(cell, field), getattr(nodes["cell"], field),
                                   rtol=1e-6, atol=1e-7)
    # NIR's r and w_in only act as a product (NIR #190); brain_ai's current is r·I, so the
    # export writes r = 1 and w_in = r·w_in
    np.testing.assert_allclose(cell.r * cell.w_in, nodes["cell"].r * nodes["cell"].w_in,
                               rtol=1e-6)
    x = torch.rand(2, 30, 3, generator=torch.Generator().manual_seed(0)) * 2
    with torch.no_grad():
        y1, y2 = first(x)[0], again(x)[0]
    assert float(y1.mean()) > 0.05 and torch.equal(y1, y2)


# ---------------------------------------------------------------- general graphs
def _graph(seed: int, names: dict[str, str], shuffle: int) -> object:
    rng = np.random.default_rng(seed)
    n = 4
    nm = names.get
    nodes = {nm("x", "x"): nir.Input(input_type=np.array([2])),
             nm("a", "a"): nir.Affine(weight=rng.uniform(-0.2, 1.0, (n, 2)).astype(np.float32),
                                      bias=np.zeros(n, np.float32)),
             nm("d", "d"): nir.Delay(delay=np.array([0.0, 1.0, 2.0, 3.0]) * DT),
             nm("l", "l"): _lif(n, tau=rng.uniform(3e-4, 1e-3, n), r=np.full(n, 1.5),
                                v_threshold=np.full(n, 0.6)),
             nm("rec", "rec"): nir.Affine(weight=rng.uniform(-0.5, 0.2, (n, n)).astype(
                 np.float32), bias=np.full(n, 0.05, np.float32)),
             nm("y", "y"): nir.Output(output_type=np.array([n]))}
    e = [("x", "a"), ("a", "l"), ("x", "a2"), ("a2", "d"), ("d", "l"), ("l", "rec"),
         ("rec", "l"), ("l", "y")]
    nodes[nm("a2", "a2")] = nir.Linear(weight=rng.uniform(0, 0.5, (n, 2)).astype(np.float32))
    edges = [(nm(s, s), nm(d, d)) for s, d in e]
    random.Random(shuffle).shuffle(edges)
    return nir.NIRGraph(nodes=nodes, edges=edges)


def test_general_graph_is_independent_of_names_and_edge_order() -> None:
    """A sum of two branches (one through an integer Delay) and a biased recurrent Affine
    (NIRNetwork: the back edge carries 0 at step 0); renaming nodes and reordering edges
    changes no bit, and spikes equal NIR's equations."""
    g1 = _graph(0, {}, 0)
    renamed = {"x": "in.put", "a": "layer/0", "l": "train", "rec": "forward", "y": "0"}
    g2 = _graph(0, renamed, 7)
    m1, m2 = from_nir(g1, dt=DT), from_nir(g2, dt=DT)
    assert isinstance(m1, NIRNetwork) and isinstance(m2, NIRNetwork)
    x = torch.rand(3, 40, 2, generator=torch.Generator().manual_seed(0)) * 2
    with torch.no_grad():
        y1, _ = m1(x)
        y2, _ = m2(x)
    ref = simulate(g1, x, DT)["y"]
    assert float(ref.mean()) > 0.05
    assert torch.equal(y1, y2) and torch.equal(y1, ref.float())


def test_network_state_is_explicit_and_continues() -> None:
    """Two halves with the state passed on equal one run, bit for bit (delay buffer, back
    edge and membranes all carried)."""
    model = from_nir(_graph(1, {}, 0), dt=DT)
    x = torch.rand(2, 30, 2, generator=torch.Generator().manual_seed(3)) * 2
    with torch.no_grad():
        full, _ = model(x)
        first, state = model(x[:, :13])
        second, _ = model(x[:, 13:], state)
    assert torch.equal(torch.cat([first, second], 1), full)


def test_delay_by_hand() -> None:
    """Delay 0, 1, 2 steps: y[t] = x[t - d] (0 before the first input arrives)."""
    node = nir.Delay(delay=np.array([0.0, 1.0, 2.0]) * DT)
    model = from_nir(_single(node, 3), dt=DT)
    x = torch.arange(1.0, 5.0).reshape(1, 4, 1).expand(1, 4, 3)
    with torch.no_grad():
        y, _ = model(x)
    assert y[0].T.tolist() == [[1, 2, 3, 4], [0, 1, 2, 3], [0, 0, 1, 2]]
    with pytest.raises(ConversionError, match="whole number of steps"):
        from_nir(_single(nir.Delay(delay=np.array([1.5 * DT])), 1), dt=DT)


def test_recurrent_cycle_folds_with_scaled_weights() -> None:
    """LIF <-> Linear becomes a RecurrentLIFNeuron whose weights are (r/τ_s)·W: here r = 3,
    τ_s = 2, so 1.5·W."""
    w = np.array([[0.0, 0.4], [-0.2, 0.0]], np.float32)
    nodes = {"i": nir.Input(input_type=np.array([2])),
             "l": _lif(2, r=np.full(2, 3.0)), "w": nir.Linear(weight=w),
             "o": nir.Output(output_type=np.array([2]))}
    graph = nir.NIRGraph(nodes=nodes, edges=[("i", "l"), ("l", "w"), ("w", "l"), ("l", "o")])
    model = from_nir(graph, dt=DT)
    assert isinstance(model.l, RecurrentLIFNeuron)
    torch.testing.assert_close(model.l.recurrent.weight, torch.tensor(w) * 1.5, rtol=0, atol=0)
    x = torch.rand(2, 40, 2, generator=torch.Generator().manual_seed(0)) * 2
    out = _run(model, x)
    assert torch.equal(out.spikes["l"], simulate(graph, x, DT)["l"].float())


def test_subgraph_is_inlined() -> None:
    sub = nir.NIRGraph(nodes={"p": nir.Input(input_type=np.array([1])), "n": _lif(),
                              "q": nir.Output(output_type=np.array([1]))},
                       edges=[("p", "n"), ("n", "q")])
    graph = nir.NIRGraph(nodes={"i": nir.Input(input_type=np.array([1])), "s": sub,
                                "o": nir.Output(output_type=np.array([1]))},
                         edges=[("i", "s"), ("s", "o")])
    out = _run(from_nir(graph, dt=DT), X5)
    assert out.output.flatten().tolist() == [0, 0, 0, 0, 1]


# ---------------------------------------------------------------- refusals and errors
@pytest.mark.parametrize(("neuron", "feature"), [
    (lambda: LIFNeuron(beta=0.9), "reset='subtract'"),
    (lambda: LIFNeuron(beta=0.9, reset="none"), "reset='none'"),
    (lambda: LIFNeuron(beta=0.9, reset="zero", comparator=">="), "comparator='>='"),
    (lambda: LIFNeuron(beta=0.9, reset="zero", reset_timing="delayed"), "reset_timing"),
    (lambda: LIFNeuron(beta=0.9, reset="zero", refractory_steps=1), "refractory_steps=1"),
    (lambda: LIFNeuron(beta=0.9, reset="zero", graded_spikes_factor=2.0), "graded"),
    (lambda: AdaptiveLIFNeuron(beta=0.9, reset="zero"), "adaptive threshold"),
    (lambda: LIFNeuron(beta=0.9, reset="zero", surrogate=sg.STE()), "surrogate=STE()"),
    (lambda: LIFNeuron(beta=0.9, reset="zero", learn_threshold=True), "learnable threshold"),
    (lambda: RecurrentLIFNeuron(3, beta=0.9, reset="zero"), "recurrent bias"),
])
def test_lossy_export_is_refused_naming_the_layer(neuron: object, feature: str) -> None:
    net = SpikingSequential(nn.Linear(3, 3), neuron())  # type: ignore[operator]
    with pytest.raises(ConversionError) as err:
        to_nir(net, dt=DT)
    text = str(err.value)
    assert text.startswith("to_nir (1): ") and feature in text
    assert "\n  Hint: pass carry='metadata'" in text


def test_no_exact_form_is_refused_even_with_carry() -> None:
    mixed = LIFNeuron(beta=torch.tensor([0.9, 1.0]), beta_clamp=(0.0, 1.0), reset="zero")
    with pytest.raises(ConversionError, match="some neurons leak and some do not"):
        to_nir(SpikingSequential(nn.Linear(2, 2), mixed), dt=DT, carry="metadata")
    with pytest.raises(ConversionError, match="MaxPool2d has no NIR primitive"):
        to_nir(SpikingSequential(nn.MaxPool2d(2)), dt=DT, input_shape=(1, 4, 4))
    cuba = nir.CubaLIF(tau_syn=np.full(1, 2e-4), tau_mem=np.full(1, 2e-4), r=np.ones(1),
                       v_leak=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1))
    with pytest.raises(ConversionError, match="v_leak != v_reset"):
        from_nir(_single(cuba), dt=DT)


def test_import_errors_say_what_and_how() -> None:
    with pytest.raises(ConfigError, match="stores no dt") as err:
        from_nir(_single(_lif()))
    assert "Hint: pass dt=1e-4" in str(err.value)
    with pytest.raises(ConversionError, match="shorter than dt"):
        from_nir(_single(_lif(tau=np.array([5e-5]))), dt=DT)
    from_nir(_single(_lif(tau=np.array([5e-5]))), dt=DT, discretization="exact")  # stable
    with pytest.raises(ShapeError, match="does not fit the neurons' shape"):
        from_nir(_single(_lif(2), 3, type_check=False), dt=DT)
    bad = nir.NIRGraph(nodes={"i": nir.Input(input_type=np.array([1])), "n": _lif(),
                              "o": nir.Output(output_type=np.array([1]))},
                       edges=[("i", "n"), ("n", "o")], type_check=False)
    bad.edges.append(("n", "ghost"))
    with pytest.raises(ConversionError, match="does not exist"):
        from_nir(bad, dt=DT)
    with pytest.raises(ConfigError, match="discretization"):
        from_nir(_single(_lif()), dt=DT, discretization="rk4")


# ---------------------------------------------------------------- the command line
def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from brain_ai.apps.cli import main

    try:
        code = main(["nir", *args])
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_import_export_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nets.py").write_text(
        "import torch, brain_ai\n"
        "def good():\n"
        "    torch.manual_seed(0)\n"
        "    return brain_ai.SpikingSequential(torch.nn.Linear(4, 8),\n"
        "        brain_ai.LIFNeuron(beta=0.9, threshold=0.3, reset='zero'))\n"
        "def lossy():\n"
        "    return brain_ai.SpikingSequential(torch.nn.Linear(4, 8), brain_ai.LIFNeuron())\n")
    code, out, err = _cli(capsys, "export", "nets.py:good", "--dt", "1e-4", "--out", "g.nir")
    assert code == 0, err
    assert "wrote g.nir: 4 nodes (Input, Affine, LIF, Output)" in out
    code, out, err = _cli(capsys, "verify", "g.nir", "--scale", "2")
    assert code == 0, out + err
    assert "0 spike mismatches" in out and "verify: OK" in out
    code, out, _ = _cli(capsys, "import", "g.nir")
    assert code == 0 and "LIFNeuron" in out
    code, out, err = _cli(capsys, "export", "nets.py:lossy", "--dt", "1e-4", "--out", "l.nir")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "reset='subtract'" in err and "Hint:" in err
    code, _, err = _cli(capsys, "export", "nets.py:lossy", "--dt", "1e-4", "--out", "l.nir",
                        "--carry", "metadata")
    assert code == 0, err
    for args in (("import", "missing.nir", "--dt", "1e-4"), ("verify", "g.nir", "--steps", "x"),
                 ("export", "nets.py:good", "--dt", "1e-4", "--out", "g.nir"), ()):
        code, _, err = _cli(capsys, *args)
        assert code == 2, args
        assert len(err.strip().splitlines()) == 1 and "Hint:" in err, err
