r"""The named rules of the LIF family: charge, fire, reset and reset timing. One place, all peers.

Every difference between brain_ai, snnTorch and SpikingJelly that changes numbers is one of the
rules below, chosen by name; the step function (:func:`brain_ai.physics.functional.lif_step`)
only composes them. Each rule is written in the exact operation order of the peer it comes
from, so a converted neuron computes the same bits.

Charge (``h`` = membrane before firing; ``v`` = carried membrane; ``x`` = input current)
=================  =========================================  ================================
``charge``         ``h``                                      used by
=================  =========================================  ================================
``"beta"``         ``β·v + x``                                 brain_ai default, snnTorch, Norse
``"tau"``          ``v - (v - v_reset)/τ + x``                 SJ ``LIFNode(decay_input=False)``
``"tau_input"``    ``v + (x - (v - v_reset))/τ``               SJ ``LIFNode(decay_input=True)``
``"rate"``         ``v - (v - v_reset)·q + x``   (``q=1/τ``)   SJ ``ParametricLIFNode``
``"rate_input"``   ``v + (x - (v - v_reset))·q``               SJ ``ParametricLIFNode`` (default)
=================  =========================================  ================================

Fire: ``s = H(h - θ)`` with comparator ``">"`` (snnTorch, NIR, Norse: ``h == θ`` does not fire)
or ``">="`` (SpikingJelly: ties fire). Forward spikes are exactly 0.0/1.0.

Reset mechanism (applied with spike ``s``): ``"subtract"`` (``h - s·θ``), ``"zero"`` (to
``v_reset``, a hard reset), ``"none"``.

Reset timing
====================  =========================================================================
``"immediate"``       fire and reset in the same step; the stored membrane is post-reset
                      (brain_ai default, SpikingJelly, NIR). Zero: ``s·v_reset + (1 - s)·h``.
``"delayed"``         the reset of step ``t-1`` lands in step ``t`` *after* the charge, from the
                      stored pre-reset membrane: ``r = H(v - θ)`` (detached); subtract
                      ``h - r·θ`` (undecayed threshold), zero ``h - r·h`` (the input of step
                      ``t`` is discarded). The stored/returned membrane is pre-reset.
                      snnTorch ``reset_delay=True`` (default) of every neuron except ``Leaky``
                      zero.
``"delayed_pre"``     as ``"delayed"`` but the carried reset acts on ``v`` *before* the charge:
                      zero ``(1 - r)·v``, subtract ``v - r·θ``. snnTorch ``Leaky`` zero reset.
``"compensated"``     snnTorch ``reset_delay=False``: the ``"delayed"`` reset of the stored
                      (already reset) membrane, then a same-step correction by
                      ``(s - r)``: subtract ``h - (s - r)·θ``, zero ``h - (s - r)·h``. Equals
                      ``"immediate"`` except when a reset membrane stays above threshold.
``"compensated_pre"`` ``"compensated"`` with the carried reset of ``"delayed_pre"``
                      (snnTorch ``Leaky`` zero reset with ``reset_delay=False``).
====================  =========================================================================

The carried reset ``r`` is always detached (as in snnTorch). The same-step reset uses the
spike with its surrogate gradient unless ``detach_reset=True`` (SpikingJelly's option).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from torch import Tensor

from brain_ai.errors import ConfigError
from brain_ai.physics.surrogates import Surrogate, heaviside, step_function

__all__ = [
    "ALLOWED",
    "INPUT_CHARGES",
    "RULE_CODES",
    "TIMINGS",
    "Charge",
    "Comparator",
    "ResetMechanism",
    "ResetTiming",
    "apply_carried_reset_post",
    "apply_carried_reset_pre",
    "apply_reset",
    "carried_reset",
    "charge",
    "check_rule",
    "equivalent_immediate",
    "fire",
    "is_carried",
    "is_compensated",
    "is_pre_charge",
    "stores_h",
]

Charge = Literal["beta", "tau", "tau_input", "rate", "rate_input"]
Comparator = Literal[">", ">="]
ResetMechanism = Literal["subtract", "zero", "none"]
ResetTiming = Literal["immediate", "delayed", "delayed_pre", "compensated", "compensated_pre"]


#: The charges in which the leak also scales the input (``x`` enters the leak's gradient).
INPUT_CHARGES = ("tau_input", "rate_input")


@dataclass(frozen=True)
class TimingRule:
    """What a reset timing does to the step order (every kernel reads these, never the names).

    Attributes:
        carried: a reset ``r = H(v - θ)`` of the stored membrane carries into the next step.
        pre_charge: the carried reset acts on ``v`` before the charge (else on ``h`` after it).
        same_step: a reset acts on ``h`` in the step that fired (else the stored membrane is
            ``h`` itself, pre-reset).
    """

    carried: bool
    pre_charge: bool
    same_step: bool


#: The reset timings of the module table, as step-order flags. Keys equal ``ResetTiming``.
TIMINGS: dict[str, TimingRule] = {
    "immediate": TimingRule(carried=False, pre_charge=False, same_step=True),
    "delayed": TimingRule(carried=True, pre_charge=False, same_step=False),
    "delayed_pre": TimingRule(carried=True, pre_charge=True, same_step=False),
    "compensated": TimingRule(carried=True, pre_charge=False, same_step=True),
    "compensated_pre": TimingRule(carried=True, pre_charge=True, same_step=True),
}

CARRIED_TIMINGS = tuple(n for n, t in TIMINGS.items() if t.carried)
PRE_CHARGE_TIMINGS = tuple(n for n, t in TIMINGS.items() if t.pre_charge)


def is_carried(mechanism: str, timing: str) -> bool:
    """Whether a reset of step ``t-1`` acts in step ``t`` (no reset, nothing to carry)."""
    return TIMINGS[timing].carried and mechanism != "none"


def is_pre_charge(timing: str) -> bool:
    """Whether the carried reset acts on the stored membrane before the charge."""
    return TIMINGS[timing].pre_charge


def is_compensated(mechanism: str, timing: str) -> bool:
    """A carried reset *and* a same-step correction by ``(s - r)`` (snnTorch's
    ``reset_delay=False``)."""
    return is_carried(mechanism, timing) and TIMINGS[timing].same_step


def stores_h(mechanism: str, timing: str) -> bool:
    """Whether the stored membrane is the charged ``h`` itself (no same-step reset)."""
    return not TIMINGS[timing].same_step or mechanism == "none"


def check_rule(where: str, kind: str, value: object, allowed: tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(
            where, f"unknown {kind}", got=repr(value),
            expected=" | ".join(repr(a) for a in allowed),
            hint=f"see brain_ai.physics.rules for what each {kind} means",
        )


ALLOWED = {
    "charge": get_args(Charge),
    "comparator": get_args(Comparator),
    "reset": get_args(ResetMechanism),
    "reset_timing": get_args(ResetTiming),
}

#: The one rule-code table: the integer by which a kernel knows each rule (its position in
#: :data:`ALLOWED`). Every compiled kernel takes its codes from here: the C++ enums are
#: generated from it (:func:`brain_ai.kernels.native.rules_header`), Triton reads it. A kernel
#: still runs only the names it lists as covered; any other rule runs the reference.
RULE_CODES: dict[str, dict[str, int]] = {
    kind: {name: code for code, name in enumerate(names)} for kind, names in ALLOWED.items()
}


def charge(v: Tensor, x: Tensor, leak: Tensor, rule: str, v_reset: float) -> Tensor:
    """Membrane after integrating ``x`` (see the module table). ``leak`` is β, τ or q."""
    if rule == "beta":
        return leak * v + x
    if rule == "tau":
        return v - (v - v_reset) / leak + x
    if rule == "tau_input":
        return v + (x - (v - v_reset)) / leak
    if rule == "rate":
        return v - (v - v_reset) * leak + x
    return v + (x - (v - v_reset)) * leak  # "rate_input"


def fire(h: Tensor, threshold: Tensor, surrogate: Surrogate, comparator: str) -> Tensor:
    """Spikes ``H(h - θ)`` with the comparator's tie rule and the surrogate's gradient."""
    return heaviside(h - threshold, surrogate, comparator == ">=")


def carried_reset(v: Tensor, threshold: Tensor, comparator: str) -> Tensor:
    """``r = H(v - θ)`` of the stored membrane, detached (the delayed/compensated reset)."""
    return step_function((v - threshold).detach(), comparator == ">=")


def apply_carried_reset_pre(v: Tensor, r: Tensor, mechanism: str, threshold: Tensor,
                            v_reset: float) -> Tensor:
    """Carried reset on the stored membrane before the charge (``*_pre`` timings)."""
    if mechanism == "subtract":
        return v - r * threshold
    if mechanism == "zero":
        out = (1 - r) * v
        return out if v_reset == 0.0 else out + r * v_reset
    return v


def apply_carried_reset_post(h: Tensor, r: Tensor, mechanism: str, threshold: Tensor,
                             v_reset: float, h_again: Tensor | None = None) -> Tensor:
    """Carried reset on the charged membrane (``"delayed"``/``"compensated"``).

    ``h_again``: the same charge evaluated a second time (snnTorch's zero reset computes
    ``base - r·base'`` with two graph branches); equal to ``h`` in value.
    """
    if mechanism == "subtract":
        return h - r * threshold
    if mechanism == "zero":
        h2 = h if h_again is None else h_again
        return h - r * h2 if v_reset == 0.0 else h - r * (h2 - v_reset)
    return h


def apply_reset(h: Tensor, s: Tensor, r: Tensor | None, mechanism: str, timing: str,
                threshold: Tensor, v_reset: float, detach_reset: bool) -> Tensor:
    """Same-step reset after firing; returns the membrane to store.

    Args:
        h: charged membrane (after any carried reset).
        s: spikes of this step (0/1, with surrogate gradient).
        r: carried reset (``None`` for ``"immediate"``).
    """
    if stores_h(mechanism, timing):
        return h
    s_r = s.detach() if detach_reset else s
    if not is_carried(mechanism, timing):
        if mechanism == "subtract":
            return h - s_r * threshold
        return s_r * v_reset + (1.0 - s_r) * h  # SpikingJelly's hard reset
    do_reset = s_r - r  # compensated: undo the carried reset where it was applied
    if mechanism == "subtract":
        return h - do_reset * threshold
    return h - do_reset * h if v_reset == 0.0 else h - do_reset * (h - v_reset)


def equivalent_immediate(mechanism: str, timing: str, threshold_positive: bool,
                         v_reset: float) -> bool:
    """Whether ``timing`` computes exactly what ``"immediate"`` computes for this reset.

    True for ``reset="none"`` (no reset to time), and for a zero reset to ``v_reset = 0`` below
    a positive threshold with a compensated timing: the stored membrane after a step is then
    either ``0`` (it spiked) or ``h <= θ`` (it did not), so the carried reset ``H(v - θ)`` is
    always 0 and only the same-step reset acts (``h - s·h`` equals ``s·0 + (1 - s)·h``).
    """
    if not is_carried(mechanism, timing):
        return True
    return (mechanism == "zero" and is_compensated(mechanism, timing)
            and threshold_positive and v_reset == 0.0)
