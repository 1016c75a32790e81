"""``SpikingState``: the explicit state of every LIF-family neuron (a registered pytree)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
import torch.utils._pytree as pytree
from torch import Tensor

__all__ = ["SpikingState", "detach_state"]


@dataclass(eq=False)
class SpikingState:
    """State carried from one time step to the next. Never stored on a module.

    All tensors are batch-first ``(B, *features)`` (``spike_history``: ``(B, D, *features)``).

    Attributes:
        v: membrane potential. For ``"delayed*"`` reset timings this is the *pre-reset*
            membrane (what snnTorch returns); otherwise post-reset.
        i: synaptic current (current-based synapse), or ``None``.
        a: adaptation variable (adaptive threshold), or ``None``.
        prev_spk: previous output spikes (recurrent neurons), or ``None``.
        spike_history: the last ``D`` inputs (learnable delays), or ``None``.
        ref: remaining refractory steps (float counts), or ``None``.
    """

    v: Tensor
    i: Tensor | None = None
    a: Tensor | None = None
    prev_spk: Tensor | None = None
    spike_history: Tensor | None = None
    ref: Tensor | None = None

    def tensors(self) -> dict[str, Tensor]:
        """The fields that are set, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}

    def replace(self, **changes: Tensor | None) -> SpikingState:
        return replace(self, **changes)


def _flatten(s: SpikingState) -> tuple[list[Tensor | None], None]:
    return [getattr(s, f.name) for f in fields(s)], None


def _unflatten(values: list[Tensor | None], _ctx: None) -> SpikingState:
    return SpikingState(*values)


def _flatten_with_keys(s: SpikingState) -> tuple[list[tuple[pytree.KeyEntry, Tensor | None]], None]:
    return [(pytree.GetAttrKey(f.name), getattr(s, f.name)) for f in fields(s)], None


pytree.register_pytree_node(
    SpikingState, _flatten, _unflatten,
    serialized_type_name="brain_ai.physics.state.SpikingState",
    flatten_with_keys_fn=_flatten_with_keys,
)


def detach_state(state: object) -> object:
    """Cut the autograd graph of every tensor in ``state`` (values unchanged, no copy)."""
    return pytree.tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, state)
