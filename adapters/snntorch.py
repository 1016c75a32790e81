"""snnTorch 1.0.0 <-> brain_ai: neurons, surrogates and whole models, exact to the bit.

The mapping table (:data:`NEURON_RULES`) is the one place that says which brain_ai rule each
snnTorch neuron uses; ``from_snntorch`` and ``to_snntorch`` both read it.

============  ===============  ===================================  ==========================
snnTorch      brain_ai         reset (``state_function``)           timing (``reset_delay``)
============  ===============  ===================================  ==========================
Leaky         LIFNeuron        sub/zero/none -> subtract/zero/none  True: ``"delayed"``
                                                                    (zero: ``"delayed_pre"``);
                                                                    False: ``"compensated"``
                                                                    (zero: ``"compensated_pre"``)
Synaptic      LIFNeuron        same                                 True: ``"delayed"``;
              (``alpha=``)                                          False: ``"compensated"``
RLeaky        RecurrentLIF...  same                                 as Synaptic
RSynaptic     RecurrentLIF...  same                                 ``"delayed"`` for both:
              (``alpha=``)                                          1.0.0's ``reset_delay=False``
                                                                    branch writes a local
                                                                    variable and has no effect
Lapicque      LIFNeuron        same                                 as Synaptic; needs
              (``input_gain``)                                      ``R == time_step == 1``
============  ===============  ===================================  ==========================

Every converted neuron uses comparator ``">"``, ``charge="beta"`` and ``beta_clamp=(0, 1)``
(snnTorch clamps β and α to [0, 1] at every use; the stored raw values are copied as they
are, Parameter or buffer alike), and ``kernel="reference"``: per-step autograd, the gradient
order of snnTorch (set ``neuron.kernel = None`` for the fast fused kernels: same forward
bits, gradients within ~1e-6 of the largest term). The membrane a converted neuron stores
is the one snnTorch returns (pre-reset for ``reset_delay=True``).

Not representable (raise :class:`~brain_ai.errors.ConversionError` naming the feature):
``inhibition``, ``state_quant``, ``surrogate_disable``, ``Alpha``, ``SLSTM``/``SConv2dLSTM``,
the parallel/state-space neurons, custom surrogates, a ``reset_mechanism`` changed after
construction (snnTorch then runs two different rules at once).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from brain_ai.core.neurons import LIFNeuron, RecurrentLIFNeuron, SpikingNeuronBase
from brain_ai.core.snn import SpikingSequential
from brain_ai.errors import ConversionError, PeerMissingError, ShapeError
from brain_ai.physics import rules
from brain_ai.physics import surrogates as sg
from brain_ai.physics.state import SpikingState

__all__ = [
    "NEURON_RULES",
    "PARAM_NAMES",
    "SnnTorchNeuron",
    "brain_ai_param_name",
    "from_snntorch",
    "from_snntorch_surrogate",
    "migrate",
    "to_snntorch",
    "to_snntorch_surrogate",
]


def _snn() -> Any:
    try:
        import snntorch
    except ImportError as exc:  # pragma: no cover - CI always has it
        raise PeerMissingError("brain_ai.adapters.snntorch", "snnTorch is not installed",
                               got=str(exc), expected="snntorch==1.0.0",
                               hint="run the README's set-up command") from exc
    return snntorch


# --------------------------------------------------------------------------- mapping table
_RESET_BY_FN = {"_base_sub": "subtract", "_base_zero": "zero", "_base_int": "none"}
_RESET_VAL = {"subtract": 0, "zero": 1, "none": 2}

# class name -> (state names in snnTorch's call order, has synapse, has recurrence)
NEURON_RULES: dict[str, tuple[tuple[str, ...], bool, bool]] = {
    "Leaky": (("mem",), False, False),
    "Lapicque": (("mem",), False, False),
    "Synaptic": (("syn", "mem"), True, False),
    "RLeaky": (("spk", "mem"), False, True),
    "RSynaptic": (("spk", "syn", "mem"), True, True),
}
_STATE_FIELD = {"mem": "v", "syn": "i", "spk": "prev_spk"}
# snnTorch parameter names that differ from brain_ai's (RLeaky/RSynaptic register the
# one-to-one weight on the neuron itself; brain_ai keeps it in its recurrent module)
PARAM_NAMES = {"V": "recurrent.V"}


def brain_ai_param_name(snntorch_name: str) -> str:
    """The brain_ai parameter name of an snnTorch neuron parameter."""
    head, _, leaf = snntorch_name.rpartition(".")
    mapped = PARAM_NAMES.get(leaf, leaf)
    return f"{head}.{mapped}" if head else mapped


def reset_timing_for(kind: str, reset: str, reset_delay: bool) -> str:
    """The brain_ai reset timing that reproduces snnTorch ``kind`` (see the module table)."""
    if reset == "none":
        return "immediate"
    pre = "_pre" if (kind == "Leaky" and reset == "zero") else ""
    if reset_delay or kind == "RSynaptic":
        return "delayed" + pre
    return "compensated" + pre


# --------------------------------------------------------------------------- surrogates
_SURROGATE_FROM: dict[str, Callable[[dict[str, Any]], sg.Surrogate]] = {
    "atan": lambda c: sg.ATan(alpha=float(c["alpha"])),
    "fast_sigmoid": lambda c: sg.FastSigmoid(slope=float(c["slope"])),
    "sigmoid": lambda c: sg.Sigmoid(alpha=float(c["slope"])),
    "straight_through_estimator": lambda c: sg.STE(),
    "triangular": lambda c: sg.Triangular(threshold=float(c["threshold"])),
}


def from_snntorch_surrogate(spike_grad: Callable[..., Tensor]) -> sg.Surrogate:
    """brain_ai surrogate equal to an snnTorch ``spike_grad`` built by ``surrogate.<name>()``.

    ``sigmoid(slope)`` maps to :class:`Sigmoid` ``(alpha=slope)``: the same function written
    in another order (gradients agree to float rounding, ~1e-7 relative).
    """
    qual = getattr(spike_grad, "__qualname__", "")
    name = qual.split(".<locals>")[0] if ".<locals>.inner" in qual else ""
    if name not in _SURROGATE_FROM:
        raise ConversionError(
            "from_snntorch_surrogate", "this spike_grad has no exact brain_ai counterpart",
            got=qual or repr(spike_grad),
            expected=" | ".join(f"surrogate.{n}()" for n in _SURROGATE_FROM),
            hint="use one of the listed surrogates, or pass surrogate= to the brain_ai neuron")
    code = spike_grad.__code__  # type: ignore[attr-defined]
    cells = dict(zip(code.co_freevars, (c.cell_contents for c in spike_grad.__closure__ or ()),
                     strict=False))
    return _SURROGATE_FROM[name](cells)


def to_snntorch_surrogate(surrogate: sg.Surrogate) -> Callable[..., Tensor]:
    """snnTorch ``spike_grad`` with the same backward as ``surrogate``."""
    s = _snn().surrogate
    if isinstance(surrogate, sg.ATan):
        return s.atan(alpha=surrogate.alpha)
    if isinstance(surrogate, sg.FastSigmoid):
        return s.fast_sigmoid(slope=surrogate.slope)
    if isinstance(surrogate, sg.Sigmoid):
        return s.sigmoid(slope=surrogate.alpha)
    if isinstance(surrogate, sg.STE):
        return s.straight_through_estimator()
    if isinstance(surrogate, sg.Triangular):
        return s.triangular(threshold=surrogate.threshold)
    raise ConversionError("to_snntorch_surrogate", "snnTorch has no such surrogate",
                          got=repr(surrogate), expected="ATan, FastSigmoid, Sigmoid, STE, "
                          "Triangular", hint="pick one of those before converting")


# --------------------------------------------------------------------------- neurons
def _kind(neuron: nn.Module) -> str:
    snn = _snn()
    for name in NEURON_RULES:
        if type(neuron) is getattr(snn, name):
            return name
    raise ConversionError(
        "from_snntorch", f"snnTorch {type(neuron).__name__} has no brain_ai equivalent",
        got=type(neuron).__name__, expected=" | ".join(NEURON_RULES),
        hint="Alpha (dual exc/inh synapse), SLSTM/SConv2dLSTM and the parallel/state-space "
             "neurons are not in the LIF family; keep them in snnTorch")


def _param(module: nn.Module, name: str) -> tuple[Tensor, bool]:
    t = getattr(module, name)
    return t.detach().clone(), isinstance(t, nn.Parameter)


def _check_convertible(neuron: nn.Module, kind: str) -> str:
    where = f"from_snntorch({kind})"
    for flag in ("inhibition", "state_quant", "surrogate_disable"):
        if getattr(neuron, flag, False):
            raise ConversionError(where, f"{flag} is not representable", got=f"{flag}=True",
                                  expected=f"{flag}=False",
                                  hint=f"brain_ai has no {flag}; train without it or keep the "
                                       "neuron in snnTorch")
    reset = _RESET_BY_FN.get(neuron.state_function.__name__)
    if reset is None:
        raise ConversionError(where, "unknown state_function", got=neuron.state_function,
                              expected=list(_RESET_BY_FN), hint="is this snnTorch 1.0.0?")
    if int(neuron.reset_mechanism_val) != _RESET_VAL[reset]:
        raise ConversionError(
            where, "reset_mechanism was changed after construction: snnTorch runs "
            f"{reset!r} for the delayed reset but reset_mechanism_val for the immediate one",
            got=int(neuron.reset_mechanism_val), expected=_RESET_VAL[reset],
            hint="construct the neuron with the reset_mechanism you want")
    return reset


def from_snntorch(neuron: nn.Module) -> SpikingNeuronBase:
    """Convert one snnTorch neuron (Leaky, Synaptic, RLeaky, RSynaptic, Lapicque).

    Parameters keep their values and learnability (Parameter vs buffer). The result is a
    stateless brain_ai neuron computing the same spikes and membranes bit for bit.
    """
    kind = _kind(neuron)
    reset = _check_convertible(neuron, kind)
    where = f"from_snntorch({kind})"
    _, synapse, recurrent = NEURON_RULES[kind]
    timing = reset_timing_for(kind, reset, bool(getattr(neuron, "reset_delay", True)))
    threshold, learn_thr = _param(neuron, "threshold")
    kwargs: dict[str, Any] = dict(
        threshold=threshold, learn_threshold=learn_thr, reset=reset, reset_timing=timing,
        comparator=">", charge="beta", beta_clamp=(0.0, 1.0),
        surrogate=from_snntorch_surrogate(neuron.spike_grad),
        kernel="reference",  # autograd's order = snnTorch's: gradients bit for bit
    )
    gsf, learn_gsf = _param(neuron, "graded_spikes_factor")
    kwargs.update(graded_spikes_factor=gsf, learn_graded_spikes_factor=learn_gsf)
    if synapse:
        alpha, learn_alpha = _param(neuron, "alpha")
        kwargs.update(alpha=alpha.clamp(0, 1), learn_alpha=learn_alpha)

    if kind == "Lapicque":
        r, dt, c = neuron.R, neuron.time_step, neuron.C
        if not (bool((torch.as_tensor(r) == 1).all()) and bool((torch.as_tensor(dt) == 1).all())):
            raise ConversionError(
                where, "Lapicque computes x·R·(1/(R·C))·dt; only R == time_step == 1 has "
                "the same rounding as brain_ai's input gain", got=f"R={r}, time_step={dt}",
                expected="R=1, time_step=1 (the default when beta is given)",
                hint="build the Lapicque from beta, or rescale R and time_step to 1")
        decay = (1 - (dt / (r * c))).detach().clone()
        if bool((decay < 0).any()) or bool((decay > 1).any()):
            raise ConversionError(where, "Lapicque's decay 1 - dt/(R·C) is outside [0, 1]",
                                  got=decay, expected="0 <= 1 - dt/(RC) <= 1",
                                  hint="snnTorch does not clamp it; brain_ai would")
        kwargs.update(beta=decay, input_gain=(1 / (r * c)).detach().clone())
        out: SpikingNeuronBase = LIFNeuron(**kwargs)
        return out

    beta, learn_beta = _param(neuron, "beta")
    if recurrent:
        if neuron.all_to_all and neuron.linear_features:
            rec_kw: dict[str, Any] = dict(features=int(neuron.linear_features),
                                          recurrent="linear")
        elif neuron.all_to_all:
            conv = neuron.recurrent
            rec_kw = dict(features=int(neuron.conv2d_channels), recurrent="conv2d",
                          kernel_size=conv.kernel_size[0])
            if conv.kernel_size[0] != conv.kernel_size[1]:
                raise ConversionError(where, "non-square recurrent kernels", got=conv.kernel_size,
                                      expected="k x k", hint="use a square kernel_size")
        else:
            v, _ = _param(neuron.recurrent, "V")
            rec_kw = dict(recurrent="one_to_one", V=v)
        learn_rec = any(p.requires_grad for p in neuron.recurrent.parameters())
        out = RecurrentLIFNeuron(beta=beta.clamp(0, 1), learn_beta=learn_beta,
                                 learn_recurrent=learn_rec, **rec_kw, **kwargs)
        if rec_kw["recurrent"] != "one_to_one":
            out.recurrent.load_state_dict(neuron.recurrent.state_dict())
    else:
        out = LIFNeuron(beta=beta.clamp(0, 1), learn_beta=learn_beta, **kwargs)
    _copy_raw(out, "beta", beta)
    if synapse:
        _copy_raw(out, "alpha", _param(neuron, "alpha")[0])
    return out


def _copy_raw(neuron: nn.Module, name: str, raw: Tensor) -> None:
    """Store the peer's raw (unclamped) value; the clamp at use reproduces the peer."""
    current = getattr(neuron, name)
    if isinstance(current, nn.Parameter):
        setattr(neuron, name, nn.Parameter(raw.clone()))
    else:
        setattr(neuron, name, raw.clone())


def to_snntorch(neuron: SpikingNeuronBase, *, init_hidden: bool = False,
                output: bool = False) -> nn.Module:
    """Convert a brain_ai neuron into the snnTorch neuron that computes the same numbers.

    Only rules snnTorch has are accepted: comparator ``">"``, ``charge="beta"``, timings
    ``"delayed*"``/``"compensated*"`` matching the target class (see the module table), plus
    ``"immediate"`` with ``reset="zero"`` (equal to snnTorch's ``reset_delay=False`` because a
    zero reset never leaves the membrane above threshold) or ``reset="none"``.
    """
    snn = _snn()
    where = f"to_snntorch({type(neuron).__name__})"
    p = neuron
    if type(p) not in (LIFNeuron, RecurrentLIFNeuron):
        raise ConversionError(where, "snnTorch has no counterpart of this neuron",
                              got=type(p).__name__, expected="LIFNeuron or RecurrentLIFNeuron",
                              hint="adaptive, advanced and refractory neurons stay native")
    problems = []
    if p.charge != "beta":
        problems.append(f"charge={p.charge!r} (snnTorch: 'beta')")
    if p.comparator != ">":
        problems.append(f"comparator={p.comparator!r} (snnTorch: '>')")
    if p.refractory_steps:
        problems.append("refractory_steps")
    if p.v_reset != 0.0:
        problems.append(f"v_reset={p.v_reset} (snnTorch resets to 0)")
    if p.detach_reset and p.reset != "none" and not p.reset_timing.startswith("delayed"):
        problems.append("detach_reset (snnTorch's same-step reset keeps the spike's gradient)")
    if p.beta_param != "clamp" or (p.beta_clamp != (0.0, 1.0) and isinstance(
            p.beta, nn.Parameter)):
        problems.append("a learnable beta with a clamp other than snnTorch's (0, 1)")
    if p.input_gain is not None:
        problems.append("input_gain")
    if problems:
        raise ConversionError(where, "features snnTorch cannot reproduce", got=problems,
                              expected="snnTorch's rules", hint="see brain_ai.adapters.snntorch")
    recurrent = isinstance(p, RecurrentLIFNeuron)
    synapse = p.alpha is not None
    kind = {(False, False): "Leaky", (True, False): "Synaptic", (False, True): "RLeaky",
            (True, True): "RSynaptic"}[(synapse, recurrent)]
    reset_delay = _reset_delay_for(kind, p.reset, p.reset_timing, where,
                                   bool((p.threshold > 0).all()))
    if p.graded_spikes_factor is not None and synapse:
        raise ConversionError(where, "snnTorch Synaptic/RSynaptic have no graded spikes",
                              got="graded_spikes_factor", expected="1.0",
                              hint="use a LIFNeuron without alpha")
    beta = p.beta.detach().clone()
    common: dict[str, Any] = dict(
        threshold=p.threshold.detach().clone(), spike_grad=to_snntorch_surrogate(p.surrogate),
        init_hidden=init_hidden, learn_beta=isinstance(p.beta, nn.Parameter),
        learn_threshold=isinstance(p.threshold, nn.Parameter), reset_mechanism=p.reset,
        output=output, reset_delay=reset_delay,
    )
    if synapse:
        common.update(alpha=p.alpha.detach().clone(),
                      learn_alpha=isinstance(p.alpha, nn.Parameter))
    elif p.graded_spikes_factor is not None:
        common.update(graded_spikes_factor=p.graded_spikes_factor.detach().clone(),
                      learn_graded_spikes_factor=isinstance(p.graded_spikes_factor,
                                                            nn.Parameter))
    if recurrent:
        rec = p.recurrent
        if p.recurrent_kind == "linear":
            common.update(all_to_all=True, linear_features=rec.in_features)
        elif p.recurrent_kind == "conv2d":
            common.update(all_to_all=True, conv2d_channels=rec.in_channels,
                          kernel_size=rec.kernel_size[0])
        else:
            common.update(all_to_all=False, V=rec.V.detach().clone())
        common["learn_recurrent"] = any(q.requires_grad for q in rec.parameters())
    out = getattr(snn, kind)(beta=beta, **common)
    if recurrent and p.recurrent_kind != "one_to_one":
        if getattr(p.recurrent, "bias", None) is None:
            raise ConversionError(where, "snnTorch's recurrent layer always has a bias",
                                  got="bias=False", expected="bias=True",
                                  hint="construct RecurrentLIFNeuron(..., bias=True)")
        out.recurrent.load_state_dict(p.recurrent.state_dict())
    return out


def _reset_delay_for(kind: str, reset: str, timing: str, where: str,
                     threshold_positive: bool) -> bool:
    if reset == "none":
        return True
    for delay in (True, False):
        peer = reset_timing_for(kind, reset, delay)
        if peer == timing or (timing == "immediate" and rules.equivalent_immediate(
                reset, peer, threshold_positive, 0.0)):
            return delay
    raise ConversionError(
        where, f"snnTorch {kind} has no reset timing {timing!r} for reset={reset!r}",
        got=timing, expected=[reset_timing_for(kind, reset, d) for d in (True, False)],
        hint="immediate subtract differs from snnTorch's reset_delay=False when a reset "
             "membrane stays above threshold; pick a delayed/compensated timing")


# --------------------------------------------------------------------------- drop-in module
class SnnTorchNeuron(nn.Module):
    """A stateless drop-in with snnTorch's call convention, computing with a brain_ai neuron.

    ``forward(input_, *states) -> (spk, *states)`` with the state order of the snnTorch class
    (Leaky ``(mem)``, Synaptic ``(syn, mem)``, RLeaky ``(spk, mem)``, RSynaptic
    ``(spk, syn, mem)``). Nothing is kept between calls: pass the states back in, as a
    hand-written snnTorch time loop does. ``init_leaky()`` / ``reset_mem()`` & co. return
    empty tensors that mean "fresh state"; any other mis-shaped state raises (snnTorch would
    silently replace it with zeros).
    """

    def __init__(self, neuron: SpikingNeuronBase, kind: str) -> None:
        super().__init__()
        self.neuron = neuron
        self.kind = kind
        self.state_names = NEURON_RULES[kind][0]

    def _fresh(self) -> tuple[Tensor, ...]:
        return tuple(torch.zeros(0) for _ in self.state_names)

    def reset_mem(self) -> Tensor | tuple[Tensor, ...]:
        fresh = self._fresh()
        return fresh[0] if len(fresh) == 1 else fresh

    init_leaky = init_synaptic = init_rleaky = init_rsynaptic = init_lapicque = reset_mem

    def forward(self, input_: Tensor, *states: Tensor | None) -> tuple[Tensor, ...]:
        where = f"SnnTorchNeuron({self.kind}).forward"
        if len(states) != len(self.state_names) or any(s is None for s in states):
            raise ShapeError(
                where, "pass every state explicitly (this module keeps none)",
                got=f"{len(states)} state(s)", expected=f"{self.state_names}",
                hint="before the loop: states = neuron.reset_mem(); then "
                     "spk, *states = neuron(x, *states)")
        if all(s.numel() == 0 for s in states):  # type: ignore[union-attr]
            state = None
        else:
            fields = {_STATE_FIELD[n]: s for n, s in zip(self.state_names, states, strict=True)}
            state = SpikingState(**fields)
        spk, new = self.neuron.step(input_, state)
        values = {"mem": new.v, "syn": new.i, "spk": spk}
        out = [spk] + [values[n] for n in self.state_names if n != "spk"]
        return tuple(out)


# --------------------------------------------------------------------------- models
def _is_snn_neuron(m: nn.Module) -> bool:
    return isinstance(m, _snn().SpikingNeuron)


def migrate(model: nn.Module) -> nn.Module:
    """Convert every snnTorch neuron in ``model``; other layers keep their weights.

    * An ``nn.Sequential`` whose neurons use ``init_hidden=True`` (the tutorial style, called
      once per time step) becomes a :class:`SpikingSequential`, run batch-first over
      ``(B, T, ...)``: ``spikes, state = migrated(x)``.
    * Any other model keeps its own ``forward`` (e.g. a hand-written time loop): each neuron
      is replaced in place by a stateless :class:`SnnTorchNeuron` with the same call
      convention.

    ``init_hidden=True`` neurons outside a top-level ``nn.Sequential`` raise
    :class:`ConversionError` (their hidden state cannot be made explicit without changing
    the model's ``forward``). The input model is not modified.
    """
    model = _copy_without_peer_state(model)
    if isinstance(model, nn.Sequential) and any(
            _is_snn_neuron(m) and m.init_hidden for m in model.children()):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for name, m in model.named_children():
            if _is_snn_neuron(m):
                if not m.init_hidden:
                    raise ConversionError("migrate", f"layer {name} mixes init_hidden=False "
                                          "into an init_hidden Sequential", got=name,
                                          expected="init_hidden=True for every neuron",
                                          hint="snnTorch itself cannot run this model")
                layers[name] = from_snntorch(m)
            else:
                _reject_nested(m, name)
                layers[name] = m
        return SpikingSequential(layers).train(model.training)
    for path, m in list(model.named_modules()):
        if path and _is_snn_neuron(m):
            if m.init_hidden:
                raise ConversionError(
                    "migrate", f"{path} keeps hidden state (init_hidden=True) inside a "
                    "custom module", got=path, expected="init_hidden=False with explicit "
                    "states, or a top-level nn.Sequential", hint="pass mem explicitly in "
                    "your forward, or build the model as nn.Sequential")
            parent, _, leaf = path.rpartition(".")
            owner = model.get_submodule(parent) if parent else model
            setattr(owner, leaf, SnnTorchNeuron(from_snntorch(m), _kind(m)))
    if _is_snn_neuron(model):
        return SnnTorchNeuron(from_snntorch(model), _kind(model))
    return model


def _copy_without_peer_state(model: nn.Module) -> nn.Module:
    """``deepcopy`` that drops snnTorch's hidden state (a graph from the last forward pass
    cannot be deep-copied; the state is meaningless to a stateless brain_ai model)."""
    memo: dict[int, Any] = {}
    for m in model.modules():
        if _is_snn_neuron(m):
            for t in (*m._buffers.values(), *vars(m).values()):
                if isinstance(t, Tensor) and t.grad_fn is not None:
                    memo[id(t)] = torch.zeros(0)
    return copy.deepcopy(model, memo)


def _reject_nested(module: nn.Module, name: str) -> None:
    for path, m in module.named_modules():
        if _is_snn_neuron(m):
            raise ConversionError("migrate", f"snnTorch neuron nested in layer {name} "
                                  f"({path})", got=type(m).__name__,
                                  expected="neurons as direct children of the Sequential",
                                  hint="flatten the Sequential")

