"""Spiking networks built from the LIF family, all run through :func:`snn_unroll`.

:class:`SpikingSequential` is the container every architecture (and every migrated peer
model) uses: stateless layers (linear, conv, pooling, norm, flatten, dropout) and neurons in
order, batch-first ``(B, T, ...)``, state explicit (a tuple with one entry per layer, ``None``
for stateless ones).

Two execution orders give the same numbers in exact arithmetic:

* ``fold_time=False`` (default): step by step, every layer per time step (what a hand-written
  snnTorch loop does); one :func:`snn_unroll` over the whole network.
* ``fold_time=True``: layer by layer; stateless layers see time folded into the batch
  ``(B·T, ...)`` (SpikingJelly's ``SeqToANNContainer``), neurons unroll their sequence.
  Faster for convolutions. Float results can differ in the last bit where a library
  kernel's summation order depends on the batch size; conformance measures it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from brain_ai.config import SNNConfig
from brain_ai.core.axes import TIME_DIM
from brain_ai.core.neurons import (
    AdaptiveLIFNeuron,
    AdvancedLIFNeuron,
    LIFNeuron,
    RecurrentLIFNeuron,
    SpikingNeuronBase,
)
from brain_ai.core.state import SpikingState
from brain_ai.core.surrogates import surrogate_from_name
from brain_ai.core.unroll import snn_unroll
from brain_ai.errors import ConfigError, ShapeError

if TYPE_CHECKING:
    from brain_ai.core.losses import SNNMetrics

__all__ = [
    "ConvSNN",
    "NetworkOutput",
    "ProbedOutput",
    "SNNCore",
    "SpikingSequential",
    "fold_time",
    "network_probes",
    "neuron_from_config",
]

NetState = tuple[SpikingState | None, ...]


def fold_time(module: nn.Module, x: Tensor) -> Tensor:
    """Apply a stateless ``module`` to ``(B, T, ...)`` by folding time into the batch."""
    b, t = x.shape[0], x.shape[TIME_DIM]
    y = module(x.flatten(0, 1))
    return y.unflatten(0, (b, t))


@dataclass(eq=False)
class NetworkOutput:
    """``forward(..., return_details=True)`` of a network.

    Attributes:
        output: the last layer's output ``(B, T, ...)``.
        state: final network state (one entry per layer).
        spikes / membrane: per neuron layer (keyed by the layer's name), ``(B, T, ...)``.
    """

    output: Tensor
    state: NetState
    spikes: dict[str, Tensor] = field(default_factory=dict)
    membrane: dict[str, Tensor] = field(default_factory=dict)


class SpikingSequential(nn.Sequential):
    """``nn.Sequential`` of stateless layers and spiking neurons over ``(B, T, ...)``.

    Args:
        *layers: modules in order (or one ``OrderedDict`` of named modules, as ``nn.Sequential``).
        fold_time: run layer by layer with time folded into the batch (see module docstring).
        chunk_size: truncated-BPTT window (``None`` = full BPTT).
    """

    def __init__(self, *layers: Any, fold_time: bool = False,
                 chunk_size: int | None = None) -> None:
        super().__init__(*layers)
        self.fold_time = fold_time
        self.chunk_size = chunk_size

    def _neurons(self) -> list[tuple[int, str, SpikingNeuronBase]]:
        return [(i, name, m) for i, (name, m) in enumerate(self._modules.items())
                if isinstance(m, SpikingNeuronBase)]

    def _init_state(self, state: NetState | None) -> list[SpikingState | None]:
        n = len(self._modules)
        if state is None:
            return [None] * n
        if not isinstance(state, (tuple, list)) or len(state) != n:
            raise ShapeError(f"{type(self).__name__}.forward",
                             "state must have one entry per layer",
                             got=len(state) if isinstance(state, (tuple, list)) else state,
                             expected=n, hint="pass the state this network returned, or None")
        return list(state)

    def step(self, x: Tensor, state: NetState | None = None,
             ) -> tuple[Tensor, NetState, dict[str, tuple[Tensor, Tensor]]]:
        """One time step through every layer: ``x`` ``(B, ...)``.

        Returns ``(output, state, records)``, ``records[name] = (spikes, membrane)``.
        """
        states = self._init_state(state)
        records: dict[str, tuple[Tensor, Tensor]] = {}
        for i, (name, layer) in enumerate(self._modules.items()):
            if isinstance(layer, SpikingNeuronBase):
                x, states[i] = layer.step(x, states[i])
                records[name] = (x, states[i].v)  # type: ignore[union-attr]
            else:
                x = layer(x)
        return x, tuple(states), records

    def forward(self, x: Tensor, state: NetState | None = None,
                return_details: bool = False) -> Any:
        """``x`` ``(B, T, ...)`` -> ``(output (B, T, ...), state)`` (or :class:`NetworkOutput`)."""
        if not isinstance(x, Tensor) or x.dim() < 2:
            raise ShapeError(f"{type(self).__name__}.forward", "x must be (B, T, ...)",
                             got=getattr(x, "shape", type(x).__name__),
                             expected="rank >= 2, batch-first",
                             hint="time-first data: time_to_batch_first(x)")
        if self.fold_time:
            out, final, spikes, membrane = self._forward_folded(x, state)
        else:
            def cell(x_t: Tensor, s: NetState) -> tuple[Any, NetState]:
                y, s2, rec = self.step(x_t, s)
                return (y, rec), s2

            (out, rec), final, _ = snn_unroll(cell, x, tuple(self._init_state(state)),
                                                self.chunk_size)
            spikes = {k: v[0] for k, v in rec.items()}
            membrane = {k: v[1] for k, v in rec.items()}
        if return_details:
            return NetworkOutput(out, final, spikes, membrane)
        return out, final

    def _forward_folded(self, x: Tensor, state: NetState | None
                        ) -> tuple[Tensor, NetState, dict[str, Tensor], dict[str, Tensor]]:
        states = self._init_state(state)
        spikes: dict[str, Tensor] = {}
        membrane: dict[str, Tensor] = {}
        for i, (name, layer) in enumerate(self._modules.items()):
            if isinstance(layer, SpikingNeuronBase):
                x, states[i], traces = layer.sequence(x, states[i], self.chunk_size, ("v",))
                spikes[name], membrane[name] = x, traces["v"]
            else:
                x = fold_time(layer, x)
        return x, tuple(states), spikes, membrane
