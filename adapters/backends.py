"""The peers' engines as backend providers (snnTorch, SpikingJelly).

Registered into :mod:`brain_ai.core.backends` when :mod:`brain_ai.adapters` is imported (which
``import brain_ai`` does). The peer module is built once per neuron and *shares* the neuron's
parameter tensors, so gradients land on the brain_ai parameters. Peer modules keep state on
themselves; it is cleared after every call, so no hidden state survives. A neuron whose rules
the peer cannot reproduce raises :class:`~brain_ai.errors.ConversionError` with the reason (the
same checks as the adapters' ``to_snntorch`` / ``to_spikingjelly``).
"""

from __future__ import annotations

import weakref
from typing import Any

from torch import Tensor, nn

from brain_ai.adapters.snntorch import NEURON_RULES, to_snntorch
from brain_ai.core.backends import check_backend, register_backend
from brain_ai.core.neurons import SpikingNeuronBase
from brain_ai.physics.state import SpikingState

__all__ = ["set_backend"]


def set_backend(model: nn.Module, name: str | None) -> nn.Module:
    """Set the backend of every brain_ai neuron in ``model`` (``None``: follow the default)."""
    if name is not None:
        check_backend("set_backend", name)
    for m in model.modules():
        if isinstance(m, SpikingNeuronBase):
            m.backend = name
    return model


# neuron -> (its rules, its snnTorch peer): built once per set of rules (snnTorch registers
# every instance in a global list, so rebuilding per call would leak), kept off the neuron
# itself, dropped with it.
_SNNTORCH_PEERS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], nn.Module]] = (
    weakref.WeakKeyDictionary())


def _rules_of(neuron: nn.Module) -> tuple[Any, ...]:
    """The static options a peer module is built from (a change means a new peer)."""
    names = ("charge", "reset", "reset_timing", "comparator", "surrogate", "detach_reset",
             "v_reset", "beta_param", "beta_clamp", "refractory_steps", "recurrent_kind")
    return (type(neuron), *(getattr(neuron, n, None) for n in names),
            *(getattr(neuron, n, None) is None for n in _SHARED),
            *(isinstance(getattr(neuron, n, None), nn.Parameter) for n in _SHARED))

_SHARED = ("beta", "threshold", "graded_spikes_factor", "alpha")


def _share(peer: nn.Module, neuron: nn.Module) -> None:
    """Point the peer's parameters at the neuron's own tensors (no copies)."""
    for name in _SHARED:
        mine = getattr(neuron, name, None)
        if mine is None or not hasattr(peer, name):
            continue
        if isinstance(mine, nn.Parameter):
            peer._buffers.pop(name, None)
            peer._parameters[name] = mine
        else:
            peer._parameters.pop(name, None)
            peer._buffers[name] = mine
    if hasattr(neuron, "recurrent") and hasattr(peer, "recurrent"):
        peer.recurrent = neuron.recurrent


class _SnnTorchCell:
    """One step on an snnTorch neuron, state passed explicitly and cleared afterwards."""

    def __init__(self, neuron: SpikingNeuronBase) -> None:
        rules_now = _rules_of(neuron)
        cached = _SNNTORCH_PEERS.get(neuron)
        if cached is None or cached[0] != rules_now:
            cached = (rules_now, to_snntorch(neuron))  # checks the rules again
            _SNNTORCH_PEERS[neuron] = cached
        self.peer = cached[1]
        _share(self.peer, neuron)  # every call: parameters may have been replaced or moved
        self.names = NEURON_RULES[type(self.peer).__name__][0]

    def __call__(self, x: Tensor, state: SpikingState) -> tuple[Tensor, SpikingState]:
        field = {"mem": state.v, "syn": state.i, "spk": state.prev_spk}
        try:
            out = self.peer(x, *(field[n] for n in self.names))
        finally:
            self.peer.reset_mem()
        by_name = dict(zip([n for n in self.names if n != "spk"], out[1:], strict=True))
        return out[0], SpikingState(v=by_name["mem"], i=by_name.get("syn"),
                                    prev_spk=out[0] if "spk" in self.names else None)


class _SpikingJellyCell:
    """One step on a SpikingJelly node (single-step mode), its memories passed explicitly.

    The node is rebuilt for every call: SJ holds θ and τ as Python floats, so a cached node
    would miss a later ``load_state_dict``; PLIF's ``w`` is shared.
    """

    def __init__(self, neuron: SpikingNeuronBase) -> None:
        # SpikingJelly is optional: its adapter (which needs it at import) loads on first use
        from brain_ai.adapters.spikingjelly import to_spikingjelly

        self.peer = to_spikingjelly(neuron, step_mode="s")
        if isinstance(getattr(neuron, "w", None), nn.Parameter):
            self.peer._parameters["w"] = neuron.w

    def __call__(self, x: Tensor, state: SpikingState) -> tuple[Tensor, SpikingState]:
        from brain_ai.adapters.spikingjelly import state_from_spikingjelly, state_to_spikingjelly

        state_to_spikingjelly(state, self.peer)
        try:
            s = self.peer(x)
        finally:
            new = state_from_spikingjelly(self.peer)  # also resets the node
        if new is None:  # pragma: no cover - a step always materializes v
            raise RuntimeError("SpikingJelly node returned no state")
        return s, new


register_backend("snntorch", _SnnTorchCell)
register_backend("spikingjelly", _SpikingJellyCell)
