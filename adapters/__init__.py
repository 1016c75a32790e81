"""brain_ai.adapters: the peers at the edge of the house.

Conversion to and from snnTorch (:mod:`.snntorch`) and SpikingJelly (:mod:`.spikingjelly`),
model migration and its verification (:mod:`.verify`), the numbers comparisons are made of
(:mod:`.metrics`), and the peers' engines as backend providers (:mod:`.backends`, registered
into :mod:`brain_ai.core.backends` on import).
"""

from brain_ai.adapters import backends as backends  # registers the peers' engines

__all__ = ["backends"]
