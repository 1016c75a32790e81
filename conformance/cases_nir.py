r"""Conformance cases: NIR (``nir``) as a peer of brain_ai.

* ``NIR-import``: hand-built graphs imported with :func:`brain_ai.nir.from_nir` against a
  forward-Euler (or exact) integration of NIR's equations written below (:func:`euler`), node by
  node from the NIR parameters. Two operation orders: ``"division"`` (float32,
  ``v + ((r·I) - (v - v_leak)) / (τ/dt)``, the order brain_ai states; must match bit for bit)
  and ``"textbook"`` (float64, ``v + (dt/τ)·((v_leak - v) + r·I)``; must match spike for spike).
* ``NIR-roundtrip``: brain_ai -> ``nir.write`` -> ``nir.read`` -> brain_ai, and foreign graphs
  through brain_ai and back.
* ``NIR-refuse``: every feature NIR cannot express is refused by ``to_nir`` (metric
  ``not_refused`` = 0), and carried exactly with ``carry="metadata"``.
* ``NIR-snntorch`` / ``NIR-spikingjelly``: the peers' own NIR export/import against their
  native neurons and against brain_ai, with guards where they diverge (snnTorch writes
  ``v_reset=0`` for a subtract reset and cannot export scalar parameters; SpikingJelly fires on
  ``>=``, which NIR does not state).

``dt = 1e-4`` s throughout (snnTorch hard-codes it; SpikingJelly and the NIR paper use it).
Inputs are continuous random currents except where a guard needs ties.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import random
import tempfile
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor, nn

from brain_ai.adapters.metrics import max_abs_diff, spike_mismatches
from brain_ai.conformance.registry import Case, register
from brain_ai.core.neurons import AdaptiveLIFNeuron, LIFNeuron, RecurrentLIFNeuron
from brain_ai.core.snn import SpikingSequential
from brain_ai.errors import ConversionError
from brain_ai.nir import NIRNetwork, OffsetLIFNeuron, from_nir, simulate, to_nir
from brain_ai.physics import surrogates as sg

DT = 1e-4
T, B = 40, 4
PEER = "nir"


# --------------------------------------------------------------------------- the reference
def euler(chain: Sequence[Any], x: Tensor, *, order: str = "textbook",
          discretization: str = "euler", recurrent: dict[int, np.ndarray] | None = None
          ) -> tuple[list[Tensor], list[Tensor]]:
    """Integrate a chain of NIR nodes over ``x`` ``(B, T, F)``; NIR's equations, nothing else.

    ``order="textbook"``: float64, ``v ← v + (dt/τ)·((v_leak - v) + r·I)``.
    ``order="division"``: float32, ``v ← v + ((r·I) - (v - v_leak)) / τ_s``, ``τ_s = τ/dt``
    rounded once from float64 (IF: ``v ← v + I·g``, ``g = dt·r`` rounded once).
    ``discretization="exact"`` (textbook only): ``v ← v_leak + r·I + (v - v_leak - r·I)·e^{-dt/τ}``.
    Spikes on ``v > v_threshold``, then ``v ← v_reset``; ``v`` starts at ``v_reset``
    (``v_leak`` for ``LI``), currents at 0. ``recurrent[i]``: a weight ``W`` feeding node ``i``'s
    previous spikes back into its input (``I += W·s[t-1]``, 0 at step 0).

    Returns:
        per node: outputs ``(B, T, ...)`` and membranes (post-reset; zeros for stateless nodes).
    """
    dtype = torch.float32 if order == "division" else torch.float64

    def arr(v: Any, default: float = 0.0) -> Tensor:
        a = np.asarray(default if v is None else v, dtype=np.float64)
        return torch.as_tensor(a).to(dtype)

    xs = x.to(dtype)
    b = x.shape[0]
    states: dict[int, dict[str, Tensor]] = {}
    outs: list[list[Tensor]] = [[] for _ in chain]
    mems: list[list[Tensor]] = [[] for _ in chain]
    for t in range(x.shape[1]):
        h = xs[:, t]
        for i, node in enumerate(chain):
            kind = type(node).__name__
            if kind in ("Affine", "Linear"):
                bias = arr(node.bias) if kind == "Affine" else None
                h = torch.nn.functional.linear(h, arr(node.weight), bias)
                outs[i].append(h)
                mems[i].append(torch.zeros_like(h))
                continue
            st = states.setdefault(i, {})
            if not st:
                start = arr(getattr(node, "v_reset", None)) if kind != "LI" else arr(node.v_leak)
                st["v"] = start.expand(b, *start.shape).clone()
                st["i"] = torch.zeros_like(st["v"])
                st["s"] = torch.zeros_like(st["v"])
            current = h
            if recurrent and i in recurrent:
                current = current + st["s"] @ arr(recurrent[i]).T
            v = st["v"]
            if kind == "IF":
                if order == "division":
                    gain = torch.as_tensor(DT * np.asarray(node.r, np.float64)).to(dtype)
                    v = v + current * gain
                else:
                    v = v + DT * arr(node.r) * current
            else:
                if kind == "CubaLIF":
                    q_syn = DT / arr(node.tau_syn)
                    st["i"] = st["i"] + q_syn * (arr(node.w_in, 1.0) * current - st["i"])
                    current = st["i"]
                tau = arr(node.tau_mem if kind == "CubaLIF" else node.tau)
                drive, v_leak = arr(node.r) * current, arr(node.v_leak)
                if discretization == "exact":
                    target = v_leak + drive
                    v = target + (v - target) * torch.exp(-DT / tau)
                elif order == "division":
                    steps = torch.as_tensor(np.asarray(node.tau, np.float64) / DT).to(dtype)
                    v = v + (drive - (v - v_leak)) / steps
                else:
                    v = v + (DT / tau) * ((v_leak - v) + drive)
            if kind == "LI":
                h = v
            else:
                h = (v > arr(node.v_threshold)).to(dtype)
                v = torch.where(h > 0, arr(node.v_reset).expand_as(v), v)
            st["v"], st["s"] = v, h
            outs[i].append(h)
            mems[i].append(v)
    return ([torch.stack(o, 1) for o in outs], [torch.stack(m, 1) for m in mems])


# --------------------------------------------------------------------------- graphs
def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _w(rng: np.random.Generator, n_out: int, n_in: int, lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, (n_out, n_in)).astype(np.float32)


def _lif(rng: np.random.Generator, n: int, **over: Any) -> Any:
    p = dict(tau=rng.uniform(3e-4, 2e-3, n), r=rng.uniform(0.5, 3.0, n), v_leak=np.zeros(n),
             v_threshold=rng.uniform(0.6, 1.4, n), v_reset=np.zeros(n))
    p.update(over)
    return nir.LIF(**p)


def chain_graph(chain: Sequence[Any], n_in: int, names: Sequence[str] | None = None,
                shuffle: int | None = None) -> Any:
    """``Input -> chain -> Output`` with the given node names (edges shuffled if asked)."""
    names = list(names or [f"n{i}" for i in range(len(chain))])
    last = chain[-1]
    out_shape = np.asarray(last.r).shape if hasattr(last, "r") else (last.weight.shape[0],)
    nodes = {"in": nir.Input(input_type=np.array([n_in])), **dict(zip(names, chain, strict=True)),
             "out": nir.Output(output_type=np.array(out_shape))}
    seq = ["in", *names, "out"]
    edges = list(itertools.pairwise(seq))
    if shuffle is not None:
        random.Random(shuffle).shuffle(edges)
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _x(seed: int, shape: tuple[int, ...], lo: float = 0.0, hi: float = 1.0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen) * (hi - lo) + lo


def _details(model: nn.Module, x: Tensor) -> Any:
    with torch.no_grad():
        return model(x, return_details=True)


def _compare(model: nn.Module, names: Sequence[str], ref_out: Sequence[Tensor],
             ref_mem: Sequence[Tensor], x: Tensor) -> dict[str, float]:
    """Spike mismatches over the spiking nodes ``names`` (chain positions given by ``ref_*``)."""
    out = _details(model, x)
    spikes, mem, total = 0, 0.0, 0.0
    for name, s_ref, v_ref in zip(names, ref_out, ref_mem, strict=True):
        spikes += spike_mismatches(out.spikes[name], s_ref.to(out.spikes[name].dtype))
        layer = model.module(name) if isinstance(model, NIRNetwork) else model._modules[name]
        v = layer.membrane(out.membrane[name]) if isinstance(layer, OffsetLIFNeuron) \
            else out.membrane[name]
        mem = max(mem, max_abs_diff(v, v_ref))
        total += float(s_ref.sum())
    return {"spikes": spikes, "membrane": mem, "rate": total / sum(s.numel() for s in ref_out),
            "silent": float(any(float(s.sum()) == 0 for s in ref_out))}


EXACT = {"spikes": 0, "membrane": 0.0, "silent": 0}
SPIKES = {"spikes": 0, "membrane": 1e-5, "silent": 0}


def _mlp(seed: int, n_in: int = 4, n_hid: int = 12, n_out: int = 5,
         **lif_over: Any) -> list[Any]:
    rng = _rng(seed)
    return [nir.Affine(weight=_w(rng, n_hid, n_in, -0.5, 1.5),
                       bias=rng.uniform(-0.1, 0.1, n_hid).astype(np.float32)),
            _lif(rng, n_hid, **lif_over),
            nir.Linear(weight=_w(rng, n_out, n_hid, -0.3, 1.0)),
            _lif(rng, n_out, **lif_over)]


def _import_case(name: str, make: Callable[[int], list[Any]], tolerances: dict[str, float],
                 order: str = "textbook", discretization: str = "euler", scale: float = 2.0,
                 expect: str = "equal", ref_discretization: str | None = None,
                 why: str = "", config: dict[str, object] | None = None) -> None:
    def run(seed: int) -> dict[str, float]:
        chain = make(seed)
        names = [f"layer.{i}" if i % 2 else f"w{i}" for i in range(len(chain))]
        graph = chain_graph(chain, chain[0].weight.shape[1], names, shuffle=seed)
        model = from_nir(graph, dt=DT, discretization=discretization)
        x = _x(seed, (B, T, chain[0].weight.shape[1]), 0.0, scale)
        outs, mems = euler(chain, x, order=order,
                           discretization=ref_discretization or discretization)
        keys = {v: k for k, v in getattr(model, "nir_names", {}).items()}
        spiking = [i for i, n in enumerate(chain) if hasattr(n, "v_threshold")]
        return _compare(model, [keys.get(names[i], names[i]) for i in spiking],
                        [outs[i] for i in spiking], [mems[i] for i in spiking], x)

    register(Case(name=f"nir/import/{name}", family="NIR-import", peer=PEER, run=run,
                  tolerances=tolerances, expect=expect, direction="from", steps=T, why=why,
                  config={"dt": DT, "discretization": discretization, "reference": order,
                          **(config or {})}))


_import_case("LIF-euler-division-bitexact", _mlp, EXACT, order="division",
             config={"graph": "Affine->LIF->Linear->LIF, per-neuron tau/r/threshold, "
                     "node names with dots, shuffled edges"})
_import_case("LIF-euler-textbook-float64", _mlp, SPIKES)
_import_case("LIF-exact", _mlp, SPIKES, discretization="exact")
_import_case("LIF-exact-vs-euler-guard", _mlp, SPIKES, discretization="exact",
             ref_discretization="euler", expect="differs",
             why="NIR stores no discretisation: the same graph integrated exactly spikes "
                 "differently from forward Euler, so dt and the scheme must be named")


def _offset(seed: int) -> list[Any]:
    rng = _rng(seed + 50)
    chain = _mlp(seed)
    n = chain[1].tau.shape[0]
    chain[1] = _lif(rng, n, v_leak=rng.uniform(-0.3, 0.3, n), v_reset=rng.uniform(-0.5, 0.2, n))
    return chain


_import_case("LIF-vleak-ne-vreset-per-neuron", _offset, SPIKES,
             config={"graph": "per-neuron v_leak and v_reset (OffsetLIFNeuron frame)"})


def _cuba(seed: int) -> list[Any]:
    rng = _rng(seed + 60)
    chain = _mlp(seed)
    for i in (1, 3):
        n = chain[i].tau.shape[0]
        chain[i] = nir.CubaLIF(tau_syn=rng.uniform(2e-4, 1e-3, n),
                               tau_mem=rng.uniform(5e-4, 2e-3, n), r=rng.uniform(1, 3, n),
                               v_leak=np.zeros(n), v_threshold=rng.uniform(0.4, 0.8, n),
                               v_reset=np.zeros(n), w_in=rng.uniform(0.5, 2.0, n))
    return chain


_import_case("CubaLIF-euler", _cuba, SPIKES)


def _if(seed: int) -> list[Any]:
    rng = _rng(seed + 70)
    chain = _mlp(seed)
    for i in (1, 3):
        n = chain[i].tau.shape[0]
        chain[i] = nir.IF(r=rng.uniform(1e3, 3e3, n), v_threshold=rng.uniform(0.6, 1.4, n),
                          v_reset=np.zeros(n))
    return chain


_import_case("IF-division-bitexact", _if, EXACT, order="division")


def _recurrent_case() -> None:
    def run(seed: int) -> dict[str, float]:
        rng = _rng(seed)
        n = 10
        chain = [nir.Affine(weight=_w(rng, n, 4, -0.3, 1.2), bias=np.zeros(n, np.float32)),
                 _lif(rng, n)]
        w_rec = _w(rng, n, n, -0.6, 0.4)
        nodes = {"in": nir.Input(input_type=np.array([4])), "fc": chain[0], "lif": chain[1],
                 "rec": nir.Linear(weight=w_rec), "out": nir.Output(output_type=np.array([n]))}
        edges = [("lif", "rec"), ("in", "fc"), ("lif", "out"), ("rec", "lif"), ("fc", "lif")]
        model = from_nir(nir.NIRGraph(nodes=nodes, edges=edges), dt=DT)
        x = _x(seed, (B, T, 4), 0.0, 2.0)
        outs, mems = euler(chain, x, recurrent={1: w_rec})
        metrics = _compare(model, ["lif"], [outs[1]], [mems[1]], x)
        metrics["not_folded"] = float(not isinstance(model._modules.get("lif"),
                                                     RecurrentLIFNeuron))
        return metrics

    register(Case(name="nir/import/recurrent-LIF-Linear-cycle", family="NIR-import", peer=PEER,
                  run=run, tolerances={**SPIKES, "not_folded": 0}, direction="from", steps=T,
                  config={"graph": "LIF <-> Linear cycle -> RecurrentLIFNeuron",
                          "back edge": "rec -> lif carries 0 at step 0"}))


_recurrent_case()


def _general_graph(seed: int) -> Any:
    """Branches, a sum, integer Delay, Scale, Threshold, a biased recurrent Affine, a subgraph
    and two outputs: no chain, so it runs as a NIRNetwork."""
    rng = _rng(seed)
    n = 6
    sub = nir.NIRGraph(nodes={"i": nir.Input(input_type=np.array([n])), "cell": _lif(rng, n),
                              "o": nir.Output(output_type=np.array([n]))},
                       edges=[("i", "cell"), ("cell", "o")])
    nodes = {
        "x": nir.Input(input_type=np.array([4])),
        "a": nir.Affine(weight=_w(rng, n, 4, -0.3, 1.0), bias=np.zeros(n, np.float32)),
        "b": nir.Linear(weight=_w(rng, n, 4, -0.2, 0.8)),
        "late": nir.Delay(delay=np.arange(n) * DT),
        "l1": _lif(rng, n),
        "w": nir.Affine(weight=_w(rng, n, n, -0.5, 0.3),
                        bias=rng.uniform(-0.2, 0.2, n).astype(np.float32)),
        "gain": nir.Scale(scale=rng.uniform(0.5, 2.0, n)),
        "block": sub,
        "fire": nir.Threshold(threshold=np.full(n, 0.5)),
        "y": nir.Output(output_type=np.array([n])),
        "z": nir.Output(output_type=np.array([n])),
    }
    edges = [("x", "a"), ("x", "b"), ("b", "late"), ("a", "l1"), ("late", "l1"), ("l1", "w"),
             ("w", "l1"), ("l1", "gain"), ("gain", "block"), ("block", "y"), ("a", "fire"),
             ("fire", "z")]
    random.Random(seed).shuffle(edges)
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _general_case() -> None:
    def run(seed: int) -> dict[str, float]:
        graph = _general_graph(seed)
        model = from_nir(graph, dt=DT)
        x = _x(seed, (B, T, 4), 0.0, 2.0)
        ref = simulate(graph, x, DT)
        with torch.no_grad():
            y, _ = model(x)
        spikes = sum(spike_mismatches(y[k], ref[k].float()) for k in ("y", "z"))
        # the same graph with its edges in another order: bit-identical outputs
        other = _general_graph(seed)
        other.edges.reverse()
        with torch.no_grad():
            y2, _ = from_nir(other, dt=DT)(x)
        rate = float(ref["y"].mean())
        return {"spikes": spikes, "edge_order": max(max_abs_diff(y[k], y2[k]) for k in y),
                "not_network": float(not isinstance(model, NIRNetwork)), "rate": rate,
                "silent": float(rate == 0.0)}

    register(Case(name="nir/import/graph-branches-delay-cycle-subgraph", family="NIR-import",
                  peer=PEER, run=run, direction="from", steps=T,
                  tolerances={"spikes": 0, "edge_order": 0.0, "not_network": 0, "silent": 0},
                  config={"graph": "2 branches summed, Delay(0..5 steps), biased recurrent "
                          "Affine, Scale, nested NIRGraph, Threshold, 2 Outputs",
                          "reference": "brain_ai.nir.simulate (float64, from NIR parameters)"}))


_general_case()


def _reference_agreement() -> None:
    """brain_ai.nir.simulate (used by ``brain-ai nir verify``) against :func:`euler` above."""
    def run(seed: int) -> dict[str, float]:
        chain = _cuba(seed)
        graph = chain_graph(chain, 4)
        x = _x(seed, (B, T, 4), 0.0, 2.0)
        outs, _ = euler(chain, x)
        ref = simulate(graph, x, DT)
        return {"value": max(max_abs_diff(ref[f"n{i}"], outs[i]) for i in range(len(chain)))}

    register(Case(name="nir/import/library-reference-vs-case-reference", family="NIR-import",
                  peer=PEER, run=run, tolerances={"value": 0.0}, direction="native", steps=T,
                  config={"what": "the two float64 Euler references agree on a CubaLIF MLP"}))


_reference_agreement()


# --------------------------------------------------------------------------- round trips
def _through_file(graph: Any) -> Any:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.nir")
        nir.write(path, graph)
        return nir.read(path)


def _compare_models(a: nn.Module, b: nn.Module, x: Tensor) -> dict[str, float]:
    da, db = _details(a, x), _details(b, x)
    keys = list(da.spikes)
    spikes = sum(spike_mismatches(db.spikes[k], da.spikes[k]) for k in keys)
    mem = max(max_abs_diff(db.membrane[k], da.membrane[k]) for k in keys)
    rates = [float(da.spikes[k].float().mean()) for k in keys]
    return {"spikes": spikes, "membrane": mem, "rate": sum(rates) / len(rates),
            "silent": float(min(rates) == 0.0)}


def _brain_mlp(seed: int, **lif: Any) -> SpikingSequential:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = SpikingSequential(
        nn.Linear(4, 12), LIFNeuron(beta=torch.rand(12, generator=gen) * 0.3 + 0.65,
                                    threshold=torch.rand(12, generator=gen) * 0.5 + 0.75,
                                    reset="zero", **lif),
        nn.Linear(12, 5), LIFNeuron(beta=0.8, alpha=0.5, reset="zero", **lif))
    with torch.no_grad():
        net[0].weight.uniform_(-0.4, 0.6, generator=gen)
        net[2].weight.uniform_(-0.2, 0.25, generator=gen)
    return net


def _roundtrip_case(name: str, make: Callable[[int], nn.Module], tolerances: dict[str, float],
                    carry: str | None = None, use_metadata: bool = True, expect: str = "equal",
                    shape: tuple[int, ...] = (4,), scale: float = 2.0, why: str = "",
                    config: dict[str, object] | None = None) -> None:
    def run(seed: int) -> dict[str, float]:
        model = make(seed)
        graph = _through_file(to_nir(model, dt=DT, carry=carry, input_shape=shape))
        back = from_nir(graph, use_metadata=use_metadata)
        # the execution order is a container option, not a NIR one: run both the same way
        back.fold_time = getattr(model, "fold_time", False)
        return _compare_models(model, back, _x(seed, (B, T, *shape), 0.0, scale))

    register(Case(name=f"nir/roundtrip/{name}", family="NIR-roundtrip", peer=PEER, run=run,
                  tolerances=tolerances, expect=expect, direction="both", steps=T, why=why,
                  config={"path": "brain_ai -> nir.write -> nir.read -> brain_ai",
                          "carry": str(carry), "use_metadata": use_metadata, **(config or {})}))


_roundtrip_case("file-LIF-CubaLIF", _brain_mlp, {"spikes": 0, "membrane": 2e-6, "silent": 0},
                config={"model": "Linear->LIFNeuron(per-neuron beta)->Linear->LIFNeuron("
                        "alpha)", "membrane": "the tau_input form of the import rounds "
                        "differently from the beta form (<= a few ulp)"})
_roundtrip_case("file-carry-metadata-bitexact", _brain_mlp, EXACT, carry="metadata")


def _lossy(seed: int) -> SpikingSequential:
    net = _brain_mlp(seed)
    torch.manual_seed(seed)
    rec = RecurrentLIFNeuron(5, beta=0.8, reset="subtract", comparator=">=",
                             surrogate=sg.FastSigmoid(slope=10.0), learn_beta=True)
    net[3] = rec
    net[1] = LIFNeuron(beta=net[1].beta, threshold=net[1].threshold, reset="subtract",
                       reset_timing="delayed", graded_spikes_factor=1.5, learn_threshold=True)
    return net


_roundtrip_case("file-carry-lossy-features-bitexact", _lossy, EXACT, carry="metadata",
                config={"carried": "subtract reset, delayed timing, '>=', FastSigmoid, graded "
                        "spikes, learnable beta/threshold, recurrent bias"})
_roundtrip_case("carried-graph-read-as-plain-NIR-guard", _lossy, EXACT, carry="metadata",
                use_metadata=False, expect="differs",
                why="a carried graph's NIR parameters state the closest NIR dynamics (zero "
                    "reset, '>', no bias at step 0); read without the metadata it spikes "
                    "differently, which is why the export refuses it unless carry= is given")


def _conv(seed: int) -> SpikingSequential:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = SpikingSequential(
        nn.Conv2d(2, 3, 3, padding=1), LIFNeuron(beta=0.7, reset="zero"),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(3 * 4 * 4, 5),
        LIFNeuron(beta=0.9, threshold=0.5, reset="zero"), fold_time=True)
    with torch.no_grad():
        net[0].weight.uniform_(-0.2, 0.3, generator=gen)
        net[4].weight.uniform_(-0.1, 0.15, generator=gen)
    return net


_roundtrip_case("file-conv-pool-flatten", _conv, {"spikes": 0, "membrane": 2e-6, "silent": 0},
                shape=(2, 8, 8), scale=1.5,
                config={"model": "Conv2d->LIF->AvgPool2d->Flatten->Linear->LIF, both run "
                        "layer by layer (fold_time=True)"})


def _foreign_case() -> None:
    def run(seed: int) -> dict[str, float]:
        graph = _general_graph(seed)
        first = from_nir(graph, dt=DT)
        again = from_nir(_through_file(to_nir(first, dt=DT)))
        x = _x(seed, (B, T, 4), 0.0, 2.0)
        with torch.no_grad():
            y1, _ = first(x)
            y2, _ = again(x)
        return {"spikes": sum(spike_mismatches(y2[k], y1[k]) for k in y1),
                "value": max(max_abs_diff(y2[k], y1[k]) for k in y1)}

    register(Case(name="nir/roundtrip/foreign-graph-through-brain_ai", family="NIR-roundtrip",
                  peer=PEER, run=run, tolerances={"spikes": 0, "value": 0.0}, direction="both",
                  steps=T, config={"path": "NIR -> brain_ai -> NIR file -> brain_ai",
                                   "graph": "the general graph of NIR-import"}))


_foreign_case()


# --------------------------------------------------------------------------- refusals
_LOSSY: dict[str, Callable[[], nn.Module]] = {
    "subtract-reset": lambda: LIFNeuron(beta=0.9, reset="subtract"),
    "no-reset": lambda: LIFNeuron(beta=0.9, reset="none"),
    "comparator-ge": lambda: LIFNeuron(beta=0.9, reset="zero", comparator=">="),
    "delayed-timing": lambda: LIFNeuron(beta=0.9, reset="zero", reset_timing="delayed"),
    "refractory": lambda: LIFNeuron(beta=0.9, reset="zero", refractory_steps=2),
    "graded-spikes": lambda: LIFNeuron(beta=0.9, reset="zero", graded_spikes_factor=2.0),
    "adaptation": lambda: AdaptiveLIFNeuron(beta=0.9, reset="zero"),
    "surrogate": lambda: LIFNeuron(beta=0.9, reset="zero", surrogate=sg.Sigmoid()),
    "learnable-beta": lambda: LIFNeuron(beta=0.9, reset="zero", learn_beta=True),
    "recurrent-bias": lambda: RecurrentLIFNeuron(4, beta=0.9, reset="zero"),
}


def _refuse_case(feature: str, make: Callable[[], nn.Module]) -> None:
    def run(seed: int) -> dict[str, float]:
        torch.manual_seed(seed)
        net = SpikingSequential(nn.Linear(4, 4), make())
        try:
            to_nir(net, dt=DT)
            refused = False
        except ConversionError as exc:
            refused = "to_nir (1)" in str(exc) and "carry='metadata'" in str(exc)
        back = from_nir(to_nir(net, dt=DT, carry="metadata"))
        metrics = _compare_models(net, back, _x(seed, (B, T, 4), 0.0, 2.0))
        return {"not_refused": float(not refused), "spikes": metrics["spikes"],
                "membrane": metrics["membrane"]}

    register(Case(name=f"nir/refuse/{feature}", family="NIR-refuse", peer=PEER, run=run,
                  tolerances={"not_refused": 0, "spikes": 0, "membrane": 0.0}, direction="to",
                  steps=T, config={"feature": feature, "then": "carry='metadata' restores it "
                                   "bit for bit"}))


for _feature, _make in _LOSSY.items():
    _refuse_case(_feature, _make)


# --------------------------------------------------------------------------- snnTorch
@contextlib.contextmanager
def _quiet() -> Any:
    """snnTorch's NIR code prints to stdout and calls nirtorch's deprecated
    ``extract_nir_graph`` (a DeprecationWarning, an error under pytest): the peer's noise,
    kept out of the report."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _snn_mlp(seed: int, reset: str = "zero", scalar: bool = False, synaptic: bool = False
             ) -> nn.Module:
    import snntorch as snn

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n1, n2 = 12, 5

    def cell(n: int, beta: float, out: bool) -> nn.Module:
        b = beta if scalar else torch.full((n,), beta)
        thr = 1.0 if scalar else torch.ones(n)
        kw: dict[str, Any] = dict(threshold=thr, reset_mechanism=reset, reset_delay=False,
                                  init_hidden=True, output=out)
        if synaptic:
            return snn.Synaptic(alpha=0.5 if scalar else torch.full((n,), 0.5), beta=b, **kw)
        return snn.Leaky(beta=b, **kw)

    net = nn.Sequential(nn.Linear(4, n1), cell(n1, 0.9, False), nn.Linear(n1, n2),
                        cell(n2, 0.8, True))
    (lo1, hi1), (lo2, hi2) = ((-0.3, 0.4), (-0.2, 0.25)) if synaptic else ((-0.3, 0.5),
                                                                           (-0.2, 0.3))
    with torch.no_grad():
        net[0].weight.uniform_(lo1, hi1, generator=gen)
        net[2].weight.uniform_(lo2, hi2, generator=gen)
    return net


def _run_snn(net: nn.Module, x_tf: Tensor) -> Tensor:
    from snntorch import utils as snn_utils

    snn_utils.reset(net)
    out = []
    with torch.no_grad():
        for x_t in x_tf.unbind(0):
            y = net(x_t)
            out.append(y[0] if isinstance(y, tuple) else y)
    return torch.stack(out, 0)


def _snn_export_case(name: str, reset: str, synaptic: bool, expect: str, why: str = "") -> None:
    def run(seed: int) -> dict[str, float]:
        from snntorch.export_nir import export_to_nir

        net = _snn_mlp(seed, reset=reset, synaptic=synaptic)
        with _quiet():
            graph = export_to_nir(net, torch.zeros(1, 4), ignore_dims=[0])
        ours = from_nir(_through_file(graph), dt=DT)
        x = _x(seed, (T, B, 4), 0.0, 2.0)
        ref = _run_snn(net, x)
        with torch.no_grad():
            y = ours(x.transpose(0, 1))[0].transpose(0, 1)
        rate = float(ref.mean())
        return {"spikes": spike_mismatches(y, ref), "rate": rate, "silent": float(rate == 0)}

    register(Case(name=f"nir/snntorch/export_to_nir-{name}", family="NIR-snntorch",
                  peer=PEER, run=run, tolerances={"spikes": 0, "silent": 0}, expect=expect,
                  direction="from", steps=T, why=why,
                  config={"path": "snnTorch export_to_nir -> file -> brain_ai from_nir "
                          "vs snnTorch native", "reset": reset, "reset_delay": False,
                          "parameters": "per-neuron tensors (scalars cannot be exported)"}))


_snn_export_case("Leaky-zero", "zero", False, "equal")
_snn_export_case("Synaptic-zero", "zero", True, "equal")
_snn_export_case("Leaky-subtract-guard", "subtract", False, "differs",
                 why="snnTorch writes v_reset=0 whatever the reset mechanism: its subtract "
                     "reset comes back as a zero reset (NIR has no subtract reset)")


def _snn_rleaky_case(bias: bool) -> None:
    def run(seed: int) -> dict[str, float]:
        import snntorch as snn
        from snntorch.export_nir import export_to_nir

        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        n = 6
        net = nn.Sequential(nn.Linear(4, n), snn.RLeaky(
            beta=torch.full((n,), 0.85), threshold=torch.ones(n), linear_features=n,
            reset_mechanism="zero", reset_delay=False, init_hidden=True, output=True))
        with torch.no_grad():
            net[0].weight.uniform_(-0.3, 0.8, generator=gen)
            net[1].recurrent.weight.uniform_(-0.5, 0.3, generator=gen)
            net[1].recurrent.bias.uniform_(-0.5, 0.5, generator=gen)
            if not bias:
                net[1].recurrent.bias.zero_()
        with _quiet():
            graph = export_to_nir(net, torch.zeros(1, 4), ignore_dims=[0])
        ours = from_nir(_through_file(graph), dt=DT)
        x = _x(seed, (T, B, 4), 0.0, 2.0)
        ref = _run_snn(net, x)
        with torch.no_grad():
            y = ours(x.transpose(0, 1))[0].transpose(0, 1)
        rate = float(ref.mean())
        return {"spikes": spike_mismatches(y, ref), "rate": rate, "silent": float(rate == 0)}

    register(Case(name=f"nir/snntorch/export_to_nir-RLeaky-{'bias-guard' if bias else 'no-bias'}",
                  family="NIR-snntorch", peer=PEER, run=run,
                  tolerances={"spikes": 0, "silent": 0}, expect="differs" if bias else "equal",
                  direction="from", steps=T,
                  why="snnTorch adds the recurrent bias at step 0 (W·0 + b); NIR's back edge "
                      "carries 0 there (nirtorch, SpikingJelly, brain_ai)" if bias else "",
                  config={"path": "snnTorch RLeaky export (LIF <-> Affine cycle) -> brain_ai "
                          "RecurrentLIFNeuron" if not bias else "snnTorch RLeaky export -> "
                          "brain_ai NIRNetwork (biased cycle)", "reset": "zero",
                          "reset_delay": False}))


_snn_rleaky_case(False)
_snn_rleaky_case(True)


def _snn_scalar_guard() -> None:
    def run(seed: int) -> dict[str, float]:
        from snntorch.export_nir import export_to_nir

        try:
            with _quiet():
                export_to_nir(_snn_mlp(seed, scalar=True), torch.zeros(1, 4), ignore_dims=[0])
            failed = 0.0
        except ValueError:  # "Type inference error: ... -> 1.input: []" (0-d tau)
            failed = 1.0
        # brain_ai exports the same scalar-parameter model: arrays of the population's shape
        ours = SpikingSequential(nn.Linear(4, 12), LIFNeuron(beta=0.9, reset="zero"),
                                 nn.Linear(12, 5), LIFNeuron(beta=0.8, reset="zero"))
        shape = to_nir(ours, dt=DT).nodes["1"].tau.shape
        return {"peer_export_failed": failed, "brain_ai_shape_wrong": float(shape != (12,))}

    register(Case(name="nir/snntorch/export_to_nir-scalar-beta-guard", family="NIR-snntorch",
                  peer=PEER, run=run, tolerances={"peer_export_failed": 0},
                  expect="differs", direction="to",
                  why="snnTorch 1.0.0 exports a scalar beta as a 0-d tau, which fails NIR's "
                      "type inference on Linear->Leaky->Linear->Leaky; brain_ai broadcasts "
                      "every parameter to the population (brain_ai_shape_wrong = 0)",
                  config={"model": "Leaky(beta=0.9) with scalar parameters"}))


_snn_scalar_guard()


def _snn_import_case() -> None:
    def run(seed: int) -> dict[str, float]:
        from snntorch.import_nir import import_from_nir

        ours = _brain_mlp(seed)  # snnTorch needs one threshold per layer
        ours[1] = LIFNeuron(beta=ours[1].beta, threshold=1.0, reset="zero")
        ours[3] = LIFNeuron(beta=0.8, reset="zero")
        graph = _through_file(to_nir(ours, dt=DT))
        with _quiet():
            peer = import_from_nir(graph)
        x = _x(seed, (T, B, 4), 0.0, 2.0)
        with torch.no_grad():
            ref = ours(x.transpose(0, 1))[0].transpose(0, 1)
            state, out = None, []
            for x_t in x.unbind(0):
                y, state = peer(x_t, state)
                out.append(y)
        rate = float(ref.mean())
        return {"spikes": spike_mismatches(torch.stack(out, 0), ref), "rate": rate,
                "silent": float(rate == 0)}

    register(Case(name="nir/snntorch/import_from_nir-of-brain_ai-export", family="NIR-snntorch",
                  peer=PEER, run=run, tolerances={"spikes": 0, "silent": 0}, direction="to",
                  steps=T, config={"path": "brain_ai to_nir -> file -> snnTorch "
                                   "import_from_nir", "note": "uniform threshold (snnTorch "
                                   "requires it), zero reset"}))


_snn_import_case()


# --------------------------------------------------------------------------- SpikingJelly
def _sj_net(seed: int, node: str) -> nn.Module:
    from spikingjelly.activation_based import layer, neuron

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)

    def cell(tau: float) -> nn.Module:
        if node == "IF":
            return neuron.IFNode(v_reset=0.0)
        if node == "CUBALIF":
            return neuron.CUBALIFNode(c_decay=0.5, v_decay=1.0 - 1.0 / tau, v_threshold=0.5)
        return neuron.LIFNode(tau=tau, decay_input=node == "LIF-decay_input", v_reset=0.0)

    net = nn.Sequential(layer.Linear(4, 12), cell(2.0), layer.Linear(12, 5), cell(4.0))
    (lo1, hi1), (lo2, hi2) = {"IF": ((-0.3, 0.4), (-0.2, 0.25)),
                              "LIF": ((-0.3, 0.5), (-0.2, 0.6)),
                              "LIF-decay_input": ((-0.6, 1.0), (-0.5, 2.0)),
                              "CUBALIF": ((-0.3, 0.3), (-0.2, 0.2))}[node]
    with torch.no_grad():
        net[0].weight.uniform_(lo1, hi1, generator=gen)
        net[2].weight.uniform_(lo2, hi2, generator=gen)
    return net


def _run_sj(net: nn.Module, x_tf: Tensor) -> Tensor:
    from spikingjelly.activation_based import functional

    functional.reset_net(net)
    with torch.no_grad():
        out = torch.stack([net(x_t) for x_t in x_tf.unbind(0)], 0)
    functional.reset_net(net)
    return out


def _sj_export_case(node: str, ties: bool, expect: str, why: str = "") -> None:
    def run(seed: int) -> dict[str, float]:
        from spikingjelly.activation_based.nir_exchange import export_to_nir

        net = _sj_net(seed, node)
        if ties:  # weights and inputs on a coarse grid: membranes hit the threshold exactly
            with torch.no_grad():
                for lin in (net[0], net[2]):
                    lin.weight.copy_((lin.weight * 4).round() / 4)
                    lin.bias.zero_()
        graph = export_to_nir(net, torch.zeros(1, 4), dt=DT)
        ours = from_nir(_through_file(graph), dt=DT)
        x = _x(seed, (T, B, 4), 0.0, 2.0)
        if ties:
            x = (x * 2).round() / 2
        ref = _run_sj(net, x)
        with torch.no_grad():
            y = ours(x.transpose(0, 1))[0].transpose(0, 1)
        rate = float(ref.mean())
        return {"spikes": spike_mismatches(y, ref), "rate": rate, "silent": float(rate == 0)}

    register(Case(name=f"nir/spikingjelly/export_to_nir-{node}{'-ties-guard' if ties else ''}",
                  family="NIR-spikingjelly", peer=PEER, run=run,
                  tolerances={"spikes": 0, "silent": 0}, expect=expect, direction="from",
                  steps=T, why=why,
                  config={"path": "SpikingJelly export_to_nir -> file -> brain_ai from_nir vs "
                          "SpikingJelly native", "inputs": "on a 1/2 grid" if ties else
                          "continuous"}))


_sj_export_case("LIF", False, "equal")
_sj_export_case("LIF-decay_input", False, "equal")
_sj_export_case("IF", False, "equal")
_sj_export_case("CUBALIF", False, "equal")
_sj_export_case("IF", True, "differs",
                why="SpikingJelly fires on v >= threshold and its export drops that rule; NIR "
                    "(and brain_ai's import) fire on v > threshold, so ties differ")


def _sj_import_case() -> None:
    def run(seed: int) -> dict[str, float]:
        from spikingjelly.activation_based.nir_exchange import import_from_nir

        ours = _brain_mlp(seed)
        ours[1] = LIFNeuron(beta=0.75, threshold=1.0, reset="zero")  # SJ: uniform parameters
        ours[3] = LIFNeuron(beta=0.8, reset="zero")
        graph = _through_file(to_nir(ours, dt=DT))
        peer = import_from_nir(graph, dt=DT)
        x = _x(seed, (T, B, 4), 0.0, 2.0)
        with torch.no_grad():
            ref = ours(x.transpose(0, 1))[0].transpose(0, 1)
            state, out = None, []
            for x_t in x.unbind(0):
                y, state = peer(x_t, state)
                out.append(y)
        rate = float(ref.mean())
        return {"spikes": spike_mismatches(torch.stack(out, 0), ref), "rate": rate,
                "silent": float(rate == 0)}

    register(Case(name="nir/spikingjelly/import_from_nir-of-brain_ai-export",
                  family="NIR-spikingjelly", peer=PEER, run=run,
                  tolerances={"spikes": 0, "silent": 0}, direction="to", steps=T,
                  config={"path": "brain_ai to_nir -> file -> SpikingJelly import_from_nir",
                          "note": "uniform parameters (SpikingJelly requires them); continuous "
                          "inputs (SpikingJelly fires on >=)"}))


_sj_import_case()
