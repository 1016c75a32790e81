"""Cross-framework conversion through brain_ai: snnTorch -> brain_ai -> SpikingJelly.

Exact where the dynamics exist in both peers: snnTorch's ``reset_delay=False`` zero reset
equals an immediate zero reset (:func:`brain_ai.physics.rules.equivalent_immediate`), which is
SpikingJelly's hard reset; ``Leaky``/``Synaptic`` with ``charge="beta"`` become
``CUBALIFNode`` (or ``IFNode`` for β = 1). snnTorch fires on ``h > θ``, SpikingJelly on
``h >= θ``: spikes differ on inputs that hit the threshold exactly, so the conversion needs
``allow_tie_rule_change=True`` (the conformance case checks it on inputs without ties).
snnTorch's default delayed subtract reset has no SpikingJelly counterpart and raises.
"""

from __future__ import annotations

from torch import nn

from brain_ai.adapters.snntorch import from_snntorch
from brain_ai.adapters.spikingjelly import to_spikingjelly
from brain_ai.core.neurons import SpikingNeuronBase
from brain_ai.physics import rules

__all__ = ["canonical_timing", "snntorch_to_spikingjelly"]


def canonical_timing(neuron: SpikingNeuronBase) -> SpikingNeuronBase:
    """Rewrite a peer timing that provably equals ``"immediate"`` (in place; returns it)."""
    positive = bool((neuron.threshold > 0).all())
    if rules.equivalent_immediate(neuron.reset, neuron.reset_timing, positive, neuron.v_reset):
        neuron.reset_timing = "immediate"
    return neuron


def snntorch_to_spikingjelly(neuron: nn.Module, *, allow_tie_rule_change: bool = False,
                             step_mode: str = "s") -> nn.Module:
    """The SpikingJelly node computing what an snnTorch neuron computes (see module doc)."""
    ours = canonical_timing(from_snntorch(neuron))
    return to_spikingjelly(ours, step_mode=step_mode,
                           allow_tie_rule_change=allow_tie_rule_change)
