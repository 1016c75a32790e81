"""Modules for the NIR primitives that brain_ai's core has no module for.

* :class:`OffsetLIFNeuron`: a :class:`~brain_ai.core.neurons.LIFNeuron` whose input gets a
  per-neuron bias after the gain and whose membrane is stored shifted by a per-neuron offset
  (a NIR ``LIF`` with ``v_leak != v_reset``, or with ``v_reset`` that differs per neuron).
* :class:`LeakyIntegrator`: the same neuron with no reset, returning its membrane instead of
  spikes (NIR ``LI``, ``CubaLI`` and ``I``).
* :class:`Scale`, :class:`SumPool2d`, :class:`Threshold`: stateless, batch-first ``(B, *f)``.
* :class:`Delay`: ``y[t] = x[t - d]`` with integer per-element delays, state explicit.

The neurons are :class:`~brain_ai.core.neurons.SpikingNeuronBase` subclasses, so
:class:`~brain_ai.core.snn.SpikingSequential` runs them like any neuron.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brain_ai.core.neurons import LIFNeuron
from brain_ai.errors import ConfigError, ShapeError, is_int
from brain_ai.physics.state import SpikingState
from brain_ai.physics.surrogates import ATan, Surrogate, heaviside

__all__ = ["Delay", "LeakyIntegrator", "OffsetLIFNeuron", "Scale", "SumPool2d", "Threshold"]


def _buffer(value: Tensor | float | None, where: str, name: str) -> Tensor | None:
    if value is None:
        return None
    t = value.detach().clone() if isinstance(value, Tensor) else torch.as_tensor(float(value))
    if not t.is_floating_point():
        t = t.float()
    if not bool(torch.isfinite(t).all()):
        raise ConfigError(f"{where}.{name}", f"{name} has non-finite entries", got=t,
                          expected="finite values", hint=f"check how {name} was computed")
    return t


class OffsetLIFNeuron(LIFNeuron):
    """A :class:`LIFNeuron` with an input bias and a membrane offset (per neuron).

    One step: ``x ← x·input_gain + input_bias``, then the LIF step of the parent (charge,
    fire, reset). The stored membrane is ``u = v - membrane_offset``: the NIR membrane ``v``
    shifted per neuron, so that a per-neuron reset potential becomes the scalar reset
    ``v_reset`` of the module (and the threshold is stored shifted as well).

    Args:
        input_bias: added to the input after ``input_gain`` (shape broadcastable to
            ``features``); ``None`` = none.
        membrane_offset: ``v - state.v`` per neuron; ``None`` = 0. Only recorded (for export);
            the dynamics are those of the parameters as given.
        **kwargs: every option of :class:`LIFNeuron`.
    """

    def __init__(self, beta: Any = 0.9, threshold: Any = 1.0, *,
                 input_bias: Tensor | float | None = None,
                 membrane_offset: Tensor | float | None = None, **kwargs: Any) -> None:
        super().__init__(beta=beta, threshold=threshold, **kwargs)
        where = type(self).__name__
        for name, value in (("input_bias", input_bias), ("membrane_offset", membrane_offset)):
            t = _buffer(value, where, name)
            if t is None:
                setattr(self, name, None)
            else:
                self.register_buffer(name, t)
        self._check_param_shapes(where)

    def prepare_input(self, x: Tensor) -> Tensor:
        x = super().prepare_input(x)
        return x if self.input_bias is None else x + self.input_bias

    def membrane(self, v: Tensor) -> Tensor:
        """The NIR membrane ``state.v + membrane_offset`` of a stored membrane."""
        return v if self.membrane_offset is None else v + self.membrane_offset


class LeakyIntegrator(OffsetLIFNeuron):
    """A leaky (or, with ``beta=1``, perfect) integrator: the membrane is the output.

    NIR ``LI`` (``charge="tau_input"``), ``CubaLI`` (with ``alpha``) and ``I`` (``beta=1``,
    ``beta_clamp=(0, 1)``). ``reset`` is always ``"none"``; ``threshold`` is unused. ``step``
    and ``sequence`` return ``(membrane, state)`` / ``(membrane, state, traces)`` where
    ``membrane = state.v + membrane_offset``, shape of the input.
    """

    def __init__(self, beta: Any = 0.9, **kwargs: Any) -> None:
        if kwargs.get("reset", "none") != "none":
            raise ConfigError(type(self).__name__, "a leaky integrator never resets",
                              got=repr(kwargs["reset"]), expected="reset='none' (the default)",
                              hint="use LIFNeuron for a neuron that fires and resets")
        kwargs["reset"] = "none"
        super().__init__(beta=beta, **kwargs)

    def step(self, x: Tensor, state: SpikingState | None = None
             ) -> tuple[Tensor, SpikingState]:
        _, state = super().step(x, state)
        return self.membrane(state.v), state

    def sequence(self, x: Tensor, state: SpikingState | None = None,
                 chunk_size: int | None = None, record: Sequence[str] = ()
                 ) -> tuple[Tensor, SpikingState, dict[str, Tensor]]:
        names = ("v", *(r for r in record if r != "v"))
        _, state, traces = super().sequence(x, state, chunk_size, names)
        return self.membrane(traces["v"]), state, traces


class Scale(nn.Module):
    """``y = x ⊙ scale`` over ``(B, *f)`` (NIR ``Scale``); ``scale`` is a parameter."""

    def __init__(self, scale: Tensor) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.as_tensor(scale).detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class SumPool2d(nn.Module):
    """Sum over each pooling window of ``(N, C, H, W)`` (NIR ``SumPool2d``); zero padding.

    Computed as ``avg_pool2d(..., divisor_override=1)``: a plain sum, exact for spike counts.
    """

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int],
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                            divisor_override=1)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Threshold(nn.Module):
    """``y = H(x - threshold)`` with NIR's strict ``>`` (ties do not fire); stateless.

    The backward is ``surrogate``'s (default :class:`~brain_ai.physics.surrogates.ATan`).
    """

    def __init__(self, threshold: Tensor, surrogate: Surrogate | None = None) -> None:
        super().__init__()
        self.register_buffer("threshold", torch.as_tensor(threshold).detach().clone())
        self.surrogate = ATan() if surrogate is None else surrogate

    def forward(self, x: Tensor) -> Tensor:
        return heaviside(x - self.threshold, self.surrogate, False)


class Delay(nn.Module):
    """``y[t] = x[t - d]`` per element with integer ``d >= 0`` steps (NIR ``Delay``).

    Before an element's first delayed input arrives it outputs 0. The state is the last
    ``depth = max(d) + 1`` inputs, ``(B, depth, *f)``, newest first; ``state=None`` is zeros.

    Args:
        steps: integer delays in steps, shape of one sample's features (or broadcastable).
    """

    def __init__(self, steps: Tensor) -> None:
        super().__init__()
        s = torch.as_tensor(steps)
        if s.is_floating_point() or s.is_complex() or bool((s < 0).any()):
            raise ConfigError("Delay", "steps must be integers >= 0", got=s,
                              expected="a torch.long tensor of delays in steps",
                              hint="convert seconds with round(delay / dt) after checking "
                                   "that it is an integer")
        self.register_buffer("steps", s.to(torch.long))
        self.depth = int(s.max()) + 1 if s.numel() else 1

    def reset_state(self, batch_size: int, feature_shape: Sequence[int],
                    device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float32) -> Tensor:
        if not is_int(batch_size) or batch_size <= 0:
            raise ShapeError("Delay.reset_state", "batch_size must be a positive int",
                             got=batch_size, expected="int > 0", hint="use x.shape[0]")
        return torch.zeros((batch_size, self.depth, *feature_shape), device=device, dtype=dtype)

    def step(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One step: ``x`` ``(B, *f)`` -> ``(y (B, *f), state (B, depth, *f))``."""
        if state is None:
            state = self.reset_state(x.shape[0], tuple(x.shape[1:]), x.device, x.dtype)
        elif state.shape != (x.shape[0], self.depth, *x.shape[1:]):
            raise ShapeError("Delay.step", "state does not fit x", got=tuple(state.shape),
                             expected=(x.shape[0], self.depth, *x.shape[1:]),
                             hint="start from state=None or delay.reset_state(...)")
        history = torch.cat((x.unsqueeze(1), state[:, :-1]), dim=1)
        index = self.steps.expand(x.shape[1:]).unsqueeze(0).expand(x.shape[0], *x.shape[1:])
        return history.gather(1, index.unsqueeze(1)).squeeze(1), history

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """A sequence ``(B, T, *f)`` -> ``(y (B, T, *f), final state)``."""
        if x.dim() < 2 or x.shape[1] == 0:
            raise ShapeError("Delay.forward", "x must be a sequence (B, T, *f) with T >= 1",
                             got=tuple(x.shape), expected="rank >= 2, T >= 1",
                             hint="use .step(x) for one time step")
        ys = []
        for x_t in x.unbind(1):
            y, state = self.step(x_t, state)
            ys.append(y)
        return torch.stack(ys, 1), state  # type: ignore[return-value]

    def extra_repr(self) -> str:
        return f"depth={self.depth}"
