"""``snn_unroll``: the single time-unroll utility, with truncated BPTT.

Every sequence-mode call in brain_ai (every neuron, MLP and conv architectures) goes through
:func:`snn_unroll`. Truncated BPTT splits time into windows of ``chunk_size`` steps and detaches
the state between windows: the forward pass is identical to full BPTT, only the gradient
stops at window edges (the steps ``t > 0`` with ``t % chunk_size == 0``). Which window applies
where (a call's ``chunk_size``, a container's, a neuron's own) is decided by
:func:`brain_ai.physics.windows.resolve_chunk_size`; see that module for the precedence.

A cell is any callable ``cell_fn(x_t, state) -> (spikes_t, new_state)``. A cell may also
provide ``cell_fn.multi_step(x_chunk, state, record) -> (spikes, state, traces)``, its fused
multi-step path; :func:`snn_unroll` then calls it once per window instead of looping. A cell
whose ``windows`` attribute is true takes the window itself,
``multi_step(x, state, record, chunk_size)``, and is called once for the whole sequence (the
neurons' cells: their kernels stop the state's gradient at the window edges inside one call,
with nothing to concatenate; see :func:`brain_ai.kernels.fused_multi_step`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
import torch.utils._pytree as pytree
from torch import Tensor

from brain_ai.errors import ConfigError, ShapeError
from brain_ai.physics.axes import TIME_DIM
from brain_ai.physics.state import detach_state
from brain_ai.physics.windows import check_chunk_size, resolve_chunk_size

__all__ = ["UnrollResult", "check_chunk_size", "snn_unroll", "unroll_windows"]


class UnrollResult(NamedTuple):
    """``(spikes (B, T, ...), final_state, traces)``; ``traces[name]`` is ``(B, T, ...)``.

    ``spikes`` has the structure the cell returns per step (a tensor, or a tuple/dict of
    tensors, each stacked along time).
    """

    spikes: Any
    final_state: Any
    traces: dict[str, Tensor]


def _record_step(state: Any, name: str) -> Tensor:
    value = getattr(state, name, None)
    if value is None:
        raise ConfigError("snn_unroll", f"cannot record {name!r}: the state has no such tensor",
                          got=type(state).__name__, expected="a state field that is set",
                          hint="record only fields the neuron uses, e.g. ('v',)")
    return value


def unroll_windows(
    multi_step: Callable[[Tensor, Any, tuple[str, ...]], tuple[Any, Any, dict[str, Tensor]]],
    inputs: Tensor, initial_state: Any, record: Sequence[str], chunk_size: int | None,
) -> UnrollResult:
    """``multi_step`` once per truncated-BPTT window of ``inputs`` ``(B, T, ...)``, the state
    detached between windows; outputs and traces concatenated along time (none when one window
    covers the sequence)."""
    windows = inputs.split(chunk_size, dim=TIME_DIM) if chunk_size is not None else (inputs,)
    state = initial_state
    spikes: list[Any] = []
    traces: dict[str, list[Tensor]] = {name: [] for name in record}
    for w, window in enumerate(windows):
        if w > 0:
            state = detach_state(state)  # truncated BPTT: cut the graph at the window edge
        s, state, tr = multi_step(window, state, tuple(record))
        spikes.append(s)
        for name in record:
            traces[name].append(tr[name])
    if len(spikes) == 1:
        return UnrollResult(spikes[0], state, {name: vals[0] for name, vals in traces.items()})
    return UnrollResult(
        pytree.tree_map(lambda *ts: torch.cat(ts, TIME_DIM), *spikes), state,
        {name: torch.cat(vals, TIME_DIM) for name, vals in traces.items()},
    )


def snn_unroll(
    cell_fn: Callable[[Tensor, Any], tuple[Tensor, Any]],
    inputs: Tensor,
    initial_state: Any,
    chunk_size: int | None = None,
    record: Sequence[str] = (),
) -> UnrollResult:
    """Unroll ``cell_fn`` over the time axis of ``inputs``.

    Args:
        cell_fn: ``(x_t (B, ...), state) -> (out_t, state)``; ``out_t`` is the spikes
            ``(B, ...)`` or any pytree of ``(B, ...)`` tensors (e.g. a whole network's
            per-layer records). Optionally with a ``multi_step`` attribute (fused path over a
            whole window, same signature over ``(B, T_window, ...)``).
        inputs: ``(B, T, ...)``, batch-first.
        initial_state: the state before step 0 (any pytree of tensors).
        chunk_size: truncated-BPTT window in steps, the same for the whole state
            (``None`` = full BPTT). A cell whose parts need different windows (a network of
            neurons with their own ``chunk_size``) runs with ``None`` here and cuts each
            part itself at :func:`~brain_ai.physics.windows.is_window_edge`, as
            :class:`~brain_ai.core.snn.SpikingSequential` does.
        record: names of state fields to stack over time (e.g. ``("v",)``).
    Returns:
        :class:`UnrollResult` ``(spikes, final_state, traces)``.
    """
    if not isinstance(inputs, Tensor) or inputs.dim() < 2:
        raise ShapeError("snn_unroll", "inputs must be a (B, T, ...) tensor",
                         got=getattr(inputs, "shape", type(inputs).__name__),
                         expected="rank >= 2, batch-first",
                         hint="convert time-first data with time_to_batch_first(x)")
    if inputs.shape[TIME_DIM] == 0:
        raise ShapeError("snn_unroll", "the sequence has no time steps",
                         got=tuple(inputs.shape), expected="T >= 1",
                         hint="pass at least one time step")
    chunk = resolve_chunk_size("snn_unroll", call=chunk_size)
    multi_step = getattr(cell_fn, "multi_step", None)
    if multi_step is not None:
        if getattr(cell_fn, "windows", False):  # one call: the cell cuts at the window edges
            s, state, tr = multi_step(inputs, initial_state, tuple(record), chunk)
            return UnrollResult(s, state, {name: tr[name] for name in record})
        return unroll_windows(multi_step, inputs, initial_state, record, chunk)
    windows = inputs.split(chunk, dim=TIME_DIM) if chunk is not None else (inputs,)
    state = initial_state
    spikes: list[Any] = []
    traces: dict[str, list[Tensor]] = {name: [] for name in record}
    for w, window in enumerate(windows):
        if w > 0:
            state = detach_state(state)  # truncated BPTT: cut the graph at the window edge
        for x_t in window.unbind(TIME_DIM):
            s_t, state = cell_fn(x_t, state)
            spikes.append(pytree.tree_map(lambda t: t.unsqueeze(TIME_DIM), s_t))
            for name in record:
                traces[name].append(_record_step(state, name).unsqueeze(TIME_DIM))
    if len(spikes) == 1:  # one window through a multi-step path: nothing to concatenate
        return UnrollResult(spikes[0], state, {name: vals[0] for name, vals in traces.items()})
    return UnrollResult(
        pytree.tree_map(lambda *ts: torch.cat(ts, TIME_DIM), *spikes), state,
        {name: torch.cat(vals, TIME_DIM) for name, vals in traces.items()},
    )
