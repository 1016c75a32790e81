"""brain_ai: explicit-state, batch-first spiking neural networks.

Neurons never hold state: every call takes a :class:`~brain_ai.core.neurons.SpikingState`
and returns the next one. Tensors are batch-first ``(B, T, ...)``.
"""

__version__ = "0.1.0"
