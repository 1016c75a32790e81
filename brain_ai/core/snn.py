"""Spiking networks built from the LIF family, all run through :func:`snn_unroll`.

:class:`SpikingSequential` is the container every architecture (and every migrated peer
model) uses: stateless layers (linear, conv, pooling, norm, flatten, dropout) and neurons in
order, batch-first ``(B, T, ...)``, state explicit (a tuple with one entry per layer, ``None``
for stateless ones).

Both orders run layer by layer (layer-major): each neuron unrolls its whole sequence on the
multi-step kernels (:func:`brain_ai.kernels.fused_multi_step`), each stateless layer sees the
whole sequence. They differ in how a stateless layer meets time:

* ``fold_time=False`` (default): the numbers of a step-by-step loop (what a hand-written
  snnTorch loop computes, every layer per time step), bit for bit, spikes, membranes and
  gradients: a stateless layer runs once per step, unless running it once on time folded into
  the batch is exact. That is measured per layer (:meth:`SpikingSequential.fold_plan`): a
  layer without learnable parameters is run both ways once on random data of the call's
  shape, outputs and input gradients compared bit for bit (pooling, flatten, activations,
  batch-norm in eval mode: folded, one call instead of ``T``); a layer with learnable
  parameters stays per step (its weight gradient is ``T`` per-step sums added by autograd,
  never the one folded sum's float). A random layer in training mode (the dropout family)
  draws its masks in the step loop's order only when every layer runs per step, so a
  network holding one runs step by step (:func:`snn_unroll` over the whole network, the
  neurons' reference step).
* ``fold_time=True``: every stateless layer sees time folded into the batch ``(B·T, ...)``
  (SpikingJelly's ``SeqToANNContainer``). Faster for convolutions; float results can differ in
  the last bit where a library kernel's summation order depends on the batch size.

Truncated BPTT is per neuron and the same in every order: each neuron's state is detached
before every step ``t > 0`` with ``t % w == 0``, ``w`` its window
(:meth:`SpikingSequential.chunk_sizes`: the container's ``chunk_size`` if set, else the
neuron's own, see :func:`brain_ai.physics.windows.resolve_chunk_size`). Layer by layer the
neuron's kernel cuts the state's gradient there inside one call (nothing concatenated); step
by step the network's single :func:`snn_unroll` runs uncut and the step cuts each neuron's
state there itself, so neurons with different windows (mixed ``chunk_size`` across layers)
give the same numbers and gradients in every order.

Per-step spikes and membranes are recorded only for ``return_details=True``.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from brain_ai.config import SNNConfig
from brain_ai.core.losses import HEALTHY_RANGES, SNNMetrics, compute_snn_metrics
from brain_ai.core.neurons import (
    AdaptiveLIFNeuron,
    AdvancedLIFNeuron,
    LIFNeuron,
    RecurrentLIFNeuron,
    SpikingNeuronBase,
)
from brain_ai.core.unroll import snn_unroll
from brain_ai.errors import ConfigError, DTypeError, ShapeError, check_positive
from brain_ai.physics.axes import TIME_DIM, batch_to_time_first, time_to_batch_first
from brain_ai.physics.state import SpikingState, detach_state
from brain_ai.physics.surrogates import surrogate_from_name
from brain_ai.physics.windows import check_chunk_size, is_window_edge, resolve_chunk_size

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

#: Layers that draw random numbers per call in training mode: a network holding one runs
#: every layer per step, so that the masks are drawn in the step loop's order.
_RANDOM = (nn.modules.dropout._DropoutNd,)


def fold_time(module: nn.Module, x: Tensor) -> Tensor:
    """Apply a stateless ``module`` to ``(B, T, ...)`` by folding time into the batch.

    The fold is time-major (``T·B`` rows, as SpikingJelly's ``SeqToANNContainer``): weight
    gradients then sum over the same row order as the peer's, bit for bit. Costs one copy.
    """
    b, t = x.shape[0], x.shape[TIME_DIM]
    y = module(batch_to_time_first(x).flatten(0, 1))
    return time_to_batch_first(y.unflatten(0, (t, b)))


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward hands on a contiguous gradient: a layer run once per step then
    gets the gradient of its output in the layout a step loop gives it (a batch-norm's
    reduction over the batch depends on that layout), not a slice of the whole sequence's."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # type: ignore[override]
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad.contiguous()


def _grad_contiguous(y: Tensor) -> Tensor:
    """``y`` (a layer's output of one step), its gradient to come back contiguous
    (:class:`_ContiguousGrad`; applied right after the layer, so that in backward each step's
    copy is made just before the layer's backward uses it, one step at a time)."""
    if torch.is_grad_enabled() and y.requires_grad:
        return _ContiguousGrad.apply(y)  # type: ignore[no-any-return]
    return y


def _stack_steps(steps: list[Tensor]) -> Tensor:
    """The outputs of a layer run per step as one ``(B, T, ...)`` sequence."""
    return torch.stack(steps, TIME_DIM)


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
        fold_time: fold time into the batch for every stateless layer (SpikingJelly's
            numbers); ``False`` keeps a step-by-step loop's numbers (see module docstring).
        chunk_size: truncated-BPTT window of every neuron in the container, overriding each
            neuron's own ``chunk_size``; ``None`` (default) lets each neuron keep its own
            (``None`` there too = full BPTT). Windows count from the first step of each
            ``forward`` call, in both orders (see :meth:`chunk_sizes`).
    """

    def __init__(self, *layers: Any, fold_time: bool = False,
                 chunk_size: int | None = None) -> None:
        super().__init__(*layers)
        check_chunk_size(type(self).__name__, chunk_size)
        self.fold_time = fold_time
        self.chunk_size = chunk_size
        # fold_plan's measurements: (layer name, shape, dtype, device, mode) -> exact folded
        self._fold_exact: dict[tuple[Any, ...], bool] = {}

    def _neurons(self) -> list[tuple[int, str, SpikingNeuronBase]]:
        return [(i, name, m) for i, (name, m) in enumerate(self._modules.items())
                if isinstance(m, SpikingNeuronBase)]

    def chunk_sizes(self) -> list[int | None]:
        """Truncated-BPTT window of every layer, by position; ``None`` for stateless layers.

        A neuron's window is :func:`~brain_ai.physics.windows.resolve_chunk_size` of this
        container's ``chunk_size`` (given: it wins) and the neuron's own ``chunk_size``
        (``None`` = full BPTT). Read at every ``forward``, so later changes of either count.
        """
        where = f"{type(self).__name__}.forward"
        return [resolve_chunk_size(f"{where} ({name})", call=self.chunk_size, own=m.chunk_size)
                if isinstance(m, SpikingNeuronBase) else None
                for name, m in self._modules.items()]

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

    def step(self, x: Tensor, state: NetState | None = None, record: bool = True,
             ) -> tuple[Tensor, NetState, dict[str, tuple[Tensor, Tensor]]]:
        """One time step through every layer: ``x`` ``(B, ...)``.

        Returns ``(output, state, records)``, ``records[name] = (spikes, membrane)`` of every
        neuron layer (empty with ``record=False``).
        """
        states = self._init_state(state)
        records: dict[str, tuple[Tensor, Tensor]] = {}
        for i, (name, layer) in enumerate(self._modules.items()):
            if isinstance(layer, SpikingNeuronBase):
                x, states[i] = layer.step(x, states[i])
                if record:
                    records[name] = (x, states[i].v)  # type: ignore[union-attr]
            else:
                x = self._stateless(name, layer, x, layer)
        return x, tuple(states), records

    def _random_in_training(self) -> bool:
        """A layer that draws random numbers per call is in training mode (dropout family)."""
        return any(isinstance(m, _RANDOM) and m.training and getattr(m, "p", 1.0) > 0
                   for m in self.modules())

    def fold_plan(self, x: Tensor) -> dict[str, bool]:
        """Per stateless layer (by name): whether ``fold_time=False`` runs it once on time
        folded into the batch (``True``) or once per step (``False``) for this input.

        Folded is exact for a layer when it gives the per-step loop's output and input
        gradient bit for bit; that is measured once per layer, input shape, dtype, device and
        mode, on random data (the layer's own parameters untouched; a layer in training mode
        with buffers, as batch-norm, is not run: per step). A layer with learnable
        parameters is not measured: per step (autograd adds its weight gradient per step).
        """
        plan: dict[str, bool] = {}
        for name, layer in self._modules.items():
            if isinstance(layer, SpikingNeuronBase):  # spikes of the neurons' own shape
                feats = layer.features if layer.features is not None else x.shape[2:]
                x = x.new_empty((*x.shape[:2], *feats))
                continue
            plan[name] = self._measure_fold(name, layer, x)
            x = self._next_shape(layer, x)
        return plan

    @staticmethod
    def _next_shape(layer: nn.Module, x: Tensor) -> Tensor:
        """An empty tensor of the shape ``layer`` gives ``x`` ``(B, T, ...)`` (one step run
        in eval mode, so that no running statistics move)."""
        training = layer.training
        layer.eval()
        try:
            with torch.no_grad():
                y = layer(torch.zeros((x.shape[0], *x.shape[2:]), dtype=x.dtype,
                                      device=x.device))
        finally:
            layer.train(training)
        return y.new_empty((x.shape[0], x.shape[1], *y.shape[1:]))

    def _measure_fold(self, name: str, layer: nn.Module, x: Tensor) -> bool:
        if torch.compiler.is_compiling() or torch.compiler.is_exporting():
            return False  # per step: the numbers a measurement would allow folding for
        key = (name, tuple(x.shape), x.dtype, x.device, layer.training)
        cache: dict[tuple[Any, ...], bool] = self.__dict__.setdefault("_fold_exact", {})
        known = cache.get(key)
        if known is not None:
            return known
        exact = False
        learnable = any(p.requires_grad for p in layer.parameters())
        stateful = layer.training and any(True for _ in layer.buffers())
        if x.is_floating_point() and not learnable and not stateful:
            g = torch.Generator(device="cpu").manual_seed(0)
            probe = torch.randn(x.shape, generator=g, dtype=torch.float64).to(x)
            try:
                with torch.enable_grad():
                    a_in = probe.clone().requires_grad_()
                    a = fold_time(layer, a_in)
                    exact = a.is_floating_point()
                    up = torch.randn(a.shape, generator=g, dtype=torch.float64).to(a)
                    ga, = torch.autograd.grad(a, a_in, up, allow_unused=True)
                    # per step, the steps as slices of the sequence and as tensors of their own
                    for contiguous in (False, True):
                        b_in = probe.clone().requires_grad_()
                        b = torch.stack([layer(x_t.contiguous() if contiguous else x_t)
                                         for x_t in b_in.unbind(TIME_DIM)], TIME_DIM)
                        gb, = torch.autograd.grad(b, b_in, up, allow_unused=True)
                        exact = exact and a.shape == b.shape and torch.equal(a, b) and (
                            (ga is None and gb is None)
                            or (ga is not None and gb is not None and torch.equal(ga, gb)))
            except RuntimeError:
                exact = False
        cache[key] = exact
        return exact

    def _measure_layout(self, name: str, layer: nn.Module, x: Tensor) -> bool:
        """Whether ``layer``, run once per step, gives the same bits on slices of the sequence
        ``x`` ``(B, T, ...)`` as on contiguous copies of the steps (output, input gradient and
        the gradients of its learnable parameters): then a neuron's spikes reach it without a
        copy. Measured once per layer, shape, dtype, device and mode, on random data; a layer
        in training mode with buffers (batch-norm: its running statistics) is not run: copies."""
        if torch.compiler.is_compiling() or torch.compiler.is_exporting():
            return False
        key = ("layout", name, tuple(x.shape), x.dtype, x.device, layer.training)
        cache: dict[tuple[Any, ...], bool] = self.__dict__.setdefault("_fold_exact", {})
        known = cache.get(key)
        if known is not None:
            return known
        same = False
        if x.is_floating_point() and not (layer.training and any(True for _ in layer.buffers())):
            params = [p for p in layer.parameters() if p.requires_grad]
            g = torch.Generator(device="cpu").manual_seed(1)
            probe = torch.randn(x.shape, generator=g, dtype=torch.float64).to(x)
            results = []
            try:
                with torch.enable_grad():
                    for contiguous in (False, True):
                        xi = probe.clone().requires_grad_()
                        y = torch.stack([layer(x_t.contiguous() if contiguous else x_t)
                                         for x_t in xi.unbind(TIME_DIM)], TIME_DIM)
                        up = torch.randn(y.shape, generator=torch.Generator(device="cpu")
                                         .manual_seed(2), dtype=torch.float64).to(y)
                        grads = torch.autograd.grad(y, [xi, *params], up, allow_unused=True)
                        results.append([y, *grads])
                same = all(
                    (a is None and b is None) or (a is not None and b is not None
                                                  and torch.equal(a, b))
                    for a, b in zip(*results, strict=True))
            except RuntimeError:
                same = False
        cache[key] = same
        return same

    def forward(self, x: Tensor, state: NetState | None = None,
                return_details: bool = False) -> Any:
        """``x`` ``(B, T, ...)`` -> ``(output (B, T, ...), state)`` (or :class:`NetworkOutput`)."""
        if not isinstance(x, Tensor) or x.dim() < 2:
            raise ShapeError(f"{type(self).__name__}.forward", "x must be (B, T, ...)",
                             got=getattr(x, "shape", type(x).__name__),
                             expected="rank >= 2, batch-first",
                             hint="time-first data: time_to_batch_first(x)")
        if x.shape[TIME_DIM] == 0:
            raise ShapeError(f"{type(self).__name__}.forward", "the sequence has no time steps",
                             got=tuple(x.shape), expected="T >= 1",
                             hint="pass at least one time step")
        windows = self.chunk_sizes()
        if self.fold_time or not self._random_in_training():
            out, final, spikes, membrane = self._forward_layers(x, state, windows,
                                                                return_details)
        else:
            out, final, spikes, membrane = self._forward_steps(x, state, windows,
                                                               return_details)
        if return_details:
            return NetworkOutput(out, final, spikes, membrane)
        return out, final

    def _forward_steps(self, x: Tensor, state: NetState | None, windows: list[int | None],
                       record: bool
                       ) -> tuple[Tensor, NetState, dict[str, Tensor], dict[str, Tensor]]:
        """Every layer per time step (a random layer's masks in the step loop's order)."""
        t = 0  # the step the cell is at: each neuron's state is cut at its own edges

        def cell(x_t: Tensor, s: NetState) -> tuple[Any, NetState]:
            nonlocal t
            s = tuple(detach_state(si) if is_window_edge(t, w) else si
                      for si, w in zip(s, windows, strict=True))
            t += 1
            y, s2, rec = self.step(x_t, s, record)
            return (y, rec), s2

        # no window here: the windows are per neuron, cut by the cell above
        (out, rec), final, _ = snn_unroll(cell, x, tuple(self._init_state(state)), None)
        return (out, final, {k: v[0] for k, v in rec.items()},
                {k: v[1] for k, v in rec.items()})

    def _forward_layers(self, x: Tensor, state: NetState | None, windows: list[int | None],
                        record: bool
                        ) -> tuple[Tensor, NetState, dict[str, Tensor], dict[str, Tensor]]:
        """Layer by layer: neurons on their multi-step kernels, stateless layers folded
        (``fold_time``, or where :meth:`fold_plan` measured it exact) or per step."""
        states = self._init_state(state)
        spikes: dict[str, Tensor] = {}
        membrane: dict[str, Tensor] = {}
        # What flows between layers: the sequence (B, T, ...) and, for layers run per step,
        # the steps exactly as a step loop hands them on: the input's own slices, a layer's
        # outputs, a neuron's spikes of one step as a tensor of its own (contiguous; a
        # batch-norm's bits depend on its input's layout).
        seq: Tensor | None = x
        steps: list[Tensor] | None = None
        own_steps = False  # seq is a neuron's output: its steps are copied out contiguous
        for i, (name, layer) in enumerate(self._modules.items()):
            if isinstance(layer, SpikingNeuronBase):
                if seq is None:  # the steps are let go before the neuron runs
                    seq, steps = _stack_steps(steps), None  # type: ignore[arg-type]
                seq, states[i], traces = layer.sequence(seq, states[i], windows[i],
                                                        ("v",) if record else ())
                steps, own_steps = None, True
                if record:
                    spikes[name], membrane[name] = seq, traces["v"]
                continue
            if seq is None and (self.fold_time or self._measure_fold(
                    name, layer, steps[0].new_empty((steps[0].shape[0], len(steps),  # type: ignore[index]
                                                     *steps[0].shape[1:])))):  # type: ignore[index]
                seq, steps = _stack_steps(steps), None  # type: ignore[arg-type]
            if seq is not None and (self.fold_time or self._measure_fold(name, layer, seq)):
                seq = self._stateless(name, layer, seq, lambda t, m=layer: fold_time(m, t))
                steps, own_steps = None, False
                continue
            if steps is None:  # then seq is set
                src = cast(Tensor, seq)
                copy = own_steps and not self._measure_layout(name, layer, src)
                steps = (list(batch_to_time_first(src).contiguous().unbind(0)) if copy
                         else list(src.unbind(TIME_DIM)))
                del src  # a copied sequence is not kept alive by this loop
            seq, current, steps, own_steps = None, steps, None, False
            steps = self._stateless(name, layer, current[0],
                                    lambda _t, m=layer, xs=current: [_grad_contiguous(m(x_t))
                                                                     for x_t in xs])
            del current
        out = seq if seq is not None else _stack_steps(steps)  # type: ignore[arg-type]
        return out, tuple(states), spikes, membrane

    def _stateless(self, name: str, layer: nn.Module, x: Tensor, run: Any) -> Tensor:
        """``run(x)`` for a stateless layer; its shape/dtype errors name the layer and input."""
        try:
            return run(x)  # type: ignore[no-any-return]
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as err:
            weight = next(layer.parameters(), None)
            cls = (DTypeError if weight is not None and weight.dtype != x.dtype else ShapeError)
            raise cls(f"{type(self).__name__}.forward",
                      f"layer {name!r} ({type(layer).__name__}) refused its input: "
                      f"{str(err).splitlines()[0]}",
                      got=f"{tuple(x.shape)} {x.dtype}",
                      expected=f"what {type(layer).__name__} takes"
                               + ("" if weight is None else f" ({weight.dtype})"),
                      hint="check the input's last axes and dtype against the first layers "
                           "(time-first data: time_to_batch_first(x))") from err


# ----------------------------------------------------------------------------------------
# architectures (seed 000): SNNCore (MLP) and ConvSNN, both SpikingSequential
# ----------------------------------------------------------------------------------------


def network_probes(net: nn.Module, out: NetworkOutput) -> dict[str, SNNMetrics]:
    """Seed-000 debug probes of every neuron layer of ``out`` (one forward of ``net``).

    Computed by :func:`brain_ai.core.losses.compute_snn_metrics` (float32, no gradient) from
    the recorded ``(B, T, ...)`` spikes and membranes; the ``membrane_mean`` health check uses
    the layer's threshold (its mean when per-neuron).

    Args:
        net: the network that produced ``out`` (its neuron layers give the thresholds).
        out: :class:`NetworkOutput` of ``net(x, return_details=True)``.
    Returns:
        ``{layer name: SNNMetrics}`` in layer order.
    """
    modules = dict(net.named_children())
    probes: dict[str, SNNMetrics] = {}
    for name, spikes in out.spikes.items():
        layer = modules.get(name)
        threshold = 1.0
        if isinstance(layer, SpikingNeuronBase):
            threshold = float(layer.threshold.detach().float().mean())
        probes[name] = compute_snn_metrics(spikes, out.membrane.get(name), threshold=threshold)
    return probes


@dataclass(eq=False)
class ProbedOutput(NetworkOutput):
    """``forward(..., return_details=True)`` of :class:`SNNCore` / :class:`ConvSNN`.

    A :class:`NetworkOutput` (output, state, per-layer spikes and membranes ``(B, T, ...)``)
    plus the seed-000 probes of every neuron layer.

    Attributes:
        probes: ``{layer name: SNNMetrics}`` (firing_rate, membrane_mean, membrane_var,
            spike_sparsity, dead_neuron_frac, saturated_neuron_frac; ``.healthy()`` gives the
            per-probe verdicts against :attr:`HEALTHY_RANGES`).
    """

    probes: dict[str, SNNMetrics] = field(default_factory=dict)

    #: The seed's healthy ranges, ``(low, high)``: :data:`brain_ai.core.losses.HEALTHY_RANGES`.
    HEALTHY_RANGES: ClassVar[dict[str, tuple[float | None, float | None]]] = HEALTHY_RANGES

    def unhealthy(self) -> dict[str, list[str]]:
        """``{layer: [probe names outside their healthy range]}``, healthy layers omitted."""
        return {name: bad for name, m in self.probes.items()
                if (bad := [k for k, ok in m.healthy().items() if not ok])}


_NEURON_CLASSES: dict[str, type[SpikingNeuronBase]] = {
    "lif": LIFNeuron,
    "adaptive": AdaptiveLIFNeuron,
    "recurrent": RecurrentLIFNeuron,
    "advanced": AdvancedLIFNeuron,
}


def neuron_from_config(config: SNNConfig, features: int | Sequence[int]) -> SpikingNeuronBase:
    """Build the neuron that ``config.neuron`` names, for ``features`` per sample.

    Every neuron field of :class:`SNNConfig` maps onto the neuron argument of the same name;
    ``surrogate`` / ``surrogate_scale`` go through
    :func:`~brain_ai.physics.surrogates.surrogate_from_name`. ``"advanced"`` learns its own
    per-neuron τ, so it ignores ``beta``, ``learn_beta`` and ``beta_param``; ``"recurrent"``
    on ``(C, H, W)`` features uses a ``conv2d`` recurrence.

    Args:
        config: the network configuration.
        features: ``N`` or ``(C, H, W)``.
    """
    if not isinstance(config, SNNConfig):
        raise ConfigError("neuron_from_config", "config must be an SNNConfig",
                          got=type(config).__name__, expected="SNNConfig",
                          hint="build one with brain_ai.config.SNNConfig(...)")
    kwargs: dict[str, Any] = dict(
        threshold=config.threshold, v_reset=config.v_reset, reset=config.reset,
        reset_timing=config.reset_timing, comparator=config.comparator,
        detach_reset=config.detach_reset,
        surrogate=surrogate_from_name(config.surrogate, config.surrogate_scale),
        learn_threshold=config.learn_threshold, alpha=config.alpha,
        refractory_steps=config.refractory_steps, dtype_policy=config.dtype_policy,
    )
    if config.neuron != "advanced":
        kwargs.update(beta=config.beta, learn_beta=config.learn_beta,
                      beta_param=config.beta_param, beta_clamp=config.beta_clamp)
    shape = (features,) if isinstance(features, int) else tuple(features)
    if config.neuron == "recurrent" and len(shape) == 3:
        kwargs["recurrent"] = "conv2d"
    return _NEURON_CLASSES[config.neuron](features=shape, **kwargs)


def _config(where: str, config: SNNConfig | None) -> SNNConfig:
    """``config`` or the defaults; anything else is an error."""
    cfg = SNNConfig() if config is None else config
    if not isinstance(cfg, SNNConfig):
        raise ConfigError(where, "config must be an SNNConfig", got=type(cfg).__name__,
                          expected="SNNConfig or None",
                          hint=f"or pass the architecture as keywords to {where}(...)")
    return cfg


class _ProbedSequential(SpikingSequential):
    """:class:`SpikingSequential` whose detailed forward also returns the debug probes."""

    def forward(self, x: Tensor, state: NetState | None = None,
                return_details: bool = False) -> Any:
        """``x`` ``(B, T, ...)`` -> ``(output (B, T, ...), state)``, or :class:`ProbedOutput`.

        Args:
            x: batch-first input sequence.
            state: one entry per layer (``None`` for stateless layers), or ``None`` (fresh).
            return_details: return a :class:`ProbedOutput` with per-layer spikes, membranes
                and probes.
        """
        out = super().forward(x, state, return_details)
        if not return_details:
            return out
        return ProbedOutput(out.output, out.state, out.spikes, out.membrane,
                            network_probes(self, out))


class SNNCore(_ProbedSequential):
    """Spiking MLP: ``(Linear -> neuron)`` per hidden layer, then ``Linear -> neuron``.

    Layers are named ``fc1, lif1, ..., fcK, lifK, fc_out, lif_out``. Runs through
    :class:`SpikingSequential` (one :func:`snn_unroll` path, shared with :class:`ConvSNN`).

    Shapes: input ``(B, T, input_size)``; output spikes ``(B, T, output_size)``.

    Args:
        config: neuron kind and parameters, sizes and ``chunk_size``
            (default ``SNNConfig()``).
        input_size / hidden_sizes / output_size: override the config's sizes
            (``hidden_sizes=()`` gives a single ``Linear -> neuron`` layer).
        fold_time: run the linear layers on ``(B·T, ...)`` (see :class:`SpikingSequential`).
        bias: bias of the linear layers.

    Example:
        >>> import torch
        >>> net = SNNCore(input_size=4, hidden_sizes=(8,), output_size=2)
        >>> out, state = net(torch.rand(3, 5, 4))             # (B=3, T=5, 4)
        >>> tuple(out.shape), len(state)
        ((3, 5, 2), 4)
    """

    def __init__(self, config: SNNConfig | None = None, *, input_size: int | None = None,
                 hidden_sizes: Sequence[int] | None = None, output_size: int | None = None,
                 fold_time: bool = False, bias: bool = True) -> None:
        where = "SNNCore"
        cfg = _config(where, config)
        n_in = check_positive(where, "input_size",
                             cfg.input_size if input_size is None else input_size, integer=True)
        n_out = check_positive(where, "output_size",
                              cfg.output_size if output_size is None else output_size,
                              integer=True)
        hidden = tuple(cfg.hidden_sizes if hidden_sizes is None else hidden_sizes)
        hidden = tuple(check_positive(where, "hidden_sizes[i]", h, integer=True) for h in hidden)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        sizes = (n_in, *hidden)
        for k, (a, b) in enumerate(itertools.pairwise(sizes), start=1):
            layers[f"fc{k}"] = nn.Linear(a, b, bias=bias)
            layers[f"lif{k}"] = neuron_from_config(cfg, b)
        layers["fc_out"] = nn.Linear(sizes[-1], n_out, bias=bias)
        layers["lif_out"] = neuron_from_config(cfg, n_out)
        super().__init__(layers, fold_time=fold_time, chunk_size=cfg.chunk_size)
        self.config = cfg
        self.input_size, self.hidden_sizes, self.output_size = n_in, hidden, n_out

    def forward(self, x: Tensor, state: NetState | None = None,
                return_details: bool = False) -> Any:
        """``x`` ``(B, T, input_size)`` -> ``(spikes (B, T, output_size), state)``.

        With ``return_details=True`` a :class:`ProbedOutput` (per-layer spikes, membranes,
        probes).
        """
        if isinstance(x, Tensor) and (x.dim() != 3 or x.shape[-1] != self.input_size):
            raise ShapeError("SNNCore.forward", "x must be (B, T, input_size)",
                             got=tuple(x.shape), expected=f"(B, T, {self.input_size})",
                             hint="time-first data: time_to_batch_first(x); flatten images "
                                  "with x.flatten(2)")
        return super().forward(x, state, return_details)


def _out_size(where: str, size: int, kernel: int, stride: int, padding: int) -> int:
    out = (size + 2 * padding - kernel) // stride + 1
    if out <= 0:
        raise ConfigError(where, "the feature map shrinks to nothing", got=size,
                          expected=f"a spatial size that survives kernel {kernel}",
                          hint="use fewer blocks, a larger input or pool=None")
    return out


class ConvSNN(_ProbedSequential):
    """Convolutional SNN: ``conv -> [batch-norm] -> [pool] -> neuron`` blocks, then a readout.

    Layers are named ``conv1, bn1, pool1, lif1, ..., flatten, fc_out, lif_out`` (``bn``/``pool``
    only when enabled). Convolutions use ``padding = kernel_size // 2`` (size-preserving for
    odd kernels). By default time is folded into the batch for every stateless layer
    (SpikingJelly's ``SeqToANNContainer``) and unfolded for the neurons; ``fold_time=False``
    runs the same network step by step. Both go through :func:`snn_unroll`.

    Numbers: identical spikes in both orders; membranes can differ in the last bits where a
    kernel's summation order depends on the batch size (measured on CPU, torch 2.13: conv
    layers bit-identical, the linear readout up to ~3·eps·max|current|, since sgemm blocks
    ``(B·T, F)`` differently from ``(B, F)``). Batch-norm in *training* mode
    normalizes with batch statistics, over ``B`` per step or over ``B·T`` folded, which are
    different numbers by design (folded = SpikingJelly); in eval mode both agree.

    Shapes: input ``(B, T, C_in, H, W)``; output spikes ``(B, T, num_classes)``.

    Args:
        config: neuron kind and parameters, ``chunk_size`` and (default) ``output_size``.
        in_channels: ``C_in``.
        input_hw: ``(H, W)`` of one input frame (an int means square).
        channels: output channels of each block.
        num_classes: readout size (default ``config.output_size``).
        kernel_size: conv kernel (odd keeps the size).
        pool: ``"max"`` | ``"avg"`` | ``None`` (no pooling).
        pool_size: pooling kernel and stride.
        batch_norm: insert ``BatchNorm2d`` after each conv (conv bias is then dropped).
        fold_time: see above (default ``True``).
    """

    def __init__(self, config: SNNConfig | None = None, *, in_channels: int = 1,
                 input_hw: int | tuple[int, int] = (28, 28),
                 channels: Sequence[int] = (8, 16), num_classes: int | None = None,
                 kernel_size: int = 3, pool: str | None = "max", pool_size: int = 2,
                 batch_norm: bool = False, fold_time: bool = True) -> None:
        where = "ConvSNN"
        cfg = _config(where, config)
        if pool not in ("max", "avg", None):
            raise ConfigError(where, "unknown pool", got=repr(pool),
                              expected="'max' | 'avg' | None", hint="None disables pooling")
        c = check_positive(where, "in_channels", in_channels, integer=True)
        hw = (input_hw, input_hw) if isinstance(input_hw, int) else tuple(input_hw)
        if len(hw) != 2:
            raise ConfigError(where, "input_hw must be (H, W) or an int", got=input_hw,
                              expected="(H, W)", hint="e.g. input_hw=(28, 28)")
        h, w = (check_positive(where, "input_hw", v, integer=True) for v in hw)
        k = check_positive(where, "kernel_size", kernel_size, integer=True)
        p = check_positive(where, "pool_size", pool_size, integer=True)
        n_out = check_positive(where, "num_classes",
                              cfg.output_size if num_classes is None else num_classes,
                              integer=True)
        if not channels:
            raise ConfigError(where, "channels is empty", got=tuple(channels),
                              expected="at least one block, e.g. (8, 16)",
                              hint="use SNNCore for a network without convolutions")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, ch in enumerate(channels, start=1):
            ch = check_positive(where, "channels[i]", ch, integer=True)
            layers[f"conv{i}"] = nn.Conv2d(c, ch, k, padding=k // 2, bias=not batch_norm)
            h, w = (_out_size(where, s, k, 1, k // 2) for s in (h, w))
            if batch_norm:
                layers[f"bn{i}"] = nn.BatchNorm2d(ch)
            if pool is not None:
                layers[f"pool{i}"] = (nn.MaxPool2d(p) if pool == "max" else nn.AvgPool2d(p))
                h, w = (_out_size(where, s, p, p, 0) for s in (h, w))
            layers[f"lif{i}"] = neuron_from_config(cfg, (ch, h, w))
            c = ch
        layers["flatten"] = nn.Flatten(1)
        layers["fc_out"] = nn.Linear(c * h * w, n_out)
        layers["lif_out"] = neuron_from_config(cfg, n_out)
        super().__init__(layers, fold_time=fold_time, chunk_size=cfg.chunk_size)
        self.config = cfg
        self.in_channels, self.input_hw, self.num_classes = in_channels, (hw[0], hw[1]), n_out

    def forward(self, x: Tensor, state: NetState | None = None,
                return_details: bool = False) -> Any:
        """``x`` ``(B, T, C_in, H, W)`` -> ``(spikes (B, T, num_classes), state)``.

        With ``return_details=True`` a :class:`ProbedOutput` (per-layer spikes, membranes,
        probes).
        """
        expected = (self.in_channels, *self.input_hw)
        if isinstance(x, Tensor) and (x.dim() != 5 or tuple(x.shape[2:]) != expected):
            raise ShapeError("ConvSNN.forward", "x must be (B, T, C, H, W)", got=tuple(x.shape),
                             expected=f"(B, T, {', '.join(map(str, expected))})",
                             hint="static images: x.unsqueeze(1).expand(-1, T, -1, -1, -1); "
                                  "time-first data: time_to_batch_first(x)")
        return super().forward(x, state, return_details)
