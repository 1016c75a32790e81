r"""What SpikingJelly's modules become in a migrated model: brain_ai and plain torch modules.

:func:`brain_ai.adapters.spikingjelly.migrate` swaps every SpikingJelly (SJ) module of a model
for the module of this file that computes the same numbers, in place, so the user's own
``forward`` (residuals, attention, custom blocks) runs unchanged. Nothing here imports
SpikingJelly.

* Neurons become :class:`SpikingJellyNode`: a brain_ai :class:`~brain_ai.core.neurons.LIFNeuron`
  (explicit state inside) with SJ's calling convention. ``step_mode="m"``: input and output
  time-first ``(T, B, ...)``, every call starts fresh (no state between calls). ``"s"``: one
  step ``(B, ...)`` per call; the state between calls lives in the model's
  :class:`~brain_ai.adapters.hidden_state.HiddenState` (reset it between sequences with
  ``reset_hidden(model)``, as SJ's ``functional.reset_net``).
* Stateless ``layer.*`` wrappers become the torch layer plus SJ's ``step_mode`` (``"m"`` folds
  time into the batch, ``(T·B, ...)``, exactly as ``functional.seq_to_ann_forward``).
* Containers: :class:`SeqToANN`, :class:`StepLoop` (``MultiStepContainer``),
  :class:`StepModeSequential`, :class:`ElementWiseRecurrent`, :class:`LinearRecurrent`;
  layers: :class:`VotingLayer`, :class:`Dropout` (one mask per sequence),
  :class:`SynapseFilter`; attention blocks with SJ's expressions in SJ's order.

Stateful modules looping over time inside one multi-step call (:class:`StepLoop`, the
recurrent containers in ``"m"`` mode) start their inner state fresh and leave none behind.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brain_ai.adapters.hidden_state import HiddenStateModule
from brain_ai.core.neurons import LIFNeuron
from brain_ai.errors import ConversionError, ShapeError
from brain_ai.physics.axes import batch_to_time_first, time_to_batch_first

__all__ = [
    "FOLDING_LAYERS",
    "STEP_LAYERS",
    "Dropout",
    "ElementWiseRecurrent",
    "LinearRecurrent",
    "MultiDimensionalAttention",
    "QKAttention",
    "SeqToANN",
    "SpikeDrivenSelfAttention",
    "SpikingJellyNode",
    "SpikingSelfAttention",
    "StepLoop",
    "StepModeSequential",
    "SynapseFilter",
    "TemporalWiseAttention",
    "VotingLayer",
    "seq_to_ann",
]


def seq_to_ann(f: Callable[[Tensor], Tensor], x_seq: Tensor) -> Tensor:
    """``f`` on ``(T·B, ...)`` (time folded into the batch, time-major), back to ``(T, B, ...)``."""
    t, b = x_seq.shape[:2]
    return f(x_seq.flatten(0, 1)).unflatten(0, (t, b))


def _step_loop(f: Callable[[Tensor], Tensor], x_seq: Tensor) -> Tensor:
    """``stack([f(x_seq[t]) for t])`` (SJ's ``functional.multi_step_forward``)."""
    return torch.stack([f(x_seq.select(0, t)) for t in range(x_seq.shape[0])], dim=0)


def _fresh_inside(module: nn.Module) -> None:
    """Every converted stateful module below ``module`` starts (and ends) fresh."""
    for m in module.modules():
        if isinstance(m, HiddenStateModule) and m is not module:
            m.reset()


# ============================================================================ neurons


class SpikingJellyNode(HiddenStateModule):
    """An SJ neuron node as a brain_ai neuron with SJ's calling convention.

    Args:
        neuron: the brain_ai neuron (``from_spikingjelly``); parameters live there.
        step_mode: ``"m"``: ``x`` ``(T, B, *f)`` -> spikes ``(T, B, *f)``, fresh every call;
            ``"s"``: ``x`` ``(B, *f)`` (or any shape, one step) -> spikes, state kept in the
            model's hidden-state store between calls.
        eval_only: a reason this node may only run in eval mode (e.g. SJ's online-learning
            ``OTTTLIFNode``, whose training-mode gradient is not BPTT); ``None``: no limit.
    """

    def __init__(self, neuron: LIFNeuron, step_mode: str, eval_only: str | None = None
                 ) -> None:
        super().__init__()
        self.neuron = neuron
        self.step_mode = step_mode
        self.eval_only = eval_only

    def forward(self, x: Tensor) -> Tensor:
        where = f"SpikingJellyNode({self.slot or 'node'}).forward"
        if self.eval_only is not None and self.training:
            raise ConversionError(where, self.eval_only, got="training mode",
                                  expected="eval mode", hint="call model.eval() first")
        if self.step_mode == "m":
            if x.dim() < 2:
                raise ShapeError(where, "multi-step input needs (T, B, ...)",
                                 got=tuple(x.shape), expected="rank >= 2",
                                 hint="SJ step_mode='m' is time-first")
            spikes, _, traces = self.neuron.sequence(time_to_batch_first(x), record=("v",))
            out = batch_to_time_first(spikes).contiguous()
            membrane = batch_to_time_first(traces["v"])
        else:
            store = self._store()
            one = x.reshape(1) if x.dim() == 0 else x
            try:
                out, state = self.neuron.step(one, store.get(self.slot))
            except ShapeError as exc:
                raise self._shape_error(where, exc) from exc
            store.set(self.slot, state)
            membrane = state.v
            if x.dim() == 0:
                out, membrane = out.reshape(()), membrane.reshape(())
        self._report(out, membrane)
        return out

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode!r}"


# ============================================================================ stateless layers


class _StepMode(nn.Module):
    """Mixin: SJ's ``step_mode`` attribute on a torch layer ("m" folds time if it must)."""

    step_mode: str
    folds_time = True  # False for layers SJ applies to (T, B, ...) as they are (Linear)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if self.step_mode == "s" or not self.folds_time:
            return super().forward(x)  # type: ignore[no-any-return]
        return seq_to_ann(super().forward, x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, step_mode={self.step_mode}"


def _layer(torch_cls: type[nn.Module], folds: bool = True) -> type[nn.Module]:
    cls = type(torch_cls.__name__, (_StepMode, torch_cls),
               {"folds_time": folds, "__module__": __name__,
                "__doc__": f"``{torch_cls.__name__}`` with SJ's ``step_mode`` (picklable)."})
    cls.__qualname__ = torch_cls.__name__
    return cls


_TORCH_STEP_LAYERS = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
    nn.ConvTranspose3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.Flatten, nn.Upsample,
)
STEP_LAYERS: dict[str, type[nn.Module]] = {c.__name__: _layer(c) for c in _TORCH_STEP_LAYERS}
STEP_LAYERS["Linear"] = _layer(nn.Linear, folds=False)  # SJ applies it to (T, B, F) directly
globals().update(STEP_LAYERS)  # module-level names: the classes pickle
FOLDING_LAYERS = tuple(c for c in STEP_LAYERS.values() if c.folds_time)  # type: ignore[attr-defined]


class WSConv2d(STEP_LAYERS["Conv2d"]):  # type: ignore[misc,valid-type]
    """SJ ``layer.WSConv2d``: a weight-standardized convolution (SJ's expression order)."""

    gain: Tensor | None
    eps: float

    def get_weight(self) -> Tensor:
        fan_in = math.prod(self.weight.shape[1:])
        mean = torch.mean(self.weight, dim=[1, 2, 3], keepdim=True)
        var = torch.var(self.weight, dim=[1, 2, 3], keepdim=True)
        weight = (self.weight - mean) / (var * fan_in + self.eps) ** 0.5
        if self.gain is not None:
            weight = weight * self.gain
        return weight

    def _forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.get_weight(), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)

    def forward(self, x: Tensor) -> Tensor:
        return self._forward(x) if self.step_mode == "s" else seq_to_ann(self._forward, x)


class VotingLayer(nn.Module):
    """SJ ``layer.VotingLayer``: average of each group of ``voting_size`` outputs."""

    voting_size: int
    step_mode: str

    def _single(self, x: Tensor) -> Tensor:
        return F.avg_pool1d(x.unsqueeze(1), self.voting_size, self.voting_size).squeeze(1)

    def forward(self, x: Tensor) -> Tensor:
        return self._single(x) if self.step_mode == "s" else seq_to_ann(self._single, x)

    def extra_repr(self) -> str:
        return f"voting_size={self.voting_size}, step_mode={self.step_mode}"


# ============================================================================ containers


class SeqToANN(nn.Sequential):
    """SJ ``SeqToANNContainer``: the children on ``(T·B, ...)``."""

    def forward(self, x_seq: Tensor) -> Tensor:  # type: ignore[override]
        return seq_to_ann(super().forward, x_seq)


class StepLoop(nn.Sequential):
    """SJ ``MultiStepContainer``: the (single-step) children once per time step.

    Inner stateful modules start fresh at every call and leave no state behind.
    """

    def forward(self, x_seq: Tensor) -> Tensor:  # type: ignore[override]
        _fresh_inside(self)
        try:
            return _step_loop(super().forward, x_seq)
        finally:
            _fresh_inside(self)


class StepModeSequential(nn.Sequential):
    """SJ ``StepModeContainer(stateful, step_mode, ...)``."""

    stateful: bool
    step_mode: str

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if self.step_mode == "s":
            return super().forward(x)
        if not self.stateful:
            return seq_to_ann(super().forward, x)
        _fresh_inside(self)
        try:
            return _step_loop(super().forward, x)
        finally:
            _fresh_inside(self)


class _Recurrent(HiddenStateModule):
    """A recurrent container: ``y = step(x, y_prev)``; ``y`` is hidden state in ``"s"`` mode,
    local to the call in ``"m"`` mode (SJ loops its single step over time there)."""

    step_mode: str
    sub_module: nn.Module

    def _initial(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _step(self, x: Tensor, y: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "s":
            store = self._store()
            y = store.get(self.slot)
            y = self._step(x, self._initial(x) if y is None else y)
            store.set(self.slot, y)
            return y
        _fresh_inside(self)
        try:
            y = self._initial(x[0])
            ys = []
            for t in range(x.shape[0]):
                y = self._step(x[t], y)
                ys.append(y)
            return torch.stack(ys)
        finally:
            _fresh_inside(self)


class ElementWiseRecurrent(_Recurrent):
    """SJ ``ElementWiseRecurrentContainer``: ``y = sub_module(f(y_prev, x))``, ``y_0 = 0``."""

    def __init__(self, sub_module: nn.Module, element_wise_function: Callable[..., Tensor],
                 step_mode: str) -> None:
        super().__init__()
        self.sub_module = sub_module
        self.element_wise_function = element_wise_function
        self.step_mode = step_mode

    def _initial(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)

    def _step(self, x: Tensor, y: Tensor) -> Tensor:
        return self.sub_module(self.element_wise_function(y, x))


class LinearRecurrent(_Recurrent):
    """SJ ``LinearRecurrentContainer``: ``y = sub_module(rc(cat(x, y_prev)))``, ``y_0 = 0``."""

    def __init__(self, sub_module: nn.Module, rc: nn.Linear, out_features: int,
                 step_mode: str) -> None:
        super().__init__()
        self.sub_module_out_features = out_features
        self.rc = rc
        self.sub_module = sub_module
        self.step_mode = step_mode

    def _initial(self, x: Tensor) -> Tensor:
        return x.new_zeros(*x.shape[:-1], self.sub_module_out_features)

    def _step(self, x: Tensor, y: Tensor) -> Tensor:
        if y.shape[:-1] != x.shape[:-1]:
            raise self._shape_error("LinearRecurrent.forward", ShapeError(
                "LinearRecurrent.forward", "state mismatch", got=tuple(y.shape),
                expected=(*x.shape[:-1], self.sub_module_out_features), hint=""))
        return self.sub_module(self.rc(torch.cat((x, y), dim=-1)))


# ============================================================================ stateful layers


class Dropout(HiddenStateModule):
    """SJ ``layer.Dropout`` / ``Dropout2d``: one mask for the whole sequence.

    ``"m"``: the mask is drawn from ``x_seq[0]`` at every call and applied to every step;
    ``"s"``: drawn at the first step and kept in the hidden-state store until reset. The
    mask is SJ's ``F.dropout(ones_like(x), p, training=True)`` (or ``dropout2d``): same RNG
    draws, same mask. Eval mode: identity.
    """

    def __init__(self, p: float, step_mode: str, channelwise: bool = False) -> None:
        super().__init__()
        self.p = float(p)
        self.step_mode = step_mode
        self.channelwise = channelwise

    def _mask(self, x: Tensor) -> Tensor:
        drop = F.dropout2d if self.channelwise else F.dropout
        return drop(torch.ones_like(x), self.p, training=True)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        if self.step_mode == "m":
            return x * self._mask(x[0])
        store = self._store()
        mask = store.get(self.slot)
        if mask is None:
            mask = self._mask(x)
            store.set(self.slot, mask)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}, step_mode={self.step_mode}, channelwise={self.channelwise}"


class SynapseFilter(HiddenStateModule):
    """SJ ``layer.SynapseFilter``: ``i = i - (1 - x)·i·(1/τ) + x`` (SJ 2.0.0's expression),
    ``i_0 = 0``; ``1/τ = sigmoid(w)`` when learnable."""

    def __init__(self, step_mode: str, tau: float | None = None, w: Tensor | None = None
                 ) -> None:
        super().__init__()
        self.step_mode = step_mode
        self.learnable = w is not None
        self.tau = tau
        if w is not None:
            self.w = w

    def _step(self, x: Tensor, i: Tensor) -> Tensor:
        inv_tau = self.w.sigmoid() if self.learnable else 1.0 / self.tau  # type: ignore[operator]
        return i - (1.0 - x) * i * inv_tau + x

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "m":
            i = torch.zeros_like(x[0])
            outs = []
            for t in range(x.shape[0]):
                i = self._step(x[t], i)
                outs.append(i)
            return torch.stack(outs)
        store = self._store()
        i = store.get(self.slot)
        if i is None or i.shape != x.shape:
            if i is not None:
                raise self._shape_error("SynapseFilter.forward", ShapeError(
                    "SynapseFilter.forward", "state mismatch", got=tuple(i.shape),
                    expected=tuple(x.shape), hint=""))
            i = torch.zeros_like(x)
        i = self._step(x, i)
        store.set(self.slot, i)
        return i


# ============================================================================ attention
# SJ's attention blocks (layer/attention.py), same expressions in the same order; their
# neurons and containers are converted children.


class _AxisAttention(nn.Module):
    channel_axis: bool

    def forward(self, x: Tensor) -> Tensor:
        if self.channel_axis:
            x = x.transpose(1, 2)
        score = torch.sigmoid(self.sharedMLP(self.avg_pool(x)) + self.sharedMLP(self.max_pool(x)))
        return score.transpose(1, 2) if self.channel_axis else score


class _SpatialAttention(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1, 2)
        score = self.conv(torch.cat((x.mean(dim=1, keepdim=True),
                                     x.max(dim=1, keepdim=True).values), dim=1))
        return torch.sigmoid(score).unsqueeze(1)


class TemporalWiseAttention(nn.Module):
    """SJ ``TemporalWiseAttention`` (input ``(T, N, M)`` or ``(T, N, C, H, W)``)."""

    step_mode: str

    def forward(self, x_seq: Tensor) -> Tensor:
        x_seq = x_seq.transpose(0, 1)
        avgout = self.sharedMLP(self.avg_pool(x_seq).view([x_seq.shape[0], x_seq.shape[1]]))
        maxout = self.sharedMLP(self.max_pool(x_seq).view([x_seq.shape[0], x_seq.shape[1]]))
        scores = torch.sigmoid(avgout + maxout)
        scores = scores.view(*scores.shape, *(1,) * (x_seq.ndim - 2))
        return (x_seq * scores).transpose(0, 1)


class MultiDimensionalAttention(nn.Module):
    """SJ ``MultiDimensionalAttention`` (input ``(T, N, C, H, W)``)."""

    def forward(self, x: Tensor) -> Tensor:
        out = x.transpose(0, 1)
        for attention in (self.ta, self.ca, self.sa):
            if attention is not None:
                out = attention(out) * out
        return self.relu(out).transpose(0, 1)


class SpikingSelfAttention(nn.Module):
    """SJ ``SpikingSelfAttention`` (Spikformer's SSA; input ``(T, N, C, L)``)."""

    num_heads: int
    scale: float

    def forward(self, x_seq: Tensor) -> Tensor:
        t, n, _, length = x_seq.shape
        qkv = self.qkv_lif(self.qkv_conv_bn(x_seq))
        local_dim = qkv.shape[2] // 3
        qkv = qkv.reshape(t, n, 3, self.num_heads, local_dim // self.num_heads, length)
        qt, kt, vt = qkv.flatten(2, 3).chunk(3, dim=2)
        x_seq = vt @ kt.transpose(-2, -1)
        x_seq = x_seq @ qt * self.scale
        x_seq = self.attn_lif(x_seq).reshape(t, n, local_dim, length)
        return self.proj_lif(self.proj_conv_bn(x_seq))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}"


class QKAttention(nn.Module):
    """SJ ``QKAttention`` / ``TokenQKAttention`` / ``ChannelQKAttention`` (QKFormer)."""

    num_heads: int
    sum_dim: int

    def forward(self, x_seq: Tensor) -> Tensor:
        t, n, c, length = x_seq.shape
        qk = self.qk_lif(self.qk_conv_bn(x_seq))
        qk = qk.reshape(t, n, 2, self.num_heads, c // self.num_heads, length)
        q, k = qk.flatten(2, 3).chunk(2, dim=2)
        q = torch.sum(q, dim=self.sum_dim, keepdim=True)
        x_seq = (self.attn_lif(q) * k).flatten(2, 3)
        return self.proj_lif(self.proj_conv_bn(x_seq))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, sum_dim={self.sum_dim}"


class SpikeDrivenSelfAttention(nn.Module):
    """SJ ``SpikeDrivenSelfAttention`` (SDT; input ``(T, N, C, H, W)``)."""

    num_heads: int
    head_dim: int

    def forward(self, x: Tensor) -> Tensor:
        t, n, c, h, w = x.shape
        identity = x
        x = self.shortcut_lif(x)
        q = self.q_lif(self.q_bn(self.q_conv(x)))
        k = self.k_lif(self.k_bn(self.k_conv(x)))
        v = self.v_lif(self.v_bn(self.v_conv(x)))

        def split_heads(value: Tensor) -> Tensor:
            value = value.flatten(3).transpose(-1, -2)
            return value.reshape(t, n, h * w, self.num_heads, self.head_dim).permute(
                0, 1, 3, 2, 4)

        q, k, v = split_heads(q), split_heads(k), split_heads(v)
        kv = self.attn_lif((k * v).sum(dim=-2, keepdim=True))
        x = (q * kv).transpose(3, 4).reshape(t, n, c, h, w)
        return self.proj_bn(self.proj_conv(x)) + identity

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}"


def adopt(module: nn.Module, cls: type[nn.Module], **attrs: Any) -> nn.Module:
    """Give a (copied) stateless peer ``module`` the brain_ai class ``cls`` in place.

    ``cls`` declares the same attributes as the peer class and only replaces methods, so
    parameters, buffers, hooks and flags stay exactly what they were.
    """
    state = vars(module)
    if "_step_mode" in state:  # SJ keeps step_mode behind a property; here it is plain
        state["step_mode"] = state.pop("_step_mode")
    module.__class__ = cls
    for name, value in attrs.items():
        setattr(module, name, value)
    return module
