r"""NIR's continuous-time parameters <-> brain_ai's per-step neurons: the one place it is written.

NIR states ODEs and no time step. brain_ai neurons are discrete (one call = one step), so
every conversion names ``dt`` (seconds per step) and a *discretisation*:

``"euler"`` (default; NIR's reference, snnTorch, SpikingJelly, the NIR paper)
    ``v[t] = v[t-1] + (dt/τ)·(v_leak - v[t-1] + r·I[t])``  so  ``A = 1 - dt/τ``,  ``gain = r·dt/τ``
``"exact"`` (exponential integration, input held over the step)
    ``v[t] = v_leak + r·I[t] + (v[t-1] - v_leak - r·I[t])·exp(-dt/τ)``  so  ``A = exp(-dt/τ)``,
    ``gain = r·(1 - A)``

Both are the *discrete linear form* ``h = A·v + (1 - A)·v_leak + G·x`` (``A`` the per-step
decay, ``G`` the per-step input gain); only ``A`` differs and in both ``G = r·(1 - A)``.
Integrators (``I``, ``IF``: ``dv/dt = r·I``) have ``A = 1`` and ``G = dt·r`` under both.
Current-based synapses (``CubaLIF``, ``CubaLI``: ``τ_syn·dI/dt = -I + w_in·S``) use the same
rule per state variable, the membrane driven by the *updated* current ``I[t]`` (the convention
of snnTorch, SpikingJelly and Norse's importer); under ``"exact"`` each variable is integrated
exactly with its own input held, which is not the exact solution of the coupled pair.

How a NIR neuron becomes a brain_ai step (float32, computed in this order)::

    x  = I · r                                  (input_gain = r)
    h  = v + (x - (v - v_leak)) / τ_s           (charge="tau_input"; τ_s = 1/(1 - A) steps)
    s  = h > v_threshold                        (comparator ">")
    v' = s·v_reset + (1 - s)·h                  (reset="zero", timing "immediate")

with ``τ_s = τ/dt`` (Euler) or ``1/(-expm1(-dt/τ))`` (exact), evaluated in float64 and rounded
once to float32. ``(x - (v - v_leak))`` equals ``(v_leak - v) + r·I`` bit for bit (IEEE
subtraction is the addition of the negation, and addition commutes), so the only difference
from the textbook ``v + (dt/τ)·((v_leak - v) + r·I)`` is the division by ``τ_s`` instead of the
multiplication by ``dt/τ``: at most one rounding of the increment (~6e-8 relative). A
reference written with the division is matched bit for bit; a float64 textbook reference is
matched spike for spike (conformance family ``nir``).

brain_ai's leak target and reset value are one number (the neuron's ``v_reset``); a NIR neuron
whose ``v_leak`` differs from ``v_reset``, or whose ``v_reset`` differs between neurons, is run
in a shifted frame by :class:`~brain_ai.nir.modules.OffsetLIFNeuron` (exact in real
arithmetic, not bit for bit).

β ↔ τ conversions themselves go through :mod:`brain_ai.physics.mappings`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from brain_ai.errors import ConfigError, ConversionError, check_choice
from brain_ai.physics.mappings import tau_from_beta_euler, tau_from_beta_exact

__all__ = [
    "DISCRETIZATIONS",
    "check_dt",
    "decay_and_gain",
    "integrator_gain",
    "nir_r",
    "nir_tau",
    "steps_from_tau",
    "synapse_decay",
]

#: The discretisations a conversion can name.
DISCRETIZATIONS = ("euler", "exact")


def check_dt(where: str, dt: object, discretization: object) -> float:
    """``dt`` as a positive finite float, and a known ``discretization``."""
    check_choice(where, "discretization", discretization, DISCRETIZATIONS,
                 hint="'euler' (NIR's reference, snnTorch, SpikingJelly) or 'exact'")
    ok = isinstance(dt, (int, float, np.floating)) and not isinstance(dt, bool)
    if not ok or not np.isfinite(float(dt)) or float(dt) <= 0:  # type: ignore[arg-type]
        raise ConfigError(f"{where}.dt", "dt must be a positive number of seconds per step",
                          got=repr(dt), expected="e.g. dt=1e-4 (snnTorch, SpikingJelly, the "
                          "NIR paper)", hint="NIR stores no time step: name the one the "
                          "graph was trained or will run with")
    return float(dt)  # type: ignore[arg-type]


def _f64(x: np.ndarray | Tensor | float) -> Tensor:
    if isinstance(x, Tensor):
        return x.detach().to(torch.float64).cpu()
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def steps_from_tau(where: str, name: str, tau: np.ndarray | Tensor, dt: float,
                   discretization: str) -> Tensor:
    """``τ_s = 1/(1 - A)`` in steps (float64): ``τ/dt`` (Euler) or ``1/(-expm1(-dt/τ))``.

    Raises:
        ConversionError: ``τ`` is not positive and finite, or ``τ < dt`` under Euler (the
            forward-Euler step would overshoot: ``A < 0``).
    """
    t = _f64(tau)
    if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()):
        raise ConversionError(where, f"{name} must be positive and finite",
                              got=f"min {float(t.min()):.6g}, max {float(t.max()):.6g}",
                              expected=f"0 < {name} < inf (seconds)",
                              hint="an infinite time constant is an integrator: use an IF/I node")
    if discretization == "euler":
        steps = t / dt
        if bool((steps < 1).any()):
            raise ConversionError(
                where, f"{name} is shorter than dt, so forward Euler overshoots (A = 1 - dt/τ < 0)",
                got=f"min {name}/dt = {float(steps.min()):.6g}", expected=f"{name} >= dt",
                hint="use a smaller dt, or discretization='exact'")
        return steps
    return 1.0 / -torch.expm1(-dt / t)


def synapse_decay(where: str, tau_syn: np.ndarray | Tensor, dt: float,
                  discretization: str) -> Tensor:
    """``α`` of the synaptic current (float64): ``1 - dt/τ_syn`` or ``exp(-dt/τ_syn)``."""
    steps = steps_from_tau(where, "tau_syn", tau_syn, dt, discretization)
    return 1.0 - 1.0 / steps if discretization == "euler" else torch.exp(-dt / _f64(tau_syn))


def integrator_gain(r: np.ndarray | Tensor, dt: float) -> Tensor:
    """``G = dt·r`` (float64) of ``dv/dt = r·I`` (``I``, ``IF``), for both discretisations."""
    return dt * _f64(r)


def decay_and_gain(tau: np.ndarray | Tensor, r: np.ndarray | Tensor, dt: float,
                   discretization: str) -> tuple[Tensor, Tensor]:
    """``(A, G)`` of a leaky membrane in float64 (:mod:`brain_ai.physics.mappings` returns
    float32; the reference simulator and the checks need the float64 values)."""
    t = _f64(tau)
    decay = 1.0 - dt / t if discretization == "euler" else torch.exp(-dt / t)
    return decay, _f64(r) * (1.0 - decay)


def nir_tau(decay: Tensor, dt: float, discretization: str) -> Tensor:
    """NIR ``τ`` (float32) of a per-step decay ``A`` in ``[0, 1)``, via the one β ↔ τ mapping."""
    f = tau_from_beta_euler if discretization == "euler" else tau_from_beta_exact
    return torch.as_tensor(f(_f64(decay), dt), dtype=torch.float32)


def nir_r(gain: Tensor, decay: Tensor) -> Tensor:
    """NIR ``r = G / (1 - A)`` (float32, computed in float64), both discretisations."""
    return (_f64(gain) / (1.0 - _f64(decay))).to(torch.float32)
