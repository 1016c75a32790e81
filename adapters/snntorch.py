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
Lapicque      LIFNeuron        same                                 as Synaptic; any R, C,
              (``input_gain``                                       time_step
              or Lapicque-
              Neuron)
Alpha         AlphaNeuron      same (default ``"zero"``)            delayed (its own rule,
                                                                    :mod:`brain_ai.core.alpha`)
============  ===============  ===================================  ==========================

Every converted neuron uses comparator ``">"``, ``charge="beta"`` and ``beta_clamp=(0, 1)``
(snnTorch clamps β and α to [0, 1] at every use; the stored raw values are copied as they
are, Parameter or buffer alike), and ``kernel=None``: the fastest exact kernel, whose gradients
follow autograd's (snnTorch's) summation order (``kernel="reference"`` selects the per-step
autograd graph by name). The membrane a converted neuron stores
is the one snnTorch returns (pre-reset for ``reset_delay=True``).

Not representable (raise :class:`~brain_ai.errors.ConversionError` naming the feature;
:data:`REFUSED` gives each module's one-line reason, and :func:`migrate` never lets an
snnTorch module pass through unconverted): ``inhibition``, ``state_quant``,
``surrogate_disable``, ``SLSTM``/``SConv2dLSTM``, the parallel/state-space neurons
(``LeakyParallel``, ``StateLeaky``, ``LinearLeaky``, ``AssociativeLeaky``), ``DeltaLeaky``,
custom surrogates, a
``reset_mechanism`` changed after construction (snnTorch then runs two different rules at
once). Surrogates: ``atan``, ``fast_sigmoid``, ``sigmoid`` (snnTorch's backward is NaN far
below threshold, brain_ai's stays finite: ``verify_migration`` compares where snnTorch is
finite), ``straight_through_estimator``, ``triangular``, ``spike_rate_escape``.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from brain_ai.adapters.hidden_state import HiddenStateModule, attach
from brain_ai.core.alpha import AlphaNeuron, AlphaState
from brain_ai.core.neurons import LIFNeuron, RecurrentLIFNeuron, SpikingNeuronBase
from brain_ai.core.snn import SpikingSequential
from brain_ai.errors import ConversionError, PeerMissingError, ShapeError
from brain_ai.physics import rules
from brain_ai.physics import surrogates as sg
from brain_ai.physics.state import SpikingState

__all__ = [
    "NEURON_RULES",
    "PARAM_NAMES",
    "REFUSED",
    "LapicqueNeuron",
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
    "Alpha": (("syn_exc", "syn_inh", "mem"), True, False),
}
_STATE_FIELD = {"mem": "v", "syn": "i", "spk": "prev_spk", "syn_exc": "exc", "syn_inh": "inh"}
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
    "spike_rate_escape": lambda c: sg.SpikeRateEscape(beta=float(c["beta"]),
                                                      slope=float(c["slope"])),
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
    if isinstance(surrogate, sg.SpikeRateEscape):
        return s.spike_rate_escape(beta=surrogate.beta, slope=surrogate.slope)
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
        hint="SLSTM/SConv2dLSTM and the parallel/state-space neurons are not in the LIF "
             "family; keep them in snnTorch")


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


def from_snntorch(neuron: nn.Module) -> Any:
    """Convert one snnTorch neuron (Leaky, Synaptic, RLeaky, RSynaptic, Lapicque, Alpha).

    Returns a :class:`LIFNeuron` / :class:`RecurrentLIFNeuron` / :class:`LapicqueNeuron`, or
    an :class:`~brain_ai.core.alpha.AlphaNeuron` for ``Alpha``.

    Parameters keep their values and learnability (Parameter vs buffer). The result is a
    stateless brain_ai neuron computing the same spikes and membranes bit for bit.
    """
    kind = _kind(neuron)
    reset = _check_convertible(neuron, kind)
    where = f"from_snntorch({kind})"
    if kind == "Alpha":
        return _alpha(where, neuron, reset)
    _, synapse, recurrent = NEURON_RULES[kind]
    timing = reset_timing_for(kind, reset, bool(getattr(neuron, "reset_delay", True)))
    threshold, learn_thr = _param(neuron, "threshold")
    kwargs: dict[str, Any] = dict(
        threshold=threshold, learn_threshold=learn_thr, reset=reset, reset_timing=timing,
        comparator=">", charge="beta", beta_clamp=(0.0, 1.0),
        surrogate=from_snntorch_surrogate(neuron.spike_grad),
        kernel=None,  # the fastest exact kernel: its gradients follow autograd's (snnTorch's) order
    )
    gsf, learn_gsf = _param(neuron, "graded_spikes_factor")
    kwargs.update(graded_spikes_factor=gsf, learn_graded_spikes_factor=learn_gsf)
    if synapse:
        alpha, learn_alpha = _param(neuron, "alpha")
        kwargs.update(alpha=alpha.clamp(0, 1), learn_alpha=learn_alpha)

    if kind == "Lapicque":
        r, dt, c = neuron.R, neuron.time_step, neuron.C
        decay = (1 - (dt / (r * c))).detach().clone()
        if bool((decay < 0).any()) or bool((decay > 1).any()):
            raise ConversionError(where, "Lapicque's decay 1 - dt/(R·C) is outside [0, 1]",
                                  got=decay, expected="0 <= 1 - dt/(RC) <= 1",
                                  hint="snnTorch does not clamp it; brain_ai would")
        kwargs["beta"] = decay
        if bool((torch.as_tensor(r) == 1).all()) and bool((torch.as_tensor(dt) == 1).all()):
            # x·1·(1/(1·C))·1 == x·(1/C) bit for bit: a plain input gain
            kwargs["input_gain"] = (1 / (r * c)).detach().clone()
            out: SpikingNeuronBase = LIFNeuron(**kwargs)
            return out
        return LapicqueNeuron(torch.as_tensor(r).detach().clone(),
                              torch.as_tensor(c).detach().clone(),
                              torch.as_tensor(dt).detach().clone(), **kwargs)

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


def _alpha(where: str, neuron: nn.Module, reset: str) -> AlphaNeuron:
    """snnTorch ``Alpha`` -> :class:`~brain_ai.core.alpha.AlphaNeuron` (same parameters)."""
    if not bool((neuron.graded_spikes_factor == 1).all()):
        raise ConversionError(where, "graded spikes are not supported on Alpha",
                              got=neuron.graded_spikes_factor, expected="1.0",
                              hint="train without graded_spikes_factor")
    beta, learn_beta = _param(neuron, "beta")
    threshold, learn_thr = _param(neuron, "threshold")
    out = AlphaNeuron(neuron.alpha.detach().clone(), beta.clamp(0, 1), threshold,
                      reset=reset, surrogate=from_snntorch_surrogate(neuron.spike_grad),
                      learn_beta=learn_beta, learn_threshold=learn_thr)
    _copy_raw(out, "beta", beta)
    return out


class LapicqueNeuron(LIFNeuron):
    """snnTorch ``Lapicque`` with any ``R``, ``C``, ``time_step``: a :class:`LIFNeuron`
    (``β = 1 - dt/(R·C)``) whose input term is ``x·R·(1/(R·C))·dt``, multiplied in
    snnTorch's order (one gain ``dt/C`` would round differently).

    Args:
        R, C, time_step: snnTorch's buffers (kept as buffers here).
        **kwargs: the :class:`LIFNeuron` options (``beta`` = the decay).
    """

    def __init__(self, R: Tensor, C: Tensor, time_step: Tensor, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.register_buffer("R", R)
        self.register_buffer("C", C)
        self.register_buffer("time_step", time_step)

    def prepare_input(self, x: Tensor) -> Tensor:
        return x * self.R * (1 / (self.R * self.C)) * self.time_step


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
class SnnTorchNeuron(HiddenStateModule):
    """A drop-in with snnTorch's call convention, computing with a brain_ai neuron.

    ``forward(input_, *states) -> (spk, *states)`` with the state order of the snnTorch class
    (Leaky ``(mem)``, Synaptic ``(syn, mem)``, RLeaky ``(spk, mem)``, RSynaptic
    ``(spk, syn, mem)``), for a hand-written snnTorch time loop: pass the states back in.
    ``init_leaky()`` / ``reset_mem()`` & co. return empty tensors meaning "fresh state"; an
    all-zero state of another shape (the tutorials' ``mem = torch.zeros(1)``) is fresh too,
    exactly as snnTorch treats it; any other mis-shaped state raises (snnTorch would silently
    replace it with zeros). Inputs of any shape work, 0-d included (one neuron).

    ``init_hidden=True`` (the convention of ``spk = lif(x)``): the state is kept between calls
    in the model's :class:`~brain_ai.adapters.hidden_state.HiddenState`, never on this module;
    ``reset_mem()`` / ``init_leaky()`` / :func:`~brain_ai.adapters.hidden_state.reset_hidden`
    (where snnTorch code calls ``utils.reset(net)``) start it fresh. ``output=True`` returns
    ``(spk, *states)`` as snnTorch does.
    """

    def __init__(self, neuron: SpikingNeuronBase, kind: str, *, init_hidden: bool = False,
                 output: bool = False) -> None:
        super().__init__()
        self.neuron = neuron
        self.kind = kind
        self.state_names = NEURON_RULES[kind][0]
        self.init_hidden = init_hidden
        self.output = output

    def _fresh(self) -> tuple[Tensor, ...]:
        return tuple(torch.zeros(0) for _ in self.state_names)

    def reset_mem(self) -> Tensor | tuple[Tensor, ...]:
        if self.init_hidden:
            self.reset()
        fresh = self._fresh()
        return fresh[0] if len(fresh) == 1 else fresh

    init_leaky = init_synaptic = init_rleaky = init_rsynaptic = init_lapicque = reset_mem
    init_alpha = reset_mem

    def reset_hidden(self) -> None:
        """snnTorch's ``reset_hidden`` for this neuron only (never every live instance)."""
        self.reset()

    def detach_hidden(self) -> None:
        """snnTorch's ``detach_hidden`` for this neuron only."""
        self.detach()

    def _state(self, where: str, x: Tensor, states: tuple[Tensor, ...]) -> SpikingState | None:
        shaped = [s.shape == x.shape for s in states]
        if not any(shaped) and all(not bool(s.any()) for s in states):
            return None  # empty (reset_mem) or all-zero of another shape: fresh, as snnTorch
        if not all(shaped):
            bad = next(s for s in states if s.shape != x.shape)
            raise ShapeError(where, "a state does not have the input's shape (state is never "
                             "broadcast)", got=tuple(bad.shape), expected=tuple(x.shape),
                             hint="pass the states this neuron returned, or neuron.reset_mem()")
        fields = {_STATE_FIELD[n]: s for n, s in zip(self.state_names, states, strict=True)}
        return AlphaState(**fields) if self.kind == "Alpha" else SpikingState(**fields)

    def forward(self, input_: Tensor, *states: Tensor | None) -> Tensor | tuple[Tensor, ...]:
        where = f"SnnTorchNeuron({self.kind}).forward"
        scalar = input_.dim() == 0
        x = input_.reshape(1) if scalar else input_
        if self.init_hidden:
            if states:
                raise TypeError(f"{where}: init_hidden=True keeps the state; pass only the "
                                "input (as in snnTorch)")
            store = self._store()
            try:
                spk, new = self.neuron.step(x, store.get(self.slot))
            except ShapeError as exc:
                raise self._shape_error(where, exc) from exc
            store.set(self.slot, new)
        else:
            if len(states) != len(self.state_names) or any(s is None for s in states):
                raise ShapeError(
                    where, "pass every state explicitly (this module keeps none)",
                    got=f"{len(states)} state(s)", expected=f"{self.state_names}",
                    hint="before the loop: states = neuron.reset_mem(); then "
                         "spk, *states = neuron(x, *states)")
            one = tuple(s.reshape(1) if scalar and s.dim() == 0 else s
                        for s in states)  # type: ignore[union-attr]
            spk, new = self.neuron.step(x, self._state(where, x, one))
        values = ({"syn_exc": new.exc, "syn_inh": new.inh, "mem": new.v}
                  if isinstance(new, AlphaState) else {"mem": new.v, "syn": new.i, "spk": spk})
        out = [spk] + [values[n] for n in self.state_names if n != "spk"]
        if scalar:
            out = [t.reshape(()) for t in out]
        self._report(out[0], out[-1])
        if self.init_hidden and not self.output:
            return out[0]
        return tuple(out)


# --------------------------------------------------------------------------- models
def _is_snn_neuron(m: nn.Module) -> bool:
    return isinstance(m, _snn().SpikingNeuron)


#: snnTorch modules brain_ai does not reproduce, with the one-line reason (they are refused,
#: never passed through).
REFUSED: dict[str, str] = {
    "LeakyParallel": "an nn.RNN over the whole sequence (relu, no reset, time-first); not a "
                     "stepped LIF neuron",
    "StateLeaky": "a whole-sequence convolution kernel exp(-k/tau), no reset",
    "LinearLeaky": "a whole-sequence convolution kernel exp(-k/tau), no reset",
    "AssociativeLeaky": "a linear-attention matrix state, not a LIF neuron",
    "SLSTM": "an LSTM cell, not a LIF neuron",
    "SConv2dLSTM": "a convolutional LSTM cell, not a LIF neuron",
    "DeltaLeaky": "fires on membrane changes (no threshold/reset rule brain_ai has)",
}


def _check_peer_module(path: str, m: nn.Module) -> None:
    """Raise for an snnTorch module that would otherwise pass through unconverted."""
    mod = type(m).__module__
    if not mod.startswith("snntorch"):
        return
    name = type(m).__name__
    reason = REFUSED.get(name, "no brain_ai counterpart")
    raise ConversionError("migrate", f"{path or '<model>'}: snnTorch {name} is not "
                          f"supported: {reason}", got=name, expected=" | ".join(NEURON_RULES),
                          hint="keep this part in snnTorch, or replace it before migrating")


def migrate(model: nn.Module) -> nn.Module:
    """Convert every snnTorch neuron in ``model``; other layers keep their weights.

    * An ``nn.Sequential`` whose neurons use ``init_hidden=True`` (the tutorial style, called
      once per time step) becomes a :class:`SpikingSequential`, run batch-first over
      ``(B, T, ...)``: ``spikes, state = migrated(x)``.
    * Any other model keeps its own ``forward`` (hand-written time loops, custom modules):
      each neuron is replaced in place by a :class:`SnnTorchNeuron` with the same call
      convention. ``init_hidden=True`` neurons keep their state in the model's one
      :class:`~brain_ai.adapters.hidden_state.HiddenState`: where the snnTorch code calls
      ``utils.reset(net)``, call ``brain_ai.adapters.hidden_state.reset_hidden(net)``.

    Raises:
        ConversionError: ``"<path>: <reason>"`` for a neuron or option brain_ai does not
            reproduce (Alpha, LeakyParallel, inhibition, ...); nothing passes through.
    The input model is not modified.
    """
    model = _copy_without_peer_state(model)
    if isinstance(model, nn.Sequential) and any(
            _is_snn_neuron(m) and m.init_hidden for m in model.children()):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for name, m in model.named_children():
            if _is_snn_neuron(m):
                if type(m).__name__ not in NEURON_RULES:
                    _check_peer_module(name, m)
                if not m.init_hidden:
                    raise ConversionError("migrate", f"layer {name} mixes init_hidden=False "
                                          "into an init_hidden Sequential", got=name,
                                          expected="init_hidden=True for every neuron",
                                          hint="snnTorch itself cannot run this model")
                layers[name] = _convert_neuron(name, m)
            else:
                _reject_nested(m, name)
                layers[name] = m
        return SpikingSequential(layers).train(model.training)
    root = _replace(model, "")
    attach(root)
    return root


def _convert_neuron(path: str, m: nn.Module) -> SpikingNeuronBase:
    if type(m).__name__ not in NEURON_RULES:
        _check_peer_module(path, m)
    try:
        return from_snntorch(m)
    except ConversionError as exc:
        raise ConversionError("migrate", f"{path or '<model>'}: "
                              f"{str(exc).split(' (got ')[0]}", got=exc.got,
                              expected=exc.expected, hint=exc.hint) from exc


def _replace(m: nn.Module, path: str) -> nn.Module:
    if _is_snn_neuron(m) or type(m).__module__.startswith("snntorch"):
        neuron = _convert_neuron(path, m)
        return SnnTorchNeuron(neuron, _kind(m), init_hidden=bool(m.init_hidden),
                              output=bool(getattr(m, "output", False))).train(m.training)
    for name, child in list(m._modules.items()):
        if child is not None:
            m._modules[name] = _replace(child, f"{path}.{name}" if path else name)
    return m


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
        full = f"{name}.{path}" if path else name
        if _is_snn_neuron(m):
            raise ConversionError("migrate", f"snnTorch neuron nested in layer {name} "
                                  f"({full})", got=type(m).__name__,
                                  expected="neurons as direct children of the Sequential",
                                  hint="flatten the Sequential")
        _check_peer_module(full, m)
