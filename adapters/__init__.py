"""brain_ai.adapters: the peers at the edge of the house.

Conversion to and from snnTorch (:mod:`.snntorch`) and SpikingJelly (:mod:`.spikingjelly`),
model migration and its verification (:mod:`.verify`), the modules SpikingJelly's become in a
migrated model (:mod:`.spikingjelly_layers`, no peer import), the one place a migrated model
keeps the state a peer's calling convention hides (:mod:`.hidden_state`), the numbers
comparisons are made of (:mod:`.metrics`), and the peers' engines as backend providers
(:mod:`.backends`, registered into :mod:`brain_ai.core.backends` on import).
"""

from brain_ai.adapters import backends as backends  # registers the peers' engines

__all__ = ["backends"]
