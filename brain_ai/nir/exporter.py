r"""``to_nir``: a brain_ai model -> ``nir.NIRGraph``, exact or refused.

A neuron's step is first written in the discrete linear form
``h = A·v + (1 - A)·L + G·x`` (see :mod:`brain_ai.nir.discretization`), read off its charge
rule (``q = 1 - A``; ``G = G_c·input_gain``):

===============  ==============  ===============  ======
charge           ``q = 1 - A``   ``G_c``          ``L``
===============  ==============  ===============  ======
``"beta"``       ``1 - β``       ``1``            ``0``
``"tau"``        ``1/τ``         ``1``            ``v_reset``
``"tau_input"``  ``1/τ``         ``1/τ``          ``v_reset``
``"rate"``       ``q``           ``1``            ``v_reset``
``"rate_input"`` ``q``           ``q``            ``v_reset``
===============  ==============  ===============  ======

then NIR's parameters follow: ``τ = dt/q`` (Euler) or ``-dt/ln A`` (exact), ``r = G/q``,
``v_leak = L``, ``v_threshold = θ``, ``v_reset = v_reset``; ``q = 0`` everywhere is an
integrator (``IF``/``I``, ``r = G/dt``). A current-based synapse ``i = α·i + g·x`` becomes
``CubaLIF`` with ``τ_syn`` from ``α`` (same rule), ``w_in = g/(1 - α)`` and ``r = G_c/q`` (the
NIR current is brain_ai's ``i``). Recurrent weights are divided by the gain the NIR input sees
(``W_nir = W/G``, ``W/g`` with a synapse), row by row. Every parameter is computed in float64
and stored as a float32 array of the population's shape (never 0-d).

What NIR cannot express is refused (:class:`~brain_ai.errors.ConversionError` naming the
layer): subtract or no reset, delayed/compensated reset timings that differ from the immediate
one, ``">="``, refractory periods, graded spikes, adaptation, a recurrent bias (NIR's back
edge carries 0 at step 0; brain_ai's recurrence adds the bias at step 0), and the training
options from_nir would not rebuild (non-default surrogate, learnable or frozen flags,
``detach_reset``, ``chunk_size``, ``dtype_policy``). ``carry="metadata"`` writes them into the
node's metadata instead (see :mod:`brain_ai.nir.metadata`); :func:`brain_ai.nir.from_nir`
then restores the module bit for bit, while other NIR readers see the NIR parameters only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor, nn

from brain_ai.core.neurons import (
    AdaptiveLIFNeuron,
    AdvancedLIFNeuron,
    RecurrentLIFNeuron,
    SpikingNeuronBase,
)
from brain_ai.core.snn import SpikingSequential
from brain_ai.errors import ConfigError, ConversionError, check_choice
from brain_ai.nir import metadata as meta
from brain_ai.nir.discretization import check_dt, nir_r, nir_tau
from brain_ai.nir.graph import NIRNetwork
from brain_ai.nir.modules import Delay, LeakyIntegrator, Scale, SumPool2d, Threshold
from brain_ai.physics import rules
from brain_ai.physics.surrogates import ATan

__all__ = ["CARRY", "to_nir"]

#: What ``carry`` may be: ``None`` (refuse what NIR cannot express) or ``"metadata"``.
CARRY = (None, "metadata")


@dataclass
class _Piece:
    """The NIR nodes of one brain_ai layer: ``entry`` receives the layer's input, ``exit``
    emits its output."""

    nodes: dict[str, Any]
    entry: str
    exit: str
    edges: list[tuple[str, str]] = field(default_factory=list)


def _arr(t: Tensor, shape: Sequence[int] | None = None) -> np.ndarray:
    """float32 numpy array (of ``shape`` when given: broadcast, never 0-d)."""
    a = t.detach().to(torch.float32).cpu()
    if shape is not None:
        a = a.expand(tuple(shape)) if a.dim() <= len(shape) else a
    return np.ascontiguousarray(a.numpy()).copy()


def _f64(t: Tensor | float | None, shape: Sequence[int], default: float = 0.0) -> Tensor:
    if t is None:
        return torch.full(tuple(shape), default, dtype=torch.float64)
    v = t.detach().to(torch.float64).cpu() if isinstance(t, Tensor) \
        else torch.tensor(float(t), dtype=torch.float64)
    return v.expand(tuple(shape)).clone()


def _where(name: str) -> str:
    return f"to_nir ({name})"


def _lost_training(m: nn.Module, defaults: dict[str, bool]) -> list[str]:
    """Learnable/frozen flags that differ from what from_nir rebuilds."""
    lost = []
    for pname, learn_default in defaults.items():
        t = getattr(m, pname, None)
        if t is None:
            continue
        learnable = isinstance(t, nn.Parameter) and t.requires_grad
        if learnable != learn_default:
            lost.append(f"{pname} {'learnable' if learnable else 'frozen'}")
    return lost


def _neuron_piece(name: str, m: SpikingNeuronBase, shape: tuple[int, ...], dt: float,
                  discretization: str) -> tuple[_Piece, list[str]]:
    """NIR nodes of one neuron and the list of features NIR cannot express."""
    where = _where(name)
    if isinstance(m, AdvancedLIFNeuron):
        raise ConversionError(where, "AdvancedLIFNeuron has no NIR form",
                              got="learnable fractional delays and per-neuron adaptation",
                              expected="LIFNeuron, RecurrentLIFNeuron, AdaptiveLIFNeuron",
                              hint="export a LIFNeuron (integer delays: brain_ai.nir.Delay)")
    p = m.params()
    spiking = not isinstance(m, LeakyIntegrator)
    leak = p.leak.detach().to(torch.float64).cpu()
    ch = p.charge
    q = {"beta": lambda: 1.0 - leak, "tau": lambda: 1.0 / leak, "tau_input": lambda: 1.0 / leak,
         "rate": lambda: leak, "rate_input": lambda: leak}[ch]().expand(shape).clone()
    gc = {"beta": 1.0, "tau": 1.0, "rate": 1.0}.get(ch)
    g_c = _f64(gc if gc is not None else (1.0 / leak if ch == "tau_input" else leak), shape)
    c = float(p.v_reset)
    leak_target = _f64(0.0 if ch == "beta" else c, shape)
    g_in = _f64(m.input_gain, shape, 1.0)
    bias = getattr(m, "input_bias", None)
    offset = _f64(getattr(m, "membrane_offset", None), shape)
    theta = _f64(p.threshold, shape)
    alpha = None if p.alpha is None else _f64(p.alpha, shape)

    lost: list[str] = []
    if spiking:
        if p.reset == "subtract":
            lost.append("reset='subtract' (NIR resets to v_reset)")
        elif p.reset == "none":
            lost.append("reset='none' (a NIR LIF always resets)")
        if p.reset_timing != "immediate" and not rules.equivalent_immediate(
                p.reset, p.reset_timing, bool((theta > 0).all()), c):
            lost.append(f"reset_timing={p.reset_timing!r} (NIR resets in the step that fires)")
        if p.comparator != ">":
            lost.append(f"comparator={p.comparator!r} (NIR fires on v > threshold)")
    if p.refractory_steps:
        lost.append(f"refractory_steps={p.refractory_steps}")
    if p.graded is not None:
        lost.append("graded_spikes_factor (NIR spikes are 0/1)")
    if isinstance(m, AdaptiveLIFNeuron):
        lost.append("adaptive threshold")
    if m.surrogate != ATan():
        lost.append(f"surrogate={m.surrogate!r}")
    learnable = sorted(n for n, t in m.named_parameters(recurse=False))
    if learnable:
        lost.append(f"learnable {', '.join(learnable)}")
    if m.detach_reset:
        lost.append("detach_reset=True")
    if m.chunk_size is not None:
        lost.append(f"chunk_size={m.chunk_size}")
    if m.dtype_policy != "float32":
        lost.append(f"dtype_policy={m.dtype_policy!r}")

    def refuse(what: str, got: object, hint: str) -> ConversionError:
        return ConversionError(where, what, got=got, expected="a neuron with a NIR primitive",
                               hint=hint)

    nodes: dict[str, Any] = {}
    off_thr = theta + offset
    off_reset = torch.full(shape, c, dtype=torch.float64) + offset
    integrator = bool((q == 0).all())
    if not integrator and bool((q == 0).any()):
        raise refuse("some neurons leak and some do not", "A = 1 for part of the population",
                     "NIR has no node mixing LIF and IF neurons; split the layer")
    if integrator:
        if alpha is not None:
            raise refuse("a current-based integrator has no NIR node", "beta = 1 with alpha",
                         "use a leak (beta < 1) or drop the synapse")
        if bias is not None:
            raise refuse("an integrator with an input bias has no NIR node", "input_bias",
                          "fold the bias into the preceding layer")
        r = (g_c * g_in / dt).to(torch.float32)
        if spiking:
            nodes[name] = nir.IF(r=_arr(r), v_threshold=_arr(off_thr),
                                 v_reset=_arr(off_reset))
        else:
            if bool((offset != 0).any()):
                raise refuse("an integrator with a membrane offset has no NIR node",
                             "membrane_offset", "NIR's I starts at 0 and has no v_leak")
            nodes[name] = nir.I(r=_arr(r))
    else:
        decay = 1.0 - q
        tau = nir_tau(decay, dt, discretization)
        if alpha is None:
            r = nir_r(g_c * g_in, decay)
            v_leak = leak_target + offset
            if bias is not None:
                v_leak = v_leak + g_c * _f64(bias, shape) / q
            args = dict(tau=_arr(tau), r=_arr(r), v_leak=_arr(v_leak))
            nodes[name] = (nir.LIF(**args, v_threshold=_arr(off_thr), v_reset=_arr(off_reset))
                           if spiking else nir.LI(**args))
        else:
            if bias is not None:
                raise refuse("an input bias before a current-based synapse has no NIR node",
                             "input_bias with alpha", "drop the bias or the synapse")
            if bool((alpha >= 1).any()):
                raise refuse("a synapse without decay (alpha = 1) has no NIR time constant",
                              "alpha = 1", "use alpha < 1")
            tau_syn = nir_tau(alpha, dt, discretization)
            w_in = (g_in / (1.0 - alpha)).to(torch.float32)
            r = nir_r(g_c, decay)
            args = dict(tau_syn=_arr(tau_syn), tau_mem=_arr(tau), r=_arr(r),
                        v_leak=_arr(leak_target + offset), w_in=_arr(w_in))
            nodes[name] = (nir.CubaLIF(**args, v_threshold=_arr(off_thr),
                                       v_reset=_arr(off_reset))
                           if spiking else nir.CubaLI(**args))
    piece = _Piece(nodes, entry=name, exit=name)
    if isinstance(m, RecurrentLIFNeuron):
        lost += _recurrent_nodes(where, name, m, shape, piece,
                                 g_in if alpha is not None else g_c * g_in)
    return piece, lost


def _recurrent_nodes(where: str, name: str, m: RecurrentLIFNeuron, shape: tuple[int, ...],
                     piece: _Piece, gain: Tensor) -> list[str]:
    """Add the recurrent (and input projection) nodes of ``m`` to ``piece``."""
    lost: list[str] = []
    if bool((gain == 0).any()):
        raise ConversionError(where, "the recurrent weights cannot be scaled to NIR units",
                              got="a zero input gain", expected="non-zero input gain",
                              hint="a neuron with input gain 0 ignores its inputs")
    rec = m.recurrent
    rec_name = f"{name}_rec"
    if not any(p.requires_grad for p in rec.parameters()) and any(True for _ in rec.parameters()):
        lost.append("frozen recurrent weights (learn_recurrent=False)")
    if m.recurrent_kind == "conv2d":
        if len(shape) != 3 or bool((gain != gain.flatten()[0]).any()):
            raise ConversionError(where, "a conv2d recurrence needs one input gain for all "
                                  "neurons", got="a per-neuron gain", expected="a uniform gain",
                                  hint="use a scalar input_gain / leak for this neuron")
        gv = float(gain.flatten()[0])
        w = rec.weight.detach().double() / gv  # type: ignore[operator]
        b = (torch.zeros(w.shape[0], dtype=torch.float64) if rec.bias is None
             else rec.bias.detach().double() / gv)  # type: ignore[operator,union-attr]
        piece.nodes[rec_name] = nir.Conv2d(
            input_shape=tuple(shape[1:]), weight=_arr(w), stride=1,
            padding=int(rec.padding[0]), dilation=1, groups=1, bias=_arr(b))  # type: ignore[index]
    else:
        if len(shape) != 1:
            raise ConversionError(where, "a linear recurrence needs a vector of neurons",
                                  got=shape, expected="(N,)", hint="flatten the features first")
        rows = gain.reshape(-1, 1)
        if m.recurrent_kind == "one_to_one":
            w = torch.diag(_f64(rec.V, shape)) / rows  # type: ignore[arg-type]
            b = None
        else:
            w = rec.weight.detach().double() / rows  # type: ignore[operator]
            b = None if rec.bias is None else rec.bias.detach().double() / gain  # type: ignore[operator,union-attr]
        if b is not None and bool((b != 0).any()):
            lost.append("recurrent bias (brain_ai adds it at step 0; NIR's back edge "
                        "carries 0 there)")
        piece.nodes[rec_name] = (nir.Linear(weight=_arr(w)) if b is None
                                 else nir.Affine(weight=_arr(w), bias=_arr(b)))
    piece.edges += [(name, rec_name), (rec_name, name)]
    if m.input_proj is not None:
        if m.input_gain is not None:
            raise ConversionError(where, "input_gain scales the input before the projection "
                                  "(in_features), which has no NIR node", got="input_gain "
                                  "with in_features", expected="one of the two",
                                  hint="fold the gain into the projection's weights")
        proj_name = f"{name}_in"
        proj = m.input_proj
        piece.nodes[proj_name] = nir.Affine(weight=_arr(proj.weight), bias=_arr(proj.bias))
        piece.edges.append((proj_name, name))
        piece.entry = proj_name
        lost += _lost_training(proj, {"weight": True, "bias": True})
    return lost


def _ints(v: Any, n: int) -> tuple[int, ...]:
    return tuple(int(x) for x in (v if isinstance(v, (tuple, list)) else (v,) * n))


def _stateless_piece(name: str, m: nn.Module, shape: tuple[int, ...], dt: float
                     ) -> tuple[_Piece, list[str]]:
    where = _where(name)
    lost: list[str] = []
    if isinstance(m, nn.Linear):
        lost = _lost_training(m, {"weight": True, "bias": True})
        node: Any = (nir.Affine(weight=_arr(m.weight), bias=_arr(m.bias)) if m.bias is not None
                     else nir.Linear(weight=_arr(m.weight)))
    elif isinstance(m, (nn.Conv1d, nn.Conv2d)):
        if m.padding_mode != "zeros":
            raise ConversionError(where, "NIR convolutions pad with zeros",
                                  got=f"padding_mode={m.padding_mode!r}",
                                  expected="padding_mode='zeros'", hint="pad explicitly first")
        lost = _lost_training(m, {"weight": True, "bias": True})
        k = 1 if isinstance(m, nn.Conv1d) else 2
        bias = (m.bias.detach() if m.bias is not None
                else torch.zeros(m.out_channels, dtype=m.weight.dtype))
        padding: Any = m.padding if isinstance(m.padding, str) else _ints(m.padding, k)
        if k == 1:
            node = nir.Conv1d(input_shape=int(shape[1]), weight=_arr(m.weight),
                              stride=int(m.stride[0]),
                              padding=padding if isinstance(padding, str) else padding[0],
                              dilation=int(m.dilation[0]), groups=int(m.groups), bias=_arr(bias))
        else:
            node = nir.Conv2d(input_shape=tuple(int(s) for s in shape[1:]),
                              weight=_arr(m.weight), stride=_ints(m.stride, 2), padding=padding,
                              dilation=_ints(m.dilation, 2), groups=int(m.groups),
                              bias=_arr(bias))
    elif isinstance(m, nn.AvgPool2d):
        if m.ceil_mode or m.divisor_override is not None or (
                not m.count_include_pad and any(_ints(m.padding, 2))):
            raise ConversionError(where, "only a plain AvgPool2d maps to NIR",
                                  got=repr(m), expected="ceil_mode=False, no divisor_override, "
                                  "count_include_pad=True", hint="use the defaults")
        stride = m.kernel_size if m.stride is None else m.stride
        node = nir.AvgPool2d(kernel_size=np.array(_ints(m.kernel_size, 2)),
                             stride=np.array(_ints(stride, 2)),
                             padding=np.array(_ints(m.padding, 2)))
    elif isinstance(m, SumPool2d):
        node = nir.SumPool2d(kernel_size=np.array(_ints(m.kernel_size, 2)),
                             stride=np.array(_ints(m.stride, 2)),
                             padding=np.array(_ints(m.padding, 2)))
    elif isinstance(m, nn.Flatten):
        start = m.start_dim if m.start_dim >= 0 else m.start_dim + len(shape) + 1
        if start < 1:
            raise ConversionError(where, "the Flatten would merge the batch axis",
                                  got=f"start_dim={m.start_dim}", expected="start_dim >= 1",
                                  hint="brain_ai layers see (B, *features) per step")
        end = m.end_dim if m.end_dim < 0 else m.end_dim - 1
        node = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=start - 1,
                           end_dim=end)
    elif isinstance(m, Scale):
        lost = _lost_training(m, {"scale": True})
        node = nir.Scale(scale=_arr(m.scale, shape))
    elif isinstance(m, Threshold):
        if m.surrogate != ATan():
            lost.append(f"surrogate={m.surrogate!r}")
        node = nir.Threshold(threshold=_arr(m.threshold, shape))
    elif isinstance(m, Delay):
        steps = m.steps.expand(shape).to(torch.float64) * dt
        node = nir.Delay(delay=_arr(steps))
    else:
        raise ConversionError(where, f"{type(m).__name__} has no NIR primitive",
                              got=type(m).__name__,
                              expected="Linear, Conv1d, Conv2d, AvgPool2d, Flatten, "
                              "brain_ai.nir.{Scale, SumPool2d, Threshold, Delay}, or a neuron",
                              hint="MaxPool2d: use AvgPool2d/SumPool2d; BatchNorm: fold it into "
                                   "the preceding convolution; Dropout: remove it for export")
    return _Piece({name: node}, entry=name, exit=name), lost


def _out_shape(where: str, m: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(m, RecurrentLIFNeuron) and m.input_proj is not None:
        return (m.input_proj.out_features,)
    if isinstance(m, (SpikingNeuronBase, Delay)):
        return shape
    p = next(iter(m.parameters()), None)
    dtype = p.dtype if p is not None else torch.float32
    try:
        with torch.no_grad():
            return tuple(m(torch.zeros((1, *shape), dtype=dtype)).shape[1:])
    except Exception as exc:  # the layer rejects the shape: say which layer and why
        raise ConversionError(where, "the layer cannot take the input shape",
                              got=f"{shape}: {type(exc).__name__}: {exc}",
                              expected="the shape the previous layer produces",
                              hint="pass input_shape=(per-sample shape) to to_nir") from exc


def _input_shape(model: nn.Module, layers: list[tuple[str, nn.Module]],
                 given: Sequence[int] | None) -> tuple[int, ...]:
    if given is not None:
        return tuple(int(s) for s in given)
    for _, m in layers:
        if isinstance(m, nn.Identity):
            continue
        if isinstance(m, nn.Linear):
            return (m.in_features,)
        if isinstance(m, SpikingNeuronBase) and m.input_features() is not None:
            return tuple(m.input_features())  # type: ignore[arg-type]
        break
    raise ConfigError("to_nir.input_shape", "cannot infer the per-sample input shape",
                      got=type(model).__name__, expected="input_shape=(C, H, W) or (N,)",
                      hint="pass input_shape=... (without batch and time axes)")


def _layers(model: nn.Module) -> tuple[str, list[tuple[str, nn.Module]]]:
    if isinstance(model, SpikingSequential):
        names = getattr(model, "nir_names", {})
        return "SpikingSequential", [(names.get(k, k), m) for k, m in model.named_children()]
    if isinstance(model, SpikingNeuronBase):
        return "neuron", [(type(model).__name__.lower(), model)]
    raise ConversionError("to_nir", "this model type cannot be exported",
                          got=type(model).__name__,
                          expected="SpikingSequential, a brain_ai neuron, or a NIRNetwork",
                          hint="wrap the layers in brain_ai.SpikingSequential(...)")


def _unique(name: str, taken: set[str]) -> str:
    out, i = name, 0
    while out in taken:
        i += 1
        out = f"{name}_{i}"
    taken.add(out)
    return out


def to_nir(model: nn.Module, dt: float, *, discretization: str = "euler",
           carry: str | None = None, input_shape: Sequence[int] | None = None) -> Any:
    """Export a brain_ai model as a ``nir.NIRGraph`` (see the module docstring).

    Args:
        model: a :class:`~brain_ai.core.snn.SpikingSequential`, a single neuron, or a
            :class:`~brain_ai.nir.NIRNetwork`.
        dt: seconds per step (NIR stores continuous time constants).
        discretization: ``"euler"`` (default) or ``"exact"``: how a step relates to the ODE.
        carry: ``None`` (default) refuses anything NIR cannot express; ``"metadata"`` writes it
            into node metadata so that :func:`~brain_ai.nir.from_nir` restores it exactly.
        input_shape: per-sample input shape (no batch/time axes); inferred from the first
            layer when it is a Linear or a neuron with ``features``.
    Returns:
        A type-checked ``nir.NIRGraph`` (``nir.write`` writes it; ``nir.read`` reads it back
        with type checking on). Graph metadata: ``dt``, ``discretization``, ``source``.
    Raises:
        ConversionError: a layer has no exact NIR form (the message names it and the fix).
    """
    dt = check_dt("to_nir", dt, discretization)
    check_choice("to_nir", "carry", carry, CARRY,
                 hint="None refuses what NIR cannot express; 'metadata' carries it")
    if isinstance(model, NIRNetwork):
        return _export_network(model, dt, discretization, carry)
    container, layers = _layers(model)
    shape = _input_shape(model, layers, input_shape)
    taken = {n for n, _ in layers}
    in_name, out_name = _unique("input", taken), _unique("output", taken)
    nodes: dict[str, Any] = {in_name: nir.Input(input_type=np.array(shape))}
    edges: list[tuple[str, str]] = []
    prev = in_name
    identities: list[str] = []
    for name, m in layers:
        if isinstance(m, nn.Identity):
            identities.append(name)
            continue
        piece = _piece(name, m, shape, dt, discretization, carry, taken)
        nodes.update(piece.nodes)
        edges += piece.edges
        edges.append((prev, piece.entry))
        prev = piece.exit
        shape = _out_shape(_where(name), m, shape)
    nodes[out_name] = nir.Output(output_type=np.array(shape))
    edges.append((prev, out_name))
    extra: dict[str, Any] = {}
    if carry == "metadata":
        spec: dict[str, Any] = {"container": container,
                                "layers": [n for n, _ in layers], "identity": identities}
        if isinstance(model, SpikingSequential):
            spec.update(fold_time=bool(model.fold_time), chunk_size=model.chunk_size)
        extra = {meta.KEY: json.dumps(spec, sort_keys=True)}
    return _graph(nodes, edges, dt, discretization, extra)


def _piece(name: str, m: nn.Module, shape: tuple[int, ...], dt: float, discretization: str,
           carry: str | None, taken: set[str]) -> _Piece:
    where = _where(name)
    if isinstance(m, SpikingNeuronBase):
        piece, lost = _neuron_piece(name, m, shape, dt, discretization)
    else:
        piece, lost = _stateless_piece(name, m, shape, dt)
    for extra in [n for n in piece.nodes if n != name]:
        if extra in taken:
            raise ConversionError(where, f"the node name {extra!r} is taken by another layer",
                                  got=extra, expected="unique layer names",
                                  hint="rename the layer")
        taken.add(extra)
    if lost and carry is None:
        raise ConversionError(
            where, f"{type(m).__name__} has features NIR cannot express", got="; ".join(lost),
            expected="what a NIR node states (zero reset to v_reset, immediate, '>', 0/1 "
                     "spikes, default surrogate, fixed parameters)",
            hint="pass carry='metadata' (CLI: --carry metadata) to keep them in node metadata "
                 "(brain_ai.nir.from_nir restores them exactly; other NIR readers see the NIR "
                 "semantics only), or change the layer")
    if carry == "metadata":
        if isinstance(m, SpikingNeuronBase):
            node_meta = meta.encode(meta.neuron_spec(where, m), m.state_dict())
        else:
            frozen = sorted(n for n, p in m.named_parameters() if not p.requires_grad)
            spec: dict[str, Any] = {"frozen": frozen}
            if isinstance(m, Threshold):
                spec["surrogate"] = meta.surrogate_spec(where, m.surrogate)
            node_meta = meta.encode(spec)
        piece.nodes[name].metadata = {meta.KEY: node_meta}
        for extra in piece.nodes:
            if extra != name:
                piece.nodes[extra].metadata = {
                    meta.KEY: meta.encode({"part_of": name})}
    return piece


def _graph(nodes: dict[str, Any], edges: list[tuple[str, str]], dt: float,
           discretization: str, extra: dict[str, Any]) -> Any:
    from importlib.metadata import PackageNotFoundError, version

    try:
        source = f"brain_ai {version('brain-ai-snn')}"
    except PackageNotFoundError:  # a source checkout that is not installed
        source = "brain_ai"
    md = {"dt": dt, "discretization": discretization, "source": source, **extra}
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=md, type_check=True)
    except ValueError as exc:  # NIR's own type check: a shape this exporter got wrong
        raise ConversionError("to_nir", "NIR's type check rejects the exported graph",
                              got=str(exc), expected="consistent node types",
                              hint="pass input_shape=... so every layer sees its real shape"
                              ) from exc


def _export_network(net: NIRNetwork, dt: float, discretization: str,
                    carry: str | None) -> Any:
    """A :class:`NIRNetwork` back to the graph it was built from (names and edges kept)."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, str] = {}
    exit_: dict[str, str] = {}
    taken = set(net.keys)
    for name in net.input_names:
        nodes[name] = nir.Input(input_type=np.array(net.input_shapes[name]))
    for name in net.order:
        m = net.module(name)
        if m is None:
            if name in net.output_names:
                nodes[name] = nir.Output(output_type=np.array(net.output_shapes[name]))
            else:  # an inlined subgraph port: a pass-through
                nodes[name] = nir.Scale(scale=np.ones(net.in_shapes[name], np.float32))
            entry[name] = exit_[name] = name
            continue
        piece = _piece(name, m, net.in_shapes[name], dt, discretization, carry, taken)
        nodes.update(piece.nodes)
        edges += piece.edges
        entry[name], exit_[name] = piece.entry, piece.exit
    for src, dst in net.edges:
        edges.append((exit_.get(src, src), entry.get(dst, dst)))
    extra = {meta.KEY: json.dumps({"container": "NIRNetwork"})} if carry == "metadata" else {}
    return _graph(nodes, edges, dt, discretization, extra)
