r"""The alpha neuron (snnTorch ``Alpha``): two synaptic currents, no membrane leak of its own.

One step, in snnTorch 1.0.0's operation order (``alpha.py``), with ``a = clamp(α, 0, 1)``,
``b = clamp(β, 0, 1)`` re-evaluated at every use::

    r    = H(v - θ)                           (detached; the reset of the previous step)
    exc' = a·exc + x                          excitatory current
    inh' = b·inh - x                          inhibitory current
    τ_α  = log(a) / (log(b) - log(a)) + 1
    v'   = τ_α·(exc' + inh')                  (the membrane does not depend on v)
    reset "zero":     exc', inh', v' -= (a second evaluation of the same values)·r
    reset "subtract": exc' -= θ·r ;  inh' -= (b·inh - x)·r ;  v' -= (-inh)·r
    s    = H(v' - θ) (comparator ">", surrogate gradient)

The stored membrane is pre-reset (the reset lands one step later), as in snnTorch. State is
explicit (:class:`AlphaState`), never on the module. ``α > β`` and ``β ≠ 1`` are required.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
import torch.utils._pytree as pytree
from torch import Tensor, nn

from brain_ai.errors import ConfigError, ShapeError
from brain_ai.physics import rules
from brain_ai.physics.surrogates import ATan, Surrogate
from brain_ai.physics.windows import check_chunk_size, is_window_edge

__all__ = ["AlphaNeuron", "AlphaState"]


@dataclass(eq=False)
class AlphaState:
    """State of an :class:`AlphaNeuron`, batch-first ``(B, *features)`` each.

    Attributes:
        exc: excitatory synaptic current. inh: inhibitory synaptic current.
        v: membrane (pre-reset, as snnTorch returns it).
    """

    exc: Tensor
    inh: Tensor
    v: Tensor


pytree.register_pytree_node(
    AlphaState, lambda s: ([getattr(s, f.name) for f in fields(s)], None),
    lambda values, _ctx: AlphaState(*values),
    serialized_type_name="brain_ai.core.alpha.AlphaState")


class AlphaNeuron(nn.Module):
    """snnTorch's ``Alpha`` neuron as a stateless module (see the module docstring).

    Args:
        alpha: excitatory decay α (clamped to [0, 1] once, as snnTorch does; a buffer).
        beta: inhibitory decay β (raw value kept, clamped at every use).
        threshold: θ.
        reset: ``"zero"`` (snnTorch's default here), ``"subtract"`` or ``"none"``.
        surrogate: the spike's surrogate gradient (default ``ATan(2)``).
        learn_beta / learn_threshold: make them ``nn.Parameter`` s.
    """

    def __init__(self, alpha: float | Tensor, beta: float | Tensor, threshold: float | Tensor = 1.0,
                 *, reset: str = "zero", surrogate: Surrogate | None = None,
                 learn_beta: bool = False, learn_threshold: bool = False) -> None:
        super().__init__()
        where = type(self).__name__
        rules.check_rule(where, "reset", reset, rules.ALLOWED["reset"])
        a = torch.as_tensor(alpha).detach().clone().clamp(0, 1)
        b = torch.as_tensor(beta).detach().clone()
        if bool((a <= b).any()) or bool((b == 1).any()):
            raise ConfigError(where, "the alpha neuron needs alpha > beta and beta != 1",
                              got=f"alpha={a.tolist()}, beta={b.tolist()}",
                              expected="alpha > beta, beta < 1",
                              hint="tau_alpha = log(a)/(log(b) - log(a)) + 1 needs them")
        self.register_buffer("alpha", a)
        thr = torch.as_tensor(threshold).detach().clone()
        for name, value, learn in (("beta", b, learn_beta), ("threshold", thr, learn_threshold)):
            if learn:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        self.reset = reset
        self.surrogate = surrogate or ATan()

    def reset_state(self, like: Tensor) -> AlphaState:
        """Zeros of ``like``'s shape (snnTorch's fresh state)."""
        zeros = torch.zeros_like(like)
        return AlphaState(zeros, zeros, zeros)

    def _charge(self, x: Tensor, s: AlphaState) -> tuple[Tensor, Tensor, Tensor]:
        exc = self.alpha.clamp(0, 1) * s.exc + x
        inh = self.beta.clamp(0, 1) * s.inh - x
        tau_alpha = (torch.log(self.alpha.clamp(0, 1))
                     / (torch.log(self.beta.clamp(0, 1)) - torch.log(self.alpha.clamp(0, 1)))
                     + 1)
        return exc, inh, tau_alpha * (exc + inh)

    def step(self, x: Tensor, state: AlphaState | None = None) -> tuple[Tensor, AlphaState]:
        """One step: ``x`` ``(B, *f)`` -> ``(spikes, state)``."""
        if state is None:
            state = self.reset_state(x)
        elif state.v.shape != x.shape:
            raise ShapeError(f"{type(self).__name__}.step", "state and input shapes differ "
                             "(state is never broadcast)", got=tuple(state.v.shape),
                             expected=tuple(x.shape), hint="start from state=None")
        r = rules.carried_reset(state.v, self.threshold, ">")
        exc, inh, v = self._charge(x, state)
        if self.reset == "zero":
            exc2, inh2, v2 = self._charge(x, state)
            exc, inh, v = exc - exc2 * r, inh - inh2 * r, v - v2 * r
        elif self.reset == "subtract":
            exc = exc - self.threshold * r
            inh = inh - (self.beta.clamp(0, 1) * state.inh - x) * r
            v = v - (-state.inh) * r
        spikes = rules.fire(v, self.threshold, self.surrogate, ">")
        return spikes, AlphaState(exc, inh, v)

    def sequence(self, x: Tensor, state: AlphaState | None = None, chunk_size: int | None = None,
                 record: Sequence[str] = ()) -> tuple[Tensor, AlphaState, dict[str, Tensor]]:
        """``x`` ``(B, T, *f)`` step by step; ``traces`` stacks the named state fields.

        ``chunk_size``: truncated BPTT, the state is detached before every step ``t > 0`` with
        ``t % chunk_size == 0`` (``None``: full BPTT)."""
        if x.dim() < 2 or x.shape[1] == 0:
            raise ShapeError(f"{type(self).__name__}.sequence", "a sequence needs (B, T, ...) "
                             "with T >= 1", got=tuple(x.shape), expected="rank >= 2, T >= 1",
                             hint="use .step(x) for one time step")
        spikes: list[Tensor] = []
        traces: dict[str, list[Tensor]] = {name: [] for name in record}
        check_chunk_size(f"{type(self).__name__}.sequence", chunk_size)
        for t, x_t in enumerate(x.unbind(1)):
            if state is not None and is_window_edge(t, chunk_size):
                state = pytree.tree_map(lambda v: v.detach(), state)
            s, state = self.step(x_t, state)
            spikes.append(s)
            for name in record:
                traces[name].append(getattr(state, name))
        return (torch.stack(spikes, 1), state,  # type: ignore[return-value]
                {k: torch.stack(v, 1) for k, v in traces.items()})

    def forward(self, x: Tensor, state: AlphaState | None = None) -> tuple[Tensor, AlphaState]:
        """One step (``(B, *f)``); use :meth:`sequence` for ``(B, T, *f)``."""
        return self.step(x, state)

    def extra_repr(self) -> str:
        return f"reset={self.reset}, surrogate={self.surrogate}"
