r"""NIR import and export: ``from_nir`` and ``to_nir``, exact or refused.

`NIR <https://neuroir.org>`_ states neurons as ODEs with no time step; brain_ai runs one step
per call. Both directions name ``dt`` and a discretisation (``"euler"``, NIR's reference, or
``"exact"``); :mod:`brain_ai.nir.discretization` writes the mapping and its float operation
order once. What NIR cannot express is refused unless carried in node metadata
(``to_nir(..., carry="metadata")``), which ``from_nir`` restores bit for bit.

>>> import torch, brain_ai, brain_ai.nir as bnir
>>> _ = torch.manual_seed(0)
>>> net = brain_ai.SpikingSequential(torch.nn.Linear(4, 3),
...                                  brain_ai.LIFNeuron(beta=0.9, reset="zero"))
>>> graph = bnir.to_nir(net, dt=1e-4)                  # Input -> Affine -> LIF -> Output
>>> sorted(type(n).__name__ for n in graph.nodes.values())
['Affine', 'Input', 'LIF', 'Output']
>>> lif = graph.nodes["1"]                               # tau = dt/(1 - beta), r = 1/(1 - beta)
>>> round(float(lif.tau[0]), 9), round(float(lif.r[0]), 5), lif.tau.shape
(0.001, 10.0, (3,))
>>> back = bnir.from_nir(graph)                          # dt read from graph.metadata
>>> x = torch.rand(2, 5, 4) * 3
>>> bool(torch.equal(back(x)[0], net(x)[0]))
True
"""

from brain_ai.nir.discretization import DISCRETIZATIONS
from brain_ai.nir.exporter import CARRY, to_nir
from brain_ai.nir.graph import NIRNetwork
from brain_ai.nir.importer import from_nir, read_graph
from brain_ai.nir.modules import (
    Delay,
    LeakyIntegrator,
    OffsetLIFNeuron,
    Scale,
    SumPool2d,
    Threshold,
)
from brain_ai.nir.reference import simulate

__all__ = [
    "CARRY",
    "DISCRETIZATIONS",
    "Delay",
    "LeakyIntegrator",
    "NIRNetwork",
    "OffsetLIFNeuron",
    "Scale",
    "SumPool2d",
    "Threshold",
    "from_nir",
    "read_graph",
    "simulate",
    "to_nir",
]
