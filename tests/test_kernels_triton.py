"""The Triton LIF kernels (``brain_ai.kernels.triton_lif``) equal the reference path.

Run on CPU under the Triton interpreter (no GPU needed): forward spikes, final membrane and
current, and the membrane trace are bit-identical to :func:`lif_multi_step`; the gradients of
``x``, ``v0`` and ``i0`` are within 1e-6 of the reference's largest entry, those of leak,
threshold and ``α`` within 1e-6 of the sum of the absolute values of their terms (a reordered
fp32 sum of cancelling terms is no closer: :func:`contribution_scale`).

The compiled (GPU) path is checked only as far as a CPU allows: kernel variants compile ahead
of time for ``sm_90``, and their PTX has no FMA contraction and no approximate division.
"""

from __future__ import annotations

import itertools
import math
import platform
import re
import sys
from dataclasses import replace

import pytest
import torch
from torch import Tensor

from brain_ai.kernels import fused_config
from brain_ai.kernels.fused import FusedConfig
from brain_ai.physics import surrogates as S
from brain_ai.physics.functional import LIFParams, lif_multi_step
from brain_ai.physics.state import SpikingState

if sys.platform == "linux" and platform.machine() == "x86_64":
    import triton  # the dev extra installs it here: a missing Triton fails, never skips
else:  # Triton publishes wheels for Linux x86_64 only
    triton = pytest.importorskip("triton")

from kernel_checks import CHARGES, RESETS, SURROGATES, TIMINGS, assert_bitwise, contribution_scale

from brain_ai.kernels.triton_lif import available, kernels, run_triton, triton_config

B, T, N = 2, 7, 5
CHW = (2, 1, 3)
# ---------------------------------------------------------------- one configuration
def make_case(seed: int, charge: str = "beta", reset: str = "subtract",
              timing: str = "immediate", comparator: str = ">",
              surrogate: S.Surrogate | None = None, detach_reset: bool = False,
              synapse: bool = False, learn: bool = True, param_shape: tuple[int, ...] = (),
              v_reset: float = 0.0, dtype: torch.dtype = torch.float32,
              feat: tuple[int, ...] = (N,)
              ) -> tuple[LIFParams, Tensor, SpikingState, list[Tensor]]:
    """Parameters, input, initial state and loss weights (firing roughly 10-30 %)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*size: int) -> Tensor:
        return torch.rand(size, generator=g, dtype=torch.float64).to(dtype)

    leak = {"beta": rand(*param_shape) * 0.4 + 0.5, "tau": rand(*param_shape) * 2 + 1.5,
            "tau_input": rand(*param_shape) * 2 + 1.5}.get(charge, rand(*param_shape) * 0.4 + 0.2)
    threshold = rand(*param_shape) * 0.4 + 0.8
    alpha = rand(*param_shape) * 0.4 + 0.3 if synapse else None
    gain = {"beta": 0.8, "tau": 1.0, "tau_input": 2.8, "rate": 1.0, "rate_input": 2.6}[charge]
    gain *= 0.6 if synapse else 1.0
    x = (rand(B, T, *feat) * 1.2 - 0.2) * gain
    v0 = rand(B, *feat) * 0.5
    i0 = rand(B, *feat) * 0.3 if synapse else None
    weights = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype)
               for s in ((B, T, *feat), (B, *feat), (B, T, *feat), (B, *feat))]
    p = LIFParams(
        leak=leak.requires_grad_(learn), threshold=threshold.requires_grad_(learn),
        surrogate=surrogate or S.ATan(), charge=charge, comparator=comparator, reset=reset,
        reset_timing=timing, v_reset=v_reset, detach_reset=detach_reset,
        alpha=None if alpha is None else alpha.requires_grad_(learn))
    return p, x, SpikingState(v=v0, i=i0), weights


def _loss(s: Tensor, v: Tensor, i: Tensor | None, trace: Tensor, w: list[Tensor]) -> Tensor:
    loss = (s * w[0]).sum() + (v * w[1]).sum() + (trace * w[2]).sum()
    return loss + (i * w[3]).sum() if i is not None else loss


def _leaves(p: LIFParams) -> list[Tensor]:
    return [t for t in (p.leak, p.threshold, p.alpha) if t is not None and t.requires_grad]


def run(kernel: str, p: LIFParams, x: Tensor, st: SpikingState, w: list[Tensor]
        ) -> tuple[list[Tensor], list[Tensor]]:
    """Forward values and gradients (x, v0[, i0], learnable parameters) of one kernel."""
    x = x.clone().requires_grad_()
    st = SpikingState(v=st.v.clone().requires_grad_(),
                      i=None if st.i is None else st.i.clone().requires_grad_())
    if kernel == "reference":
        s, out, tr = lif_multi_step(x, st, p, ("v",))
        v, i, trace = out.v, out.i, tr["v"]
    else:
        c = fused_config(x, st, p, ("v",))
        assert c is not None
        outs = run_triton(c, x, st.v, st.i, p.leak, p.threshold, p.alpha)
        assert outs is not None, "the Triton op must cover this configuration"
        assert len(outs) == 3 + (st.i is not None)
        s, v, trace = outs[0], outs[1], outs[-1]
        i = outs[2] if st.i is not None else None
    fwd = [s, v, trace] + ([i] if i is not None else [])
    ins = [x, st.v] + ([st.i] if st.i is not None else []) + _leaves(p)
    grads = torch.autograd.grad(_loss(s, v, i, trace, w), ins)
    return [f.detach() for f in fwd], list(grads)


def assert_matches_reference(p: LIFParams, x: Tensor, st: SpikingState, w: list[Tensor],
                             tol: float = 1e-6) -> None:
    ref_f, ref_g = run("reference", p, x, st, w)
    got_f, got_g = run("triton", p, x, st, w)
    rate = ref_f[0].mean().item()
    assert 0.03 < rate < 0.7, f"firing rate {rate:.2f}: the case does not exercise the rules"
    assert len(got_f) == len(ref_f)
    for name, a, b in zip(["spikes", "v_T", "v trace", "i_T"], got_f, ref_f, strict=False):
        assert_bitwise(a, b, name)
    names = ["x", "v0"] + (["i0"] if st.i is not None else [])
    names += [n for n in ("leak", "threshold", "alpha")
              if getattr(p, n) is not None and getattr(p, n).requires_grad]
    n_state = 2 + (st.i is not None)
    scales = [b.abs().max() for b in ref_g[:n_state]] + contribution_scale(
        p, x, st, lambda s, o, tr: _loss(s, o.v, o.i, tr, w))
    for name, a, b, sc in zip(names, got_g, ref_g, scales, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        err = ((a - b).abs() / sc.clamp_min(1e-30)).max()
        assert err <= tol, f"grad {name}: relative error {err:.3g} ({a} vs {b})"


# ---------------------------------------------------------------- the matrix
RULES = list(itertools.product(RESETS, TIMINGS, [">", ">="]))


@pytest.mark.parametrize(("reset", "timing", "comparator"), RULES,
                         ids=[f"{r}-{t}-{c}" for r, t, c in RULES])
def test_reset_timing_comparator(reset: str, timing: str, comparator: str) -> None:
    """Every reset x timing x comparator; charge, surrogate, synapse, detach_reset, parameter
    shape, v_reset and the feature shape cycle through their values across the 30 cases."""
    k = RULES.index((reset, timing, comparator))
    feat = CHW if k % 3 == 1 else (N,)
    pshape = [(), (2, 1, 1), CHW][k // 3 % 3] if k % 3 == 1 else [(), (N,)][k // 3 % 2]
    p, x, st, w = make_case(
        k, charge=CHARGES[k % 5], reset=reset, timing=timing, comparator=comparator,
        surrogate=SURROGATES[k % len(SURROGATES)], detach_reset=k % 4 == 1,
        synapse=k % 3 == 2, param_shape=pshape, v_reset=0.0 if k % 5 else -0.1, feat=feat)
    assert_matches_reference(p, x, st, w)


@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: type(s).__name__)
def test_every_surrogate(surrogate: S.Surrogate) -> None:
    p, x, st, w = make_case(3, surrogate=surrogate, param_shape=(N,), reset="zero")
    assert_matches_reference(p, x, st, w)


@pytest.mark.parametrize("charge", CHARGES)
@pytest.mark.parametrize("synapse", [False, True], ids=["cuba-off", "cuba-on"])
@pytest.mark.parametrize("per_neuron", [False, True], ids=["scalar", "per-neuron"])
def test_charge_synapse_learnable(charge: str, synapse: bool, per_neuron: bool) -> None:
    """Learnable leak, threshold and α, scalar or per-neuron, through every charge rule."""
    p, x, st, w = make_case(11, charge=charge, synapse=synapse,
                            param_shape=(N,) if per_neuron else (),
                            reset="zero" if per_neuron else "subtract",
                            timing="compensated_pre" if synapse else "delayed")
    assert_matches_reference(p, x, st, w)


@pytest.mark.parametrize(("reset", "timing"), [("subtract", "compensated"),
                                               ("zero", "delayed_pre"), ("zero", "immediate")])
def test_v_reset_detach_chw(reset: str, timing: str) -> None:
    """v_reset != 0, detach_reset, (C, H, W) features with per-channel (C, 1, 1) parameters."""
    p, x, st, w = make_case(21, charge="tau", reset=reset, timing=timing, v_reset=-0.2,
                            detach_reset=True, synapse=True, param_shape=(2, 1, 1), feat=CHW)
    assert_matches_reference(p, x, st, w)


@pytest.mark.parametrize(("reset", "timing", "charge"), [
    ("zero", "delayed_pre", "beta"), ("subtract", "compensated", "tau_input"),
    ("zero", "immediate", "rate_input")])
def test_float64(reset: str, timing: str, charge: str) -> None:
    p, x, st, w = make_case(6, dtype=torch.float64, timing=timing, reset=reset, charge=charge,
                            synapse=True, param_shape=(N,), surrogate=S.Sigmoid())
    assert_matches_reference(p, x, st, w, tol=1e-12)


@pytest.mark.parametrize("comparator", [">", ">="])
def test_ties_follow_the_comparator(comparator: str) -> None:
    """β = 0.5, θ = 1, inputs in quarters: h hits θ exactly, so ``>`` and ``>=`` differ."""
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 5, (B, T, N), generator=g).float() * 0.25
    p = LIFParams(leak=torch.tensor(0.5, requires_grad=True),
                  threshold=torch.tensor(1.0, requires_grad=True), surrogate=S.ATan(),
                  comparator=comparator, reset="zero")
    st = SpikingState(v=torch.zeros(B, N))
    w = [torch.randn(s, generator=g) for s in ((B, T, N), (B, N), (B, T, N), (B, N))]
    assert_matches_reference(p, x, st, w)
    other = replace(p, comparator=">=" if comparator == ">" else ">")
    outs = [run_triton(fused_config(x, st, q), x, st.v, None, q.leak, q.threshold, None)
            for q in (p, other)]
    assert not torch.equal(outs[0][0], outs[1][0])  # type: ignore[index]


# ---------------------------------------------------------------- gradients, layouts, memory
def test_partial_gradients_strided_input_and_broadcast_grads() -> None:
    """Only x requires a gradient; x is a time-first tensor's transposed view (strided); the
    upstream gradients are broadcast from one value (``.sum()``: stride 0); no record_v."""
    p, x, st, _ = make_case(4, timing="compensated", reset="zero", synapse=True, learn=False)
    c = fused_config(x, st, p, ())
    assert c is not None and not c.record_v

    def go(kernel: str) -> tuple[list[Tensor], Tensor]:
        xi = x.transpose(0, 1).contiguous().transpose(0, 1).requires_grad_()
        assert not xi.is_contiguous()
        if kernel == "reference":
            s, out, _ = lif_multi_step(xi, st, p)
            fwd = [s, out.v, out.i]
        else:
            fwd = list(run_triton(c, xi, st.v, st.i, p.leak, p.threshold, p.alpha))
            assert len(fwd) == 3
        (g,) = torch.autograd.grad(fwd[0].sum() + fwd[1].sum() + fwd[2].sum(), xi)
        return [f.detach() for f in fwd], g

    (ref_f, ref_g), (got_f, got_g) = go("reference"), go("triton")
    for a, b in zip(got_f, ref_f, strict=True):
        assert_bitwise(a, b, "forward")
    assert (got_g - ref_g).abs().max() <= 1e-6 * ref_g.abs().max()


def test_no_grad_forward_and_saved_tensors() -> None:
    p, x, st, _ = make_case(1, timing="compensated_pre", synapse=True, feat=CHW)
    c = fused_config(x, st, p, ("v",))
    assert c is not None
    with torch.no_grad():
        outs = run_triton(c, x, st.v, st.i, p.leak, p.threshold, p.alpha)
        s, out, tr = lif_multi_step(x, st, p, ("v",))
    assert outs is not None and outs[0].grad_fn is None
    for a, b in zip(outs, [s, out.v, out.i, tr["v"]], strict=True):
        assert_bitwise(a, b, "no-grad forward")
    # with gradients: one (B, T, *f) tensor saved (h), and x only where α's gradient needs it
    outs = run_triton(c, x, st.v, st.i, p.leak, p.threshold, p.alpha)
    saved = [t for t in outs[0].grad_fn.saved_tensors if t is not None]  # type: ignore[index]
    big = [t for t in saved if t.numel() >= B * T * math.prod(CHW)]
    assert len(big) == 2 and big[0].shape == x.shape and big[1] is x
    q = replace(p, alpha=p.alpha.detach())  # type: ignore[union-attr]
    outs = run_triton(c, x, st.v, st.i, q.leak, q.threshold, q.alpha)
    saved = [t for t in outs[0].grad_fn.saved_tensors if t is not None]  # type: ignore[index]
    assert len([t for t in saved if t.numel() >= B * T * math.prod(CHW)]) == 1


# ---------------------------------------------------------------- coverage and modes
class _MySurrogate(S.Surrogate):
    def derivative(self, x: Tensor) -> Tensor:
        return 1.0 / (1.0 + x.abs())


def test_not_covered_returns_none() -> None:
    p, x, st, _ = make_case(0)
    c = fused_config(x, st, p)
    assert c is not None and available()
    args = (x, st.v, None, p.leak, p.threshold, None)
    assert run_triton(c, *args) is not None
    assert run_triton(replace(c, surrogate=_MySurrogate()), *args) is None
    assert triton_config(replace(c, surrogate=_MySurrogate())) is None
    assert run_triton(c, *args, interpret=False) is None  # compiled kernels need CUDA
    half = (x.half(), st.v.half(), None, p.leak.half(), p.threshold.half(), None)
    assert run_triton(c, *half) is None
    assert run_triton(c, x[:, :0], st.v, None, p.leak, p.threshold, None) is None
    assert run_triton(c, x, st.v[:1], None, p.leak, p.threshold, None) is None
    assert run_triton(c, x, st.v, None, torch.ones(3, B, N), p.threshold, None) is None
    assert run_triton(c, x, st.v, None, p.leak.double(), p.threshold, None) is None
    syn = replace(c, synapse=True)
    assert run_triton(syn, *args) is None  # a synapse needs i0 and α


def test_interpret_mode_does_not_depend_on_the_environment(monkeypatch) -> None:
    """Both modes are built on request, whatever $TRITON_INTERPRET says."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    for env in ("0", "1"):
        monkeypatch.setenv("TRITON_INTERPRET", env)
        kernels.cache_clear()
        assert all(isinstance(k, InterpretedFunction) for k in kernels(True))
        assert all(isinstance(k, JITFunction) for k in kernels(False))
        assert kernels(True) is kernels(True)
        p, x, st, w = make_case(2)
        assert_matches_reference(p, x, st, w)


# ---------------------------------------------------------------- the compiled path
def _compile(fn, consts: dict, dt: str) -> str:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    special = {"rb_ptr": "*i8", "gl_ptr": "*fp64", "gt_ptr": "*fp64", "ga_ptr": "*fp64"}
    sig = {a: "constexpr" if a in consts else special.get(a, "*" + dt) if a.endswith("_ptr")
           else "i32" for a in fn.arg_names}
    k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts),
                       target=GPUTarget("cuda", 90, 32),
                       options={"enable_fp_fusion": False, "num_warps": 4})
    return k.asm["ptx"]


AOT = [("tau", "subtract", "compensated_pre", True, "fp32", S.ATan()),
       ("tau_input", "zero", "delayed", True, "fp32", S.SoftSign()),
       ("rate_input", "zero", "compensated", False, "fp64", S.Triangular())]


@pytest.mark.parametrize(("charge", "reset", "timing", "synapse", "dt", "surrogate"), AOT,
                         ids=[f"{a[0]}-{a[2]}-{a[4]}" for a in AOT])
def test_compiles_for_gpu_without_fma_or_approximate_division(
        charge: str, reset: str, timing: str, synapse: bool, dt: str,
        surrogate: S.Surrogate) -> None:
    """The compiled kernels build for sm_90 (no GPU needed) with every op rounded once:
    no fused multiply-add, no approximate division, no flush-to-zero (exp-free surrogates;
    the fast exp only touches gradients)."""
    c = FusedConfig(charge=charge, comparator=">=", reset=reset, timing=timing, v_reset=-0.1,
                    detach_reset=False, surrogate=surrogate, synapse=synapse, record_v=True)
    f = triton_config(c)
    assert f is not None
    fwd, bwd = kernels(False)
    ptx = [_compile(fwd, {**f, "SAVE_H": True, "TRACE": True, "BLOCK": 128}, dt),
           _compile(bwd, {**f, "DETACH": False, "SURR": S.SURROGATE_CODES[type(surrogate)],
                          "HAS_GS": True, "HAS_GTR": True, "HAS_GV": True, "HAS_GI": synapse,
                          "NEED_X": True, "NEED_V0": True, "NEED_I0": synapse,
                          "NEED_LEAK": True, "NEED_TH": True, "NEED_AL": synapse,
                          "NEED_PREV": True, "NEED_DRIVE": charge.endswith("_input"),
                          "SCAN_I": synapse, "BLOCK": 128}, dt)]
    for text in ptx:
        assert not re.findall(r"\bfma\.|div\.full|div\.approx|\.ftz", text)
    assert ("div.rn" in ptx[0]) == charge.startswith("tau")  # the τ charges divide


# ---------------------------------------------------------------- through the dispatcher
def test_dispatcher_runs_triton_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """``kernel="triton"``: the dispatcher hands covered calls to
    :func:`run_dispatched` (here redirected to the interpreter, as no GPU exists), whose
    outputs plug into the module like any kernel's (bit-identical to the reference, one
    ``TritonLIF`` node per window); unredirected, CPU tensors fall back to the next kernel;
    the default never runs Triton; features Triton lacks (adaptation) go to the next kernel."""
    from brain_ai.core.neurons import AdaptiveLIFNeuron, LIFNeuron
    from brain_ai.kernels import triton_lif

    x = torch.rand(2, 9, 4, generator=torch.Generator().manual_seed(3)) * 0.8

    def node(make, kernel: str | None) -> tuple[str, Tensor]:
        if kernel is None:
            monkeypatch.delenv("BRAIN_AI_KERNEL", raising=False)
        else:
            monkeypatch.setenv("BRAIN_AI_KERNEL", kernel)
        spikes, state = make()(x.clone().requires_grad_())
        fn = spikes.grad_fn
        while fn is not None and fn.name() in ("CatBackward0", "ViewBackward0"):
            fn = fn.next_functions[0][0]
        return fn.name(), torch.cat([spikes, state.v.unsqueeze(1)], 1)

    lif = lambda: LIFNeuron(features=4, alpha=0.5, reset="zero", learn_beta=True)  # noqa: E731
    ref = node(lif, "reference")[1]
    assert node(lif, "triton")[0] in ("NativeLIFBackward", "FusedLIFBackward")  # CPU tensors
    monkeypatch.setattr(triton_lif, "run_dispatched",
                        lambda *a: run_triton(*a, interpret=True))
    name, out = node(lif, "triton")
    assert name == "TritonLIFBackward"
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    assert node(lif, None)[0] != "TritonLIFBackward"  # off by default
    adaptive = lambda: AdaptiveLIFNeuron(features=4)  # noqa: E731
    assert node(adaptive, "triton")[0] in ("NativeLIFBackward", "FusedLIFBackward")
