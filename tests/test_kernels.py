"""The fast multi-step kernels equal the reference path (``lif_multi_step``).

Forward: spikes, membranes (final and recorded) and synaptic currents are bit-identical
(``torch.equal`` on the raw bits, so even the sign of zero matches). Gradients: the input and
initial-state gradients within 1e-6 of the largest entry; parameter gradients (sums over batch
and time of many terms, often cancelling) within 1e-6 of the sum of the absolute values of
those terms, which the reference gives when each step gets its own copy of the parameter
(:func:`contribution_scale`): a reordering of an fp32 sum of n terms moves it by about
``n_eff·2^-24`` of that scale, whatever the cancellation.

Kernels: ``fused`` (pure PyTorch) always; ``native`` (C++) unless no C++ compiler exists.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import random
from collections.abc import Callable
from dataclasses import replace

import pytest
import torch
from kernel_checks import (
    CHARGES,
    PARAM_NAMES,
    RESETS,
    SURROGATES,
    TIMINGS,
    assert_bitwise,
    contribution_scale,
    leaves,
    native_unbuildable,
    param,
)
from torch import Tensor

from brain_ai.core import surrogates as S
from brain_ai.core.neurons import AdaptiveLIFNeuron, LIFNeuron, RecurrentLIFNeuron, _OneToOne
from brain_ai.errors import ConfigError
from brain_ai.kernels import fused_config, fused_multi_step, native
from brain_ai.kernels.fused import run_fused
from brain_ai.physics.functional import LIFParams, lif_multi_step
from brain_ai.physics.state import SpikingState

B, T, N = 3, 50, 7
def kernels() -> list:
    """``fused`` always; ``native`` skipped only when there is no C++ compiler at all."""
    nat = pytest.param("native", marks=pytest.mark.skipif(
        native_unbuildable(), reason="no C++ compiler: the native kernel cannot be built"))
    return ["fused", nat]


@pytest.fixture(scope="module", autouse=True)
def _native_builds() -> None:
    """Where a compiler exists the native op must build (a failure is a test failure)."""
    if not native_unbuildable():
        assert native.available(), native.load_error()


# ---------------------------------------------------------------- one configuration
def make_case(seed: int, charge: str = "beta", reset: str = "subtract",
              timing: str = "immediate", comparator: str = ">",
              surrogate: S.Surrogate | None = None, detach_reset: bool = False,
              synapse: bool = False, learn: bool = True, per_neuron: bool = False,
              v_reset: float = 0.0, dtype: torch.dtype = torch.float32, steps: int = T,
              adapt: bool = False, recur: bool = False, refractory: int = 0,
              graded: bool = False,
              ) -> tuple[LIFParams, Tensor, SpikingState, list[Tensor]]:
    """Parameters, input, initial state and loss weights; firing ~5-50 %.

    ``adapt``: threshold adaptation (κ, ρ learnable like the rest, a0 ≠ 0); ``recur``: a
    one-to-one recurrent weight of either sign (``RecurrentLIFNeuron(recurrent="one_to_one")``'s
    module), ``prev_spk`` starting from random spikes; ``refractory``: that many refractory
    steps, some neurons starting refractory; ``graded``: learnable graded-spike factor.
    """
    g = torch.Generator().manual_seed(seed)
    shape = (N,) if per_neuron else ()

    def rand(*size: int) -> Tensor:
        return torch.rand(size, generator=g, dtype=torch.float64).to(dtype)

    leak = {"beta": rand(*shape) * 0.5 + 0.45, "tau": rand(*shape) * 3 + 1.5,
            "tau_input": rand(*shape) * 3 + 1.5}.get(charge, rand(*shape) * 0.5 + 0.2)
    threshold = rand(*shape) * 0.5 + 0.75
    alpha = rand(*shape) * 0.5 + 0.3 if synapse else None
    gain = 1.5 if charge in ("tau_input", "rate_input") else 0.6
    x = (rand(B, steps, N) * 1.4 - 0.2) * gain
    v0 = rand(B, N) * 0.5
    i0 = rand(B, N) * 0.3 if synapse else None
    weights = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype)
               for s in ((B, steps, N), (B, N), (B, steps, N), (B, N), (B, N), (B, N))]
    extra: dict = {}
    state: dict = {}
    if adapt:
        extra.update(adapt_scale=(rand(*shape) * 0.3).requires_grad_(learn),
                     adapt_decay=(rand(*shape) * 0.3 + 0.6).requires_grad_(learn))
        state["a"] = rand(B, N)
    if recur:
        extra["recurrent"] = _OneToOne(((rand(*shape) - 0.5) * 0.6), learn)
        state["prev_spk"] = (rand(B, N) > 0.5).to(dtype)
    if refractory:
        extra["refractory_steps"] = refractory
        state["ref"] = torch.randint(0, refractory + 1, (B, N), generator=g).to(dtype)
    if graded:
        extra["graded"] = (rand(*shape) + 0.5).requires_grad_(learn)
    p = LIFParams(
        leak=leak.requires_grad_(learn), threshold=threshold.requires_grad_(learn),
        surrogate=surrogate or S.ATan(), charge=charge, comparator=comparator, reset=reset,
        reset_timing=timing, v_reset=v_reset, detach_reset=detach_reset,
        alpha=None if alpha is None else alpha.requires_grad_(learn), **extra)
    return p, x, SpikingState(v=v0, i=i0, **state), weights


def _loss(s: Tensor, st: SpikingState, trace: Tensor, w: list[Tensor]) -> Tensor:
    loss = (s * w[0]).sum() + (st.v * w[1]).sum() + (trace * w[2]).sum()
    for j, extra in ((3, st.i), (4, st.a), (5, st.prev_spk)):
        if extra is not None:
            loss = loss + (extra * w[j]).sum()
    return loss


STATE_FIELDS = ("v", "i", "a", "prev_spk")


def _state_leaves(st: SpikingState) -> list[Tensor]:
    """The differentiable state fields that are set (``ref``, a counter, is compared
    separately)."""
    return [getattr(st, f) for f in STATE_FIELDS if getattr(st, f) is not None]


def run(kernel: str, p: LIFParams, x: Tensor, st: SpikingState, w: list[Tensor],
        monkeypatch: pytest.MonkeyPatch) -> tuple[list[Tensor], list[Tensor]]:
    """Forward values and gradients (x, v0, i0, then learnable parameters) of one kernel."""
    x = x.clone().requires_grad_()
    st = SpikingState(ref=st.ref, **{f: getattr(st, f).clone().requires_grad_()
                                     for f in STATE_FIELDS if getattr(st, f) is not None})
    if kernel == "reference":
        s, out, tr = lif_multi_step(x, st, p, ("v",))
    else:
        monkeypatch.setenv("BRAIN_AI_KERNEL", kernel)
        res = fused_multi_step(x, st, p, ("v",))
        assert res is not None, "the fused path must cover this configuration"
        s, out, tr = res
    fwd = [s, out.v, tr["v"], *_state_leaves(out)[1:]] + ([out.ref] if out.ref is not None
                                                            else [])
    ins = [x, *_state_leaves(st), *leaves(p)]
    grads = torch.autograd.grad(_loss(s, out, tr["v"], w), ins)
    return [f.detach() for f in fwd], list(grads)


def assert_matches_reference(kernel: str, p: LIFParams, x: Tensor, st: SpikingState,
                             w: list[Tensor], monkeypatch: pytest.MonkeyPatch,
                             tol: float = 1e-6) -> None:
    ref_f, ref_g = run("reference", p, x, st, w, monkeypatch)
    got_f, got_g = run(kernel, p, x, st, w, monkeypatch)
    fields = [f for f in STATE_FIELDS if getattr(st, f) is not None]
    names = ["spikes", "v_T", "v trace"] + [f"{f}_T" for f in fields[1:]] + (
        ["ref_T"] if st.ref is not None else [])
    assert len(got_f) == len(ref_f) == len(names)
    for name, a, b in zip(names, got_f, ref_f, strict=True):
        assert_bitwise(a, b, name)
    n_state = 1 + len(fields)
    for j, name in enumerate(["x", *fields]):  # relative to the largest entry
        err = (got_g[j] - ref_g[j]).abs().max() / ref_g[j].abs().max().clamp_min(1e-30)
        assert err <= tol, f"grad {name}: relative error {err:.3g}"
    if len(ref_g) > n_state:
        scales = contribution_scale(p, x, st, lambda s, o, tr: _loss(s, o, tr, w))
        for leaf, a, b, sc in zip(leaves(p), got_g[n_state:], ref_g[n_state:], scales,
                                  strict=True):
            name = next(n for n in PARAM_NAMES if param(p, n) is leaf)
            err = ((a - b).abs() / sc.clamp_min(1e-30)).max()
            assert err <= tol, f"grad {name}: {err:.3g} of the sum of |terms| ({a} vs {b})"


# ---------------------------------------------------------------- the matrix
RULES = list(itertools.product(RESETS, TIMINGS, [">", ">="]))


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize(("reset", "timing", "comparator"), RULES,
                         ids=[f"{r}-{t}-{c}" for r, t, c in RULES])
def test_reset_timing_comparator(kernel: str, reset: str, timing: str, comparator: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Every reset x timing x comparator; surrogate, charge, synapse, detach, parameter shape
    and v_reset cycle through their values across the 30 cases."""
    k = RULES.index((reset, timing, comparator))
    p, x, st, w = make_case(
        k, charge=CHARGES[k % 5], reset=reset, timing=timing, comparator=comparator,
        surrogate=SURROGATES[k % len(SURROGATES)], detach_reset=k % 4 == 1,
        synapse=k % 3 == 2, per_neuron=k % 2 == 0, v_reset=0.0 if k % 5 else -0.1)
    assert_matches_reference(kernel, p, x, st, w, monkeypatch)


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: type(s).__name__)
def test_every_surrogate(kernel: str, surrogate: S.Surrogate,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    p, x, st, w = make_case(3, surrogate=surrogate, per_neuron=True)
    assert_matches_reference(kernel, p, x, st, w, monkeypatch)


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize("charge", CHARGES)
@pytest.mark.parametrize("synapse", [False, True], ids=["cuba-off", "cuba-on"])
@pytest.mark.parametrize("per_neuron", [False, True], ids=["scalar", "per-neuron"])
def test_charge_synapse_learnable(kernel: str, charge: str, synapse: bool, per_neuron: bool,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Learnable leak, threshold and α, scalar or per-neuron, through every charge rule."""
    p, x, st, w = make_case(11, charge=charge, synapse=synapse, per_neuron=per_neuron,
                            reset="zero" if per_neuron else "subtract")
    assert_matches_reference(kernel, p, x, st, w, monkeypatch)


ADAPT_RECUR = [(True, False), (False, True), (True, True)]
EXTRA_RULES = list(itertools.product(ADAPT_RECUR, RESETS, TIMINGS))


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize(("features", "reset", "timing"), EXTRA_RULES,
                         ids=[f"{'adapt' if a else ''}{'+' if a and r else ''}"
                              f"{'recur' if r else ''}-{rs}-{t}"
                              for (a, r), rs, t in EXTRA_RULES])
def test_adaptive_and_recurrent(kernel: str, features: tuple[bool, bool], reset: str,
                                timing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adaptive threshold and/or one-to-one recurrence (learnable κ, ρ, w and their gradients,
    gradients into a0 and prev_spk) through every reset x timing; charge, comparator,
    surrogate, synapse, detach, parameter shape and v_reset cycle across the 45 cases."""
    adapt, recur = features
    k = EXTRA_RULES.index((features, reset, timing))
    p, x, st, w = make_case(
        100 + k, charge=CHARGES[k % 5], reset=reset, timing=timing,
        comparator=">=" if k % 2 else ">", surrogate=SURROGATES[k % len(SURROGATES)],
        detach_reset=k % 4 == 1, synapse=k % 3 != 0, per_neuron=k % 2 == 0,
        v_reset=0.0 if k % 5 else -0.1, adapt=adapt, recur=recur)
    assert_matches_reference(kernel, p, x, st, w, monkeypatch)


REFRACTORY_RULES = list(itertools.product([1, 3], RESETS, TIMINGS))


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize(("steps", "reset", "timing"), REFRACTORY_RULES,
                         ids=[f"ref{r}-{rs}-{t}" for r, rs, t in REFRACTORY_RULES])
def test_refractory_and_graded(kernel: str, steps: int, reset: str, timing: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Refractory periods (some neurons starting refractory) through every reset x timing,
    with graded spikes (learnable factor, its gradient too), adaptation and one-to-one
    recurrence switched on in turn; charge, comparator, surrogate, synapse cycle.

    Tolerance 2e-6: a recurrent weight's gradient terms carry the rounding of the gradient
    recursion through time (one case reaches 1.2e-6 of the sum of |terms|; against a float64
    run, the kernel's gradient is the closer of the two)."""
    k = REFRACTORY_RULES.index((steps, reset, timing))
    p, x, st, w = make_case(
        200 + k, charge=CHARGES[k % 5], reset=reset, timing=timing,
        comparator=">=" if k % 2 else ">", surrogate=SURROGATES[k % len(SURROGATES)],
        detach_reset=k % 4 == 1, synapse=k % 3 == 0, per_neuron=k % 2 == 1,
        v_reset=0.0 if k % 5 else -0.1, refractory=steps, graded=k % 3 != 2,
        adapt=k % 4 == 2, recur=k % 5 in (1, 3))
    assert_matches_reference(kernel, p, x, st, w, monkeypatch, tol=2e-6)


@pytest.mark.parametrize("kernel", kernels())
def test_adaptive_recurrent_frozen_and_float64(kernel: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    p, x, st, w = make_case(7, learn=False, adapt=True, recur=True, timing="compensated")
    assert_matches_reference(kernel, p, x, st, w, monkeypatch)
    p, x, st, w = make_case(8, dtype=torch.float64, adapt=True, recur=True, synapse=True,
                            per_neuron=True, timing="delayed")
    assert_matches_reference(kernel, p, x, st, w, monkeypatch, tol=1e-12)


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize("make", [
    lambda: AdaptiveLIFNeuron(features=N, beta=torch.linspace(0.7, 0.95, N), learn_beta=True,
                              learn_threshold=True, learn_adaptation=True,
                              adapt_scale=torch.linspace(0.05, 0.3, N), chunk_size=7),
    lambda: RecurrentLIFNeuron(features=N, recurrent="one_to_one",
                               V=torch.linspace(-0.4, 0.6, N), alpha=0.6, learn_alpha=True,
                               reset="zero", reset_timing="delayed", learn_beta=True,
                               chunk_size=7),
], ids=["adaptive-tbptt", "recurrent-one-to-one-tbptt"])
def test_adaptive_recurrent_modules(kernel: str, make: Callable[[], torch.nn.Module],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The modules run the fused op (one autograd node per window) and match the reference:
    spikes, final state and membrane bit for bit, every parameter gradient within 1e-6."""
    g = torch.Generator().manual_seed(12)
    x = torch.rand(B, T, N, generator=g) * 0.8

    def go(k: str) -> tuple[list[Tensor], list[Tensor], str]:
        monkeypatch.setenv("BRAIN_AI_KERNEL", k)
        torch.manual_seed(0)
        n = make()
        xi = x.clone().requires_grad_()
        out = n(xi, return_details=True)
        node = out.spikes.grad_fn
        while node is not None and node.name() in ("CatBackward0", "ViewBackward0"):
            node = node.next_functions[0][0]
        (out.spikes.sum() + out.membrane.square().sum()).backward()
        params = [prm.grad for prm in n.parameters()]
        assert all(gr is not None for gr in params)
        return ([out.spikes, out.membrane, *_state_leaves(out.state)],
                [xi.grad, *params], node.name() if node is not None else "")

    ref_f, ref_g, _ = go("reference")
    got_f, got_g, node = go(kernel)
    assert node == {"fused": "FusedLIFBackward", "native": "NativeLIFBackward"}[kernel]
    assert 0.05 < ref_f[0].mean().item() < 0.6
    for a, b in zip(got_f, ref_f, strict=True):
        assert_bitwise(a, b, "forward")
    for a, b in zip(got_g, ref_g, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6 * b.abs().max().item())


@pytest.mark.parametrize("kernel", kernels())
def test_frozen_parameters_and_float64(kernel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    p, x, st, w = make_case(5, learn=False, synapse=True, timing="compensated")
    assert_matches_reference(kernel, p, x, st, w, monkeypatch)
    p, x, st, w = make_case(6, dtype=torch.float64, timing="delayed_pre", reset="zero")
    assert_matches_reference(kernel, p, x, st, w, monkeypatch, tol=1e-12)


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize("comparator", [">", ">="])
def test_ties_follow_the_comparator(kernel: str, comparator: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """β = 0.5, θ = 1, inputs in quarters: h hits θ exactly (h = 1.0 with v = 0.5, x = 0.75),
    so ``>`` and ``>=`` give different spikes; each kernel follows the reference bit for bit."""
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 5, (B, T, N), generator=g).float() * 0.25
    p = LIFParams(leak=torch.tensor(0.5), threshold=torch.tensor(1.0), surrogate=S.ATan(),
                  comparator=comparator, reset="zero")
    st = SpikingState(v=torch.zeros(B, N))
    w = [torch.randn(s, generator=g) for s in ((B, T, N), (B, N), (B, T, N), (B, N))]
    assert_matches_reference(kernel, p, x, st, w, monkeypatch)
    ties = sum(((h == 1.0).sum().item()) for h in _charged(x, p))
    assert ties > 0
    other = replace(p, comparator=">=" if comparator == ">" else ">")
    monkeypatch.setenv("BRAIN_AI_KERNEL", kernel)
    s1, s2 = fused_multi_step(x, st, p)[0], fused_multi_step(x, st, other)[0]  # type: ignore[index]
    assert not torch.equal(s1, s2)  # guard: the tie rule changes the spikes here


def _charged(x: Tensor, p: LIFParams) -> list[Tensor]:
    v, hs = torch.zeros_like(x[:, 0]), []
    for x_t in x.unbind(1):
        h = p.leak * v + x_t
        hs.append(h)
        s = (h >= p.threshold) if p.comparator == ">=" else (h > p.threshold)
        v = torch.where(s, torch.zeros_like(h), h)
    return hs


# ---------------------------------------------------------------- through the modules
@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize("chunk", [None, 7], ids=["full-bptt", "tbptt-7"])
def test_module_truncated_bptt(kernel: str, chunk: int | None,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """LIFNeuron with learnable per-neuron β and θ and a synapse, in windows of 7 steps:
    same spikes, state, membrane trace and parameter gradients as the reference."""
    g = torch.Generator().manual_seed(9)
    x = torch.rand(B, T, N, generator=g) * 0.8

    def go(k: str) -> tuple[list[Tensor], list[Tensor]]:
        monkeypatch.setenv("BRAIN_AI_KERNEL", k)
        torch.manual_seed(0)
        n = LIFNeuron(beta=torch.linspace(0.6, 0.95, N), threshold=torch.linspace(0.8, 1.2, N),
                      alpha=0.5, learn_beta=True, learn_threshold=True, learn_alpha=True,
                      reset="zero", reset_timing="delayed", features=N, chunk_size=chunk)
        xi = x.clone().requires_grad_()
        out = n(xi, return_details=True)
        (out.spikes.sum() + out.membrane.square().sum() + out.state.i.sum()).backward()
        return ([out.spikes, out.state.v, out.state.i, out.membrane],
                [xi.grad, n.beta.grad, n.threshold.grad, n.alpha.grad])

    ref_f, ref_g = go("reference")
    got_f, got_g = go(kernel)
    for a, b in zip(got_f, ref_f, strict=True):
        assert_bitwise(a, b, "forward")
    for a, b in zip(got_g, ref_g, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6 * b.abs().max().item())


def test_default_kernel_is_used_by_sequence_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sequence mode goes through the fused op: one autograd node for the whole window."""
    monkeypatch.delenv("BRAIN_AI_KERNEL", raising=False)
    x = torch.rand(2, 20, 4, requires_grad=True)
    spikes, _ = LIFNeuron(features=4)(x)
    fn = spikes.grad_fn
    while fn is not None and fn.name() in ("CatBackward0", "ViewBackward0"):
        fn = fn.next_functions[0][0]  # snn_unroll's concatenation of windows, reshapes
    assert fn is not None
    assert fn.name() in ("FusedLIFBackward", "NativeLIFBackward"), fn.name()


# ---------------------------------------------------------------- what is not covered
def _unsupported() -> list[tuple[str, LIFParams, SpikingState, tuple[str, ...]]]:
    p = LIFParams(leak=torch.tensor(0.9), threshold=torch.tensor(1.0), surrogate=S.ATan())
    v = torch.zeros(B, N)
    z = torch.zeros(B, N)
    return [
        ("recurrent", replace(p, recurrent=lambda s: s), SpikingState(v=v, prev_spk=z), ()),
        ("adaptive-without-state",
         replace(p, adapt_decay=torch.tensor(0.9), adapt_scale=torch.tensor(0.1)),
         SpikingState(v=v), ()),
        ("refractory-without-state", replace(p, refractory_steps=2), SpikingState(v=v), ()),
        ("delays", replace(p, delays=torch.zeros(N)),
         SpikingState(v=v, spike_history=torch.zeros(B, 2, N)), ()),
        ("record-i", replace(p, alpha=torch.tensor(0.5)), SpikingState(v=v, i=z), ("i",)),
        ("param-bigger-than-state", replace(p, threshold=torch.ones(2, B, N)),
         SpikingState(v=v), ()),
    ]


@pytest.mark.parametrize(("name", "p", "st", "record"), _unsupported(),
                         ids=[u[0] for u in _unsupported()])
def test_unsupported_returns_none(name: str, p: LIFParams, st: SpikingState,
                                  record: tuple[str, ...],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAIN_AI_KERNEL", "fused")
    x = torch.rand(B, 5, N)
    assert fused_config(x, st, p, record) is None
    assert fused_multi_step(x, st, p, record) is None


@pytest.mark.parametrize(("make", "feats"), [
    (lambda: RecurrentLIFNeuron(features=N, recurrent="linear"), (N,)),
    (lambda: RecurrentLIFNeuron(features=(2, 3, 2), recurrent="conv2d", kernel_size=3),
     (2, 3, 2)),
], ids=["recurrent-linear", "recurrent-conv2d"])
def test_unsupported_neurons_run_the_reference(make, feats: tuple[int, ...],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.rand(B, 12, *feats, generator=torch.Generator().manual_seed(4)) * 2
    monkeypatch.setenv("BRAIN_AI_KERNEL", "fused")
    torch.manual_seed(0)
    s_fused, st_fused = make()(x)
    monkeypatch.setenv("BRAIN_AI_KERNEL", "reference")
    torch.manual_seed(0)
    s_ref, st_ref = make()(x)
    assert_bitwise(s_fused, s_ref, "spikes")
    assert_bitwise(st_fused.v, st_ref.v, "v")


def test_reference_kernel_and_bad_name(monkeypatch: pytest.MonkeyPatch) -> None:
    p, x, st, _ = make_case(0)
    monkeypatch.setenv("BRAIN_AI_KERNEL", "reference")
    assert fused_multi_step(x, st, p) is None
    monkeypatch.setenv("BRAIN_AI_KERNEL", "cuda-magic")
    with pytest.raises(ConfigError, match="BRAIN_AI_KERNEL"):
        fused_multi_step(x, st, p)


class _MySurrogate(S.Surrogate):
    def derivative(self, x: Tensor) -> Tensor:
        return 1.0 / (1.0 + x.abs())


def test_user_surrogate_runs_on_the_fused_op(monkeypatch: pytest.MonkeyPatch) -> None:
    """A surrogate the C++ op does not know: ``native`` hands the call to ``fused``."""
    p, x, st, w = make_case(8, surrogate=_MySurrogate())
    kernel = "fused" if native_unbuildable() else "native"
    assert_matches_reference(kernel, p, x, st, w, monkeypatch)


# ---------------------------------------------------------------- memory and no-grad
def test_saves_one_tensor_per_neuron_step() -> None:
    """The autograd node keeps h (B, T, N) and the O(B·N) state/parameters, nothing else."""
    p, x, st, _ = make_case(0, learn=True)
    x = x.requires_grad_()
    c = fused_config(x, st, p, ())
    assert c is not None
    out = run_fused(c, x, st.v, st.i, p.leak, p.threshold, p.alpha)
    saved = [t for t in out[0].grad_fn.saved_tensors if t is not None]
    big = [t for t in saved if t.numel() >= B * T * N]
    assert len(big) == 1 and big[0].shape == x.shape
    assert sum(t.numel() for t in saved) <= B * T * N + 4 * B * N


@pytest.mark.parametrize("kernel", kernels())
def test_no_grad_forward_is_identical(kernel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    p, x, st, _ = make_case(1, timing="compensated_pre", synapse=True)
    monkeypatch.setenv("BRAIN_AI_KERNEL", kernel)
    with torch.no_grad():
        s, out, tr = fused_multi_step(x, st, p, ("v",))  # type: ignore[misc]
        s_ref, out_ref, tr_ref = lif_multi_step(x, st, p, ("v",))
    assert s.grad_fn is None
    for a, b in [(s, s_ref), (out.v, out_ref.v), (out.i, out_ref.i), (tr["v"], tr_ref["v"])]:
        assert_bitwise(a, b, "no-grad forward")


def test_low_precision_input_with_float32_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 input (an autocast layer's output) with the fp32 state of ``dtype_policy``: the
    input is promoted exactly as in the reference, and its gradient comes back in bf16."""
    p, x, st, w = make_case(12, reset="zero", synapse=True)
    assert_matches_reference("fused", p, x.to(torch.bfloat16), st, w, monkeypatch)
    if not native_unbuildable():
        assert_matches_reference("native", p, x.to(torch.bfloat16), st, w, monkeypatch)


# ---------------------------------------------------------------- torch.compile
@pytest.mark.skipif(native_unbuildable(), reason="no C++ compiler: no native op to keep opaque")
def test_compile_keeps_the_window_one_opaque_op(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torch.compile the native op is one node of the graph whatever T (no unrolling),
    and the compiled forward and gradients equal eager ones bit for bit."""
    monkeypatch.delenv("BRAIN_AI_KERNEL", raising=False)
    torch.manual_seed(0)
    neuron = LIFNeuron(beta=0.9, learn_threshold=True, features=N)
    graphs: list[torch.fx.GraphModule] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: list[Tensor]) -> object:
        graphs.append(gm)
        from torch._dynamo.backends.registry import lookup_backend

        return lookup_backend("aot_eager")(gm, example_inputs)

    def f(x: Tensor) -> tuple[Tensor, Tensor]:
        s, st = neuron(x)
        return s, st.v

    x = torch.rand(B, T, N, generator=torch.Generator().manual_seed(3))
    xc, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    s_c, v_c = torch.compile(f, fullgraph=True, backend=backend)(xc)
    (s_c.sum() + v_c.sum()).backward()
    g_thr_c = neuron.threshold.grad.clone()
    neuron.threshold.grad = None
    s_e, v_e = f(xe)
    (s_e.sum() + v_e.sum()).backward()
    assert_bitwise(s_c, s_e, "spikes")
    assert_bitwise(v_c, v_e, "v")
    assert_bitwise(xc.grad, xe.grad, "input gradient")
    assert_bitwise(g_thr_c, neuron.threshold.grad, "threshold gradient")
    assert len(graphs) == 1
    calls = [n for n in graphs[0].graph.nodes if n.op == "call_function"]
    assert len(calls) < 30  # a per-step graph would have > 5·T = 250 nodes
    assert sum("autograd_function_apply" in str(n.target) for n in calls) == 1


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_broadcast_output_gradients(kernel: str, reset: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``spikes.sum() + trace.sum()``: gradients arrive as one broadcast value (stride 0),
    which the native op takes without materializing; same gradients as the reference."""
    p, x, st, _ = make_case(13, reset=reset, learn=False)

    def grads(k: str) -> Tensor:
        xg = x.clone().requires_grad_()
        if k == "reference":
            s, _, tr = lif_multi_step(xg, st, p, ("v",))
        else:
            monkeypatch.setenv("BRAIN_AI_KERNEL", k)
            s, _, tr = fused_multi_step(xg, st, p, ("v",))  # type: ignore[misc]
        (s.sum() + tr["v"].sum()).backward()
        return xg.grad

    ref, got = grads("reference"), grads(kernel)
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6 * ref.abs().max().item())


# ---------------------------------------------------------------- the native fast path
# charge "beta" without a carried reset or a synapse runs on the op's fused-loop fast path,
# frozen or learnable leak/threshold; the cases below reach every branch of it.
FAST = list(itertools.product(["subtract", "zero", "none"], [">", ">="], [False, True]))


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize(("reset", "comparator", "learn"), FAST,
                         ids=[f"{r}-{c}-{'learn' if le else 'frozen'}" for r, c, le in FAST])
def test_fast_path_rules(kernel: str, reset: str, comparator: str, learn: bool,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Every reset, both comparators, frozen and learnable leak/threshold; surrogate,
    detach_reset, v_reset, timing ("none" reset: also "delayed") and parameter shape cycle."""
    k = FAST.index((reset, comparator, learn))
    p, x, st, w = make_case(
        40 + k, reset=reset, comparator=comparator, learn=learn,
        timing="delayed" if reset == "none" and k % 2 else "immediate",
        surrogate=SURROGATES[k % len(SURROGATES)], detach_reset=k % 3 == 1,
        per_neuron=k % 2 == 0, v_reset=-0.1 if k % 4 == 3 else 0.0)
    assert_matches_reference(kernel, p, x, st, w, monkeypatch)


LOSSES = {
    "spikes-sum": lambda s, st, tr: s.sum(),
    "v-only": lambda s, st, tr: (st.v * st.v).sum(),
    "all-sums": lambda s, st, tr: s.sum() + st.v.sum() + tr.sum(),
    "trace-full": lambda s, st, tr: (tr * tr).sum() + s.sum(),
}


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("x_grad", [True, False], ids=["x-grad", "no-x-grad"])
def test_fast_path_gradient_forms(kernel: str, loss: str, x_grad: bool,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Spike, final-membrane and trace gradients each absent, broadcast from one value (a
    ``.sum()``) or full; the input with or without a gradient of its own (then only v0 and
    the learnable threshold get one)."""
    loss_fn = LOSSES[loss]
    p, x, st, _ = make_case(60, reset="zero" if x_grad else "subtract", learn=False)
    p = replace(p, threshold=p.threshold.detach().requires_grad_())

    def go(k: str) -> list[Tensor]:
        xg = x.clone().requires_grad_(x_grad)
        v0 = st.v.clone().requires_grad_()
        if k == "reference":
            s, out, tr = lif_multi_step(xg, SpikingState(v=v0), p, ("v",))
        else:
            monkeypatch.setenv("BRAIN_AI_KERNEL", k)
            s, out, tr = fused_multi_step(xg, SpikingState(v=v0), p, ("v",))  # type: ignore[misc]
        ins = ([xg] if x_grad else []) + [v0, p.threshold]
        return list(torch.autograd.grad(loss_fn(s, out, tr["v"]), ins, allow_unused=True))

    ref, got = go("reference"), go(kernel)
    scale = contribution_scale(p, x, st, loss_fn)[0]
    for j, (a, b) in enumerate(zip(got, ref, strict=True)):
        if b is None:
            assert a is None or not a.any()
            continue
        if j == len(ref) - 1:  # the threshold: against the sum of |terms|
            assert ((a - b).abs() / scale.clamp_min(1e-30)).max() <= 1e-6
        else:
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6 * b.abs().max().item())


@pytest.mark.parametrize("kernel", kernels())
def test_parameter_layouts(kernel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Features (3, 4): frozen parameters of every layout the op takes without a copy (one
    value, one row (1, 3, 4)) or with one (broadcast along the last axis (4,), per sample
    (B, 1, 1)); learnable ones of the same layouts. Forward bit for bit, gradients close."""
    g = torch.Generator().manual_seed(21)
    x = torch.rand(B, T, 3, 4, generator=g) * 0.6
    layouts = [(torch.tensor(0.8), torch.rand(1, 3, 4, generator=g) * 0.4 + 0.8),
               (torch.rand(4, generator=g) * 0.3 + 0.6, torch.tensor(1.0)),
               (torch.rand(B, 1, 1, generator=g) * 0.3 + 0.6, torch.rand(3, 4, generator=g) + 0.5)]
    for learn in (False, True):
        for leak, thr in layouts:
            p = LIFParams(leak=leak.clone().requires_grad_(learn),
                          threshold=thr.clone().requires_grad_(learn), surrogate=S.ATan())

            def go(k: str, p: LIFParams = p, learn: bool = learn
                   ) -> tuple[list[Tensor], list[Tensor]]:
                xg = x.clone().requires_grad_()
                st = SpikingState(v=torch.zeros(B, 3, 4))
                if k == "reference":
                    s, out, _ = lif_multi_step(xg, st, p)
                else:
                    monkeypatch.setenv("BRAIN_AI_KERNEL", k)
                    s, out, _ = fused_multi_step(xg, st, p)  # type: ignore[misc]
                ins = [xg] + ([p.leak, p.threshold] if learn else [])
                return [s, out.v], list(torch.autograd.grad((s * x).sum() + out.v.sum(), ins))

            (rs, rv), rg = go("reference")
            (s, v), gr = go(kernel)
            assert_bitwise(s, rs, "spikes")
            assert_bitwise(v, rv, "v")
            for a, b in zip(gr, rg, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * b.abs().max().item())


@pytest.mark.skipif(native_unbuildable(), reason="no C++ compiler: no native op")
@pytest.mark.parametrize("learn", [False, True], ids=["frozen", "learnable"])
@pytest.mark.parametrize("timing", ["immediate", "delayed"])
def test_native_threads_do_not_change_results(learn: bool, timing: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Big enough to be split over threads (N = 2100 > one fast-path block of 2048, so the
    last block is partial): one thread and two give the same bits, forward and backward."""
    monkeypatch.setenv("BRAIN_AI_KERNEL", "native")
    g = torch.Generator().manual_seed(22)
    x = torch.rand(3, 30, 2100, generator=g) * 0.3
    p = LIFParams(leak=torch.tensor(0.9, requires_grad=learn),
                  threshold=torch.tensor(1.0, requires_grad=learn), surrogate=S.ATan(),
                  reset_timing=timing)

    def go() -> list[Tensor]:
        xg = x.clone().requires_grad_()
        s, out, _ = fused_multi_step(xg, SpikingState(v=torch.zeros(3, 2100)), p)  # type: ignore[misc]
        ins = [xg] + ([p.leak, p.threshold] if learn else [])
        return [s, out.v, *torch.autograd.grad((s * x).sum() + out.v.sum(), ins)]

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = go()
        torch.set_num_threads(2)
        two = go()
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(two, one, strict=True):
        assert_bitwise(a, b, "2 threads vs 1")


@pytest.mark.skipif(native_unbuildable(), reason="no C++ compiler: no native op")
def test_native_outputs_are_ordinary_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large outputs come from the op's buffer pool: ordinary CPU tensors (in-place ops,
    resize_), blocks kept after they are freed and handed back by :func:`native.empty_cache`."""
    monkeypatch.setenv("BRAIN_AI_KERNEL", "native")
    p = LIFParams(leak=torch.tensor(0.9), threshold=torch.tensor(1.0), surrogate=S.ATan())
    x = torch.rand(2, 50, 1000, generator=torch.Generator().manual_seed(23))
    s, _, _ = fused_multi_step(x, SpikingState(v=torch.zeros(2, 1000)), p)  # type: ignore[misc]
    ref, _, _ = lif_multi_step(x, SpikingState(v=torch.zeros(2, 1000)), p)
    assert_bitwise(s, ref, "spikes")
    s.mul_(2).add_(1)
    s.resize_(2 * s.numel())
    assert torch.equal(s[: ref.numel()].view_as(ref), ref * 2 + 1)
    del s
    assert native.cached_bytes() >= ref.numel() * 4
    assert native.empty_cache() >= ref.numel() * 4
    assert native.cached_bytes() == 0


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize("learn", [False, True], ids=["frozen", "learnable"])
def test_strided_inputs_without_copies(kernel: str, learn: bool,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Time-first data transposed to (B, T, N) (a view: batch stride N, time stride B·N) and
    a window of a longer sequence (B, T, C, H) (what truncated BPTT passes): the op reads them
    in place; same bits as the reference forward, gradients close."""
    g = torch.Generator().manual_seed(24)
    x_tf = torch.rand(T, B, N, generator=g) * 0.8
    long = torch.rand(B, 3 * T, 2, 3, generator=g) * 0.8
    for x in (x_tf.transpose(0, 1), long[:, T:2 * T]):
        assert not x.is_contiguous()
        feat = x.shape[2:]
        p = LIFParams(leak=torch.tensor(0.8, requires_grad=learn),
                      threshold=torch.full(feat, 0.9).requires_grad_(learn), surrogate=S.ATan(),
                      alpha=torch.tensor(0.6) if learn else None)

        def go(k: str, x: Tensor = x, p: LIFParams = p) -> list[Tensor]:
            xg = x.detach().requires_grad_()  # the same strides as x
            st = SpikingState(v=torch.zeros(B, *x.shape[2:]),
                              i=torch.zeros(B, *x.shape[2:]) if p.alpha is not None else None)
            if k == "reference":
                s, out, _ = lif_multi_step(xg, st, p)
            else:
                monkeypatch.setenv("BRAIN_AI_KERNEL", k)
                s, out, _ = fused_multi_step(xg, st, p)  # type: ignore[misc]
            ins = [xg, *leaves(p)]
            return [s, out.v, *torch.autograd.grad((s * x).sum() + out.v.sum(), ins)]

        ref, got = go("reference"), go(kernel)
        assert_bitwise(got[0], ref[0], "spikes")
        assert_bitwise(got[1], ref[1], "v")
        for a, b in zip(got[2:], ref[2:], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * b.abs().max().item())


# ---------------------------------------------------------------- random module configurations
def _random_neuron(seed: int) -> tuple[Callable[[], torch.nn.Module], tuple[int, ...], dict]:
    """A seeded random neuron: kind, charge, reset, timing, comparator, surrogate, synapse,
    refractory period, graded spikes, learnable and per-neuron parameters, v_reset, feature
    shape, TBPTT chunk, dtype."""
    rng = random.Random(seed)
    feats = rng.choice([(6,), (2, 3, 2)])
    kind = rng.choice(["lif", "lif", "adaptive", "recurrent"])
    if kind == "recurrent":
        feats = (6,)
    n = math.prod(feats)

    def value(lo: float, hi: float) -> float | Tensor:
        if rng.random() < 0.5:
            return rng.uniform(lo, hi)
        return torch.linspace(lo, hi, n).view(feats)

    kw: dict = {"features": feats, "reset": rng.choice(RESETS),
                "comparator": rng.choice([">", ">="]),
                "surrogate": rng.choice(SURROGATES), "detach_reset": rng.random() < 0.25,
                "threshold": value(0.7, 1.3), "learn_threshold": rng.random() < 0.6,
                "chunk_size": rng.choice([None, None, 5, 13])}
    if rng.random() < 0.6:
        kw.update(beta=value(0.6, 0.95), learn_beta=rng.random() < 0.6)
    else:
        kw.update(beta=None, tau=value(1.5, 4.0), charge=rng.choice(CHARGES[1:]),
                  learn_tau=rng.random() < 0.6)
    if kw["reset"] == "zero" and rng.random() < 0.3:
        kw["v_reset"] = -0.1
    if rng.random() < 0.4:
        kw.update(alpha=value(0.3, 0.8), learn_alpha=rng.random() < 0.6)
    if kind != "adaptive":
        kw["reset_timing"] = rng.choice(TIMINGS)
    if rng.random() < 0.25 and kw.get("reset_timing", "immediate") == "immediate":
        kw["refractory_steps"] = rng.choice([1, 2, 4])
    if rng.random() < 0.25:
        kw.update(graded_spikes_factor=value(0.5, 1.5),
                  learn_graded_spikes_factor=rng.random() < 0.6)
    cls: Callable[..., torch.nn.Module] = LIFNeuron
    if kind == "adaptive":
        cls = AdaptiveLIFNeuron
        kw.update(adapt_scale=value(0.05, 0.4), adapt_decay=value(0.7, 0.95),
                  learn_adaptation=rng.random() < 0.7)
    elif kind == "recurrent":
        cls = RecurrentLIFNeuron
        kw.update(recurrent="one_to_one", V=value(-0.5, 0.5),
                  learn_recurrent=rng.random() < 0.7)
    dtype = torch.float64 if rng.random() < 0.2 else torch.float32
    info = {"kind": kind, "dtype": dtype, **{k: v for k, v in kw.items()
                                            if not isinstance(v, Tensor)}}
    return (lambda: cls(**kw).to(dtype)), feats, info


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize("seed", range(int(os.environ.get("FUZZ_N", "40"))))
def test_random_module_configurations(kernel: str, seed: int,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """40 seeded random neurons run by a fast kernel equal the reference: spikes, final state
    and membrane trace bit for bit; input gradients within 1e-6 of the largest entry;
    parameter gradients within 1e-5 of the largest entry (sums of many cancelling terms).

    float64 neurons: 1e-12, but the ``rate`` charges keep ``q = sigmoid(w)`` in float32 as
    SpikingJelly's PLIF does, so the reference sums the gradient of ``q`` in float32 per step
    (the kernels in float64): 1e-5 there."""
    make, feats, info = _random_neuron(seed)
    dtype = info["dtype"]
    g = torch.Generator().manual_seed(seed)
    gain = 1.5 if info.get("charge") in ("tau_input", "rate_input") else 0.7
    x = ((torch.rand(3, 31, *feats, generator=g, dtype=torch.float64) * 1.4 - 0.2) * gain
         ).to(dtype)
    w = torch.randn(3, 31, *feats, generator=g, dtype=torch.float64).to(dtype)

    def go(k: str) -> tuple[list[Tensor], list[Tensor]]:
        monkeypatch.setenv("BRAIN_AI_KERNEL", k)
        neuron = make()
        xi = x.clone().requires_grad_()
        out = neuron(xi, return_details=True)
        ((out.spikes * w).sum() + (out.membrane * w).sum() + out.state.v.sum()).backward()
        return ([out.spikes, out.membrane, *_state_leaves(out.state)],
                [xi.grad] + [prm.grad for prm in neuron.parameters()])

    ref_f, ref_g = go("reference")
    got_f, got_g = go(kernel)
    assert 0.0 < ref_f[0].mean().item() < 1.0, info  # the case fires, not always
    for a, b in zip(got_f, ref_f, strict=True):
        assert_bitwise(a, b, f"forward of {info}")
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    ptol = 1e-5 if dtype == torch.float32 or info.get("charge", "").startswith("rate") else tol
    for j, (a, b) in enumerate(zip(got_g, ref_g, strict=True)):
        scale = b.abs().max().clamp_min(1e-30)
        err = ((a - b).abs().max() / scale).item()
        assert err <= (tol if j == 0 else ptol), f"gradient {j}: {err:.3g} for {info}"


# ---------------------------------------------------------------- x's gradient in h's place
@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize(("reset", "timing", "learn"), [
    ("subtract", "immediate", False), ("zero", "immediate", True),
    ("subtract", "delayed", True), ("zero", "compensated", False)])
def test_input_gradient_overwrites_the_saved_membrane(kernel: str, reset: str, timing: str,
                                                      learn: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``retain_graph`` the input gradient is written over the saved ``h`` (one
    ``(B, T, N)`` buffer less at the peak of backward), with the reference's values; with
    ``retain_graph`` it is not, and a second backward gives the same gradient; a membrane
    trace that is ``h`` itself (delayed timing) is never overwritten, nor is an ``h`` that
    saved-tensor hooks packed (they may keep it)."""
    p, x, st, w = make_case(21, reset=reset, timing=timing, learn=learn, synapse=learn)
    ref_x = run("reference", p, x, st, w, monkeypatch)[1][0]
    monkeypatch.setenv("BRAIN_AI_KERNEL", kernel)
    kept: list[Tensor] = []

    def pack(t: Tensor) -> Tensor:
        kept.append(t)
        return t

    for retain, hooked in ((False, False), (True, False), (False, True)):
        xi = x.clone().requires_grad_()
        kept.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if hooked else (
                contextlib.nullcontext()):
            s, out, tr = fused_multi_step(xi, st, p, ("v",))  # type: ignore[misc]
        assert s.grad_fn.name() in ("FusedLIFBackward", "NativeLIFBackward")
        # a reference to h (so x.grad becomes a copy of it, not h itself, and h's content
        # after backward shows whether it was given up)
        h = next(t for t in s.grad_fn.saved_tensors
                 if t is not None and t.shape == x.shape and t.data_ptr() != xi.data_ptr())
        h_before = h.clone()
        trace = tr["v"].detach().clone()
        loss = _loss(s, out, tr["v"], w)
        loss.backward(retain_graph=retain)
        torch.testing.assert_close(xi.grad, ref_x, rtol=1e-6, atol=1e-6 * ref_x.abs().max())
        assert_bitwise(tr["v"], trace, "the returned membrane trace after backward")
        overwritten = torch.equal(h, xi.grad)
        assert overwritten == (not retain and not hooked and timing != "delayed"), (
            retain, hooked, overwritten)
        if not overwritten:
            assert_bitwise(h, h_before, "the saved h that was not given up")
        if retain:
            first = xi.grad.clone()
            xi.grad = None
            loss.backward()
            assert_bitwise(xi.grad, first, "second backward through the retained graph")
