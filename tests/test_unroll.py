"""``snn_unroll`` and truncated BPTT: forward identical to full BPTT, graph cut at chunk edges."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brain_ai.apps.validate import VARIANTS, Variant
from brain_ai.core.neurons import AdaptiveLIFNeuron, LIFNeuron, RecurrentLIFNeuron
from brain_ai.core.unroll import UnrollResult, snn_unroll
from brain_ai.errors import ConfigError
from brain_ai.physics.functional import lif_multi_step, lif_step
from brain_ai.physics.state import SpikingState, detach_state

EXACT = {"rtol": 0, "atol": 0}
T = 9


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def seq(v: Variant, seed: int, steps: int = T) -> torch.Tensor:
    return torch.rand((2, steps, *v.in_shape), generator=gen(seed)) * 2


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
@pytest.mark.parametrize("chunk", [1, 2, 4, T, 100])
def test_chunked_forward_equals_full_forward(variant: Variant, chunk: int) -> None:
    n = variant.build()
    x = seq(variant, 0)
    s_full, st_full, tr_full = n.sequence(x, record=("v",))
    s_ch, st_ch, tr_ch = n.sequence(x, chunk_size=chunk, record=("v",))
    torch.testing.assert_close(s_ch, s_full, **EXACT)
    torch.testing.assert_close(tr_ch["v"], tr_full["v"], **EXACT)
    for k, t in st_full.tensors().items():
        torch.testing.assert_close(st_ch.tensors()[k], t, **EXACT)


def _reference_tbptt(n, x: torch.Tensor, chunk: int) -> torch.Tensor:
    """Hand-built truncated BPTT: a step loop that detaches the state every ``chunk`` steps."""
    state, out = None, []
    for t in range(x.shape[1]):
        if t > 0 and t % chunk == 0:
            state = SpikingState(**{k: v.detach() for k, v in state.tensors().items()})
        s, state = n(x[:, t], state)
        out.append(s)
    return torch.stack(out, 1)


@pytest.mark.parametrize("make", [
    lambda: LIFNeuron(beta=0.8, features=3, learn_beta=True, learn_threshold=True),
    lambda: AdaptiveLIFNeuron(beta=0.8, alpha=0.7, features=3, learn_adaptation=True),
    lambda: RecurrentLIFNeuron(3, recurrent="one_to_one", V=0.5, beta=0.8),
], ids=["lif", "adaptive_alpha", "recurrent_one_to_one"])
def test_tbptt_gradients_equal_a_hand_built_reference_and_differ_from_full(make) -> None:
    n = make()
    chunk = 3
    w = torch.rand(2, T, 3, generator=gen(2))
    grads = {}
    for name in ("full", "chunked", "reference"):
        x = seq(VARIANTS[0], 1).narrow(-1, 0, 3).clone().requires_grad_()
        n.zero_grad(set_to_none=True)
        if name == "full":
            s, _ = n(x)
        elif name == "chunked":
            s, _ = n(x, chunk_size=chunk)
        else:
            s = _reference_tbptt(n, x, chunk)
        (s * w).sum().backward()
        grads[name] = [x.grad] + [p.grad for p in n.parameters()]
    # input gradients: one path per x_t, bit-identical; parameter gradients sum T terms whose
    # accumulation order differs (one resolved parameter per call vs per step): float32 rounding
    torch.testing.assert_close(grads["chunked"][0], grads["reference"][0], **EXACT)
    for g_ch, g_ref in zip(grads["chunked"][1:], grads["reference"][1:], strict=True):
        torch.testing.assert_close(g_ch, g_ref, rtol=1e-5, atol=1e-6)
        assert not torch.equal(g_ch, torch.zeros_like(g_ch))
    assert not torch.equal(grads["chunked"][0], grads["full"][0])


def test_no_gradient_crosses_a_chunk_edge() -> None:
    """d out[window j] / d x[window i] is exactly zero for i < j, and nonzero inside window j."""
    n = LIFNeuron(beta=0.9, features=3)
    x = seq(VARIANTS[0], 3, steps=12).narrow(-1, 0, 3).clone().requires_grad_()
    s, _ = n(x, chunk_size=4)
    for j in range(3):
        (g,) = torch.autograd.grad(s[:, 4 * j: 4 * j + 4].sum(), x, retain_graph=True)
        assert (g[:, : 4 * j] == 0).all()
        assert (g[:, 4 * j: 4 * j + 4] != 0).any()
        assert (g[:, 4 * j + 4:] == 0).all()  # causality
    # guard: full BPTT does carry gradient back across the same edge
    s_full, _ = n(x)
    (g,) = torch.autograd.grad(s_full[:, 8:].sum(), x)
    assert (g[:, :8] != 0).any()


def test_neuron_default_chunk_size_is_used() -> None:
    x = torch.rand(2, T, 3, generator=gen(4)).requires_grad_()
    a = LIFNeuron(beta=0.8, features=3, chunk_size=2)
    b = LIFNeuron(beta=0.8, features=3)
    (ga,) = torch.autograd.grad(a(x)[0].sum(), x)
    (gb,) = torch.autograd.grad(b(x, chunk_size=2)[0].sum(), x)
    torch.testing.assert_close(ga, gb, **EXACT)


# ------------------------------------------------------------------ snn_unroll with plain cells
def _leaky_cell(x: torch.Tensor, state: SpikingState) -> tuple[torch.Tensor, SpikingState]:
    v = 0.5 * state.v + x
    return v, SpikingState(v=v)


def test_snn_unroll_with_a_plain_cell_hand_values() -> None:
    """v_t = .5·v_{t-1} + x_t, x = [1, 2, 4]: v = 1, 2.5, 5.25; trace of v recorded."""
    x = torch.tensor([[1.0, 2.0, 4.0]]).unsqueeze(-1)
    res = snn_unroll(_leaky_cell, x, SpikingState(v=torch.zeros(1, 1)), record=("v",))
    assert isinstance(res, UnrollResult)
    assert res.spikes.flatten().tolist() == [1.0, 2.5, 5.25]
    assert res.traces["v"].flatten().tolist() == [1.0, 2.5, 5.25]
    assert res.final_state.v.item() == 5.25


def test_snn_unroll_multi_step_path_equals_the_step_path() -> None:
    n = LIFNeuron(beta=0.8, alpha=0.5, features=3)
    x = torch.rand(2, T, 3, generator=gen(5)) * 2
    init = n.reset_state(2)
    p = n.params()

    def cell(xt, s):
        return lif_step(xt, s, p)

    windows = []

    def multi_step(xs, s, record):
        windows.append(xs.shape[1])
        return lif_multi_step(xs, s, p, record)

    cell.multi_step = multi_step
    fused = snn_unroll(cell, x, init, chunk_size=4, record=("v", "i"))
    assert windows == [4, 4, 1]  # one fused call per window
    stepped = snn_unroll(lambda xt, s: lif_step(xt, s, p), x, init, chunk_size=4,
                         record=("v", "i"))
    torch.testing.assert_close(fused.spikes, stepped.spikes, **EXACT)
    for k in ("v", "i"):
        torch.testing.assert_close(fused.traces[k], stepped.traces[k], **EXACT)


def test_snn_unroll_stacks_pytree_outputs_and_cuts_their_graph() -> None:
    def cell(x, state):
        v = 0.5 * state.v + x
        return {"v": v, "double": 2 * v}, SpikingState(v=v)

    x = torch.ones(1, 4, 1, requires_grad=True)
    res = snn_unroll(cell, x, SpikingState(v=torch.zeros(1, 1)), chunk_size=2)
    assert res.spikes["v"].flatten().tolist() == [1.0, 1.5, 1.75, 1.875]
    assert res.spikes["double"].flatten().tolist() == [2.0, 3.0, 3.5, 3.75]
    (g,) = torch.autograd.grad(res.spikes["v"][:, 3].sum(), x)
    # v_3 = .5·v_2 + x_3 with v_2 detached at the edge: only x_2 (.5) and x_3 (1) contribute
    assert g.flatten().tolist() == [0.0, 0.0, 0.5, 1.0]


def test_snn_unroll_cannot_record_a_missing_field() -> None:
    with pytest.raises(ConfigError, match=r"snn_unroll: cannot record 'a'.*\n  Hint:"):
        snn_unroll(_leaky_cell, torch.ones(1, 2, 1), SpikingState(v=torch.zeros(1, 1)),
                   record=("a",))


def test_detach_state_maps_any_pytree() -> None:
    v = torch.ones(2, requires_grad=True) * 3
    out = detach_state({"a": v, "b": (v, None)})
    assert not out["a"].requires_grad and out["b"][1] is None
    assert out["b"][0].tolist() == [3.0, 3.0]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(1, 15), chunk=st.integers(1, 16),
       beta=st.floats(0.0, 0.999))
def test_chunked_forward_is_full_forward_for_any_chunk(seed, steps, chunk, beta) -> None:
    n = AdaptiveLIFNeuron(beta=beta, alpha=0.5, features=3)
    x = torch.rand(2, steps, 3, generator=gen(seed)) * 3
    s_full, st_full = n(x)
    s_ch, st_ch = n(x, chunk_size=chunk)
    torch.testing.assert_close(s_ch, s_full, **EXACT)
    for k, t in st_full.tensors().items():
        torch.testing.assert_close(st_ch.tensors()[k], t, **EXACT)


def test_truncated_bptt_is_one_kernel_call_with_the_windows_gradients(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A neuron's sequence with ``chunk_size`` runs its kernel once over the whole sequence
    (nothing split, nothing concatenated); the kernel stops the state's gradient at the window
    edges: input and parameter gradients equal the reference run window by window, with the
    state detached between windows, bit for bit."""
    from brain_ai import kernels

    calls: list[int] = []
    real = kernels.fused_multi_step

    def spy(x, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(x.shape[1])
        return real(x, *args, **kwargs)

    monkeypatch.setattr("brain_ai.core.neurons.fused_multi_step", spy)
    x = torch.rand(3, 23, 5, generator=gen(4)) * 1.5

    def grads(kernel: str) -> list[torch.Tensor]:
        n = LIFNeuron(beta=0.85, learn_beta=True, learn_threshold=True, features=5,
                      reset_timing="delayed", chunk_size=4, kernel=kernel)
        xg = x.clone().requires_grad_()
        s, st = n(xg)
        return [s, st.v, *torch.autograd.grad((s * x).sum() + st.v.sum(),
                                               [xg, n.beta, n.threshold])]

    fast = grads("native")
    assert calls == [23]
    ref = grads("reference")
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b, **EXACT)
