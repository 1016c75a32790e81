"""The neuron contract, parametrized over every variant in :data:`brain_ai.apps.validate.VARIANTS`.

Adding a variant to that list covers it here (and in ``brain-ai validate``). Categories of
seed 000: shape/dtype contract in step and sequence mode, state lifecycle, numerical
stability, determinism; plus purity, pickling, torch.compile / torch.export / vmap.
"""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from torch import nn

from brain_ai.apps.validate import VARIANTS, Variant, seeded_init
from brain_ai.core.neurons import (
    AdaptiveLIFNeuron,
    AdvancedLIFNeuron,
    LIFNeuron,
    NeuronOutput,
    RecurrentLIFNeuron,
)
from brain_ai.physics.state import SpikingState

B, T = 3, 8
IDS = [v.name for v in VARIANTS]
variants = pytest.mark.parametrize("variant", VARIANTS, ids=IDS)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def seq_input(v: Variant, g: torch.Generator, steps: int = T, scale: float = 2.0
              ) -> torch.Tensor:
    return torch.rand((B, steps, *v.in_shape), generator=g) * scale


def step_input(v: Variant, g: torch.Generator, scale: float = 6.0) -> torch.Tensor:
    return torch.rand((B, *v.in_shape), generator=g) * scale


def clone_state(state: SpikingState) -> dict[str, torch.Tensor]:
    return {k: t.detach().clone() for k, t in state.tensors().items()}


def assert_states_equal(a: SpikingState | dict, b: SpikingState | dict) -> None:
    da = a if isinstance(a, dict) else a.tensors()
    db = b if isinstance(b, dict) else b.tensors()
    assert da.keys() == db.keys()
    for k in da:
        torch.testing.assert_close(da[k], db[k], rtol=0, atol=0, msg=f"state.{k} differs")


def random_state(n: nn.Module, v: Variant, g: torch.Generator) -> SpikingState:
    fresh = n.reset_state(B, v.out_shape)
    return SpikingState(**{k: torch.rand(t.shape, generator=g)
                           for k, t in fresh.tensors().items()})


def expected_state_shapes(n: nn.Module, v: Variant) -> dict[str, tuple[int, ...]]:
    shapes = {"v": (B, *v.out_shape)}
    for name in n.reset_state(1, v.out_shape).tensors():
        if name == "spike_history":  # history length max_delay + 2 (AdvancedLIFNeuron doc)
            shapes[name] = (B, n.max_delay + 2, *v.out_shape)
        elif name != "v":
            shapes[name] = (B, *v.out_shape)
    return shapes


# ------------------------------------------------------------------ shape / dtype contract
@variants
def test_step_mode_shapes_dtypes_and_values(variant: Variant) -> None:
    n = variant.build()
    x = step_input(variant, gen(1))
    s, st = n(x)
    assert tuple(s.shape) == (B, *variant.out_shape)
    assert s.dtype == torch.float32
    assert {k: tuple(t.shape) for k, t in st.tensors().items()} == expected_state_shapes(
        n, variant)
    assert all(t.dtype == torch.float32 for t in st.tensors().values())
    values = s.unique().tolist()
    assert set(values) <= {0.0, variant.spike_value}
    assert variant.spike_value in values, "no neuron fired: the value check would be vacuous"


@variants
def test_sequence_mode_shapes_dtypes_and_values(variant: Variant) -> None:
    n = variant.build()
    x = seq_input(variant, gen(2))
    s, st = n(x)
    assert tuple(s.shape) == (B, T, *variant.out_shape)
    assert s.dtype == torch.float32
    assert {k: tuple(t.shape) for k, t in st.tensors().items()} == expected_state_shapes(
        n, variant)
    values = s.unique().tolist()
    assert set(values) <= {0.0, variant.spike_value}
    assert variant.spike_value in values and 0.0 in values


@variants
def test_step_loop_equals_sequence_bit_for_bit(variant: Variant) -> None:
    """T calls in step mode give the same spikes, membrane trace and final state as one
    sequence call."""
    n = variant.build()
    x = seq_input(variant, gen(3))
    s_seq, st_seq, traces = n.sequence(x, record=("v",))
    state, spikes, vs = None, [], []
    for t in range(T):
        s_t, state = n(x[:, t], state)
        spikes.append(s_t)
        vs.append(state.v)
    torch.testing.assert_close(torch.stack(spikes, 1), s_seq, rtol=0, atol=0)
    torch.testing.assert_close(torch.stack(vs, 1), traces["v"], rtol=0, atol=0)
    assert_states_equal(state, st_seq)


@variants
@pytest.mark.parametrize("mode", ["step", "sequence"])
def test_purity_state_passed_in_is_unchanged(variant: Variant, mode: str) -> None:
    n = variant.build()
    g = gen(4)
    state = random_state(n, variant, g)
    before = clone_state(state)
    x = step_input(variant, g) if mode == "step" else seq_input(variant, g)
    s, new = n(x, state)
    assert_states_equal(before, clone_state(state))
    assert new is not state and new.v is not state.v
    assert tuple(s.shape[:1]) == (B,)


@variants
def test_no_state_is_stored_on_the_module(variant: Variant) -> None:
    n = variant.build()
    attrs = dict(vars(n))
    buffers = {k: b.clone() for k, b in n.named_buffers()}
    params = {k: p.detach().clone() for k, p in n.named_parameters()}
    g = gen(5)
    n(seq_input(variant, g))
    n(step_input(variant, g))
    assert vars(n).keys() == attrs.keys()
    assert all(vars(n)[k] is attrs[k] for k in attrs)
    now = dict(n.named_buffers())
    assert now.keys() == buffers.keys()
    for k in now:
        torch.testing.assert_close(now[k], buffers[k], rtol=0, atol=0)
    for k, p in n.named_parameters():
        torch.testing.assert_close(p.detach(), params[k], rtol=0, atol=0)


@variants
def test_pickle_round_trip_gives_identical_outputs(variant: Variant) -> None:
    n = variant.build()
    x = seq_input(variant, gen(6))
    s, st = n(x)
    m = pickle.loads(pickle.dumps(n))
    assert repr(m) == repr(n)
    s2, st2 = m(x)
    torch.testing.assert_close(s2, s, rtol=0, atol=0)
    assert_states_equal(st2, st)


# ------------------------------------------------------------------ state lifecycle
@variants
def test_carry_state_streams_two_halves_like_one_sequence(variant: Variant) -> None:
    n = variant.build()
    x = seq_input(variant, gen(7))
    s_full, st_full = n(x)
    s1, st1 = n(x[:, : T // 2], carry_state=True)
    s2, st2 = n(x[:, T // 2:], st1, carry_state=True)
    torch.testing.assert_close(torch.cat([s1, s2], 1), s_full, rtol=0, atol=0)
    assert_states_equal(st2, st_full)


@variants
def test_carry_state_returns_a_detached_state(variant: Variant) -> None:
    n = variant.build()
    x = seq_input(variant, gen(8)).requires_grad_()
    _, attached = n(x)
    _, carried = n(x, carry_state=True)
    assert attached.v.grad_fn is not None
    assert all(not t.requires_grad and t.grad_fn is None for t in carried.tensors().values())
    assert_states_equal(clone_state(attached), carried)


@variants
def test_detach_state_cuts_the_graph_and_keeps_values(variant: Variant) -> None:
    n = variant.build()
    x = seq_input(variant, gen(9)).requires_grad_()
    _, st = n(x)
    d = n.detach_state(st)
    for k, t in d.tensors().items():
        assert not t.requires_grad
        assert t.data_ptr() == st.tensors()[k].data_ptr(), "detach must not copy"
    assert_states_equal(clone_state(st), d)


@variants
def test_no_leakage_between_batches(variant: Variant) -> None:
    """state=None always starts from rest: A, then B, then A again gives A's result."""
    n = variant.build()
    g = gen(10)
    xa, xb = seq_input(variant, g), seq_input(variant, g, scale=5.0)
    sa, sta = n(xa)
    n(xb)
    sa2, sta2 = n(xa)
    torch.testing.assert_close(sa2, sa, rtol=0, atol=0)
    assert_states_equal(sta2, sta)


@variants
def test_reset_state_is_rest(variant: Variant) -> None:
    n = variant.build()
    st = n.reset_state(B, variant.out_shape)
    assert {k: tuple(t.shape) for k, t in st.tensors().items()} == expected_state_shapes(
        n, variant)
    for k, t in st.tensors().items():
        want = n.v_reset if k == "v" else 0.0
        torch.testing.assert_close(t, torch.full_like(t, want), rtol=0, atol=0)


def test_reset_state_uses_v_reset_and_zero_elsewhere() -> None:
    n = AdaptiveLIFNeuron(beta=0.5, v_reset=-0.25, alpha=0.5, refractory_steps=3, features=(2, 3))
    st = n.reset_state(4)
    assert sorted(st.tensors()) == ["a", "i", "ref", "v"]
    torch.testing.assert_close(st.v, torch.full((4, 2, 3), -0.25), rtol=0, atol=0)
    for name in ("a", "i", "ref"):
        torch.testing.assert_close(getattr(st, name), torch.zeros(4, 2, 3), rtol=0, atol=0)
    # the rest state is what state=None uses: one zero-input step from it stays at
    # beta * v_reset = -0.125 with no spike
    s, after = n(torch.zeros(4, 2, 3), st)
    torch.testing.assert_close(after.v, torch.full((4, 2, 3), -0.125), rtol=0, atol=0)
    assert s.sum().item() == 0.0


def test_return_details_matches_plain_call() -> None:
    n = LIFNeuron(beta=0.5, features=2)
    x = torch.tensor([[[1.5, 0.25], [0.0, 0.5], [2.5, 0.5]]])
    s, st = n(x)
    out = n(x, return_details=True)
    assert isinstance(out, NeuronOutput)
    torch.testing.assert_close(out.spikes, s, rtol=0, atol=0)
    assert_states_equal(out.state, st)
    # hand: neuron 0 v = .5, .25, 1.625 (spikes 1,0,1); neuron 1: .25, .625, .8125
    torch.testing.assert_close(out.membrane, torch.tensor([[[0.5, 0.25], [0.25, 0.625],
                                                            [1.625, 0.8125]]]), rtol=0, atol=0)
    assert out.details["firing_rate"] == pytest.approx(2 / 6)


# ------------------------------------------------------------------ numerical stability
@variants
def test_no_nan_or_inf_on_long_sequences_with_large_inputs(variant: Variant) -> None:
    n = variant.build()
    x = torch.randn((2, 2000, *variant.in_shape), generator=gen(11)) * 1e4
    with torch.no_grad():
        s, st, traces = n.sequence(x, record=("v",))
    assert torch.isfinite(s).all() and torch.isfinite(traces["v"]).all()
    assert all(torch.isfinite(t).all() for t in st.tensors().values())


@variants
def test_fp32_state_under_bf16_autocast(variant: Variant) -> None:
    n = variant.build()
    lin = seeded_init(nn.Linear(variant.in_shape[-1], variant.in_shape[-1]), 3)
    x = seq_input(variant, gen(12))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = lin(x)
        s, st = n(h)
    assert h.dtype == torch.bfloat16
    assert {k: t.dtype for k, t in st.tensors().items()} == dict.fromkeys(
        st.tensors(), torch.float32)
    assert s.dtype == torch.float32
    assert set(s.unique().tolist()) <= {0.0, variant.spike_value}


def test_dtype_policy_input_keeps_bf16() -> None:
    g = gen(13)
    lin = seeded_init(nn.Linear(4, 4), 4)
    x = torch.rand(2, 5, 4, generator=g)
    n = LIFNeuron(beta=0.5, features=4, alpha=0.5, dtype_policy="input")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s, st = n(lin(x))
    assert s.dtype == torch.bfloat16
    assert st.v.dtype == torch.bfloat16 and st.i.dtype == torch.bfloat16
    s2, st2 = n(x.to(torch.bfloat16))
    assert s2.dtype == st2.v.dtype == torch.bfloat16
    # the default policy promotes the same bf16 input to a float32 state
    s3, st3 = LIFNeuron(beta=0.5, features=4, alpha=0.5)(x.to(torch.bfloat16))
    assert s3.dtype == st3.v.dtype == st3.i.dtype == torch.float32


def test_learnable_beta_is_clamped_at_use() -> None:
    """A learnable β pushed outside [0, 0.999] by an optimizer is clamped when used:
    with reset="none" and x = 1, v_T = sum_{k<T} 0.999^k = (1 - 0.999^T) / 0.001."""
    n = LIFNeuron(beta=0.9, learn_beta=True, reset="none", features=1)
    with torch.no_grad():
        n.beta.fill_(1.7)
    assert n.leak().item() == torch.tensor(0.999).item()
    _, st = n(torch.ones(1, 2000, 1))
    b = float(torch.tensor(0.999))
    assert st.v.item() == pytest.approx((1 - b ** 2000) / (1 - b), rel=1e-4)
    with torch.no_grad():
        n.beta.fill_(-0.5)
    assert n.leak().item() == 0.0
    _, st = n(torch.tensor([[[3.0], [0.25]]]))
    assert st.v.item() == 0.25  # beta = 0: the membrane is the last input


def test_beta_clamp_one_gives_integrate_and_fire() -> None:
    n = LIFNeuron(beta=1.0, beta_clamp=(0.0, 1.0), reset="none", features=1)
    _, st = n(torch.tensor([[[0.5], [0.25], [0.125]]]))
    assert st.v.item() == 0.875


def test_sigmoid_beta_is_in_range_and_learns() -> None:
    """β = sigmoid(logit): dv'/dlogit = v·β(1-β) = 1·0.75·0.25 for v = 1, x = 0."""
    n = LIFNeuron(beta=0.75, beta_param="sigmoid", learn_beta=True, reset="none", features=1)
    assert "beta" not in dict(n.named_buffers()) and "beta" not in dict(n.named_parameters())
    torch.testing.assert_close(n.leak(), torch.tensor(0.75))
    with torch.no_grad():
        n.beta_logit.fill_(-30.0)
    assert 0.0 <= n.leak().item() < 1.0
    with torch.no_grad():
        n.beta_logit.fill_(torch.logit(torch.tensor(0.75, dtype=torch.float64)).item())
    st = SpikingState(v=torch.ones(1, 1))
    _, out = n(torch.zeros(1, 1), st)
    out.v.sum().backward()
    torch.testing.assert_close(n.beta_logit.grad, torch.tensor(0.1875), rtol=1e-6, atol=0)


def test_advanced_neuron_leak_is_clamped() -> None:
    n = AdvancedLIFNeuron(3, tau_range=(2.0, 4.0), reset="none")
    torch.testing.assert_close(n.leak(), torch.exp(-1.0 / torch.tensor([2.0, 3.0, 4.0])))
    with torch.no_grad():
        n.log_tau.fill_(100.0)  # tau = e^100: exp(-1/tau) rounds to 1.0
    assert n.leak().max().item() == torch.tensor(0.999).item()


# ------------------------------------------------------------------ gradients
@variants
def test_gradients_reach_input_and_every_learnable_parameter(variant: Variant) -> None:
    n = variant.build()
    g = gen(14)
    x = seq_input(variant, g).requires_grad_()
    s, _ = n(x)
    (s * torch.rand(s.shape, generator=g)).sum().backward()
    named = [("input", x.grad)] + [(k, p.grad) for k, p in n.named_parameters()
                                   if p.requires_grad]
    for name, grad in named:
        assert grad is not None, name
        assert torch.isfinite(grad).all(), name
        assert (grad != 0).any(), name


def test_advanced_neuron_every_delay_gets_a_gradient() -> None:
    """Learnable delays initialised at integers (linspace(0, 4, 5) = 0, 1, 2, 3, 4) must still
    learn: the interpolation weight relu(1 - |k - d|) must give d a nonzero gradient."""
    n = AdvancedLIFNeuron(5, max_delay=4)
    torch.testing.assert_close(n.delays.detach(), torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]))
    x = torch.rand(2, 10, 5, generator=gen(15)) * 2
    s, _ = n(x)
    s.sum().backward()
    assert (n.delays.grad != 0).all(), f"delays.grad = {n.delays.grad.tolist()}"


# ------------------------------------------------------------------ determinism
@variants
def test_same_seed_same_result(variant: Variant) -> None:
    results = []
    for _ in range(2):
        n = variant.build()
        g = gen(16)
        x = seq_input(variant, g).requires_grad_()
        s, st = n(x)
        (s * torch.rand(s.shape, generator=g)).sum().backward()
        results.append((s, st, x.grad, {k: p.grad for k, p in n.named_parameters()}))
    (s1, st1, gx1, gp1), (s2, st2, gx2, gp2) = results
    torch.testing.assert_close(s1, s2, rtol=0, atol=0)
    assert_states_equal(clone_state(st1), clone_state(st2))
    torch.testing.assert_close(gx1, gx2, rtol=0, atol=0)
    assert gp1.keys() == gp2.keys()
    for k in gp1:
        torch.testing.assert_close(gp1[k], gp2[k], rtol=0, atol=0)


def test_different_seed_different_result() -> None:
    """Guard for the test above: the input seed matters."""
    v = VARIANTS[0]
    n = v.build()
    s1, _ = n(seq_input(v, gen(1)))
    s2, _ = n(seq_input(v, gen(2)))
    assert not torch.equal(s1, s2)


# ------------------------------------------------------------------ compile / export / vmap
# importing inductor runs torch.jit.script_method, deprecated inside torch itself
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile_step_matches_eager() -> None:
    """torch.compile (inductor, CPU) of a step call with an explicit state: ~4 s on 2 cores."""
    n = LIFNeuron(beta=0.75, alpha=0.5, features=3)
    g = gen(17)
    x = torch.rand(2, 3, generator=g) * 2
    st = SpikingState(v=torch.rand(2, 3, generator=g), i=torch.rand(2, 3, generator=g))
    s_e, st_e = n(x, st)
    compiled = torch.compile(n)
    s_c, st_c = compiled(x, st)
    torch.testing.assert_close(s_c, s_e, rtol=0, atol=0)
    assert_states_equal(st_c, st_e)
    assert s_e.sum().item() > 0


def test_torch_export_with_explicit_state() -> None:
    """SpikingState is a registered pytree, so torch.export accepts it as an input."""
    n = LIFNeuron(beta=0.75, features=3)
    g = gen(18)
    x = torch.rand(2, 3, generator=g) * 2
    st = SpikingState(v=torch.rand(2, 3, generator=g))
    ep = torch.export.export(n, (x, st))
    s_x, st_x = ep.module()(x, st)
    s_e, st_e = n(x, st)
    torch.testing.assert_close(s_x, s_e, rtol=0, atol=0)
    torch.testing.assert_close(st_x.v, st_e.v, rtol=0, atol=0)


def test_vmap_over_samples_matches_batched_call() -> None:
    n = LIFNeuron(beta=0.75, features=3)
    x = torch.rand(4, 5, 3, generator=gen(19)) * 2
    s_batched, _ = n(x)
    s_vmapped = torch.func.vmap(lambda xs: n(xs.unsqueeze(0))[0].squeeze(0))(x)
    torch.testing.assert_close(s_vmapped, s_batched, rtol=0, atol=0)


# ------------------------------------------------------------------ per-variant physics
def test_refractory_period_hand_values() -> None:
    """β=.5, θ=1, R=2, x=1.5 every step. t0: h=1.5 fires, v=.5, ref=2. t1, t2: held at
    v_reset=0, ref 1 then 0. t3: h=1.5 fires again (ref=2). t4: held (ref=1)."""
    n = LIFNeuron(beta=0.5, refractory_steps=2, features=1)
    s, _, tr = n.sequence(torch.full((1, 5, 1), 1.5), record=("v", "ref"))
    assert s.flatten().tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert tr["v"].flatten().tolist() == [0.5, 0.0, 0.0, 0.5, 0.0]
    assert tr["ref"].flatten().tolist() == [2.0, 1.0, 0.0, 2.0, 1.0]


def test_alpha_synapse_hand_values() -> None:
    """i = α·i + x, h = β·v + i, α = β = .5, x = [.75, 0, .5]:
    t0 i=.75 h=.75; t1 i=.375 h=.375+.375=.75; t2 i=.1875+.5=.6875 h=.375+.6875=1.0625 fires,
    v=.0625."""
    n = LIFNeuron(beta=0.5, alpha=0.5, features=1)
    s, _, tr = n.sequence(torch.tensor([[[0.75], [0.0], [0.5]]]), record=("v", "i"))
    assert s.flatten().tolist() == [0.0, 0.0, 1.0]
    assert tr["i"].flatten().tolist() == [0.75, 0.375, 0.6875]
    assert tr["v"].flatten().tolist() == [0.75, 0.75, 0.0625]


def test_graded_spikes_hand_values() -> None:
    n = LIFNeuron(beta=0.5, graded_spikes_factor=0.25, features=2)
    s, _ = n(torch.tensor([[1.5, 0.5]]))
    assert s.tolist() == [[0.25, 0.0]]


def test_adaptive_threshold_hand_values() -> None:
    """θ_eff = 1 + .5·a, a ← .5·a + s, β = .5, x = [1.5, 1, 1]:
    t0 θe=1 h=1.5 fires v=.5 a=1; t1 θe=1.5 h=1.25 silent a=.5;
    t2 θe=1.25 h=.625+1=1.625 fires v=1.625-1.25=.375 a=.25+1=1.25."""
    n = AdaptiveLIFNeuron(beta=0.5, adapt_scale=0.5, adapt_decay=0.5, features=1)
    s, _, tr = n.sequence(torch.tensor([[[1.5], [1.0], [1.0]]]), record=("v", "a"))
    assert s.flatten().tolist() == [1.0, 0.0, 1.0]
    assert tr["v"].flatten().tolist() == [0.5, 1.25, 0.375]
    assert tr["a"].flatten().tolist() == [1.0, 0.5, 1.25]


def test_recurrent_one_to_one_hand_values() -> None:
    """h = β·v + x + V·s_prev, β=.5, V=.5, x = [1.5, .25, .25]:
    t0 h=1.5 fires v=.5; t1 h=.25+.25+.5=1.0 (tie, '>' does not fire) v=1; t2 h=.5+.25=.75."""
    n = RecurrentLIFNeuron(1, beta=0.5, recurrent="one_to_one", V=0.5)
    s, _, tr = n.sequence(torch.tensor([[[1.5], [0.25], [0.25]]]), record=("v",))
    assert s.flatten().tolist() == [1.0, 0.0, 0.0]
    assert tr["v"].flatten().tolist() == [0.5, 1.0, 0.75]


def test_recurrent_linear_uses_previous_spikes() -> None:
    """W_rec = [[0, 1], [0, 0]], no bias: neuron 0 receives neuron 1's previous spike.
    x = [[0, 1.5], [0.25, 0]] with β=.5: t0 neuron 1 fires; t1 neuron 0 gets .25 + 1 = 1.25."""
    n = RecurrentLIFNeuron(2, beta=0.5, bias=False)
    with torch.no_grad():
        n.recurrent.weight.copy_(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    s, _ = n(torch.tensor([[[0.0, 1.5], [0.25, 0.0]]]))
    assert s[0].tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_advanced_delays_shift_the_input() -> None:
    """Delays [0, 1, 2]: an impulse at t=0 makes neuron n fire first at t = n."""
    n = AdvancedLIFNeuron(3, max_delay=2, learn_delays=False, adapt_scale=0.0)
    x = torch.zeros(1, 5, 3)
    x[:, 0] = 5.0
    s, _ = n(x)
    assert s[0].argmax(0).tolist() == [0, 1, 2]
    assert s[0, :3].tolist() == [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]


def test_advanced_fractional_delay_interpolates() -> None:
    """Delay .5 splits an input of 2 at t0 into 1 at t0 and 1 at t1:
    v0 = 1, v1 = β·1 + 1 with β = exp(-1/2), reset none."""
    n = AdvancedLIFNeuron(1, max_delay=2, tau_range=(2.0, 2.0), learn_delays=False,
                          reset="none")
    with torch.no_grad():
        n.delays.fill_(0.5)
    _, _, tr = n.sequence(torch.tensor([[[2.0], [0.0]]]), record=("v",))
    beta = math.exp(-0.5)
    torch.testing.assert_close(tr["v"].flatten(), torch.tensor([1.0, beta + 1.0]))
