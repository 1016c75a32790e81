"""brain_ai: explicit-state, batch-first spiking neural networks.

Neurons never hold state: every call takes a :class:`SpikingState` and returns the next one.
Tensors are batch-first ``(B, T, ...)``. This module is the everyday API; the layers below it
are, bottom to top: :mod:`brain_ai.errors`, :mod:`brain_ai.physics` (rules, surrogates, state,
reference step), :mod:`brain_ai.kernels` (fast multi-step kernels and their dispatcher),
:mod:`brain_ai.config`, :mod:`brain_ai.core` (neurons, networks, codecs, losses),
:mod:`brain_ai.adapters` (the peers at the edge),
:mod:`brain_ai.conformance` and :mod:`brain_ai.apps` (the ``brain-ai`` command line).
"""

# The peers at the edge: importing the adapters also registers their engines as backends.
from brain_ai.adapters.snntorch import from_snntorch, to_snntorch
from brain_ai.adapters.snntorch import migrate as migrate_snntorch
from brain_ai.adapters.verify import verify_migration
from brain_ai.config import (
    DecodingConfig,
    EncodingConfig,
    LossConfig,
    SNNConfig,
)
from brain_ai.core.backends import use_backend
from brain_ai.core.decoding import (
    DecoderOutput,
    EnsembleDecoder,
    FirstSpikeDecoder,
    MembraneDecoder,
    PopulationDecoder,
    RateDecoder,
    build_decoder,
)
from brain_ai.core.encoding import (
    DeltaEncoder,
    LatencyEncoder,
    PopulationEncoder,
    RateEncoder,
    SpikeBatch,
    TTFSEncoder,
    build_encoder,
)
from brain_ai.core.losses import (
    ISIRegularization,
    MembraneRegularization,
    ProbSpikes,
    SNNLossComposer,
    SpikeRateRegularization,
    TemporalConsistency,
    compute_snn_metrics,
)
from brain_ai.core.neurons import (
    AdaptiveLIFNeuron,
    AdvancedLIFNeuron,
    LIFNeuron,
    RecurrentLIFNeuron,
    SpikingNeuronBase,
    SpikingState,
)
from brain_ai.core.serialization import load, save
from brain_ai.core.snn import ConvSNN, SNNCore, SpikingSequential
from brain_ai.core.surrogates import (
    STE,
    ATan,
    Erf,
    FastSigmoid,
    PiecewiseExp,
    PiecewiseQuadratic,
    Sigmoid,
    SoftSign,
    SuperSpike,
    Surrogate,
    Triangular,
    surrogate_from_name,
)
from brain_ai.core.unroll import snn_unroll
from brain_ai.physics.axes import batch_to_time_first, time_to_batch_first

__version__ = "0.1.0"

# SpikingJelly is an optional peer whose adapter needs it at import: its entry points load on
# first access (PEP 562), so ``import brain_ai`` works without it.
_SPIKINGJELLY = {"from_spikingjelly": "from_spikingjelly", "to_spikingjelly": "to_spikingjelly",
                 "migrate_spikingjelly": "migrate"}


def __getattr__(name: str) -> object:
    if name in _SPIKINGJELLY:
        from brain_ai.adapters import spikingjelly

        return getattr(spikingjelly, _SPIKINGJELLY[name])
    raise AttributeError(f"module 'brain_ai' has no attribute {name!r}")

__all__ = [
    "STE",
    "ATan",
    "AdaptiveLIFNeuron",
    "AdvancedLIFNeuron",
    "ConvSNN",
    "DecoderOutput",
    "DecodingConfig",
    "DeltaEncoder",
    "EncodingConfig",
    "EnsembleDecoder",
    "Erf",
    "FastSigmoid",
    "FirstSpikeDecoder",
    "ISIRegularization",
    "LIFNeuron",
    "LatencyEncoder",
    "LossConfig",
    "MembraneDecoder",
    "MembraneRegularization",
    "PiecewiseExp",
    "PiecewiseQuadratic",
    "PopulationDecoder",
    "PopulationEncoder",
    "ProbSpikes",
    "RateDecoder",
    "RateEncoder",
    "RecurrentLIFNeuron",
    "SNNConfig",
    "SNNCore",
    "SNNLossComposer",
    "Sigmoid",
    "SoftSign",
    "SpikeBatch",
    "SpikeRateRegularization",
    "SpikingNeuronBase",
    "SpikingSequential",
    "SpikingState",
    "SuperSpike",
    "Surrogate",
    "TTFSEncoder",
    "TemporalConsistency",
    "Triangular",
    "__version__",
    "batch_to_time_first",
    "build_decoder",
    "build_encoder",
    "compute_snn_metrics",
    "from_snntorch",
    "from_spikingjelly",
    "load",
    "migrate_snntorch",
    "migrate_spikingjelly",
    "save",
    "snn_unroll",
    "surrogate_from_name",
    "time_to_batch_first",
    "to_snntorch",
    "to_spikingjelly",
    "use_backend",
    "verify_migration",
]
