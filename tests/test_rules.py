"""The named rules of :mod:`brain_ai.physics.rules` against hand-computed values, plus properties.

All hand-worked sequences use dyadic numbers (exact in float32), so every comparison is
bit-exact (``rtol=0, atol=0``).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brain_ai.core.neurons import AdaptiveLIFNeuron, LIFNeuron
from brain_ai.core.surrogates import ATan, FastSigmoid
from brain_ai.errors import ConfigError
from brain_ai.physics import rules
from brain_ai.physics.state import SpikingState

EXACT = {"rtol": 0, "atol": 0}
PROPS = settings(max_examples=40, deadline=None)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values)


# ------------------------------------------------------------------ charge
@pytest.mark.parametrize(
    ("rule", "leak", "v_reset", "expected"),
    [
        # v = .5, x = 1
        ("beta", 0.5, 0.0, 1.25),        # .5·.5 + 1
        ("tau", 2.0, 0.0, 1.25),         # .5 - (.5 - 0)/2 + 1
        ("tau_input", 2.0, 0.0, 0.75),   # .5 + (1 - (.5 - 0))/2
        ("rate", 0.5, 0.0, 1.25),        # .5 - (.5 - 0)·.5 + 1
        ("rate_input", 0.5, 0.0, 0.75),  # .5 + (1 - (.5 - 0))·.5
        ("beta", 0.5, 0.25, 1.25),       # v_reset does not enter the beta charge
        ("tau", 2.0, 0.25, 1.375),       # .5 - (.5 - .25)/2 + 1
        ("tau_input", 2.0, 0.25, 0.875),  # .5 + (1 - .25)/2
        ("rate", 0.5, 0.25, 1.375),      # .5 - .25·.5 + 1
        ("rate_input", 0.5, 0.25, 0.875),  # .5 + (1 - .25)·.5
    ],
)
def test_charge_rules_hand_values(rule: str, leak: float, v_reset: float,
                                  expected: float) -> None:
    h = rules.charge(t(0.5), t(1.0), torch.tensor(leak), rule, v_reset)
    torch.testing.assert_close(h, t(expected), **EXACT)


@pytest.mark.parametrize(
    ("charge", "expected"),
    [("tau", 1.25), ("tau_input", 0.75), ("rate", 1.25), ("rate_input", 0.75)],
)
def test_charge_rules_through_the_neuron(charge: str, expected: float) -> None:
    """τ = 2 (rate charges: q = sigmoid(-ln(τ - 1)) = sigmoid(0) = .5 exactly), v = .5, x = 1."""
    n = LIFNeuron(beta=None, tau=2.0, charge=charge, reset="none", features=1)
    _, st_ = n(t(1.0).view(1, 1), SpikingState(v=t(0.5).view(1, 1)))
    torch.testing.assert_close(st_.v, t(expected).view(1, 1), **EXACT)


@pytest.mark.parametrize("per_neuron", [False, True], ids=["scalar_tau", "tensor_tau"])
@pytest.mark.parametrize("charge", ["tau", "tau_input", "rate", "rate_input"])
def test_tau_one_is_accepted_by_every_tau_charge(charge: str, per_neuron: bool) -> None:
    """τ = 1 is inside the documented range (τ >= 1): the membrane forgets at once,
    h = v - (v - 0)·1 + x = x (rate: q = 1/τ = 1; tau_input: v + (x - v)/1 = x).
    v = .5, x = .25 -> .25. A scalar and a per-neuron τ behave alike."""
    tau = torch.tensor([1.0]) if per_neuron else 1.0
    n = LIFNeuron(beta=None, tau=tau, charge=charge, reset="none", features=1)
    _, st_ = n(t(0.25).view(1, 1), SpikingState(v=t(0.5).view(1, 1)))
    torch.testing.assert_close(st_.v, t(0.25).view(1, 1), **EXACT)


def test_tau_without_charge_selects_tau_input() -> None:
    assert LIFNeuron(beta=None, tau=2.0).charge == "tau_input"


# ------------------------------------------------------------------ fire and comparators
def test_comparators_at_exact_ties() -> None:
    """h == θ: '>' (snnTorch) does not fire, '>=' (SpikingJelly) does."""
    h = t(0.5, 1.0, 1.5)
    theta = torch.tensor(1.0)
    assert rules.fire(h, theta, ATan(), ">").tolist() == [0.0, 0.0, 1.0]
    assert rules.fire(h, theta, ATan(), ">=").tolist() == [0.0, 1.0, 1.0]
    assert rules.carried_reset(h, theta, ">").tolist() == [0.0, 0.0, 1.0]
    assert rules.carried_reset(h, theta, ">=").tolist() == [0.0, 1.0, 1.0]


@pytest.mark.parametrize(("comparator", "fires"), [(">", 0.0), (">=", 1.0)])
def test_comparator_tie_through_the_neuron(comparator: str, fires: float) -> None:
    """From rest, x = θ = 1 gives h = 1 exactly."""
    n = LIFNeuron(beta=0.5, comparator=comparator, features=1)
    s, st_ = n(torch.ones(1, 1))
    assert s.item() == fires
    assert st_.v.item() == 1.0 - fires  # subtract reset


def test_carried_reset_is_detached() -> None:
    v = t(1.5).requires_grad_()
    assert rules.carried_reset(v, torch.tensor(1.0), ">").requires_grad is False


# ------------------------------------------------------------------ reset × timing
X = [1.5, 0.0, 2.5, 0.25, 0.875]

RESET_TABLE = {
    # β = .5, θ = 1, v_reset = 0, x = [1.5, 0, 2.5, .25, .875]; (spikes, stored membrane)
    # immediate subtract: h = .5v + x; s = h > 1; v = h - s
    #   t0 h=1.5 s v=.5 | t1 h=.25 | t2 h=.125+2.5=2.625 s v=1.625
    #   t3 h=.8125+.25=1.0625 s v=.0625 | t4 h=.03125+.875=.90625
    ("subtract", "immediate"): ([1, 0, 1, 1, 0], [0.5, 0.25, 1.625, 0.0625, 0.90625]),
    # delayed subtract: r = (stored v > 1); h = .5v + x - r (undecayed θ); stored = h (pre-reset)
    #   t0 h=1.5 s | t1 r=1 h=.75-1=-.25 | t2 r=0 h=-.125+2.5=2.375 s
    #   t3 r=1 h=1.1875+.25-1=.4375 | t4 r=0 h=.21875+.875=1.09375 s
    ("subtract", "delayed"): ([1, 0, 1, 0, 1], [1.5, -0.25, 2.375, 0.4375, 1.09375]),
    # delayed_pre subtract: v <- v - r before the charge; stored = h
    #   t0 1.5 s | t1 r=1 v=.5 h=.25 | t2 h=2.625 s | t3 r=1 v=1.625 h=1.0625 s
    #   t4 r=1 v=.0625 h=.90625   (= immediate, with the membrane stored before the reset)
    ("subtract", "delayed_pre"): ([1, 0, 1, 1, 0], [1.5, 0.25, 2.625, 1.0625, 0.90625]),
    # compensated subtract: r = (stored v > 1); h = .5v + x - r; v = h - (s - r)
    #   t0 h=1.5 s v=.5 | t1 .25 | t2 h=2.625 s v=1.625 (a reset membrane above θ)
    #   t3 r=1 h=.8125+.25-1=.0625 silent, v=.0625+1=1.0625
    #   t4 r=1 h=.53125+.875-1=.40625 silent, v=1.40625
    ("subtract", "compensated"): ([1, 0, 1, 0, 0], [0.5, 0.25, 1.625, 1.0625, 1.40625]),
    # compensated_pre subtract: v <- v - r before the charge; v' = h - (s - r)
    #   t3 r=1 v=.625 h=.3125+.25=.5625 silent v=1.5625
    #   t4 r=1 v=.5625 h=.28125+.875=1.15625 s v=1.15625 - (1 - 1)
    ("subtract", "compensated_pre"): ([1, 0, 1, 0, 1], [0.5, 0.25, 1.625, 1.5625, 1.15625]),
    # immediate zero: v = 0 after a spike. t3 h=.25 | t4 h=.125+.875=1.0 == θ: '>' silent
    ("zero", "immediate"): ([1, 0, 1, 0, 0], [0.0, 0.0, 0.0, 0.25, 1.0]),
    # delayed zero: h = .5v + x; h <- h - r·h (the input of the step is lost); stored = h
    #   t1 r=1 h=.75 -> 0 | t2 h=2.5 s | t3 r=1 h=1.5 -> 0 | t4 h=.875
    ("zero", "delayed"): ([1, 0, 1, 0, 0], [1.5, 0.0, 2.5, 0.0, 0.875]),
    # delayed_pre zero: v <- (1 - r)·v before the charge (the input survives)
    #   t1 v=0 h=0 | t2 h=2.5 s | t3 v=0 h=.25 | t4 h=.125+.875=1.0 (tie, silent)
    ("zero", "delayed_pre"): ([1, 0, 1, 0, 0], [1.5, 0.0, 2.5, 0.25, 1.0]),
    # compensated zero: the stored membrane is reset to 0 < θ, so r = 0 and it is immediate
    ("zero", "compensated"): ([1, 0, 1, 0, 0], [0.0, 0.0, 0.0, 0.25, 1.0]),
    ("zero", "compensated_pre"): ([1, 0, 1, 0, 0], [0.0, 0.0, 0.0, 0.25, 1.0]),
}
# no reset: v = 1.5, .75, .375+2.5=2.875, 1.4375+.25=1.6875, .84375+.875=1.71875 (any timing)
for _timing in ("immediate", "delayed", "delayed_pre", "compensated", "compensated_pre"):
    RESET_TABLE[("none", _timing)] = ([1, 0, 1, 1, 1], [1.5, 0.75, 2.875, 1.6875, 1.71875])


@pytest.mark.parametrize(("reset", "timing"), list(RESET_TABLE), ids=lambda p: str(p))
def test_reset_mechanism_and_timing_hand_values(reset: str, timing: str) -> None:
    spikes, membrane = RESET_TABLE[(reset, timing)]
    n = LIFNeuron(beta=0.5, reset=reset, reset_timing=timing, features=1)
    s, final, tr = n.sequence(torch.tensor(X).view(1, 5, 1), record=("v",))
    torch.testing.assert_close(s.flatten(), torch.tensor(spikes, dtype=torch.float32), **EXACT)
    torch.testing.assert_close(tr["v"].flatten(), torch.tensor(membrane), **EXACT)
    torch.testing.assert_close(final.v.flatten(), torch.tensor(membrane[-1:]), **EXACT)


def test_delayed_timing_returns_the_pre_reset_membrane() -> None:
    """After the first step (x = 1.5 fires) delayed stores 1.5, immediate stores .5."""
    x = torch.tensor([[1.5]])
    _, st_delayed = LIFNeuron(beta=0.5, reset_timing="delayed", features=1)(x)
    _, st_immediate = LIFNeuron(beta=0.5, features=1)(x)
    assert st_delayed.v.item() == 1.5 and st_immediate.v.item() == 0.5


def test_compensated_equals_immediate_while_reset_membrane_stays_below_threshold() -> None:
    """x = [1.5, 0, .75, .5, .875]: post-reset membranes .5, .25, .875, .9375, .34375 all <= θ,
    so the carried reset never acts and both timings agree bit for bit."""
    x = torch.tensor([1.5, 0.0, 0.75, 0.5, 0.875]).view(1, 5, 1)
    outs = {}
    for timing in ("immediate", "compensated"):
        n = LIFNeuron(beta=0.5, reset_timing=timing, features=1)
        s, _, tr = n.sequence(x, record=("v",))
        outs[timing] = (s, tr["v"])
    torch.testing.assert_close(outs["compensated"][0], outs["immediate"][0], **EXACT)
    torch.testing.assert_close(outs["compensated"][1], outs["immediate"][1], **EXACT)
    assert outs["immediate"][1].flatten().tolist() == [0.5, 0.25, 0.875, 0.9375, 0.34375]


def test_compensated_differs_when_a_reset_membrane_stays_above_threshold() -> None:
    """Guard (RESET_TABLE, x = X): immediate leaves v = 1.625 > θ at t2; compensated then
    subtracts θ at t3 *before* firing, so t3 is silent where immediate fires."""
    imm = RESET_TABLE[("subtract", "immediate")]
    comp = RESET_TABLE[("subtract", "compensated")]
    assert imm[1][2] > 1.0
    assert imm[0][:3] == comp[0][:3] and imm[1][:3] == comp[1][:3]
    assert imm[0][3] == 1 and comp[0][3] == 0


def test_zero_reset_goes_to_v_reset() -> None:
    """v_reset = -.5 (also the rest state). t0 h = .5·(-.5) + 1.5 = 1.25 fires, v = -.5;
    t1 h = -.25 + .25 = 0."""
    n = LIFNeuron(beta=0.5, reset="zero", v_reset=-0.5, features=1)
    s, _, tr = n.sequence(torch.tensor([[[1.5], [0.25]]]), record=("v",))
    assert s.flatten().tolist() == [1.0, 0.0]
    assert tr["v"].flatten().tolist() == [-0.5, 0.0]


def test_apply_reset_compensated_zero_with_nonzero_v_reset() -> None:
    """h = 2, s = 1, r = 0: h - (s - r)·(h - v_reset) = 2 - (2 - .25) = .25."""
    out = rules.apply_reset(t(2.0), t(1.0), t(0.0), "zero", "compensated",
                            torch.tensor(1.0), 0.25, False)
    torch.testing.assert_close(out, t(0.25), **EXACT)
    assert rules.apply_carried_reset_post(t(2.0), t(1.0), "zero", torch.tensor(1.0),
                                          0.25).item() == 0.25
    assert rules.apply_carried_reset_pre(t(2.0), t(1.0), "zero", torch.tensor(1.0),
                                         0.25).item() == 0.25


@pytest.mark.parametrize(
    ("timing", "x", "membrane"),
    [
        # β=.5, θ=1, θ_eff = 1 + .5·a, a <- .5·a + s. At t0 a = 0, so θ_eff = θ: no ambiguity
        # about the size of the carried reset of the t0 spike.
        # delayed, x=[1.5,1.5,0]: t0 h=1.5 fires (stored 1.5); t1 r=1: h=.75+1.5-1=1.25,
        # θ_eff=1.5: silent (stored 1.25 > θ); t2: t1 did not spike, so no reset: h=.625
        ("delayed", [1.5, 1.5, 0.0], [1.5, 1.25, 0.625]),
        # delayed_pre, x=[1.5,1.25,0]: t1 v=1.5-1=.5, h=.25+1.25=1.5 == θ_eff: silent;
        # t2: no spike at t1, no reset: h=.75
        ("delayed_pre", [1.5, 1.25, 0.0], [1.5, 1.5, 0.75]),
        # compensated(_pre), x=[1.5,1,0]: t0 v=.5; t1 h=1.25 <= θ_eff=1.5 silent, v=1.25;
        # t2: no spike at t1, no reset: h=.625 (= the immediate timing)
        ("compensated", [1.5, 1.0, 0.0], [0.5, 1.25, 0.625]),
        ("compensated_pre", [1.5, 1.0, 0.0], [0.5, 1.25, 0.625]),
    ],
)
def test_adaptive_carried_reset_never_resets_without_a_spike(timing: str, x: list[float],
                                                             membrane: list[float]) -> None:
    """The carried reset stands for "the previous step spiked". With an adaptive threshold a
    stored membrane can sit in (θ, θ_eff] without a spike; it must not be reset then.
    (Rejecting adaptation with carried timings, as the refractory period does, is also
    acceptable: then the constructor raises a ConfigError with a hint.)"""
    try:
        n = AdaptiveLIFNeuron(beta=0.5, adapt_scale=0.5, adapt_decay=0.5, reset_timing=timing,
                              features=1)
    except ConfigError as err:
        assert "Hint:" in str(err)
        return
    s, _, tr = n.sequence(torch.tensor(x).view(1, 3, 1), record=("v",))
    assert s.flatten().tolist() == [1.0, 0.0, 0.0]
    assert tr["v"].flatten().tolist() == membrane


# ------------------------------------------------------------------ reset gradients
def test_detach_reset_cuts_the_reset_gradient() -> None:
    """Subtract, one step from rest, x = 1.5, θ = 1, ATan(2): v' = h - s(h - θ)·θ.
    dv'/dx = 1 - σ'(.5) with σ'(.5) = 1/(1 + (π/2·2·.5)²) = 1/(1 + π²/4); detached: 1."""
    sigma = 1.0 / (1.0 + torch.pi ** 2 / 4)
    for detach, want in ((False, 1.0 - sigma), (True, 1.0)):
        x = torch.tensor([[1.5]], dtype=torch.float64, requires_grad=True)
        n = LIFNeuron(beta=0.5, detach_reset=detach, features=1)
        _, st_ = n(x)
        (g,) = torch.autograd.grad(st_.v.sum(), x)
        torch.testing.assert_close(g, torch.tensor([[want]], dtype=torch.float64))


def test_threshold_gradient_is_minus_surrogate() -> None:
    """∂s/∂θ = -σ'(h - θ): FastSigmoid(25) at h - θ = .75 - 1: -1/(25·.25 + 1)² = -1/7.25²."""
    n = LIFNeuron(beta=0.5, learn_threshold=True, surrogate=FastSigmoid(25.0), features=1)
    s, _ = n(torch.tensor([[0.75]]))
    s.sum().backward()
    torch.testing.assert_close(n.threshold.grad, torch.tensor(-1.0 / 7.25 ** 2))


# ------------------------------------------------------------------ properties (hypothesis)
def _inputs(seed: int, steps: int, scale: float, offset: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(2, steps, 3, generator=g) - offset) * scale


seeds = st.integers(0, 2**31 - 1)
betas = st.floats(0.0, 0.999)
thresholds = st.floats(0.1, 4.0)


@PROPS
@given(seed=seeds, beta=betas, threshold=thresholds,
       reset=st.sampled_from(rules.ALLOWED["reset"]),
       timing=st.sampled_from(rules.ALLOWED["reset_timing"]),
       comparator=st.sampled_from(rules.ALLOWED["comparator"]),
       charge=st.sampled_from(rules.ALLOWED["charge"]),
       scale=st.floats(0.1, 10.0))
def test_spikes_are_exactly_binary_for_any_config(seed, beta, threshold, reset, timing,
                                                  comparator, charge, scale) -> None:
    kw = {"beta": beta} if charge == "beta" else {"beta": None, "tau": 1.5 + 10 * beta}
    n = LIFNeuron(threshold=threshold, reset=reset, reset_timing=timing,
                  comparator=comparator, charge=charge, features=3, **kw)
    s, st_ = n(_inputs(seed, 12, scale, offset=0.3))
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    assert torch.isfinite(st_.v).all()


@PROPS
@given(seed=seeds, beta=betas, steps=st.integers(1, 20))
def test_no_reset_membrane_is_the_closed_form_sum(seed, beta, steps) -> None:
    """reset='none': v_t = sum_{k<=t} β^(t-k) x_k (float64)."""
    n = LIFNeuron(beta=beta, reset="none", features=3)
    x = _inputs(seed, steps, 3.0, offset=0.5).double()
    _, _, tr = n.sequence(x, record=("v",))
    b = n.leak().double()
    t_idx = torch.arange(steps, dtype=torch.float64)
    weights = torch.where(t_idx[:, None] >= t_idx[None, :],
                          b ** (t_idx[:, None] - t_idx[None, :]).clamp_min(0), 0.0)
    want = torch.einsum("tk,bkf->btf", weights, x)
    torch.testing.assert_close(tr["v"], want, rtol=1e-10, atol=1e-12)


@PROPS
@given(seed=seeds, beta=betas, threshold=thresholds,
       comparator=st.sampled_from([">", ">="]), scale=st.floats(0.1, 50.0))
def test_immediate_zero_reset_never_stores_above_threshold(seed, beta, threshold, comparator,
                                                           scale) -> None:
    """Hard reset: a stored membrane above θ would have fired and been set to v_reset = 0."""
    n = LIFNeuron(beta=beta, threshold=threshold, reset="zero", comparator=comparator,
                  features=3)
    _, _, tr = n.sequence(_inputs(seed, 15, scale), record=("v",))
    assert (tr["v"] <= threshold).all()


@PROPS
@given(seed=seeds, beta=betas, threshold=thresholds, comparator=st.sampled_from([">", ">="]))
def test_immediate_subtract_stays_below_threshold_for_inputs_up_to_threshold(
        seed, beta, threshold, comparator) -> None:
    """x <= θ and v <= θ give h <= (1+β)θ; a spike leaves h - θ <= βθ < θ, silence h <= θ."""
    n = LIFNeuron(beta=beta, threshold=threshold, comparator=comparator, features=3)
    x = _inputs(seed, 15, 1.0, offset=0.5) * 2 * threshold  # in [-θ, θ)
    _, _, tr = n.sequence(x, record=("v",))
    assert (tr["v"] <= n.threshold).all()


@PROPS
@given(seed=seeds, beta=betas, threshold=thresholds, scale=st.floats(0.1, 10.0))
def test_delayed_pre_subtract_is_immediate_stored_before_the_reset(seed, beta, threshold,
                                                                   scale) -> None:
    """Same spikes, and stored_delayed_pre - s·θ == v_immediate bit for bit."""
    x = _inputs(seed, 15, scale)
    imm = LIFNeuron(beta=beta, threshold=threshold, features=3)
    pre = LIFNeuron(beta=beta, threshold=threshold, reset_timing="delayed_pre", features=3)
    s_i, _, tr_i = imm.sequence(x, record=("v",))
    s_p, _, tr_p = pre.sequence(x, record=("v",))
    torch.testing.assert_close(s_p, s_i, **EXACT)
    torch.testing.assert_close(tr_p["v"] - s_p * pre.threshold, tr_i["v"], **EXACT)


@PROPS
@given(seed=seeds, beta=betas, threshold=thresholds, comparator=st.sampled_from([">", ">="]))
def test_compensated_equals_immediate_when_inputs_stay_below_threshold(
        seed, beta, threshold, comparator) -> None:
    """With x <= θ the stored membrane stays below θ (property above), r = 0, so the
    compensated timing is the immediate one, bit for bit."""
    x = _inputs(seed, 15, 1.0, offset=0.5) * 2 * threshold
    outs = []
    for timing in ("immediate", "compensated"):
        n = LIFNeuron(beta=beta, threshold=threshold, comparator=comparator,
                      reset_timing=timing, features=3)
        s, _, tr = n.sequence(x, record=("v",))
        outs.append((s, tr["v"]))
    torch.testing.assert_close(outs[1][0], outs[0][0], **EXACT)
    torch.testing.assert_close(outs[1][1], outs[0][1], **EXACT)


@PROPS
@given(seed=seeds, beta=betas, timing=st.sampled_from(rules.ALLOWED["reset_timing"]),
       reset=st.sampled_from(rules.ALLOWED["reset"]), steps=st.integers(1, 12))
def test_step_loop_equals_sequence_for_any_timing(seed, beta, timing, reset, steps) -> None:
    n = LIFNeuron(beta=beta, reset=reset, reset_timing=timing, features=3)
    x = _inputs(seed, steps, 3.0)
    s_seq, final = n(x)
    state, spikes = None, []
    for k in range(steps):
        s_k, state = n(x[:, k], state)
        spikes.append(s_k)
    torch.testing.assert_close(torch.stack(spikes, 1), s_seq, **EXACT)
    torch.testing.assert_close(state.v, final.v, **EXACT)
