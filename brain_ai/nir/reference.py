r"""A reference simulator of NIR's equations, written from the node definitions only.

It never touches brain_ai's neurons or rules: each node is integrated from its NIR parameters in
float64, with the textbook update of :mod:`brain_ai.nir.discretization` (Euler:
``v + (dt/τ)·((v_leak - v) + r·I)``; exact: ``v_leak + r·I + (v - v_leak - r·I)·exp(-dt/τ)``),
fire on ``v > v_threshold``, reset to ``v_reset``. Graph semantics (sums, back edges, initial
values) are those of :mod:`brain_ai.nir.graph` and :mod:`brain_ai.nir.importer`. Used by
``brain-ai nir verify`` to check an import.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from brain_ai.errors import ConversionError
from brain_ai.nir.discretization import check_dt
from brain_ai.nir.graph import plan_graph

__all__ = ["SPIKING", "simulate"]

#: Node types whose output is a spike train (the others output a value).
SPIKING = ("LIF", "CubaLIF", "IF", "Threshold")


def _p(node: Any, name: str, shape: tuple[int, ...], default: float = 0.0) -> Tensor:
    v = getattr(node, name, None)
    a = np.asarray(default if v is None else v, dtype=np.float64)
    return torch.as_tensor(np.broadcast_to(a, shape).copy())


def _leaky(v: Tensor, drive: Tensor, tau: Tensor, v_leak: Tensor, dt: float,
           disc: str) -> Tensor:
    """One step of ``τ·dv/dt = (v_leak - v) + drive`` (``drive = r·I``)."""
    if disc == "euler":
        return v + (dt / tau) * ((v_leak - v) + drive)
    target = v_leak + drive
    return target + (v - target) * torch.exp(-dt / tau)


def _ints(v: Any) -> Any:
    if isinstance(v, str):
        return v
    a = np.asarray(v).reshape(-1)
    return int(a[0]) if a.size == 1 else tuple(int(x) for x in a)


def simulate(graph: Any, x: Tensor | dict[str, Tensor], dt: float,
             discretization: str = "euler") -> dict[str, Tensor]:
    """Every node's output over time, float64, batch-first ``(B, T, ...)``.

    Args:
        graph: a ``nir.NIRGraph``.
        x: ``(B, T, *input_shape)`` (a dict by Input name for several inputs).
        dt / discretization: as for :func:`brain_ai.nir.from_nir`.
    Returns:
        node name -> output (spikes for LIF, CubaLIF, IF, Threshold; membranes for LI, CubaLI,
        I; values for the others).
    """
    dt = check_dt("simulate", dt, discretization)
    plan = plan_graph("simulate", graph)
    xs = {plan.inputs[0]: x} if isinstance(x, Tensor) else dict(x)
    xs = {k: v.detach().to(torch.float64) for k, v in xs.items()}
    steps = next(iter(xs.values())).shape[1]
    state: dict[str, dict[str, Tensor]] = {}
    prev: dict[str, Tensor] = {}
    out: dict[str, list[Tensor]] = {n: [] for n in (*plan.inputs, *plan.order)}
    for t in range(steps):
        vals = {n: xs[n][:, t] for n in plan.inputs}
        for name in plan.order:
            parts = [prev[s] if d else vals[s] for s, d in plan.sources[name]
                     if not d or s in prev]
            node = plan.nodes[name]
            inp = sum(parts[1:], parts[0]) if parts else None
            if inp is None:
                raise ConversionError("simulate", f"node {name!r} has no input at step 0",
                                      got="only back edges", expected="a forward edge",
                                      hint="feed the cycle from an Input")
            vals[name] = _node(name, node, inp, state, dt, discretization,
                               name in plan.passthrough)
        prev = {s: vals[s] for s, _ in plan.back_edges}
        for n, v in vals.items():
            out[n].append(v)
    return {n: torch.stack(v, 1) for n, v in out.items() if v}


def _node(name: str, node: Any, x: Tensor, state: dict[str, dict[str, Tensor]], dt: float,
          disc: str, passthrough: bool) -> Tensor:
    kind = type(node).__name__
    shape = tuple(x.shape[1:])
    if passthrough or kind in ("Output", "Identity"):
        return x
    if kind in ("Affine", "Linear"):
        w = torch.as_tensor(np.asarray(node.weight, dtype=np.float64))
        y = x @ w.T
        return y + torch.as_tensor(np.asarray(node.bias, dtype=np.float64)) \
            if kind == "Affine" else y
    if kind == "Scale":
        return x * _p(node, "scale", shape)
    if kind in ("Conv1d", "Conv2d"):
        w = torch.as_tensor(np.asarray(node.weight, dtype=np.float64))
        conv = F.conv1d if kind == "Conv1d" else F.conv2d
        bias = torch.as_tensor(np.broadcast_to(np.asarray(node.bias, dtype=np.float64),
                                               (w.shape[0],)).copy())
        return conv(x, w, bias, _ints(node.stride), _ints(node.padding), _ints(node.dilation),
                    int(_ints(node.groups)))
    if kind in ("AvgPool2d", "SumPool2d"):
        return F.avg_pool2d(x, _ints(node.kernel_size), _ints(node.stride), _ints(node.padding),
                            divisor_override=1 if kind == "SumPool2d" else None)
    if kind == "Flatten":
        s, e = int(node.start_dim), int(node.end_dim)
        return x.flatten(s + 1 if s >= 0 else s, e + 1 if e >= 0 else e)
    if kind == "Threshold":
        return (x > _p(node, "threshold", shape)).to(x.dtype)
    if kind == "Delay":
        d = np.rint(np.broadcast_to(np.asarray(node.delay, np.float64), shape) / dt).astype(int)
        st = state.setdefault(name, {"h": torch.zeros((x.shape[0], int(d.max()) + 1, *shape),
                                                      dtype=x.dtype)})
        st["h"] = torch.cat((x.unsqueeze(1), st["h"][:, :-1]), 1)
        idx = torch.as_tensor(d).expand(x.shape).unsqueeze(1)
        return st["h"].gather(1, idx).squeeze(1)
    if kind in ("LIF", "CubaLIF", "IF", "LI", "CubaLI", "I"):
        return _neuron(name, kind, node, x, state, dt, disc)
    raise ConversionError("simulate", f"node type {kind} is not simulated", got=kind,
                          expected="a NIR primitive", hint="see brain_ai.nir.from_nir")


def _neuron(name: str, kind: str, node: Any, x: Tensor, state: dict[str, dict[str, Tensor]],
            dt: float, disc: str) -> Tensor:
    shape = tuple(x.shape[1:])
    spiking = kind in ("LIF", "CubaLIF", "IF")
    if name not in state:
        start = (_p(node, "v_reset", shape) if spiking
                 else _p(node, "v_leak", shape) if kind != "I" else torch.zeros(shape))
        state[name] = {"v": start.expand(x.shape).clone(), "i": torch.zeros_like(x)}
    st = state[name]
    r = _p(node, "r", shape)
    if kind in ("IF", "I"):
        v = st["v"] + dt * r * x
    else:
        drive = x
        if kind.startswith("Cuba"):
            tau_syn = _p(node, "tau_syn", shape)
            w_in = _p(node, "w_in", shape, 1.0)
            st["i"] = _leaky(st["i"], w_in * x, tau_syn, torch.zeros(shape), dt, disc)
            drive = st["i"]
        tau = _p(node, "tau_mem" if kind.startswith("Cuba") else "tau", shape)
        v = _leaky(st["v"], r * drive, tau, _p(node, "v_leak", shape), dt, disc)
    if not spiking:
        st["v"] = v
        return v
    s = (v > _p(node, "v_threshold", shape)).to(v.dtype)
    st["v"] = torch.where(s > 0, _p(node, "v_reset", shape).expand(v.shape), v)
    return s
