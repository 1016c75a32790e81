r"""``from_nir``: a ``nir.NIRGraph`` (or a ``.nir`` file) -> a brain_ai model.

Node by node (``τ_s = 1/(1 - A)`` steps, see :mod:`brain_ai.nir.discretization`):

================  ==========================================================================
NIR node          brain_ai module
================  ==========================================================================
``LIF``           ``LIFNeuron(charge="tau_input", tau=τ_s, input_gain=r, threshold,
                  v_reset, reset="zero")``; ``v_leak != v_reset`` or a per-neuron
                  ``v_reset``: :class:`~brain_ai.nir.modules.OffsetLIFNeuron` (input bias
                  ``v_leak - v_reset``, membrane stored as ``v - v_reset``)
``CubaLIF``       as ``LIF`` with ``alpha`` (``α = 1 - dt/τ_syn`` or ``exp(-dt/τ_syn)``) and
                  ``input_gain = r·(1 - α)·w_in`` (brain_ai's current is ``r·I``); needs
                  ``v_leak == v_reset``
``IF``            ``LIFNeuron(beta=1, beta_clamp=(0, 1), input_gain=dt·r, threshold, v_reset,
                  reset="zero")``
``LI``/``CubaLI``  :class:`~brain_ai.nir.modules.LeakyIntegrator` (membrane out, no reset)
``I``             :class:`~brain_ai.nir.modules.LeakyIntegrator` with ``beta=1``,
                  ``input_gain=dt·r``
``Affine``        ``nn.Linear``; ``Linear``: ``nn.Linear(bias=False)``
``Conv1d/2d``     ``nn.Conv1d`` / ``nn.Conv2d``; ``AvgPool2d``: ``nn.AvgPool2d``
``SumPool2d``     :class:`~brain_ai.nir.modules.SumPool2d`; ``Scale``: ``Scale``
``Flatten``       ``nn.Flatten(start_dim + 1, end_dim (+ 1 if >= 0))`` (the batch axis)
``Threshold``     :class:`~brain_ai.nir.modules.Threshold` (``>``)
``Delay``         :class:`~brain_ai.nir.modules.Delay` (``delay/dt`` must be an integer)
``NIRGraph``      inlined (its ports become pass-through nodes)
================  ==========================================================================

A cycle ``LIF -> (Linear | Affine with zero bias) -> same LIF`` becomes one
:class:`~brain_ai.core.neurons.RecurrentLIFNeuron` (weights scaled by the gain the input
sees: ``r/τ_s``, or ``r·(1 - α)·w_in`` with a synapse; exact in real arithmetic). A graph
that is then a chain ``Input -> ... -> Output`` without ``Delay`` is returned as a
:class:`~brain_ai.core.snn.SpikingSequential` (layers named after the nodes); any other graph
as a :class:`~brain_ai.nir.graph.NIRNetwork`.

Initial state (NIR leaves it open): membranes start at ``v_reset`` (``LIF``, ``CubaLIF``,
``IF``; SpikingJelly's convention) or ``v_leak`` (``LI``, ``CubaLI``), ``I`` at 0, synaptic
currents at 0, back edges at 0.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor, nn

from brain_ai.core.neurons import LIFNeuron, RecurrentLIFNeuron, SpikingNeuronBase
from brain_ai.core.snn import SpikingSequential
from brain_ai.errors import ConfigError, ConversionError, ShapeError
from brain_ai.nir import metadata as meta
from brain_ai.nir.discretization import (
    DISCRETIZATIONS,
    check_dt,
    integrator_gain,
    steps_from_tau,
    synapse_decay,
)
from brain_ai.nir.exporter import _piece
from brain_ai.nir.graph import (
    GraphPlan,
    NIRNetwork,
    module_key,
    node_sequence,
    plan_flat,
    plan_graph,
)
from brain_ai.nir.modules import (
    Delay,
    LeakyIntegrator,
    OffsetLIFNeuron,
    Scale,
    SumPool2d,
    Threshold,
)

__all__ = ["from_nir", "read_graph"]

WHERE = "from_nir"
_NEURONS = ("LIF", "CubaLIF", "IF", "LI", "CubaLI", "I")


def read_graph(graph_or_path: Any) -> Any:
    """A ``nir.NIRGraph`` from a graph or a ``.nir`` path (type-checked if NIR accepts it)."""
    if isinstance(graph_or_path, (str, Path)):
        path = Path(graph_or_path)
        if not path.is_file():
            raise ConfigError(WHERE, "no NIR file at this path", got=str(path),
                              expected="an existing .nir (HDF5) file",
                              hint="write one with nir.write(path, graph) or brain_ai.nir.to_nir")
        try:
            return nir.read(str(path))
        except ValueError:  # NIR's type check (e.g. a batch axis in Input): read unchecked
            return nir.read(str(path), type_check=False)
        except OSError as exc:
            raise ConfigError(WHERE, "the file is not a NIR (HDF5) file", got=f"{path}: {exc}",
                              expected="a file written by nir.write",
                              hint="check the path") from exc
    return graph_or_path


def _shape(v: Any) -> tuple[int, ...]:
    if isinstance(v, dict):
        v = next(iter(v.values()))
    return tuple(int(s) for s in np.asarray(v).reshape(-1))


def _ints(v: Any) -> Any:
    """A NIR int-or-array parameter as an int or a tuple of ints (strings pass through)."""
    if isinstance(v, str):
        return v
    a = np.asarray(v).reshape(-1)
    return int(a[0]) if a.size == 1 else tuple(int(x) for x in a)


def _param(where: str, node: Any, name: str, shape: tuple[int, ...],
           default: float | None = None) -> np.ndarray:
    """``node.name`` as float64 broadcast to the population ``shape``."""
    v = getattr(node, name, None)
    if v is None:
        if default is None:
            raise ConversionError(where, f"the node has no {name}", got=None,
                                  expected=f"{type(node).__name__}.{name}",
                                  hint="the node is incomplete")
        v = default
    a = np.asarray(v, dtype=np.float64)
    try:
        if np.broadcast_shapes(a.shape, shape) != shape:
            raise ValueError
        return np.broadcast_to(a, shape).copy()
    except ValueError:
        raise ShapeError(where, f"{name} does not fit the neurons' shape", got=a.shape,
                         expected=f"broadcastable to {shape}",
                         hint="the parameter shape of a NIR neuron is its population shape"
                         ) from None


def _uniform(a: np.ndarray) -> float | None:
    return float(a.flat[0]) if a.size and bool((a == a.flat[0]).all()) else None


def _t(a: np.ndarray | Tensor, dtype: torch.dtype) -> Tensor:
    if isinstance(a, Tensor):
        return a.detach().to(dtype)
    return torch.as_tensor(np.array(a, copy=True)).to(dtype)


class _Neuron:
    """A NIR neuron node resolved to brain_ai constructor options (before building)."""

    def __init__(self, cls: type[SpikingNeuronBase], kwargs: dict[str, Any],
                 rec_gain: Tensor | None) -> None:
        self.cls, self.kwargs, self.rec_gain = cls, kwargs, rec_gain

    def build(self, **extra: Any) -> SpikingNeuronBase:
        cls = RecurrentLIFNeuron if extra else self.cls
        return cls(**self.kwargs, **extra)


def _neuron(where: str, node: Any, shape: tuple[int, ...], dt: float, disc: str,
            dtype: torch.dtype) -> _Neuron:
    kind = type(node).__name__
    p = lambda n, d=None: _param(where, node, n, shape, d)  # noqa: E731
    kw: dict[str, Any] = dict(features=shape)
    spiking = kind in ("LIF", "CubaLIF", "IF")
    rec_gain: Tensor | None = None
    offset: np.ndarray | None = None
    c = 0.0
    if spiking:
        theta, v_reset = p("v_threshold"), p("v_reset", 0.0)
        c_u = _uniform(v_reset)
        if c_u is None:
            offset = v_reset
        else:
            c = c_u
        kw.update(threshold=_t(theta - (0 if offset is None else offset), dtype), v_reset=c,
                  reset="zero", comparator=">")
    if kind in ("IF", "I"):
        gain = integrator_gain(p("r"), dt)
        kw.update(charge="beta", beta=1.0, beta_clamp=(0.0, 1.0), input_gain=_t(gain, dtype))
        cls: type[SpikingNeuronBase] = LIFNeuron if spiking else LeakyIntegrator
        if offset is not None:
            cls = OffsetLIFNeuron
            kw["membrane_offset"] = _t(offset, dtype)
        return _Neuron(cls, kw, gain)  # a recurrent input enters like x: scaled by dt·r

    tau = p("tau_mem") if kind.startswith("Cuba") else p("tau")
    steps = steps_from_tau(where, "tau_mem" if kind.startswith("Cuba") else "tau", tau, dt,
                           disc)
    r = torch.as_tensor(p("r"))
    v_leak = p("v_leak", 0.0)
    kw.update(charge="tau_input", tau=_t(steps, dtype))
    bias: np.ndarray | None = None
    if not spiking:  # LI, CubaLI: leak target v_leak, or a per-neuron frame
        c_u = _uniform(v_leak)
        if c_u is None:
            offset = v_leak
        else:
            c = c_u
        kw.update(v_reset=c)
    else:
        target = v_leak - (0 if offset is None else offset)
        if not bool((target == c).all()):
            bias = target - c
    if kind.startswith("Cuba"):
        if bias is not None:
            raise ConversionError(where, "a CubaLIF with v_leak != v_reset has no exact "
                                  "brain_ai form", got="v_leak != v_reset",
                                  expected="v_leak == v_reset for every neuron",
                                  hint="brain_ai's current-based neuron leaks towards its reset "
                                       "potential; shift v_leak, v_reset and v_threshold")
        alpha = synapse_decay(where, p("tau_syn"), dt, disc)
        w_in = torch.as_tensor(p("w_in", 1.0))
        gain = r * (1.0 - alpha) * w_in
        kw.update(alpha=_t(alpha, dtype), input_gain=_t(gain, dtype))
        rec_gain = gain
    else:
        if not bool((r == 1).all()):
            kw["input_gain"] = _t(r, dtype)
        rec_gain = r / steps
    cls = LIFNeuron if spiking else LeakyIntegrator
    if bias is not None:
        kw["input_bias"] = _t(bias, dtype)
    if offset is not None:
        kw["membrane_offset"] = _t(offset, dtype)
    if (bias is not None or offset is not None) and spiking:
        cls = OffsetLIFNeuron
    return _Neuron(cls, kw, rec_gain)


def _stateless(where: str, node: Any, shape: tuple[int, ...], dt: float,
               dtype: torch.dtype) -> nn.Module:
    kind = type(node).__name__
    if kind in ("Affine", "Linear"):
        w = np.asarray(node.weight)
        if w.ndim != 2:
            raise ConversionError(where, f"{kind} weight must be 2-D", got=w.shape,
                                  expected="(out, in)", hint="batched weights are not supported")
        m = nn.Linear(w.shape[1], w.shape[0], bias=kind == "Affine", dtype=dtype)
        with torch.no_grad():
            m.weight.copy_(_t(w, dtype))
            if kind == "Affine":
                m.bias.copy_(_t(np.asarray(node.bias).reshape(-1), dtype))  # type: ignore[union-attr]
        return m
    if kind in ("Conv1d", "Conv2d"):
        w = np.asarray(node.weight)
        cls = nn.Conv1d if kind == "Conv1d" else nn.Conv2d
        groups = int(_ints(node.groups))
        conv = cls(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride=_ints(node.stride),
                   padding=_ints(node.padding), dilation=_ints(node.dilation), groups=groups,
                   bias=True, dtype=dtype)
        with torch.no_grad():
            conv.weight.copy_(_t(w, dtype))
            b = np.zeros(w.shape[0]) if node.bias is None else np.asarray(node.bias)
            conv.bias.copy_(_t(np.broadcast_to(b, (w.shape[0],)), dtype))  # type: ignore[union-attr]
        return conv
    if kind == "AvgPool2d":
        return nn.AvgPool2d(_ints(node.kernel_size), _ints(node.stride), _ints(node.padding))
    if kind == "SumPool2d":
        return SumPool2d(_ints(node.kernel_size), _ints(node.stride), _ints(node.padding))
    if kind == "Flatten":
        start, end = int(node.start_dim), int(node.end_dim)
        return nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)
    if kind == "Scale":
        return Scale(_t(_param(where, node, "scale", shape), dtype))
    if kind == "Threshold":
        return Threshold(_t(_param(where, node, "threshold", shape), dtype))
    if kind == "Delay":
        d = _param(where, node, "delay", shape) / dt
        steps = np.rint(d)
        if bool((np.abs(d - steps) > 1e-6 * np.maximum(1.0, np.abs(d))).any()) or (d < 0).any():
            raise ConversionError(where, "the delay is not a whole number of steps",
                                  got=f"delay/dt in [{d.min():.6g}, {d.max():.6g}]",
                                  expected="non-negative integers",
                                  hint="choose dt so that every delay is a multiple of it")
        return Delay(torch.as_tensor(steps.astype(np.int64)))
    if kind == "Identity":
        return nn.Identity()
    raise ConversionError(where, f"NIR node type {kind} is not supported", got=kind,
                          expected="LIF, CubaLIF, IF, LI, CubaLI, I, Affine, Linear, Scale, "
                          "Conv1d, Conv2d, AvgPool2d, SumPool2d, Flatten, Threshold, Delay, "
                          "Input, Output, NIRGraph", hint="open an issue with the graph")


def _metadata(node: Any) -> Any:
    md = getattr(node, "metadata", None)
    return md.get(meta.KEY) if isinstance(md, Mapping) else None


def _out_shape(where: str, m: nn.Module, shape: tuple[int, ...], dtype: torch.dtype
               ) -> tuple[int, ...]:
    if isinstance(m, RecurrentLIFNeuron) and m.input_proj is not None:
        return (m.input_proj.out_features,)
    if isinstance(m, (SpikingNeuronBase, Delay)):
        return shape
    try:
        with torch.no_grad():
            return tuple(m(torch.zeros((1, *shape), dtype=dtype)).shape[1:])
    except RuntimeError as exc:
        raise ShapeError(where, "the node cannot take its input shape",
                         got=f"{shape}: {exc}", expected="the shape its sources produce",
                         hint="check the node's parameters and the Input shape") from exc


def _restore_stateless(where: str, module: nn.Module, md: Any) -> nn.Module:
    """Apply carried training options (frozen parameters, a Threshold's surrogate)."""
    spec, _ = meta.decode(where, md)
    for pname in spec.get("frozen", []):
        module.get_parameter(pname).requires_grad_(False)
    if "surrogate" in spec and isinstance(module, Threshold):
        module.surrogate = meta.surrogate_from_spec(spec["surrogate"])
    return module


def _restore_neuron(where: str, name: str, node: Any, md: Any, shape: tuple[int, ...],
                    dt: float, disc: str) -> nn.Module:
    """The neuron carried in ``md``, checked against the node's NIR parameters."""
    spec, state = meta.decode(where, md)
    module = meta.neuron_from_spec(where, spec, state)
    mine = _piece(name, module, shape, dt, disc, "metadata", set()).nodes[name]
    if type(mine) is not type(node):
        raise ConversionError(where, "the brain_ai metadata disagrees with the node type",
                              got=type(node).__name__, expected=type(mine).__name__,
                              hint="pass use_metadata=False to import the NIR parameters")
    for field_name, value in vars(node).items():
        if field_name in ("metadata", "input_type", "output_type"):
            continue
        ours = getattr(mine, field_name, None)
        if isinstance(value, np.ndarray) and not (
                isinstance(ours, np.ndarray) and ours.shape == value.shape
                and np.allclose(ours, value, rtol=1e-6, atol=0.0)):
            raise ConversionError(where, "the brain_ai metadata disagrees with the node's NIR "
                                  f"parameter {field_name}", got=f"{field_name} in the file",
                                  expected="the value the carried neuron exports",
                                  hint="the file was edited after export; pass "
                                       "use_metadata=False to import the NIR parameters")
    return module


def from_nir(graph_or_path: Any, dt: float | None = None, *, discretization: str | None = None,
             use_metadata: bool = True, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Import a NIR graph as a brain_ai model (batch-first, explicit state).

    Args:
        graph_or_path: a ``nir.NIRGraph`` or the path of a ``.nir`` file.
        dt: seconds per step; default: the graph's ``metadata["dt"]`` (brain_ai writes it).
            NIR stores no time step, so one of the two is required.
        discretization: ``"euler"`` or ``"exact"``; default: ``metadata["discretization"]``,
            else ``"euler"`` (NIR's reference).
        use_metadata: restore modules carried by ``to_nir(..., carry="metadata")`` exactly
            (after checking them against the NIR parameters); ``False`` reads NIR only.
        dtype: dtype of the weights and parameters (float32 default).
    Returns:
        A :class:`~brain_ai.core.snn.SpikingSequential` for a chain (or the carried neuron or
        container), else a :class:`~brain_ai.nir.graph.NIRNetwork`. See the module docstring.
    Raises:
        ConfigError: no ``dt``; a bad path.
        ConversionError: a node has no exact brain_ai form (the message names it).
    """
    graph = read_graph(graph_or_path)
    md = getattr(graph, "metadata", None) or {}
    if dt is None:
        if "dt" not in md:
            raise ConfigError(f"{WHERE}.dt", "the graph stores no dt and none was given",
                              got=None, expected="dt=<seconds per step>",
                              hint="pass dt=1e-4 for graphs from snnTorch, SpikingJelly or the "
                                   "NIR paper")
        dt = float(np.asarray(md["dt"]))
    file_disc = md.get("discretization")
    if isinstance(file_disc, bytes):
        file_disc = file_disc.decode()
    if discretization is None:
        discretization = file_disc if file_disc in DISCRETIZATIONS else "euler"
    dt = check_dt(WHERE, dt, discretization)
    if use_metadata and meta.KEY in md and (
            float(np.asarray(md.get("dt", np.nan))) != dt or file_disc != discretization):
        raise ConversionError(WHERE, "the brain_ai metadata was written for another dt or "
                              "discretization", got=f"dt={dt}, {discretization!r}",
                              expected=f"dt={md.get('dt')}, {file_disc!r}",
                              hint="omit dt/discretization, or pass use_metadata=False")
    plan = plan_graph(WHERE, graph)
    return _build(plan, md if use_metadata else {}, use_metadata, dt, discretization, dtype)


def _build(plan: GraphPlan, graph_md: Mapping[str, Any], use_metadata: bool, dt: float,
           disc: str, dtype: torch.dtype) -> nn.Module:
    shapes: dict[str, tuple[int, ...]] = {}
    for n in plan.inputs:
        shapes[n] = _shape(plan.nodes[n].input_type)
    modules: dict[str, nn.Module | None] = {}
    specs: dict[str, _Neuron] = {}
    part_of: dict[str, str] = {}
    for name in plan.order:
        where = f"{WHERE} (node {name!r})"
        node = plan.nodes[name]
        fwd = [shapes[s] for s, delayed in plan.sources[name] if not delayed]
        if any(s != fwd[0] for s in fwd):
            raise ShapeError(where, "the node's inputs have different shapes", got=fwd,
                             expected="one shape (inputs are summed)",
                             hint="check the edges into this node")
        if fwd:
            shape = fwd[0]
        elif type(node).__name__ in _NEURONS:
            shape = _shape(node.input_type) if getattr(node, "input_type", None) else ()
        else:
            raise ShapeError(where, "the node's input shape is unknown", got="only back edges",
                             expected="a forward edge into the node",
                             hint="feed the cycle from an Input")
        shapes[f"{name}:in"] = shape
        md = _metadata(node) if use_metadata else None
        if md is not None and "part_of" in meta.decode(where, md)[0]:
            part_of[name] = meta.decode(where, md)[0]["part_of"]
        kind = type(node).__name__
        module: nn.Module | None
        if isinstance(node, (nir.Input, nir.Output)) or name in plan.passthrough:
            module = None
        elif kind in _NEURONS and md is not None:
            module = _restore_neuron(where, name, node, md, shape, dt, disc)
        elif kind in _NEURONS:
            specs[name] = _neuron(where, node, shape, dt, disc, dtype)
            module = specs[name].build()
        else:
            module = _stateless(where, node, shape, dt, dtype)
            if md is not None and name not in part_of:
                module = _restore_stateless(where, module, md)
        modules[name] = module
        shapes[name] = shape if module is None else _out_shape(where, module, shape, dtype)
    plan, modules = _fold(plan, modules, specs, part_of, dtype)
    chain = node_sequence(plan)
    if chain is not None and not any(isinstance(modules[n], Delay) for n in chain):
        return _sequential(plan, chain, modules, graph_md)
    return NIRNetwork(plan, modules, shapes)


def _fold(plan: GraphPlan, modules: dict[str, nn.Module | None], specs: dict[str, _Neuron],
          part_of: dict[str, str], dtype: torch.dtype
          ) -> tuple[GraphPlan, dict[str, nn.Module | None]]:
    """Fold recurrent cycles into ``RecurrentLIFNeuron`` s and absorb carried helper nodes."""
    remove: set[str] = set(part_of)
    rewire: dict[str, str] = {}  # absorbed entry node -> owner (edges into it go to the owner)
    for helper, owner in part_of.items():
        if any(s == owner for s, _ in plan.sources[helper]):
            continue  # the recurrent node: its edges vanish with it
        rewire[helper] = owner
    for name, spec in specs.items():
        lif = modules[name]
        if (name in part_of.values() or type(lif) is not LIFNeuron or spec.rec_gain is None
                or len(lif.features or ()) != 1):
            continue
        for src, _ in plan.sources[name]:
            rec = modules.get(src)
            if (src in remove or not isinstance(rec, nn.Linear)
                    or plan.sources[src] not in (((name, False),), ((name, True),))
                    or plan.successors(src) != [name]
                    or (rec.bias is not None and bool((rec.bias != 0).any()))
                    or rec.weight.shape != (lif.features[0],) * 2):  # type: ignore[index]
                continue
            neuron = spec.build(recurrent="linear", bias=False)
            neuron.load_state_dict({**lif.state_dict(), **{
                "recurrent.weight": (spec.rec_gain.reshape(-1, 1)  # type: ignore[union-attr]
                                     * rec.weight.detach().double()).to(dtype)}})
            modules[name] = neuron
            remove.add(src)
            break
    if not remove:
        return plan, modules
    edges = []
    for s, d in plan.edges:
        if s in remove or (d in remove and d not in rewire):
            continue
        edges.append((s, rewire.get(d, d)))
    nodes = {n: v for n, v in plan.nodes.items() if n not in remove}
    new = plan_flat(WHERE, nodes, edges, plan.passthrough & set(nodes))
    return new, {n: m for n, m in modules.items() if n not in remove}


def _sequential(plan: GraphPlan, chain: list[str] | Any, modules: dict[str, nn.Module | None],
                graph_md: Mapping[str, Any]) -> nn.Module:
    spec: dict[str, Any] = {}
    raw = graph_md.get(meta.KEY)
    if raw is not None:
        try:
            spec = json.loads(raw if isinstance(raw, str) else bytes(raw).decode())
        except (TypeError, ValueError):
            spec = {}
    if spec.get("container") == "neuron" and len(chain) == 1:
        single = modules[chain[0]]
        assert single is not None
        return single
    layers: dict[str, nn.Module] = {n: (modules[n] or nn.Identity()) for n in chain}
    order = list(chain)
    if spec.get("container") == "SpikingSequential" and set(spec.get("layers", [])) == \
            set(chain) | set(spec.get("identity", [])):
        order = list(spec["layers"])
        layers.update({n: nn.Identity() for n in spec.get("identity", [])})
    probe = SpikingSequential()
    taken: set[str] = set()
    named: OrderedDict[str, nn.Module] = OrderedDict()
    names: dict[str, str] = {}
    for n in order:
        key = n if (n.isidentifier() or n.isdigit()) and not hasattr(probe, n) \
            and n not in taken else module_key(n, taken, probe)
        taken.add(key)
        named[key] = layers[n]
        if key != n:
            names[key] = n
    seq = SpikingSequential(named, fold_time=bool(spec.get("fold_time", False)),
                            chunk_size=spec.get("chunk_size"))
    if names:
        seq.nir_names = names
    return seq

