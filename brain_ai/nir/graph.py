"""NIR graph structure, and :class:`NIRNetwork`, the executor of graphs that are no chain.

Semantics of a NIR graph run for ``T`` steps (NIR writes none of this down; these are the
conventions of nirtorch, which snnTorch, SpikingJelly and Norse run on):

* Edges are identity connections; several edges into one node are **summed**, in the order of
  the source nodes' names (so the order of ``graph.edges`` never changes a bit).
* A cycle carries a **one-step delay** on its *back edge*: the edge that closes the cycle in a
  depth-first walk from the ``Input`` nodes (names in sorted order, successors in sorted order).
  The back edge carries the source's output of step ``t - 1``, and **0 at step 0**.
* Nested ``NIRGraph`` nodes are inlined; their ``Input``/``Output`` nodes become pass-through
  nodes named ``"<subgraph>.<port>"``.
* Every node must be reachable from an ``Input`` node.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nir
import torch
from torch import Tensor, nn

from brain_ai.core.neurons import SpikingNeuronBase
from brain_ai.core.snn import NetworkOutput
from brain_ai.errors import ConversionError, ShapeError
from brain_ai.nir.modules import Delay, LeakyIntegrator

__all__ = ["GraphPlan", "NIRNetwork", "module_key", "node_sequence", "plan_flat", "plan_graph"]


@dataclass(frozen=True)
class GraphPlan:
    """The structure of a (flattened) NIR graph, ready to run.

    Attributes:
        nodes: node name -> NIR node, nested graphs inlined.
        passthrough: names of the inlined ports (run as the sum of their inputs).
        inputs / outputs: names of the top-level ``Input`` / ``Output`` nodes, sorted.
        order: every node except the inputs, in the order one step evaluates them.
        sources: node -> ``((source, delayed), ...)``, sorted by source name; ``delayed`` marks
            a back edge (the source's previous output, 0 at step 0).
        edges: the flattened edges, in the graph's order.
    """

    nodes: dict[str, Any]
    passthrough: frozenset[str]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    order: tuple[str, ...]
    sources: dict[str, tuple[tuple[str, bool], ...]]
    edges: tuple[tuple[str, str], ...]

    @property
    def back_edges(self) -> frozenset[tuple[str, str]]:
        return frozenset((s, n) for n, srcs in self.sources.items() for s, d in srcs if d)

    def successors(self, name: str) -> list[str]:
        return sorted({d for s, d in self.edges if s == name})


def _single_port(where: str, sub: str, ports: list[str], kind: str) -> str:
    if len(ports) != 1:
        raise ConversionError(where, f"an edge names subgraph {sub!r} but it has "
                              f"{len(ports)} {kind} nodes", got=sorted(ports),
                              expected=f"exactly one {kind}, or an edge to '{sub}.<port>'",
                              hint=f"name the port in the edge, e.g. '{sub}.<{kind} node>'")
    return ports[0]


def _flatten(where: str, graph: Any, prefix: str = ""
             ) -> tuple[dict[str, Any], list[tuple[str, str]], set[str]]:
    """Inline nested graphs: ``(nodes, edges, passthrough)`` with prefixed names."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    passthrough: set[str] = set()
    ports: dict[str, tuple[list[str], list[str]]] = {}  # subgraph -> (inputs, outputs)
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if not isinstance(node, nir.NIRGraph):
            nodes[full] = node
            continue
        inner, inner_edges, inner_pass = _flatten(where, node, f"{full}.")
        nodes.update(inner)
        edges.extend(inner_edges)
        passthrough |= inner_pass
        ins = [f"{full}.{n}" for n, v in node.nodes.items() if isinstance(v, nir.Input)]
        outs = [f"{full}.{n}" for n, v in node.nodes.items() if isinstance(v, nir.Output)]
        passthrough.update(ins + outs)
        ports[full] = (ins, outs)
    for src, dst in graph.edges:
        s, d = f"{prefix}{src}", f"{prefix}{dst}"
        if s in ports:
            s = _single_port(where, s, ports[s][1], "Output")
        if d in ports:
            d = _single_port(where, d, ports[d][0], "Input")
        edges.append((s, d))
    return nodes, edges, passthrough


def plan_graph(where: str, graph: Any) -> GraphPlan:
    """Check the structure of ``graph`` and work out how one step runs it.

    Raises:
        ConversionError: an edge names a missing node, an edge is repeated, the graph has no
            ``Input``, an ``Input`` has incoming edges, or a node is unreachable.
    """
    if not isinstance(graph, nir.NIRGraph):
        raise ConversionError(where, "expected a nir.NIRGraph", got=type(graph).__name__,
                              expected="nir.NIRGraph (or a path to a .nir file)",
                              hint="read a file with nir.read(path), or pass the path")
    nodes, edges, passthrough = _flatten(where, graph)
    return plan_flat(where, nodes, edges, passthrough)


def plan_flat(where: str, nodes: dict[str, Any], edges: list[tuple[str, str]],
              passthrough: set[str] | frozenset[str]) -> GraphPlan:
    """:func:`plan_graph` of an already flattened graph (nodes, edges, inlined ports)."""
    seen: set[tuple[str, str]] = set()
    for edge in edges:
        for end in edge:
            if end not in nodes:
                raise ConversionError(where, f"edge {edge} names a node that does not exist",
                                      got=repr(end), expected=f"one of {sorted(nodes)}",
                                      hint="fix the edge list or add the node")
        if edge in seen:
            raise ConversionError(where, f"edge {edge} appears twice", got=edge,
                                  expected="each edge once",
                                  hint="one edge already connects the two nodes")
        seen.add(edge)
    top_inputs = sorted(n for n, v in nodes.items() if isinstance(v, nir.Input)
                        and n not in passthrough)
    top_outputs = sorted(n for n, v in nodes.items() if isinstance(v, nir.Output)
                         and n not in passthrough)
    if not top_inputs:
        raise ConversionError(where, "the graph has no Input node", got=sorted(nodes),
                              expected="at least one nir.Input",
                              hint="build the graph with type_check=True (NIR then adds Input "
                                   "nodes for typed roots) or add a nir.Input node")
    if not top_outputs:
        raise ConversionError(where, "the graph has no Output node", got=sorted(nodes),
                              expected="at least one nir.Output",
                              hint="add a nir.Output node after the last layer")
    for n in top_inputs:
        if any(d == n for _, d in edges):
            raise ConversionError(where, f"Input node {n!r} has incoming edges",
                                  got=sorted(s for s, d in edges if d == n),
                                  expected="no edge into an Input node",
                                  hint="graph inputs only feed the graph")

    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for s, d in edges:
        succ[s].append(d)
    for n in succ:
        succ[n] = sorted(set(succ[n]))
    color: dict[str, int] = {}
    back: set[tuple[str, str]] = set()
    for root in top_inputs:
        if root in color:
            continue
        color[root] = 1
        stack = [(root, iter(succ[root]))]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = 2
                stack.pop()
            elif color.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in color:
                color[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    unreachable = sorted(n for n in nodes if n not in color)
    if unreachable:
        raise ConversionError(where, "nodes are unreachable from the Input nodes",
                              got=unreachable, expected="every node fed, directly or not, by "
                              "an Input", hint="connect them or remove them from the graph")

    forward = [(s, d) for s, d in edges if (s, d) not in back]
    indegree = {n: 0 for n in nodes}
    for _, d in forward:
        indegree[d] += 1
    heap = [n for n, k in indegree.items() if k == 0]
    heapq.heapify(heap)
    order: list[str] = []
    fsucc: dict[str, list[str]] = {n: [] for n in nodes}
    for s, d in forward:
        fsucc[s].append(d)
    while heap:
        n = heapq.heappop(heap)
        order.append(n)
        for d in fsucc[n]:
            indegree[d] -= 1
            if indegree[d] == 0:
                heapq.heappush(heap, d)
    sources = {n: tuple(sorted((s, (s, n) in back) for s, d in edges if d == n))
               for n in nodes}
    return GraphPlan(
        nodes=nodes, passthrough=frozenset(passthrough), inputs=tuple(top_inputs),
        outputs=tuple(top_outputs), order=tuple(n for n in order if n not in top_inputs),
        sources=sources, edges=tuple(edges),
    )


_NAME = re.compile(r"[^0-9A-Za-z_]")


def module_key(name: str, taken: set[str], reserved: object) -> str:
    """A valid, unused ``nn.Module`` child name for the NIR node ``name``."""
    key = _NAME.sub("_", name) or "node"
    if key[0].isdigit() and not key.isdigit():
        key = f"n_{key}"
    base, i = key, 0
    while key in taken or hasattr(reserved, key):
        i += 1
        key = f"{base}_{i}"
    taken.add(key)
    return key


def _kind(module: nn.Module | None) -> str:
    if module is None:
        return "virtual"
    if isinstance(module, SpikingNeuronBase):
        return "neuron"
    if isinstance(module, Delay):
        return "delay"
    return "stateless"


class NIRNetwork(nn.Module):
    """A NIR graph run step by step: any topology, cycles included, state explicit.

    Built by :func:`brain_ai.nir.from_nir` for graphs that are not a chain (branches, sums,
    delays, cycles that do not fold into a :class:`~brain_ai.core.neurons.RecurrentLIFNeuron`).
    See the module docstring for the semantics.

    ``forward(x, state=None)``: ``x`` is ``(B, T, *input_shape)`` (a dict by ``Input`` name when
    the graph has several inputs); returns ``(y, state)`` with ``y`` ``(B, T, *output_shape)`` (a
    dict by ``Output`` name when several). ``state`` is
    ``{"nodes": {name: state}, "edges": {name: previous output}}``; ``None`` starts every neuron
    from its ``reset_state`` and every back edge at 0.

    Attributes:
        layers: ``nn.ModuleDict`` of the node modules (keys: :attr:`keys`).
        keys: NIR node name -> key in :attr:`layers` (``None`` for virtual nodes).
        input_shapes / output_shapes: per-sample shapes of the graph's inputs and outputs.
    """

    def __init__(self, plan: GraphPlan, modules: Mapping[str, nn.Module | None],
                 shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__()
        self.layers = nn.ModuleDict()
        taken: set[str] = set()
        self.keys: dict[str, str | None] = {}
        for name in (*plan.inputs, *plan.order):
            m = modules.get(name)
            if m is None:
                self.keys[name] = None
            else:
                key = module_key(name, taken, self.layers)
                self.layers[key] = m
                self.keys[name] = key
        self.order = tuple(plan.order)
        self.sources = {n: plan.sources[n] for n in plan.order}
        self.input_names, self.output_names = tuple(plan.inputs), tuple(plan.outputs)
        self.input_shapes = {n: tuple(shapes[n]) for n in plan.inputs}
        self.output_shapes = {n: tuple(shapes[n]) for n in plan.outputs}
        self.in_shapes = {n: tuple(shapes[f"{n}:in"]) for n in plan.order
                          if f"{n}:in" in shapes}
        self.delayed_sources = tuple(sorted({s for srcs in self.sources.values()
                                             for s, d in srcs if d}))
        self.edges = tuple(plan.edges)

    def module(self, name: str) -> nn.Module | None:
        """The module of NIR node ``name`` (``None`` for inputs, outputs and ports)."""
        key = self.keys.get(name)
        return None if key is None else self.layers[key]

    def _inputs(self, x: Tensor | Mapping[str, Tensor]) -> dict[str, Tensor]:
        where = "NIRNetwork.forward"
        if isinstance(x, Tensor):
            if len(self.input_names) != 1:
                raise ShapeError(where, "this graph has several inputs",
                                 got="one tensor", expected=f"a dict with keys {self.input_names}",
                                 hint="pass {input name: (B, T, ...) tensor}")
            xs = {self.input_names[0]: x}
        else:
            xs = dict(x)
            if sorted(xs) != sorted(self.input_names):
                raise ShapeError(where, "the inputs do not name the graph's Input nodes",
                                 got=sorted(xs), expected=sorted(self.input_names),
                                 hint="one (B, T, ...) tensor per Input node")
        lead: tuple[int, int] | None = None
        for name, t in xs.items():
            shape = self.input_shapes[name]
            if not isinstance(t, Tensor) or t.dim() != 2 + len(shape) \
                    or tuple(t.shape[2:]) != shape:
                raise ShapeError(where, f"input {name!r} has the wrong shape",
                                 got=tuple(getattr(t, "shape", ())),
                                 expected=f"(B, T, {', '.join(map(str, shape))})",
                                 hint="inputs are batch-first; time-first data: "
                                      "time_to_batch_first(x)")
            if lead is not None and tuple(t.shape[:2]) != lead:
                raise ShapeError(where, "the inputs differ in batch or time length",
                                 got=tuple(t.shape[:2]), expected=lead,
                                 hint="every input has the same (B, T)")
            lead = (int(t.shape[0]), int(t.shape[1]))
        if lead is None or lead[1] == 0:
            raise ShapeError(where, "the sequence has no time steps", got=lead,
                             expected="T >= 1", hint="pass at least one time step")
        return xs

    def forward(self, x: Tensor | Mapping[str, Tensor], state: dict[str, Any] | None = None,
                return_details: bool = False) -> Any:
        """Run ``T`` steps; see the class docstring. ``return_details=True`` returns a
        :class:`~brain_ai.core.snn.NetworkOutput` (per-neuron spikes and membranes, by name)."""
        xs = self._inputs(x)
        first = next(iter(xs.values()))
        b, steps = int(first.shape[0]), int(first.shape[1])
        node_states: dict[str, Any] = dict((state or {}).get("nodes", {}))
        edge_values: dict[str, Tensor] = dict((state or {}).get("edges", {}))
        outs: dict[str, list[Tensor]] = {n: [] for n in self.output_names}
        spikes: dict[str, list[Tensor]] = {}
        membrane: dict[str, list[Tensor]] = {}
        for t in range(steps):
            values: dict[str, Tensor] = {n: xs[n][:, t] for n in self.input_names}
            for name in self.order:
                total: Tensor | None = None
                for src, delayed in self.sources[name]:
                    v = edge_values.get(src) if delayed else values[src]
                    if v is not None:
                        total = v if total is None else total + v
                if total is None:
                    total = first.new_zeros((b, *self.in_shapes[name]))
                m = self.module(name)
                kind = _kind(m)
                if kind == "virtual":
                    y = total
                elif kind in ("neuron", "delay"):
                    y, node_states[name] = m.step(total, node_states.get(name))  # type: ignore[union-attr,operator]
                    if return_details and kind == "neuron":
                        st = node_states[name]
                        mem = m.membrane(st.v) if hasattr(m, "membrane") else st.v  # type: ignore[union-attr,operator]
                        membrane.setdefault(name, []).append(mem)
                        if not isinstance(m, LeakyIntegrator):
                            spikes.setdefault(name, []).append(y)
                else:
                    y = m(total)  # type: ignore[misc]
                values[name] = y
            edge_values = {s: values[s] for s in self.delayed_sources}
            for n in self.output_names:
                outs[n].append(values[n])
        stacked = {n: torch.stack(v, 1) for n, v in outs.items()}
        y_out: Any = stacked[self.output_names[0]] if len(stacked) == 1 else stacked
        final = {"nodes": node_states, "edges": edge_values}
        if return_details:
            return NetworkOutput(y_out, final,  # type: ignore[arg-type]
                                 {k: torch.stack(v, 1) for k, v in spikes.items()},
                                 {k: torch.stack(v, 1) for k, v in membrane.items()})
        return y_out, final

    def extra_repr(self) -> str:
        return f"inputs={self.input_shapes}, outputs={self.output_shapes}, edges={len(self.edges)}"


def node_sequence(plan: GraphPlan) -> Sequence[str] | None:
    """The nodes of ``plan`` in order if it is a chain ``Input -> n1 -> ... -> Output``."""
    if len(plan.inputs) != 1 or len(plan.outputs) != 1 or plan.back_edges:
        return None
    chain: list[str] = []
    current = plan.inputs[0]
    while True:
        nxt = plan.successors(current)
        if len(nxt) != 1:
            return None
        current = nxt[0]
        if len(plan.sources[current]) != 1:
            return None
        if current == plan.outputs[0]:
            break
        chain.append(current)
    return chain if len(chain) + 2 == len(plan.nodes) else None
