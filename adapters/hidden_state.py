"""The compatibility shim for peers whose calling convention hides state on the module.

SpikingJelly single-step models (``out = net(x_t)`` once per step, then
``functional.reset_net(net)``) and snnTorch ``init_hidden=True`` neurons (``spk = lif(x)``)
rely on state the caller never sees. A migrated model keeps that calling convention, but its
hidden state lives in **one** place: a :class:`HiddenState` shared by every converted
module of the model (never on the modules themselves). It is explicit and resettable:

* ``reset_hidden(model)`` (SJ's ``functional.reset_net``, snnTorch's ``utils.reset``) empties it;
* ``detach_hidden(model)`` cuts its autograd graph (truncated BPTT, SJ's ``detach_net``);
* ``call_with_state(model, *args, state=...)`` is the explicit-state form beside it:
  ``out, state = call_with_state(model, x_t, state=state)`` passes the state in and returns
  the new one, leaving the model's own store exactly as it was.

A state is a ``dict`` ``{slot: value}``; a slot is the module path the converted module had
in the peer model (e.g. ``"layer1.0.sn1"``). Copying or pickling a model drops the hidden
state (a copy starts fresh; autograd graphs cannot be copied).

Converted modules (:class:`HiddenStateModule`) also carry *probes*: callbacks that receive
``(module, spikes, membrane)`` after every call. ``verify_migration`` uses them to compare
every neuron of an arbitrary topology against the peer's.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import torch.utils._pytree as pytree
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from brain_ai.errors import ConversionError, ShapeError

__all__ = [
    "HiddenState",
    "HiddenStateModule",
    "call_with_state",
    "detach_hidden",
    "hidden_state",
    "reset_hidden",
    "stores",
]

State = dict[str, Any]
Probe = Callable[[nn.Module, Tensor, Tensor], None]


class HiddenState:
    """The one place a migrated model keeps the state its peer convention hides.

    Values are whatever the converted module stores for its slot (a
    :class:`~brain_ai.physics.state.SpikingState`, a dropout mask, a recurrent output).
    """

    def __init__(self) -> None:
        self._values: State = {}

    # ------------------------------------------------------------ per slot
    def get(self, slot: str) -> Any:
        """The value of ``slot``; ``None`` when fresh."""
        return self._values.get(slot)

    def set(self, slot: str, value: Any) -> None:
        self._values[slot] = value

    def drop(self, slot: str) -> None:
        """Make ``slot`` fresh again."""
        self._values.pop(slot, None)

    # ------------------------------------------------------------ whole store
    def reset(self) -> None:
        """Every slot fresh (SJ ``reset_net``, snnTorch ``reset_mem``/``utils.reset``)."""
        self._values.clear()

    def detach(self) -> None:
        """Cut the autograd graph of every stored tensor (values unchanged)."""
        self._values = pytree.tree_map(
            lambda t: t.detach() if isinstance(t, Tensor) else t, self._values)

    def snapshot(self) -> State:
        """The current state as a new dict (values not copied)."""
        return dict(self._values)

    @contextlib.contextmanager
    def using(self, state: State | None) -> Iterator[HiddenState]:
        """Run with ``state`` in the store, then put the previous contents back."""
        saved = self._values
        self._values = dict(state or {})
        try:
            yield self
        finally:
            self._values = saved

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"HiddenState(slots={sorted(self._values)})"

    # copies and pickles start fresh (a graph-carrying tensor cannot be copied)
    def __deepcopy__(self, memo: dict[int, Any]) -> HiddenState:
        new = HiddenState()
        memo[id(self)] = new
        return new

    def __getstate__(self) -> dict[str, Any]:
        return {"_values": {}}


class HiddenStateModule(nn.Module):
    """Base of every converted module that keeps peer-hidden state or is probed.

    Attributes:
        slot: this module's key in the store (its path in the peer model).
        hidden: the model's :class:`HiddenState` (shared, not a submodule, not in
            ``state_dict``); ``None`` until :func:`attach` gives it one.
    """

    def __init__(self) -> None:
        super().__init__()
        self.slot = ""
        self.hidden: HiddenState | None = None
        self._probes: OrderedDict[int, Probe] = OrderedDict()

    def _store(self) -> HiddenState:
        if self.hidden is None:
            self.hidden = HiddenState()
        return self.hidden

    # SJ's names: functional.reset_net / detach_net call these on every module
    def reset(self) -> None:
        """Make this module's own slot fresh (SJ ``node.reset()``)."""
        self._store().drop(self.slot)

    def detach(self) -> None:
        """Cut the graph of this module's own slot (SJ ``node.detach()``)."""
        value = self._store().get(self.slot)
        if value is not None:
            self._store().set(self.slot, pytree.tree_map(
                lambda t: t.detach() if isinstance(t, Tensor) else t, value))

    def register_probe(self, probe: Probe) -> RemovableHandle:
        """Call ``probe(module, spikes, membrane)`` after every forward (time-first for
        multi-step calls, one step otherwise)."""
        handle = RemovableHandle(self._probes)
        self._probes[handle.id] = probe
        return handle

    def _report(self, spikes: Tensor, membrane: Tensor) -> None:
        for probe in self._probes.values():
            probe(self, spikes, membrane)

    def _shape_error(self, where: str, exc: ShapeError) -> ShapeError:
        return ShapeError(where, f"the hidden state of {self.slot or 'this module'} does not "
                          "fit this input (the batch shape changed without a reset)",
                          got=exc.got, expected=exc.expected,
                          hint="call brain_ai.adapters.hidden_state.reset_hidden(model) between "
                               "sequences (SJ: functional.reset_net; snnTorch: utils.reset)")


def attach(model: nn.Module, store: HiddenState | None = None) -> HiddenState:
    """Give every :class:`HiddenStateModule` of ``model`` one shared store and its path as slot."""
    store = store or HiddenState()
    for path, m in model.named_modules():
        if isinstance(m, HiddenStateModule):
            m.slot = path
            m.hidden = store
    return store


def stores(model: nn.Module) -> list[HiddenState]:
    """Every distinct store used by the converted modules of ``model``."""
    found: dict[int, HiddenState] = {}
    for m in model.modules():
        if isinstance(m, HiddenStateModule) and m.hidden is not None:
            found[id(m.hidden)] = m.hidden
    return list(found.values())


def hidden_state(model: nn.Module) -> HiddenState:
    """The store of a migrated ``model`` (one per model)."""
    found = stores(model)
    if len(found) != 1:
        raise ConversionError("hidden_state", "the model does not have exactly one hidden-state "
                              "store", got=len(found), expected=1,
                              hint="pass a model returned by migrate() (or a part of one)")
    return found[0]


def reset_hidden(model: nn.Module) -> None:
    """Start every converted module of ``model`` fresh (between sequences)."""
    for store in stores(model):
        store.reset()


def detach_hidden(model: nn.Module) -> None:
    """Cut the autograd graph of ``model``'s hidden state (truncated BPTT)."""
    for store in stores(model):
        store.detach()


def call_with_state(model: nn.Module, *args: Any, state: State | None = None,
                    **kwargs: Any) -> tuple[Any, State]:
    """``model(*args, **kwargs)`` with an explicit state: ``(output, new_state)``.

    ``state=None`` starts fresh. The model's own store is left as it was, so explicit-state
    calls and the peer-style hidden state never mix.
    """
    if not stores(model):
        return model(*args, **kwargs), {}
    store = hidden_state(model)
    with store.using(state):
        out = model(*args, **kwargs)
        new = store.snapshot()
    return out, new
