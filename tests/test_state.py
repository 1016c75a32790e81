"""``SpikingState``: a registered pytree; ``reset_state`` / ``detach_state`` lifecycle."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.utils._pytree as pytree

from brain_ai.core.neurons import AdvancedLIFNeuron, LIFNeuron, RecurrentLIFNeuron
from brain_ai.physics.state import SpikingState, detach_state

EXACT = {"rtol": 0, "atol": 0}


def test_state_is_a_pytree_with_six_leaves() -> None:
    v, a = torch.ones(2, 3), torch.zeros(2, 3)
    st = SpikingState(v=v, a=a)
    leaves, spec = pytree.tree_flatten(st)
    # field order v, i, a, prev_spk, spike_history, ref; unset fields are None leaves
    assert len(leaves) == 6 and leaves[0] is v and leaves[2] is a
    assert [t is None for t in leaves] == [False, True, False, True, True, True]
    back = pytree.tree_unflatten(leaves, spec)
    assert isinstance(back, SpikingState)
    assert back.v is v and back.a is a and back.i is None and back.ref is None
    doubled = pytree.tree_map(lambda t: None if t is None else 2 * t, st)
    assert doubled.v.tolist() == [[2.0] * 3] * 2 and doubled.prev_spk is None


def test_tensors_and_replace() -> None:
    st = SpikingState(v=torch.ones(1), ref=torch.zeros(1))
    assert list(st.tensors()) == ["v", "ref"]
    st2 = st.replace(v=torch.full((1,), 2.0))
    assert st2.v.item() == 2.0 and st.v.item() == 1.0 and st2.ref is st.ref


def test_detach_state_keeps_values_cuts_graph_shares_memory() -> None:
    x = torch.tensor([0.5, 1.5], requires_grad=True)
    st = SpikingState(v=x * 2, i=x + 1)
    d = detach_state(st)
    assert isinstance(d, SpikingState) and d.a is None
    assert d.v.tolist() == [1.0, 3.0] and d.i.tolist() == [1.5, 2.5]
    assert not d.v.requires_grad and d.v.grad_fn is None
    assert d.v.data_ptr() == st.v.data_ptr()
    assert st.v.grad_fn is not None  # the original is untouched


def test_state_pickles() -> None:
    st = SpikingState(v=torch.tensor([0.25, -1.0]), a=torch.tensor([1.0, 2.0]))
    back = pickle.loads(pickle.dumps(st))
    torch.testing.assert_close(back.v, st.v, **EXACT)
    torch.testing.assert_close(back.a, st.a, **EXACT)
    assert back.i is None


@pytest.mark.parametrize(
    ("policy", "dtype", "expected"),
    [("float32", torch.float32, torch.float32), ("float32", torch.bfloat16, torch.float32),
     ("float32", torch.float16, torch.float32), ("float32", torch.float64, torch.float64),
     ("input", torch.bfloat16, torch.bfloat16), ("input", torch.float64, torch.float64)],
)
def test_reset_state_dtype_follows_the_policy(policy: str, dtype: torch.dtype,
                                              expected: torch.dtype) -> None:
    n = LIFNeuron(alpha=0.5, features=3, dtype_policy=policy)
    st = n.reset_state(2, dtype=dtype)
    assert st.v.dtype == st.i.dtype == expected


def test_reset_state_feature_shape_argument_and_history_length() -> None:
    st = LIFNeuron().reset_state(4, (2, 5))
    assert tuple(st.v.shape) == (4, 2, 5)
    st = LIFNeuron().reset_state(4, 7)
    assert tuple(st.v.shape) == (4, 7)
    adv = AdvancedLIFNeuron(3, max_delay=5)
    st = adv.reset_state(2)
    # max_delay + 2 steps: the step after the largest delay gives that delay a gradient
    assert tuple(st.spike_history.shape) == (2, 7, 3)
    assert st.spike_history.is_contiguous()
    torch.testing.assert_close(st.spike_history, torch.zeros(2, 7, 3), **EXACT)


def test_reset_state_tensors_are_independent_of_each_other() -> None:
    """Fields share no storage with v, so a consumer that writes one cannot corrupt another."""
    st = RecurrentLIFNeuron(3).reset_state(2)
    assert st.v.data_ptr() != st.prev_spk.data_ptr()


def test_reset_state_stores_nothing_on_the_module() -> None:
    n = LIFNeuron(alpha=0.5, features=3)
    before = dict(vars(n))
    n.reset_state(5)
    assert vars(n).keys() == before.keys()
    assert all(vars(n)[k] is before[k] for k in before)
