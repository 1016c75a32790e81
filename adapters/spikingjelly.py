r"""SpikingJelly 2.0.0 (``activation_based``) <-> brain_ai, exact to the bit.

Neurons, surrogates, explicit state and whole ``nn.Sequential`` models convert both ways.
Every supported SpikingJelly (SJ) neuron is a :class:`~brain_ai.core.neurons.LIFNeuron` with
SJ's rules (:mod:`brain_ai.physics.rules`): comparator ``">="`` (ties fire), reset timing
``"immediate"`` (SJ's ``v`` is post-reset), SJ's charge expression in SJ's operation order,
and the ``_ops`` surrogate-gradient formulas. On fp32 CPU the spikes and the membrane
(SJ ``v_seq``) are bit-identical in both step modes; gradients agree within 1e-6 relative
(bit for bit on brain_ai's step path; ≈1e-7 where brain_ai's fused sequence kernel or SJ's
``CUBALIFNode``, which calls the surrogate *class*, sums in another order). Other dtypes: SJ
keeps python-float θ/τ at full precision, brain_ai stores them as fp32 tensors, so fp64 runs
are close, not exact.

Public API: :func:`from_spikingjelly` / :func:`to_spikingjelly` (neurons),
:func:`surrogate_from_spikingjelly` / :func:`surrogate_to_spikingjelly`,
:func:`state_from_spikingjelly` / :func:`state_to_spikingjelly` (explicit state, nothing left
on the module), :func:`run_spikingjelly` (an SJ node driven batch-first, like a brain_ai
neuron), :func:`migrate` (any model, converted in place with its own ``forward`` — the zoo's
ResNets, VGGs, PLIF nets, MS-ResNets, Spikformer, SDT, QKFormer, MA-SNN — or an
``nn.Sequential`` -> :class:`SpikingSequential`) and :func:`verify_spikingjelly_migration`
(the migration report, per neuron for any topology).

The mapping table (the only place peer parameters are mapped; both directions read it):

=========================================  ====================================================
SpikingJelly                               brain_ai ``LIFNeuron``
=========================================  ====================================================
``IFNode``                                 ``charge="beta"``, ``beta=1`` (``beta_clamp=(0, 1)``)
``HalfThresholdIFNode(v_threshold=θ)``     ``charge="beta"``, ``beta=1``, subtract, ``v_reset=θ/2``
``LIFNode(tau, decay_input=True)``         ``charge="tau_input"``, ``tau``
``LIFNode(tau, decay_input=False)``        ``charge="tau"``, ``tau``
``ParametricLIFNode(decay_input=True)``    ``charge="rate_input"``, ``w`` copied (``q=sigmoid(w)``)
``ParametricLIFNode(decay_input=False)``   ``charge="rate"``, ``w`` copied
``CUBALIFNode(c_decay, v_decay)``          ``charge="beta"``, ``beta=v_decay``, ``alpha=c_decay``
``v_threshold``                            ``threshold``
``v_reset=r`` (float) / ``None``           ``reset="zero", v_reset=r`` / ``reset="subtract"``
``detach_reset``                           ``detach_reset``
``surrogate_function``                     ``surrogate`` (:data:`SURROGATE_TABLE`)
(fixed)                                    ``comparator=">="``, ``reset_timing="immediate"``,
                                           ``dtype_policy="input"``
memory ``v`` / ``c``                       ``state.v`` / ``state.i``
=========================================  ====================================================

A brain_ai ``charge="beta"`` neuron without synapse and ``β ≠ 1`` exports as
``CUBALIFNode(c_decay=0.0, v_decay=β)`` (``c = 0·c + x = x`` exactly).

Layouts: SJ multi-step tensors are time-first ``(T, B, ...)``; everything here that faces
brain_ai is batch-first ``(B, T, ...)``, converted only through
:func:`~brain_ai.physics.axes.time_to_batch_first` /
:func:`~brain_ai.physics.axes.batch_to_time_first`.

Not supported (``ConversionError`` names them, with the path in a model): every other SJ
neuron (QIF, EIF, Izhikevich, KLIF, LIAF, CLIF, RAF, ILIF, PSN, ``Simple*``, ...), the
online-learning ``OTTTLIFNode``/``SLTTLIFNode`` (trace-based gradients, not BPTT),
surrogates other than the eight of :data:`SURROGATE_TABLE`,
``spiking=False`` surrogates, subclasses of SJ surrogates, tensor ``alpha``, SJ mixed-precision
neurons, and on the way back any brain_ai feature SJ lacks (comparator ``">"``, other reset
timings, ``reset="none"``, learnable or per-neuron τ/β/θ except PLIF's scalar ``w``,
adaptation, recurrence, delays, refractory periods, graded spikes).
"""

from __future__ import annotations

import contextlib
import copy
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from brain_ai.adapters import spikingjelly_layers as sjl
from brain_ai.adapters.hidden_state import attach, stores
from brain_ai.adapters.metrics import max_abs_diff
from brain_ai.adapters.verify import (
    MigrationReport,
    Recorder,
    compare_runs,
    flat_output,
    isolated,
    seeded,
)
from brain_ai.core.neurons import LIFNeuron
from brain_ai.core.snn import SpikingSequential
from brain_ai.errors import ConversionError, PeerMissingError, ShapeError
from brain_ai.physics.axes import batch_to_time_first, time_to_batch_first
from brain_ai.physics.state import SpikingState
from brain_ai.physics.surrogates import (
    ATan,
    Erf,
    PiecewiseExp,
    PiecewiseQuadratic,
    Rect,
    Sigmoid,
    SoftSign,
    SuperSpike,
    Surrogate,
)

try:
    from spikingjelly.activation_based import base as sj_base
    from spikingjelly.activation_based import layer as sj_layer
    from spikingjelly.activation_based import neuron as sj_neuron
    from spikingjelly.activation_based import surrogate as sj_surrogate
    from spikingjelly.activation_based.layer import attention as sj_attention
except ImportError as exc:  # pragma: no cover - SpikingJelly is installed in CI
    raise PeerMissingError(
        "brain_ai.adapters.spikingjelly", "SpikingJelly is not installed",
        got=repr(exc), expected="spikingjelly==2.0.0",
        hint="pip install spikingjelly==2.0.0",
    ) from exc

__all__ = [
    "NODE_TABLE",
    "SURROGATE_TABLE",
    "NodeRule",
    "from_spikingjelly",
    "migrate",
    "migrate_module",
    "run_spikingjelly",
    "state_from_spikingjelly",
    "state_to_spikingjelly",
    "surrogate_from_spikingjelly",
    "surrogate_to_spikingjelly",
    "to_spikingjelly",
    "verify_spikingjelly_migration",
]


# ============================================================================ mapping table


@dataclass(frozen=True)
class NodeRule:
    """One row of the neuron table: an SJ node class (and option) <-> a brain_ai charge rule.

    Attributes:
        sj_class: the SpikingJelly node class (matched exactly, never a subclass).
        charge: the brain_ai charge rule (:mod:`brain_ai.physics.rules`).
        decay_input: SJ's ``decay_input`` for this row (``None``: the node has no such option).
        leak: SJ attribute holding the leak (``"tau"``, ``"w"``, ``"v_decay"``), or ``None``
            for a fixed ``β = 1`` (integrate-and-fire).
        synapse: SJ attribute holding the synaptic decay (brain_ai ``alpha``), or ``None``.
        memories: SJ memory name -> :class:`SpikingState` field.
    """

    sj_class: type
    charge: str
    decay_input: bool | None = None
    leak: str | None = None
    synapse: str | None = None
    memories: tuple[tuple[str, str], ...] = (("v", "v"),)


NODE_TABLE: tuple[NodeRule, ...] = (
    NodeRule(sj_neuron.IFNode, "beta"),
    NodeRule(sj_neuron.HalfThresholdIFNode, "beta"),
    NodeRule(sj_neuron.LIFNode, "tau_input", decay_input=True, leak="tau"),
    NodeRule(sj_neuron.LIFNode, "tau", decay_input=False, leak="tau"),
    NodeRule(sj_neuron.ParametricLIFNode, "rate_input", decay_input=True, leak="w"),
    NodeRule(sj_neuron.ParametricLIFNode, "rate", decay_input=False, leak="w"),
    NodeRule(sj_neuron.CUBALIFNode, "beta", leak="v_decay", synapse="c_decay",
             memories=(("v", "v"), ("c", "i"))),
)
"""SJ node <-> brain_ai charge rule (see the module table)."""

SURROGATE_TABLE: tuple[tuple[type, type[Surrogate]], ...] = (
    (sj_surrogate.Sigmoid, Sigmoid),
    (sj_surrogate.ATan, ATan),
    (sj_surrogate.PiecewiseQuadratic, PiecewiseQuadratic),
    (sj_surrogate.PiecewiseExp, PiecewiseExp),
    (sj_surrogate.SoftSign, SoftSign),
    (sj_surrogate.SuperSpike, SuperSpike),
    (sj_surrogate.Erf, Erf),
    (sj_surrogate.Rect, Rect),
)
"""SJ surrogate class <-> brain_ai surrogate class; both carry ``alpha`` (same meaning).
The first seven are SJ's registered ``_ops`` formulas; ``Rect`` is not registered, so SJ
neurons call its class backward, which brain_ai's ``Rect`` writes in the same order."""

FIXED_RULES: Mapping[str, str] = {"comparator": ">=", "reset_timing": "immediate",
                                  "dtype_policy": "input"}
"""brain_ai options every SJ neuron has (ties fire; post-reset ``v``; state in input dtype)."""

_STATELESS_WRAPPERS: tuple[tuple[type, type], ...] = (
    (sj_layer.Linear, nn.Linear),
    (sj_layer.Conv1d, nn.Conv1d), (sj_layer.Conv2d, nn.Conv2d), (sj_layer.Conv3d, nn.Conv3d),
    (sj_layer.BatchNorm1d, nn.BatchNorm1d), (sj_layer.BatchNorm2d, nn.BatchNorm2d),
    (sj_layer.BatchNorm3d, nn.BatchNorm3d),
    (sj_layer.MaxPool1d, nn.MaxPool1d), (sj_layer.MaxPool2d, nn.MaxPool2d),
    (sj_layer.MaxPool3d, nn.MaxPool3d),
    (sj_layer.AvgPool1d, nn.AvgPool1d), (sj_layer.AvgPool2d, nn.AvgPool2d),
    (sj_layer.AvgPool3d, nn.AvgPool3d),
    (sj_layer.AdaptiveAvgPool1d, nn.AdaptiveAvgPool1d),
    (sj_layer.AdaptiveAvgPool2d, nn.AdaptiveAvgPool2d),
    (sj_layer.AdaptiveAvgPool3d, nn.AdaptiveAvgPool3d),
    (sj_layer.Flatten, nn.Flatten),
)
"""SJ ``layer.*`` stateless wrapper -> the plain torch layer it wraps (same weights)."""

_PLAIN_STATELESS: tuple[type, ...] = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.Flatten,
    nn.Identity, nn.ReLU, nn.Dropout, nn.Dropout2d,
)
"""Plain torch layers allowed where they see one time step or folded time ``(T·B, ...)``."""

_ELEMENTWISE: tuple[type, ...] = (nn.Linear, nn.Identity, nn.ReLU)
"""Plain torch layers that act the same on ``(T, B, ..., F)`` (top level of a multi-step net)."""

_SUPPORTED_NODES = ", ".join(dict.fromkeys(r.sj_class.__name__ for r in NODE_TABLE))
_SUPPORTED_SURROGATES = ", ".join(sj.__name__ for sj, _ in SURROGATE_TABLE)


# ============================================================================ helpers


def _scalar(where: str, name: str, value: object) -> float:
    """A Python float from an SJ option (float, int or one-element tensor)."""
    if isinstance(value, Tensor) and value.numel() == 1:
        return float(value.detach())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ConversionError(where, f"{name} must be a scalar", got=repr(value),
                          expected="a float", hint="per-neuron values have no SJ counterpart")


def _rule_for_node(where: str, node: nn.Module) -> NodeRule:
    for rule in NODE_TABLE:
        if type(node) is rule.sj_class and (
                rule.decay_input is None or bool(node.decay_input) is rule.decay_input):
            return rule
    raise ConversionError(
        where, f"SpikingJelly {type(node).__name__} has no exact brain_ai counterpart",
        got=type(node).__name__, expected=_SUPPORTED_NODES,
        hint="its dynamics are not a LIF-family rule; keep it in SpikingJelly or file an "
             "issue naming the expression it computes")


def surrogate_from_spikingjelly(sg: nn.Module | None) -> Surrogate:
    """The brain_ai surrogate whose gradient equals SJ's ``_ops`` formula for ``sg``.

    ``None`` (SJ's functional default) is ``Sigmoid(alpha=4)``.

    Raises:
        ConversionError: ``spiking=False`` (primitive mode), a tensor ``alpha``, a subclass,
            or a surrogate outside :data:`SURROGATE_TABLE` (e.g. ``Rect``).
    """
    where = "surrogate_from_spikingjelly"
    if sg is None:
        return Sigmoid(4.0)
    ba_cls = dict(SURROGATE_TABLE).get(type(sg))
    if ba_cls is None:
        raise ConversionError(
            where, f"SpikingJelly surrogate {type(sg).__name__} has no brain_ai counterpart",
            got=type(sg).__name__, expected=_SUPPORTED_SURROGATES,
            hint="retrain or fine-tune with one of the supported surrogates (subclasses take "
                 "SJ's class-order path and are refused too)")
    if not getattr(sg, "spiking", True):
        raise ConversionError(
            where, "spiking=False (primitive mode) surrogates emit continuous values, not "
                   "spikes", got="spiking=False", expected="spiking=True",
            hint="call surrogate.set_spiking_mode(True) before converting")
    alpha = sg.alpha
    if isinstance(alpha, Tensor) or not isinstance(alpha, (int, float)):
        raise ConversionError(
            where, "a tensor alpha (learnable surrogate width) is not supported",
            got=f"alpha={alpha!r}", expected="a Python float",
            hint="set surrogate.alpha = float(surrogate.alpha)")
    return ba_cls(alpha=float(alpha))  # type: ignore[call-arg]


def surrogate_to_spikingjelly(sg: Surrogate) -> nn.Module:
    """The SJ surrogate module (``spiking=True``) whose ``_ops`` gradient equals ``sg``'s.

    Raises:
        ConversionError: for brain_ai surrogates SJ lacks (``FastSigmoid``, ``STE``,
            ``Triangular``): SJ's ``SuperSpike`` is ``alpha/(1+|x|)²``, not snnTorch's
            ``1/(1+slope·|x|)²``.
    """
    for sj_cls, ba_cls in SURROGATE_TABLE:
        if type(sg) is ba_cls:
            return sj_cls(alpha=float(sg.alpha), spiking=True)  # type: ignore[attr-defined]
    raise ConversionError(
        "surrogate_to_spikingjelly", f"brain_ai surrogate {sg!r} has no SpikingJelly counterpart",
        got=type(sg).__name__, expected=", ".join(b.__name__ for _, b in SURROGATE_TABLE),
        hint="use ATan (same gradient as snnTorch atan) or Sigmoid before converting")


# ============================================================================ SJ -> brain_ai


def from_spikingjelly(node: nn.Module) -> LIFNeuron:
    """A brain_ai neuron that computes exactly what the SJ ``node`` computes.

    Args:
        node: ``IFNode``, ``HalfThresholdIFNode``, ``LIFNode``, ``ParametricLIFNode`` or
            ``CUBALIFNode`` (exact classes). PLIF's ``w`` is copied (not shared) and stays
            learnable iff it requires grad. The node's step mode and memories are not read
            (see :func:`state_from_spikingjelly`).
    Returns:
        A :class:`LIFNeuron`; feed it batch-first ``(B, T, *f)`` or one step ``(B, *f)``.
    Raises:
        ConversionError: unsupported node class, option or surrogate (named in the message).
    """
    where = "from_spikingjelly"
    rule = _rule_for_node(where, node)
    if getattr(node, "_neuron_precision", None) is not None:
        raise ConversionError(where, "SJ mixed-precision neuron storage is not supported",
                              got=f"_neuron_precision={node._neuron_precision}",
                              expected="None (fp32 state)",
                              hint="convert the model before prepare_model_for_precision")
    threshold = _scalar(where, "v_threshold", node.v_threshold)
    v_reset_sj = node.v_reset
    kwargs: dict[str, Any] = dict(
        FIXED_RULES, charge=rule.charge, threshold=threshold,
        detach_reset=bool(node.detach_reset),
        surrogate=surrogate_from_spikingjelly(node.surrogate_function),
    )
    if v_reset_sj is None:
        kwargs["reset"], kwargs["v_reset"] = "subtract", 0.0
    else:
        kwargs["reset"], kwargs["v_reset"] = "zero", _scalar(where, "v_reset", v_reset_sj)
    if rule.sj_class is sj_neuron.HalfThresholdIFNode:
        kwargs["v_reset"] = threshold / 2.0  # SJ's initial (and reset()) membrane
    w: Tensor | None = None
    if rule.leak is None:  # integrate-and-fire: 1·v + x == v + x exactly
        kwargs.update(beta=1.0, beta_clamp=(0.0, 1.0))
    elif rule.synapse is not None:  # CUBALIF: c' = c·c_decay + x,  h = v·v_decay + c'
        beta = _scalar(where, rule.leak, getattr(node, rule.leak))
        alpha = _scalar(where, rule.synapse, getattr(node, rule.synapse))
        for name, value in ((rule.leak, beta), (rule.synapse, alpha)):
            if not 0.0 <= value <= 1.0:
                raise ConversionError(where, f"CUBALIFNode.{name} outside [0, 1]",
                                      got=value, expected=f"0 <= {name} <= 1",
                                      hint="brain_ai clamps decays to [0, 1] at use")
        kwargs.update(beta=beta, beta_clamp=(0.0, 1.0), alpha=alpha)
    elif rule.leak == "tau":
        kwargs["tau"] = _scalar(where, "tau", node.tau)
    else:  # PLIF: w is copied below; τ = 2 only builds the parameter slot
        w = node.w
        if not isinstance(w, Tensor) or w.dim() != 0:
            raise ConversionError(where, "ParametricLIFNode.w must be a 0-dim tensor",
                                  got=getattr(w, "shape", w), expected="shape ()",
                                  hint="SJ shares one w across the layer")
        kwargs.update(tau=2.0, learn_tau=bool(w.requires_grad))
    kwargs["kernel"] = None  # the fastest exact kernel; gradients in autograd's (SJ's) order
    try:
        neuron = LIFNeuron(**kwargs)
    except ValueError as exc:
        raise ConversionError(where, f"{type(node).__name__} options are out of brain_ai's "
                              "range", got=str(exc).splitlines()[0], expected="valid options",
                              hint="see the brain_ai error above") from exc
    if w is not None:  # copy PLIF's w bit for bit (-log(τ-1) round-trips only approximately)
        copied = w.detach().clone()
        neuron.w = nn.Parameter(copied) if w.requires_grad else copied
        neuron.to(w.device)
    return neuron


# ============================================================================ brain_ai -> SJ


def _neuron_scalar(where: str, name: str, value: Tensor) -> float:
    """A non-learnable, single-valued neuron tensor as the Python float SJ wants."""
    if isinstance(value, nn.Parameter):
        raise ConversionError(where, f"a learnable {name} has no SpikingJelly counterpart",
                              got=f"{name} is an nn.Parameter", expected="a buffer",
                              hint=f"construct the neuron with learn_{name}=False, or use "
                                   "charge='rate'/'rate_input' (PLIF) for a learnable τ")
    if value.numel() != 1:
        raise ConversionError(where, f"per-neuron {name} has no SpikingJelly counterpart",
                              got=f"shape {tuple(value.shape)}", expected="a scalar",
                              hint=f"SJ's {name} is one float per layer")
    return float(value.detach())


def to_spikingjelly(neuron: LIFNeuron, *, step_mode: str = "s", store_v_seq: bool = False,
                    allow_tie_rule_change: bool = False) -> nn.Module:
    """The SJ node that computes exactly what ``neuron`` computes.

    Args:
        neuron: a :class:`LIFNeuron` with SJ's rules (comparator ``">="``, reset timing
            ``"immediate"``, ``reset`` ``"zero"``/``"subtract"``) and scalar, non-learnable
            τ/β/θ (PLIF's scalar ``w`` may be learnable).
        step_mode: the SJ node's step mode (``"m"`` for time-first ``(T, B, ...)`` input).
        store_v_seq: SJ option (records post-reset ``v`` in ``node.v_seq``).
        allow_tie_rule_change: convert a ``comparator=">"`` neuron anyway (SJ fires at
            ``h == θ`` where brain_ai's would not: lossy on tie inputs).
    Returns:
        ``IFNode``, ``HalfThresholdIFNode``, ``LIFNode``, ``ParametricLIFNode`` (``w`` copied)
        or ``CUBALIFNode`` (``charge="beta"`` with ``β ≠ 1`` or a synapse).
    Raises:
        ConversionError: naming the feature SJ lacks.
    """
    where = "to_spikingjelly"
    if type(neuron) is not LIFNeuron:
        raise ConversionError(where, f"{type(neuron).__name__} has no SpikingJelly counterpart",
                              got=type(neuron).__name__, expected="LIFNeuron",
                              hint="adaptation, recurrence and delays do not exist in SJ's "
                                   "LIF family")
    if step_mode not in ("s", "m"):
        raise ConversionError(where, "unknown step_mode", got=repr(step_mode),
                              expected="'s' | 'm'", hint="'m' takes (T, B, ...) input")
    if neuron.comparator != FIXED_RULES["comparator"] and not allow_tie_rule_change:
        raise ConversionError(where, "SpikingJelly fires at h >= θ; this neuron fires at h > θ",
                              got=f"comparator={neuron.comparator!r}", expected="'>='",
                              hint="construct with comparator='>=' (or pass "
                                   "allow_tie_rule_change=True to accept different spikes on "
                                   "inputs that hit the threshold exactly)")
    if neuron.reset_timing != FIXED_RULES["reset_timing"]:
        raise ConversionError(where, f"reset timing {neuron.reset_timing!r} does not exist in SJ",
                              got=neuron.reset_timing, expected="'immediate'",
                              hint="SJ fires and resets in the same step")
    if neuron.reset not in ("zero", "subtract"):
        raise ConversionError(where, f"reset={neuron.reset!r} does not exist in SJ",
                              got=neuron.reset, expected="'zero' | 'subtract'",
                              hint="SJ nodes always reset (v_reset float: zero; None: subtract)")
    extras = {"refractory_steps": neuron.refractory_steps or None,
              "graded_spikes_factor": neuron.graded_spikes_factor,
              "input_gain": getattr(neuron, "input_gain", None)}
    extras = {k: v for k, v in extras.items() if v is not None}
    if extras:
        raise ConversionError(where, f"{', '.join(extras)} do(es) not exist in SJ",
                              got=", ".join(f"{k} set" for k in extras),
                              expected="refractory_steps=0, graded_spikes_factor=1, "
                                       "input_gain=None",
                              hint="remove them before converting (fold an input gain into "
                                   "the preceding layer's weights)")
    threshold = _neuron_scalar(where, "threshold", neuron.threshold)
    surrogate = surrogate_to_spikingjelly(neuron.surrogate)
    soft = neuron.reset == "subtract"
    v_reset = neuron.v_reset
    common: dict[str, Any] = dict(v_threshold=threshold, v_reset=None if soft else v_reset,
                                  surrogate_function=surrogate,
                                  detach_reset=neuron.detach_reset)
    node: nn.Module
    if neuron.charge == "beta":
        node = _beta_to_node(where, neuron, common, threshold)
    else:  # LIFNode / ParametricLIFNode: the table row of this charge gives class and option
        rule = next(r for r in NODE_TABLE if r.charge == neuron.charge)
        if soft and v_reset != 0.0:
            raise ConversionError(where, "a soft-reset τ/rate charge decays toward v_reset, "
                                  "SJ's toward 0", got=f"v_reset={v_reset}", expected="0.0",
                                  hint="use v_reset=0.0 with reset='subtract'")
        if rule.leak == "tau":
            tau = _neuron_scalar(where, "tau", neuron.tau)
            if not tau > 1.0:
                raise ConversionError(where, "SJ LIFNode needs tau > 1", got=tau,
                                      expected="tau > 1", hint="tau = 1 is IFNode-like; "
                                      "use charge='beta', beta=1")
            node = rule.sj_class(tau=tau, decay_input=rule.decay_input, **common)
        else:
            w = neuron.w
            if w.numel() != 1:
                raise ConversionError(where, "per-neuron PLIF w has no SpikingJelly counterpart",
                                      got=f"shape {tuple(w.shape)}", expected="a scalar",
                                      hint="SJ's ParametricLIFNode has one w per layer")
            node = rule.sj_class(init_tau=2.0, decay_input=rule.decay_input, **common)
            node.w = nn.Parameter(w.detach().reshape(()).clone(),  # copied bit for bit
                                  requires_grad=isinstance(w, nn.Parameter))
    node.step_mode = step_mode
    node.store_v_seq = store_v_seq
    return node


def _beta_to_node(where: str, neuron: LIFNeuron, common: dict[str, Any],
                  threshold: float) -> nn.Module:
    """IF, HalfThresholdIF or CUBALIF for a ``charge="beta"`` neuron."""
    if neuron.beta_param != "clamp":
        raise ConversionError(where, "a sigmoid-parameterized β has no SpikingJelly counterpart",
                              got="beta_param='sigmoid'", expected="'clamp'",
                              hint="construct with beta_param='clamp'")
    beta = _neuron_scalar(where, "beta", neuron.leak())
    if isinstance(neuron.beta, nn.Parameter):
        _neuron_scalar(where, "beta", neuron.beta)  # raises: learnable
    soft = neuron.reset == "subtract"
    if neuron.alpha is None and beta == 1.0:
        if not soft:
            return sj_neuron.IFNode(**common)
        if neuron.v_reset == 0.0:
            return sj_neuron.IFNode(**common)
        if neuron.v_reset == threshold / 2.0:
            return sj_neuron.HalfThresholdIFNode(
                v_threshold=threshold, surrogate_function=common["surrogate_function"],
                detach_reset=common["detach_reset"])
        raise ConversionError(where, "a soft-reset IF neuron starting at v_reset is not an SJ "
                              "node", got=f"v_reset={neuron.v_reset}",
                              expected=f"0.0 (IFNode) or θ/2 = {threshold / 2.0} "
                                       "(HalfThresholdIFNode)",
                              hint="or start SJ from an explicit state_to_spikingjelly(...)")
    if neuron.alpha is not None:
        alpha = _neuron_scalar(where, "alpha", neuron.alpha.clamp(0.0, 1.0))
        if isinstance(neuron.alpha, nn.Parameter):
            _neuron_scalar(where, "alpha", neuron.alpha)  # raises: learnable
    else:
        alpha = 0.0  # c' = 0·c + x = x exactly
    if soft and neuron.v_reset != 0.0:
        raise ConversionError(where, "SJ CUBALIFNode with soft reset starts at v = 0",
                              got=f"v_reset={neuron.v_reset}", expected="0.0",
                              hint="use v_reset=0.0 with reset='subtract'")
    node = sj_neuron.CUBALIFNode(c_decay=alpha, v_decay=beta, v_threshold=threshold,
                                 v_reset=common["v_reset"],
                                 surrogate_function=common["surrogate_function"])
    node.detach_reset = common["detach_reset"]
    return node


# ============================================================================ state bridge


def _memories(where: str, node: nn.Module) -> tuple[tuple[str, str], ...]:
    return _rule_for_node(where, node).memories


def state_from_spikingjelly(node: nn.Module) -> SpikingState | None:
    """Take the SJ node's memories as a brain_ai state, and reset the node.

    The node is left fresh (its memories back at their reset values, ``v_seq`` cleared), so
    no hidden state stays behind; the returned tensors keep their autograd graph.

    Returns:
        ``SpikingState`` with ``v`` ``(B, *f)`` (and ``i`` = SJ's ``c`` for CUBALIF), or
        ``None`` if the node holds no tensor yet (fresh: brain_ai's ``state=None`` starts at
        the same ``v_reset``).
    """
    names = _memories("state_from_spikingjelly", node)
    values = {field_: getattr(node, mem) for mem, field_ in names}
    like = next((v for v in values.values() if isinstance(v, Tensor)), None)
    for mem, _ in names:
        setattr(node, mem, 0.0)  # never let reset() copy into the tensors we hand out
    node.reset()
    if like is None:
        return None
    return SpikingState(**{k: v if isinstance(v, Tensor) else torch.full_like(like, float(v))
                           for k, v in values.items()})


def state_to_spikingjelly(state: SpikingState | None, node: nn.Module) -> None:
    """Write a brain_ai state into the SJ node's memories (``None``: reset the node).

    Raises:
        ConversionError: the state carries fields SJ has no memory for (adaptation, ...), or
            lacks one it needs (CUBALIF's ``i``).
    """
    where = "state_to_spikingjelly"
    names = _memories(where, node)
    node.reset()
    if state is None:
        return
    if not isinstance(state, SpikingState):
        raise ConversionError(where, "state must be a SpikingState", got=type(state).__name__,
                              expected="SpikingState", hint="use the state a neuron returned")
    wanted = {f for _, f in names}
    have = set(state.tensors())
    if have != wanted:
        raise ConversionError(where, f"{type(node).__name__} keeps {sorted(wanted)}",
                              got=sorted(have), expected=sorted(wanted),
                              hint="convert states of neurons made by from_spikingjelly")
    for mem, field_ in names:
        setattr(node, mem, getattr(state, field_))


def run_spikingjelly(node: nn.Module, x: Tensor, state: SpikingState | None = None
                     ) -> tuple[Tensor, SpikingState | None, Tensor]:
    """Run an SJ node on batch-first ``x`` in its own step mode, like a brain_ai neuron.

    Args:
        node: a supported SJ node (``step_mode`` ``"s"``: one call per step; ``"m"``: one
            time-first call, with ``store_v_seq`` switched on for the call).
        x: input ``(B, T, *f)``.
        state: state before step 0 (``None``: fresh).
    Returns:
        ``(spikes (B, T, *f), final_state, membrane (B, T, *f))``; ``membrane`` is SJ's
        post-reset ``v`` after every step (``v_seq``). The node is left reset.
    Raises:
        ShapeError: ``state.v`` does not match one step of ``x`` (SJ would silently restart).
    """
    where = "run_spikingjelly"
    x_tf = batch_to_time_first(x)
    if state is not None and tuple(state.v.shape) != tuple(x_tf.shape[1:]):
        raise ShapeError(where, "state.v does not match one step of x",
                         got=tuple(state.v.shape), expected=tuple(x_tf.shape[1:]),
                         hint="SJ would silently restart from v_reset; pass a matching state")
    state_to_spikingjelly(state, node)
    store = node.store_v_seq
    try:
        if node.step_mode == "m":
            node.store_v_seq = True
            spikes_tf = node(x_tf)
            v_tf = node.v_seq
        else:
            outs, vs = [], []
            for x_t in x_tf.unbind(0):
                outs.append(node(x_t))
                vs.append(node.v)
            spikes_tf, v_tf = torch.stack(outs), torch.stack(vs)
        final = state_from_spikingjelly(node)
    finally:
        node.store_v_seq = store
        node.reset()
    return time_to_batch_first(spikes_tf), final, time_to_batch_first(v_tf)


# ============================================================================ whole models


def _copy_training(src: nn.Module, dst: nn.Module) -> nn.Module:
    for a, b in zip(src.modules(), dst.modules(), strict=False):
        b.train(a.training)
    return dst


def _plain_layer(where: str, path: str, m: nn.Module) -> nn.Module:
    """The plain torch layer an SJ stateless wrapper wraps, with the same weights."""
    torch_cls = next(t for s, t in _STATELESS_WRAPPERS if type(m) is s)
    if issubclass(torch_cls, nn.Linear):
        new: nn.Module = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
    elif issubclass(torch_cls, nn.modules.conv._ConvNd):
        new = torch_cls(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                        m.dilation, m.groups, m.bias is not None, m.padding_mode)
    elif issubclass(torch_cls, nn.modules.batchnorm._BatchNorm):
        new = torch_cls(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
    elif issubclass(torch_cls, nn.modules.pooling._MaxPoolNd):
        if m.return_indices:
            raise ConversionError(where, f"{path}: MaxPool with return_indices=True returns a "
                                  "tuple", got="return_indices=True", expected="False",
                                  hint="SpikingSequential layers return one tensor")
        new = torch_cls(m.kernel_size, m.stride, m.padding, m.dilation, False, m.ceil_mode)
    elif torch_cls is nn.AvgPool1d:
        new = torch_cls(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad)
    elif issubclass(torch_cls, nn.modules.pooling._AvgPoolNd):
        new = torch_cls(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                        m.divisor_override)
    elif issubclass(torch_cls, nn.modules.pooling._AdaptiveAvgPoolNd):
        new = torch_cls(m.output_size)
    else:  # Flatten
        new = nn.Flatten(m.start_dim, m.end_dim)
    tensors = [*m.parameters(), *m.buffers()]
    if tensors:
        new = new.to(device=tensors[0].device, dtype=tensors[0].dtype)
    new.load_state_dict(m.state_dict())
    for (_, p_new), (_, p_old) in zip(new.named_parameters(), m.named_parameters(), strict=True):
        p_new.requires_grad_(p_old.requires_grad)
    return _copy_training(m, new)


@dataclass
class _Entry:
    path: str
    module: nn.Module
    kind: str  # "neuron" | "wrapper" | "plain" | "dropout"
    mode: str | None  # step mode the entry fixes for the model ("s"/"m"), None = any
    contained: bool = False  # inside an SJ container (sees one step or folded time)


def _walk(where: str, seq: nn.Module, prefix: str, context: str | None
          ) -> Iterator[_Entry]:
    """Flatten ``seq`` into entries; ``context`` is the enclosing container's kind."""
    for name, m in seq.named_children():
        path = f"{prefix}{name}"
        if type(m) in (sj_layer.SeqToANNContainer, sj_layer.MultiStepContainer,
                       sj_layer.StepModeContainer):
            if context is not None:
                raise ConversionError(where, f"{path}: nested SJ containers are not supported",
                                      got=type(m).__name__, expected="one container level",
                                      hint="flatten the containers into the nn.Sequential")
            if type(m) is sj_layer.StepModeContainer:
                inner = ("seq2ann" if not m.stateful else "multistep") if m.step_mode == "m" \
                    else "single"
            else:
                inner = "seq2ann" if type(m) is sj_layer.SeqToANNContainer else "multistep"
            for e in _walk(where, m, f"{path}.", inner):
                if e.kind == "neuron" and inner == "seq2ann":
                    raise ConversionError(where, f"{e.path}: a neuron inside SeqToANNContainer "
                                          "sees time folded into the batch",
                                          got=type(e.module).__name__,
                                          expected="stateless layers only",
                                          hint="put neurons outside SeqToANNContainer")
                yield _Entry(e.path, e.module, e.kind, "m" if inner != "single" else "s", True)
        elif type(m) is nn.Sequential:
            yield from _walk(where, m, f"{path}.", context)
        elif any(type(m) is r.sj_class for r in NODE_TABLE):
            yield _Entry(path, m, "neuron", None if context else m.step_mode)
        elif any(type(m) is s for s, _ in _STATELESS_WRAPPERS):
            if type(m) is sj_layer.Flatten and m.start_dim == 0:
                raise ConversionError(where, f"{path}: Flatten(start_dim=0) flattens the batch",
                                      got="start_dim=0", expected="start_dim >= 1",
                                      hint="use start_dim=1")
            yield _Entry(path, m, "wrapper", None if context else m.step_mode)
        elif type(m) in (sj_layer.Dropout, sj_layer.Dropout2d):
            yield _Entry(path, m, "dropout", None if context else m.step_mode)
        elif type(m) in _PLAIN_STATELESS:
            yield _Entry(path, m, "plain", None)
        else:
            raise ConversionError(where, f"{path}: {type(m).__name__} is not supported",
                                  got=type(m).__name__,
                                  expected=f"nn.Sequential of SJ layer.* wrappers, "
                                           f"SeqToANNContainer/MultiStepContainer and "
                                           f"{_SUPPORTED_NODES}",
                                  hint="migrate(model, form='module') converts any module in "
                                       "place and keeps the model's own forward()")


def _brain_ai_key(path: str) -> str:
    return path.replace(".", "_")


def migrate(model: nn.Module, *, dropout: str = "raise", form: str | None = None
            ) -> nn.Module:
    """A brain_ai model computing what the SpikingJelly ``model`` computes.

    Two forms (``form=None`` picks ``"sequential"`` for an exact ``nn.Sequential``, else
    ``"module"``):

    * ``"module"``: any ``nn.Module`` (the zoo's ResNets, VGGs, Spikformer, ...). A copy of the
      model in which every SJ module is replaced in place (see :func:`migrate_module`): the
      user's own ``forward`` and topology, SJ's calling convention, no SJ module left.
    * ``"sequential"``: an ``nn.Sequential`` becomes a :class:`SpikingSequential`
      (batch-first ``(B, T, ...)``, explicit state ``out, state = net(x)``), described below.

    Args (``"sequential"``):
        model: an ``nn.Sequential`` of SJ ``layer.*`` stateless wrappers (Linear, Conv,
            BatchNorm, pools, Flatten, Dropout), ``SeqToANNContainer`` /
            ``MultiStepContainer`` / ``StepModeContainer``, plain torch layers where they see
            one step or folded time, nested ``nn.Sequential`` s and supported neuron nodes.
            All in one step mode: ``"m"`` (input ``(T, B, ...)``) becomes
            ``fold_time=True``; ``"s"`` (one ``(B, ...)`` step per call) ``fold_time=False``.
        dropout: SJ ``layer.Dropout(p > 0)`` keeps one mask for the whole sequence, which a
            stateless brain_ai layer cannot: ``"raise"`` (default) or ``"identity"`` (exact in
            eval mode, no dropout in training). ``form="module"`` reproduces it exactly.
    Returns:
        ``SpikingSequential`` taking ``(B, T, ...)``; layer names are SJ paths with ``.``
        replaced by ``_`` (``"1.0"`` -> ``"1_0"``), parameters and buffers copied, training
        flags kept. The SJ model is not modified.
    Raises:
        ConversionError: an unsupported module or container (named with its path), mixed
            step modes.
    """
    where = "migrate"
    if form is None:
        form = "sequential" if type(model) is nn.Sequential else "module"
    if form not in ("sequential", "module"):
        raise ConversionError(where, "unknown form", got=repr(form),
                              expected="'sequential' | 'module' | None", hint="see the docstring")
    if form == "module":
        return migrate_module(model)
    if dropout not in ("raise", "identity"):
        raise ConversionError(where, "unknown dropout option", got=repr(dropout),
                              expected="'raise' | 'identity'", hint="see the docstring")
    if not isinstance(model, nn.Sequential):
        raise ConversionError(where, f"{type(model).__name__} is not an nn.Sequential",
                              got=type(model).__name__, expected="nn.Sequential",
                              hint="use form='module' (in-place migration, any nn.Module)")
    wrapper = type(model) is not nn.Sequential
    entries = list(_walk(where, nn.Sequential(OrderedDict([("_", model)])) if wrapper
                         else model, "", None))
    if wrapper:
        entries = [_Entry(e.path[2:], e.module, e.kind, e.mode, e.contained) for e in entries]
    modes = {e.mode for e in entries if e.mode is not None}
    if len(modes) > 1:
        raise ConversionError(where, "the model mixes single-step and multi-step layers",
                              got=sorted((e.path, e.mode) for e in entries if e.mode),
                              expected="one step mode",
                              hint="call spikingjelly functional.set_step_mode(model, 'm')")
    mode = modes.pop() if modes else "s"
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for e in entries:
        if (mode == "m" and e.kind == "plain" and not e.contained
                and type(e.module) not in _ELEMENTWISE):
            raise ConversionError(where, f"{e.path}: plain {type(e.module).__name__} at the top "
                                  "level of a multi-step model sees (T, B, ...)",
                                  got=type(e.module).__name__,
                                  expected="SJ layer.* wrapper or SeqToANNContainer",
                                  hint="wrap it: layer.SeqToANNContainer(module)")
        if e.kind == "neuron":
            new = from_spikingjelly(e.module)
        elif e.kind == "wrapper":
            new = _plain_layer(where, e.path, e.module)
        elif e.kind == "dropout":
            if e.module.p > 0 and dropout == "raise":
                raise ConversionError(where, f"{e.path}: SJ Dropout keeps one mask per sequence",
                                      got=f"{type(e.module).__name__}(p={e.module.p})",
                                      expected="p = 0, or dropout='identity'",
                                      hint="migrate(model, dropout='identity') is exact in eval "
                                           "mode (use it for inference)")
            new = nn.Identity()
        else:
            new = _copy_training(e.module, copy.deepcopy(e.module))
        key = _brain_ai_key(e.path)
        if key in layers:
            raise ConversionError(where, f"two layers map to the name {key!r}", got=e.path,
                                  expected="unique names", hint="rename the SJ submodules")
        layers[key] = new
    migrated = SpikingSequential(layers, fold_time=(mode == "m"))
    migrated.train(model.training)
    for e, new in zip(entries, layers.values(), strict=True):
        _copy_training(e.module, new)
    return migrated


# ============================================================================ in place


_ADOPTED: dict[type, type[nn.Module]] = {
    **{getattr(sj_layer, name): cls for name, cls in sjl.STEP_LAYERS.items()
       if isinstance(getattr(sj_layer, name, None), type)},
    sj_layer.WSConv2d: sjl.WSConv2d,
    sj_layer.SeqToANNContainer: sjl.SeqToANN,
    sj_layer.MultiStepContainer: sjl.StepLoop,
    sj_layer.StepModeContainer: sjl.StepModeSequential,
    sj_layer.VotingLayer: sjl.VotingLayer,
    sj_attention._AxisAttention: sjl._AxisAttention,
    sj_attention._SpatialAttention: sjl._SpatialAttention,
    sj_layer.TemporalWiseAttention: sjl.TemporalWiseAttention,
    sj_layer.MultiDimensionalAttention: sjl.MultiDimensionalAttention,
    sj_layer.SpikingSelfAttention: sjl.SpikingSelfAttention,
    sj_layer.QKAttention: sjl.QKAttention,
    sj_layer.TokenQKAttention: sjl.QKAttention,
    sj_layer.ChannelQKAttention: sjl.QKAttention,
    sj_layer.SpikeDrivenSelfAttention: sjl.SpikeDrivenSelfAttention,
}
"""Stateless SJ layers and containers -> the brain_ai class that takes over the same object
(same attributes, parameters and children; see :func:`spikingjelly_layers.adopt`)."""

_REFUSED: dict[str, str] = {
    "OTTTLIFNode": "trains online through spike traces (OTTT), not BPTT; brain_ai neurons "
                   "compute BPTT gradients",
    "OTTTSequential": "routes OTTT's (spike, trace) pairs; brain_ai neurons compute BPTT",
    "SLTTLIFNode": "trains online (SLTT, state detached every step), not BPTT",
    "TLastMultiStepContainer": "time on the last axis is not supported",
    "TLastSeqToANNContainer": "time on the last axis is not supported",
    "DropConnectLinear": "samples a new weight mask per call (not representable)",
}
"""SJ modules outside what brain_ai computes, with the one-line reason."""


def _is_peer_module(m: nn.Module) -> bool:
    """An SJ class that is not user-level model code (the zoo's blocks are kept)."""
    mod = type(m).__module__
    return mod.startswith("spikingjelly.") and not mod.startswith(
        "spikingjelly.activation_based.model.")


def _refuse(path: str, what: str, got: str, hint: str) -> ConversionError:
    return ConversionError("migrate", f"{path or '<model>'}: {what}", got=got,
                           expected=f"{_SUPPORTED_NODES}, layer.* and containers",
                           hint=hint)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _convert_children(path: str, m: nn.Module) -> None:
    for name, child in list(m._modules.items()):
        if child is not None:
            m._modules[name] = _convert(_join(path, name), child)


def _node(path: str, m: nn.Module) -> nn.Module:
    try:
        neuron = from_spikingjelly(m)
    except ConversionError as exc:
        raise _refuse(path, str(exc).split(" (got ")[0].removeprefix("from_spikingjelly: "),
                      type(m).__name__, exc.hint) from exc
    node = sjl.SpikingJellyNode(neuron, m.step_mode)
    return node.train(m.training)


def _rebuild(path: str, m: nn.Module) -> nn.Module | None:
    """The brain_ai module for a stateful SJ layer (``None``: not one of them)."""
    t = type(m)
    new: nn.Module
    if t in (sj_layer.Dropout, sj_layer.Dropout2d):
        new = sjl.Dropout(m.p, m.step_mode, channelwise=t is sj_layer.Dropout2d)
    elif t is sj_layer.SynapseFilter:
        new = (sjl.SynapseFilter(m.step_mode, w=m.w) if m.learnable
               else sjl.SynapseFilter(m.step_mode, tau=float(m.tau)))
    elif t is sj_layer.LinearRecurrentContainer:
        new = sjl.LinearRecurrent(_convert(_join(path, "sub_module"), m.sub_module), m.rc,
                                  m.sub_module_out_features, m.step_mode)
    elif t is sj_layer.ElementWiseRecurrentContainer:
        new = sjl.ElementWiseRecurrent(_convert(_join(path, "sub_module"), m.sub_module),
                                       m.element_wise_function, m.step_mode)
    else:
        return None
    return new.train(m.training)


def _convert(path: str, m: nn.Module) -> nn.Module:
    """The replacement of ``m`` (a copy the caller owns), converting below it."""
    t = type(m)
    if any(t is r.sj_class for r in NODE_TABLE):
        return _node(path, m)
    new = _rebuild(path, m)
    if new is not None:
        return new
    if t in _ADOPTED:
        if getattr(m, "return_indices", False):
            raise _refuse(path, "MaxPool with return_indices=True returns a tuple",
                          "return_indices=True", "use return_indices=False")
        new = sjl.adopt(m, _ADOPTED[t])
        _convert_children(path, new)
        return new
    if _is_peer_module(m):
        reason = _REFUSED.get(t.__name__)
        if reason is None and isinstance(m, sj_neuron.BaseNode):
            reason = "its dynamics are not a LIF-family rule brain_ai computes exactly"
        raise _refuse(path, f"SpikingJelly {t.__name__} is not supported: "
                      f"{reason or 'no brain_ai counterpart'}", t.__name__,
                      "keep this part in SpikingJelly, or replace it before migrating")
    _convert_children(path, m)
    return m


def _copy_without_state(model: nn.Module) -> nn.Module:
    """``deepcopy`` that leaves SJ memories (which may carry an autograd graph) behind."""
    memo: dict[int, Any] = {}
    for m in model.modules():
        if isinstance(m, sj_base.MemoryModule):
            for value in (*m._memories.values(), getattr(m, "v_seq", None)):
                if isinstance(value, Tensor) and value.grad_fn is not None:
                    memo[id(value)] = None
    return copy.deepcopy(model, memo)


def migrate_module(model: nn.Module) -> nn.Module:
    """Any SJ model, converted in place: the user's own ``forward`` over brain_ai modules.

    Every SJ module of a copy of ``model`` is replaced where it sits (the same attribute,
    the same path): neurons by :class:`~.spikingjelly_layers.SpikingJellyNode` (a brain_ai
    :class:`LIFNeuron` inside, on the fastest exact kernel), ``layer.*`` wrappers, containers,
    ``VotingLayer``, ``Dropout`` (one mask per sequence), ``SynapseFilter``, the recurrent
    containers and the attention blocks by their twins in :mod:`.spikingjelly_layers`.
    Everything else (the user's blocks, torch layers) is kept and searched.

    Multi-step (``"m"``) parts take ``(T, B, ...)`` and keep no state between calls.
    Single-step (``"s"``) parts keep SJ's convention (one call per step); their state lives
    in the model's one :class:`~.hidden_state.HiddenState`: call
    ``hidden_state.reset_hidden(model)`` between sequences where SJ calls
    ``functional.reset_net(model)`` (which also works while SJ is installed), or use
    ``hidden_state.call_with_state(model, x_t, state=...)`` for explicit state.

    Returns:
        The converted copy (its class is the model's own; parameter and buffer values, names
        and training flags as in ``model``, except a neuron's parameters, which sit one level
        down: ``sn1.w`` -> ``sn1.neuron.w``). ``model`` is not modified.
    Raises:
        ConversionError: ``"<path>: <reason>"`` for the first SJ module brain_ai cannot
            reproduce exactly (an unsupported neuron or surrogate, online learning, ...).
    """
    converted = _convert("", _copy_without_state(model))
    attach(converted)
    return converted


# ============================================================================ verification


def _reset_all(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, sj_base.MemoryModule):
            m.reset()


def _neuron_nodes(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules()
            if any(type(m) is r.sj_class for r in NODE_TABLE)]


def _run_sj_model(model: nn.Module, x_tf: Tensor, multi_step: bool
                  ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
    """Run the SJ model time-first; returns its output and (spikes, v) per neuron layer.

    Records are built in the order brain_ai's :class:`SpikingSequential` builds its own
    (single-step: output, then each layer's spikes and membrane, after every step), so that
    autograd accumulates gradients in the same order on both sides.
    """
    nodes = _neuron_nodes(model)
    calls: dict[str, list[tuple[Tensor, Tensor]]] = {n: [] for n, _ in nodes}

    def hook(name: str) -> Callable[[nn.Module, Any, Tensor], None]:
        def record(m: nn.Module, _inp: Any, out: Tensor) -> None:
            calls[name].append((out, m.v if m.step_mode == "s" else m.v_seq))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in nodes]
    stores = {n: m.store_v_seq for n, m in nodes}
    try:
        for _, m in nodes:
            if m.step_mode == "m":
                m.store_v_seq = True
        if multi_step:
            out = model(x_tf)
            records = [(calls[n][0] if m.step_mode == "m" else (
                torch.stack([s for s, _ in calls[n]]), torch.stack([v for _, v in calls[n]])))
                for n, m in nodes]
        else:
            outs: list[Tensor] = []
            steps: dict[str, tuple[list[Tensor], list[Tensor]]] = {n: ([], []) for n in calls}
            for x_t in x_tf.unbind(0):
                outs.append(model(x_t).unsqueeze(0))
                for n, (s_list, v_list) in steps.items():
                    s_t, v_t = calls[n].pop()
                    s_list.append(s_t.unsqueeze(0))
                    v_list.append(v_t.unsqueeze(0))
            out = torch.cat(outs)
            records = [(torch.cat(s_list), torch.cat(v_list)) for s_list, v_list in steps.values()]
    finally:
        for h in handles:
            h.remove()
        for n, m in nodes:
            m.store_v_seq = stores[n]
        _reset_all(model)
    return out, records


def verify_spikingjelly_migration(
    original: nn.Module, migrated: nn.Module, x_time_first: Tensor, *,
    grads: bool = True, seed: int = 0, step_mode: str | None = None,
) -> MigrationReport:
    """Run both models on the same input and compare spikes, membranes and gradients.

    Args:
        original: the SJ model (multi-step models take ``x`` at once; single-step models are
            called once per step ``x[t]``, then reset).
        migrated: what :func:`migrate` returned for it: a :class:`SpikingSequential`, or a
            model converted in place (then every converted neuron is probed, whatever the
            topology, and paired with the SJ node at the same path; a neuron called several
            times per forward is compared over all its calls).
        x_time_first: input ``(T, B, ...)`` (SJ's layout), or whatever a multi-step model's
            ``forward`` takes (e.g. a ``(B, C, H, W)`` image the model repeats ``T`` times).
        step_mode: how to drive an in-place model: ``"m"`` (one call) or ``"s"`` (one call per
            step); ``None``: ``"m"`` if any SJ module of ``original`` is multi-step.
        grads: also compare gradients of ``Σ G·output + Σ_layers (Gs·spikes + Gv·v)`` (random
            ``G`` from ``seed``) w.r.t. the input and every parameter, paired by name.
        seed: seed of the random loss weights.
    Returns:
        :class:`brain_ai.adapters.verify.MigrationReport` (the report ``verify_migration``
        gives for snnTorch): per neuron layer (SJ path) spike mismatches, max ``|Δv|`` and
        firing rate; ``grads`` keyed ``"input"`` and SJ parameter names. Neither model keeps
        state, ``.grad`` or changed buffers (BatchNorm running statistics are restored).
    Raises:
        ConversionError: the neuron layers or parameters of the two models do not pair up.
    """
    where = "verify_spikingjelly_migration"
    if not isinstance(migrated, SpikingSequential):
        return _verify_in_place(original, migrated, x_time_first, grads=grads, seed=seed,
                                step_mode=step_mode)
    multi_step = bool(migrated.fold_time)
    x_sj = x_time_first.detach().clone().requires_grad_(grads)
    x_ba = x_time_first.detach().clone().requires_grad_(grads)
    with isolated(original, migrated, cleanup=lambda: _reset_all(original)):
        _reset_all(original)
        out_sj, rec_sj = seeded(lambda: _run_sj_model(original, x_sj, multi_step), seed)
        res = seeded(lambda: migrated(time_to_batch_first(x_ba), return_details=True), seed)
        rec_ba = [(batch_to_time_first(res.spikes[k]), batch_to_time_first(res.membrane[k]))
                  for k in res.spikes]
        pairs: list[tuple[str, Tensor, Tensor]] = [("input", x_sj, x_ba)] if grads else []
        for pname, p in original.named_parameters() if grads else ():
            if not p.requires_grad:
                continue
            mod_path, _, leaf = pname.rpartition(".")
            try:
                q = migrated.get_parameter(f"{_brain_ai_key(mod_path)}.{leaf}")
            except AttributeError as exc:
                raise ConversionError(where, f"parameter {pname!r} has no counterpart",
                                      got=pname, expected=f"{_brain_ai_key(mod_path)}.{leaf}",
                                      hint="pass the model migrate() returned") from exc
            pairs.append((pname, p, q))
        names = [n for n, _ in _neuron_nodes(original)]
        out_ba = batch_to_time_first(res.output)
        return compare_runs(names, rec_sj, rec_ba, out_sj, out_ba, pairs, seed=seed,
                            notes=[f"{len(names)} neuron layers; output max |Δ| = "
                                   f"{max_abs_diff(out_ba, out_sj):.3g}"])


def _model_step_mode(model: nn.Module) -> str:
    modes = {getattr(m, "step_mode", None) for m in model.modules() if _is_peer_module(m)}
    return "m" if "m" in modes else "s"


def _peer_param_name(migrated: nn.Module, name: str) -> str:
    """The migrated model's name for the SJ parameter ``name`` (neurons hold theirs in
    ``.neuron``)."""
    owner, _, leaf = name.rpartition(".")
    try:
        module = migrated.get_submodule(owner)
    except AttributeError:
        return name
    return _join(owner, f"neuron.{leaf}") if isinstance(module, sjl.SpikingJellyNode) else name


def _verify_in_place(original: nn.Module, migrated: nn.Module, x: Tensor, *, grads: bool,
                     seed: int, step_mode: str | None) -> MigrationReport:
    where = "verify_spikingjelly_migration"
    mode = step_mode or _model_step_mode(original)
    names = [n for n, _ in _neuron_nodes(original)]
    hidden = stores(migrated)
    x_o = x.detach().clone().requires_grad_(grads and x.is_floating_point())
    x_m = x.detach().clone().requires_grad_(grads and x.is_floating_point())

    def read(m: nn.Module, out: Tensor) -> tuple[Tensor, Tensor]:
        return out, (m.v if m.step_mode == "s" else m.v_seq)

    def run(model: nn.Module, xin: Tensor) -> Tensor:
        if mode == "m":
            return flat_output(model(xin))
        return torch.cat([flat_output(model(x_t)) for x_t in xin.unbind(0)])

    rec_o, rec_m = Recorder(names), Recorder(names)
    nodes = dict(_neuron_nodes(original))
    keep_v_seq = {n: m.store_v_seq for n, m in nodes.items()}
    handles = rec_o.hook(original, names, read) + rec_m.probe(migrated, names)
    with isolated(original, migrated, cleanup=lambda: _reset_all(original)), \
            contextlib.ExitStack() as stack:
        for h_store in hidden:
            stack.enter_context(h_store.using({}))
        try:
            for m in nodes.values():
                m.store_v_seq = m.step_mode == "m"
            _reset_all(original)
            out_o = seeded(lambda: run(original, x_o), seed)
            out_m = seeded(lambda: run(migrated, x_m), seed)
        finally:
            for h in handles:
                h.remove()
            for n, m in nodes.items():
                m.store_v_seq = keep_v_seq[n]
        pairs: list[tuple[str, Tensor, Tensor]] = [("input", x_o, x_m)] if x_o.requires_grad \
            else []
        for pname, p in original.named_parameters() if grads else ():
            if not p.requires_grad:
                continue
            key = _peer_param_name(migrated, pname)
            try:
                q = migrated.get_parameter(key)
            except AttributeError as exc:
                raise ConversionError(where, f"parameter {pname!r} has no counterpart",
                                      got=pname, expected=key,
                                      hint="pass the model migrate() returned") from exc
            pairs.append((pname, p, q))
        return compare_runs(names, rec_o.records(), rec_m.records(), out_o, out_m, pairs,
                            seed=seed, notes=[f"{len(names)} neuron layers, step mode {mode!r}; "
                                              f"output max |Δ| = "
                                              f"{max_abs_diff(out_m, out_o):.3g}"])
