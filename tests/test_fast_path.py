"""The fast kernels compute the reference's gradients bit for bit, and so the peers'.

The reference (:func:`brain_ai.physics.functional.lif_multi_step`, per-step autograd) is what
snnTorch and SpikingJelly match bit for bit (tests/test_adapter_*.py, conformance). A fast
kernel gives the same bits where it adds the same numbers in the same order as autograd's
engine does:

* a tensor used twice gets its gradients added in the order the engine runs the nodes that
  use it (outside gradients first, then by decreasing creation order): for the stored membrane
  ``v_t``, the trace's gradient, then the next step's charge (``v`` itself, then the leak
  term's ``v``; snnTorch's zero reset evaluates the charge twice, the second evaluation's
  chain first), then the firing's where ``v_t`` is ``h_t`` itself;
* a parameter broadcast over the batch (scalar, per-neuron or any broadcastable shape) gets
  one sum per use and step (``sum_to_size``, what the engine calls), added from the last step
  to the first (:class:`brain_ai.kernels.native.NativeLIF` reduces its per-step terms so);
* the surrogate's ``exp`` is torch's (MKL's for ``torch.exp``; SLEEF's with the scalar tail of
  ATen's vectorized loop for ``torch.sigmoid``).

Every comparison here is ``assert_close(rtol=0, atol=0)`` (bit for bit up to the sign of
zero); the guard shows that the order matters (a reordered sum is off in the last bits), so
the equality is not a coincidence of easy data.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable

import pytest
import torch
from kernel_checks import CHARGES, SURROGATES, native_unbuildable
from torch import Tensor

from brain_ai.core import surrogates as S
from brain_ai.core.neurons import LIFNeuron
from brain_ai.kernels import fused_multi_step, native
from brain_ai.physics import rules
from brain_ai.physics.functional import LIFParams, lif_multi_step
from brain_ai.physics.state import SpikingState

KERNELS = ["fused", pytest.param("native", marks=pytest.mark.skipif(
    native_unbuildable(), reason="no C++ compiler: the native kernel cannot be built"))]

#: (reset, timing) pairs the rule table allows to differ ("none" has nothing to time).
RESET_TIMINGS = [(r, t) for r in ("subtract", "zero") for t in rules.ALLOWED["reset_timing"]
                 ] + [("none", "immediate")]
RULES = [(ch, r, t, cmp) for ch in CHARGES for (r, t) in RESET_TIMINGS for cmp in (">", ">=")]


def _exact(a: Tensor | None, b: Tensor | None, what: str) -> None:
    """Bit for bit; a gradient autograd leaves ``None`` (no path) is zeros from a kernel."""
    if a is None or b is None:
        other = b if a is None else a
        assert other is None or not other.any(), f"{what}: None against non-zero values"
        return
    torch.testing.assert_close(a, b, rtol=0, atol=0, msg=lambda m: f"{what} differs: {m}")


def make(seed: int, charge: str, reset: str, timing: str, comparator: str, *,
         b: int = 3, t: int = 40, feats: tuple[int, ...] = (7,),
         leak_shape: tuple[int, ...] | None = None, thr_shape: tuple[int, ...] | None = None,
         learn: bool = True, surrogate: S.Surrogate | None = None, detach: bool = False,
         v_reset: float = 0.0, dtype: torch.dtype = torch.float32,
         param_dtype: torch.dtype | None = None) -> tuple[LIFParams, Tensor, Tensor]:
    """Parameters, input ``(B, T, *f)`` and initial membrane, firing ~5-50 %."""
    g = torch.Generator().manual_seed(seed)

    def rand(*size: int, dt: torch.dtype = dtype) -> Tensor:
        return torch.rand(size, generator=g, dtype=torch.float64).to(dt)

    pdt = param_dtype or dtype
    ls = leak_shape if leak_shape is not None else ()
    ts = thr_shape if thr_shape is not None else ()
    leak = {"beta": rand(*ls, dt=pdt) * 0.5 + 0.45, "tau": rand(*ls, dt=pdt) * 3 + 1.5,
            "tau_input": rand(*ls, dt=pdt) * 3 + 1.5}.get(charge, rand(*ls, dt=pdt) * 0.5 + 0.2)
    thr = rand(*ts, dt=pdt) * 0.5 + 0.75
    gain = 1.5 if charge in rules.INPUT_CHARGES else 0.6
    x = (rand(b, t, *feats) * 1.4 - 0.2) * gain
    v0 = rand(b, *feats) * 0.5
    p = LIFParams(leak=leak.requires_grad_(learn), threshold=thr.requires_grad_(learn),
                  surrogate=surrogate or S.ATan(), charge=charge, comparator=comparator,
                  reset=reset, reset_timing=timing, v_reset=v_reset, detach_reset=detach)
    return p, x, v0


Loss = Callable[[Tensor, Tensor, Tensor, list[Tensor]], Tensor]


def _weighted(s: Tensor, v: Tensor, tr: Tensor, w: list[Tensor]) -> Tensor:
    return (s * w[0]).sum() + (v * w[1]).sum() + (tr * w[2]).sum()


def run(kernel: str, p: LIFParams, x: Tensor, v0: Tensor, loss: Loss = _weighted,
        record: bool = True, seed: int = 0) -> list[Tensor | None]:
    """Forward values, then the gradients of x, v0 and the learnable parameters."""
    g = torch.Generator().manual_seed(seed + 1)
    w = [torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.dtype),
         torch.randn(v0.shape, generator=g, dtype=torch.float64).to(x.dtype),
         torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.dtype)]
    xg, vg = x.clone().requires_grad_(), v0.clone().requires_grad_()
    rec = ("v",) if record else ()
    if kernel == "reference":
        s, out, tr = lif_multi_step(xg, SpikingState(v=vg), p, rec)
    else:
        os.environ["BRAIN_AI_KERNEL"] = kernel
        try:
            res = fused_multi_step(xg, SpikingState(v=vg), p, rec)
        finally:
            del os.environ["BRAIN_AI_KERNEL"]
        assert res is not None, f"{kernel} must cover this configuration"
        s, out, tr = res
    trace = tr["v"] if record else torch.zeros_like(s)
    leaves = [t for t in (p.leak, p.threshold) if t.requires_grad]
    grads = torch.autograd.grad(loss(s, out.v, trace, w), [xg, vg, *leaves], allow_unused=True)
    return [s.detach(), out.v.detach(), *grads]


def assert_same_as_reference(kernel: str, p: LIFParams, x: Tensor, v0: Tensor,
                             **kw: object) -> None:
    ref, got = run("reference", p, x, v0, **kw), run(kernel, p, x, v0, **kw)  # type: ignore[arg-type]
    names = ["spikes", "v_T", "grad x", "grad v0", "grad leak", "grad threshold"]
    for name, a, b in zip(names, got, ref, strict=False):
        _exact(a, b, f"{kernel}: {name}")


@pytest.fixture(autouse=True)
def _no_kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRAIN_AI_KERNEL", raising=False)


# ---------------------------------------------------------------- every rule
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("charge", "reset", "timing", "comparator"), RULES,
                         ids=["-".join(r) for r in RULES])
def test_every_rule_gradients_bit_identical(kernel: str, charge: str, reset: str, timing: str,
                                            comparator: str) -> None:
    """Every charge x reset x timing x comparator: forward bits and the gradients of the
    input, the initial membrane, and a learnable leak and threshold (scalar or per-neuron,
    alternating), with spike, final-membrane and trace gradients all present; surrogate,
    detach_reset and v_reset cycle across the cases."""
    k = RULES.index((charge, reset, timing, comparator))
    shape = (7,) if k % 2 else ()
    p, x, v0 = make(k, charge, reset, timing, comparator, leak_shape=shape, thr_shape=shape,
                    surrogate=SURROGATES[k % len(SURROGATES)], detach=k % 3 == 1,
                    v_reset=-0.1 if k % 4 == 2 else 0.0)
    assert_same_as_reference(kernel, p, x, v0, seed=k)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("reset", "timing"), RESET_TIMINGS,
                         ids=[f"{r}-{t}" for r, t in RESET_TIMINGS])
def test_same_step_reset_to_nonzero_v_reset(kernel: str, reset: str, timing: str) -> None:
    """``v_reset != 0`` with the spike's reset gradient kept (``detach_reset=False``): the
    zero reset's ``s·v_reset + (1 - s)·h`` sends the spike two terms the engine adds in its
    order."""
    p, x, v0 = make(5, "tau_input", reset, timing, ">=", v_reset=0.15, surrogate=S.Sigmoid())
    assert_same_as_reference(kernel, p, x, v0, seed=5)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: type(s).__name__)
def test_every_surrogate_at_a_size_with_vector_tails(kernel: str, surrogate: S.Surrogate) -> None:
    """(B, N) = (33, 1001): 33033 neurons, more than ATen's grain (two chunks on two
    threads), none a multiple of the vector width: torch's sigmoid runs SLEEF's exp on whole
    vectors and std::exp on each chunk's tail, torch.exp MKL's; the kernels give its bits."""
    p, x, v0 = make(9, "tau_input", "zero", "immediate", ">=", b=33, t=4, feats=(1001,),
                    surrogate=surrogate, leak_shape=(1001,))
    assert_same_as_reference(kernel, p, x, v0, seed=9)


# ---------------------------------------------------------------- parameters and dtypes
LAYOUTS = {
    "scalar": ((), ()),
    "per-neuron": ((3, 4), (3, 4)),
    "per-channel": ((3, 1), (1, 4)),
    "per-sample": ((4, 1, 1), ()),
}


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("timing", ["immediate", "delayed", "compensated_pre"])
def test_parameter_shapes_reduce_as_autograd(kernel: str, layout: str, timing: str) -> None:
    """Features (3, 4); learnable leak and threshold of every broadcastable shape (one
    value, per neuron, per channel, per sample): one ``sum_to_size`` per use and step, added
    in reverse time, as the engine reduces them."""
    ls, ts = LAYOUTS[layout]
    p, x, v0 = make(13, "rate_input", "subtract", timing, ">", b=4, t=30, feats=(3, 4),
                    leak_shape=ls, thr_shape=ts)
    assert_same_as_reference(kernel, p, x, v0, seed=13)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("charge", "reset", "timing"), [
    ("beta", "subtract", "immediate"), ("tau", "zero", "delayed"),
    ("rate_input", "zero", "compensated")])
def test_float64_state(kernel: str, charge: str, reset: str, timing: str) -> None:
    """float64 input, state and parameters: the same bits as the reference in float64."""
    p, x, v0 = make(17, charge, reset, timing, ">", dtype=torch.float64, leak_shape=(7,))
    assert_same_as_reference(kernel, p, x, v0, seed=17)


@pytest.mark.skipif(native_unbuildable(), reason="no C++ compiler: no native op")
def test_native_float32_parameters_of_a_float64_state() -> None:
    """float32 parameters in a float64 state (``dtype_policy="float32"`` with float64 input):
    autograd reduces each step's term in float64 and casts it to float32 before adding; the
    native op takes the parameters as they are and does the same."""
    p, x, v0 = make(19, "tau", "subtract", "delayed", ">", dtype=torch.float64,
                    param_dtype=torch.float32, leak_shape=(7,))
    assert_same_as_reference("native", p, x, v0, seed=19)


LOSSES: dict[str, Loss] = {
    "spikes": lambda s, v, tr, w: (s * w[0]).sum(),
    "v_T": lambda s, v, tr, w: (v * v).sum(),
    "trace": lambda s, v, tr, w: (tr * w[2]).sum(),
    "sums": lambda s, v, tr, w: s.sum() + v.sum() + tr.sum(),
}


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("charge", ["beta", "tau_input"])
def test_gradient_forms(kernel: str, loss: str, charge: str) -> None:
    """Only the spikes, only the final membrane, only the trace, or broadcast sums (gradients
    of one value, stride 0) carry a gradient."""
    p, x, v0 = make(23, charge, "zero", "delayed", ">", leak_shape=(7,))
    assert_same_as_reference(kernel, p, x, v0, loss=LOSSES[loss], seed=23)


@pytest.mark.parametrize("kernel", KERNELS)
def test_module_sequence_and_truncated_bptt(kernel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A learnable per-neuron PLIF-style neuron through ``LIFNeuron.sequence`` with a
    truncated-BPTT window: every window's kernel call gives the reference's bits."""
    torch.manual_seed(0)
    x = torch.rand(4, 23, 6) * 1.5

    def grads(k: str) -> list[Tensor]:
        neuron = LIFNeuron(tau=torch.full((6,), 2.5), charge="rate_input", learn_tau=True,
                           learn_threshold=True, comparator=">=", reset="zero",
                           surrogate=S.Sigmoid(), chunk_size=5, kernel=k, features=6)
        xg = x.clone().requires_grad_()
        s, st = neuron(xg)
        return [s, *torch.autograd.grad((s * x).sum() + st.v.sum(),
                                        [xg, neuron.w, neuron.threshold])]

    for a, b in zip(grads(kernel), grads("reference"), strict=True):
        _exact(a, b, kernel)


# ---------------------------------------------------------------- guard
def test_guard_the_order_matters() -> None:
    """The reference's threshold gradient is the engine's sum (one reduction per use and step,
    reverse time); one reduction of all the terms at once is a different float, and a trace
    gradient added after (not before) the next step's charge terms changes the input's
    gradient: equality with the reference is a property of the order, not of the data."""
    p, x, v0 = make(29, "tau", "subtract", "immediate", ">", t=60, leak_shape=())
    ref = run("reference", p, x, v0, seed=29)
    got = run("fused", p, x, v0, seed=29)
    _exact(got[5], ref[5], "fused threshold gradient")
    # the same terms, summed in one go (what a double-precision accumulation over the batch
    # and time and one rounding would approximate): not the engine's float
    terms = []
    state = SpikingState(v=v0.clone().requires_grad_())
    g = torch.Generator().manual_seed(30)
    w = [torch.randn(x.shape, generator=g, dtype=torch.float64).float(),
         torch.randn(v0.shape, generator=g, dtype=torch.float64).float(),
         torch.randn(x.shape, generator=g, dtype=torch.float64).float()]
    from brain_ai.physics.functional import lif_step
    spikes, vs = [], []
    for x_t in x.unbind(1):
        thr = p.threshold.detach().expand_as(x_t).clone().requires_grad_()
        s, state = lif_step(x_t, state, LIFParams(**{**p.__dict__, "threshold": thr}))
        terms.append(thr)
        spikes.append(s)
        vs.append(state.v)
    loss = _weighted(torch.stack(spikes, 1), state.v, torch.stack(vs, 1), w)
    per_step = torch.autograd.grad(loss, terms)
    at_once = torch.stack(per_step).sum()
    engine = ref[5]
    assert not torch.equal(at_once.to(engine.dtype), engine)  # a different float
    torch.testing.assert_close(at_once, engine, rtol=1e-5, atol=1e-6)  # the same number


# ---------------------------------------------------------------- the peers, directly
def _sj() -> object:
    import spikingjelly.activation_based.neuron as sj  # a peer: installed wherever tests run

    return sj


SJ_NODES: dict[str, Callable[[], torch.nn.Module]] = {
    "LIFNode": lambda: _sj().LIFNode(step_mode="m"),
    "LIFNode-decay_input=False-soft": lambda: _sj().LIFNode(
        tau=3.0, decay_input=False, v_reset=None, step_mode="m"),
    "ParametricLIFNode": lambda: _sj().ParametricLIFNode(step_mode="m"),
}


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("node", list(SJ_NODES))
def test_spikingjelly_gradients_bit_identical(kernel: str, node: str) -> None:
    """SpikingJelly's multi-step nodes (default Sigmoid surrogate; PLIF with its learnable
    ``w``) converted with ``from_spikingjelly`` and run on the fast kernel: spikes, the input's
    and ``w``'s gradients equal SpikingJelly's bit for bit (forward+backward at (16, 20, 300),
    the sigmoid's vector tails included)."""
    from spikingjelly.activation_based import functional

    from brain_ai.adapters.spikingjelly import from_spikingjelly

    sj = SJ_NODES[node]()
    ours = from_spikingjelly(sj)
    ours.kernel = kernel
    g = torch.Generator().manual_seed(31)
    x = torch.rand(16, 20, 300, generator=g) * 1.6
    w = torch.randn(16, 20, 300, generator=g)
    xs, xo = x.transpose(0, 1).contiguous().requires_grad_(), x.clone().requires_grad_()
    functional.reset_net(sj)
    s_sj = sj(xs).transpose(0, 1)
    (s_sj * w).sum().backward()
    s, _, _ = ours.sequence(xo)
    (s * w).sum().backward()
    _exact(s, s_sj, "spikes")
    _exact(xo.grad, xs.grad.transpose(0, 1), "input gradient")
    if node == "ParametricLIFNode":
        _exact(ours.w.grad, sj.w.grad, "w gradient")


def _snn() -> object:
    import snntorch  # a peer: installed wherever tests run (never skipped)

    return snntorch


SNNTORCH: dict[str, Callable[[], torch.nn.Module]] = {
    "Leaky-subtract-delayed": lambda: _snn().Leaky(beta=0.8, learn_beta=True,
                                                   learn_threshold=True),
    "Leaky-zero-delayed_pre": lambda: _snn().Leaky(beta=0.8, reset_mechanism="zero",
                                                   learn_beta=True, learn_threshold=True),
    "Leaky-subtract-compensated": lambda: _snn().Leaky(beta=0.8, reset_delay=False,
                                                       learn_beta=True, learn_threshold=True),
}


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", list(SNNTORCH))
def test_snntorch_gradients_bit_identical(kernel: str, name: str) -> None:
    """snnTorch's ``Leaky`` (delayed, zero-before-charge and compensated resets) with learnable
    β and threshold, run by its own per-step loop, against the converted neuron on the fast
    kernel: spikes, membranes, the input's, β's and the threshold's gradients bit for bit."""
    from brain_ai.adapters.snntorch import from_snntorch

    lif = SNNTORCH[name]()
    ours = from_snntorch(lif)
    ours.kernel = kernel
    g = torch.Generator().manual_seed(37)
    x = torch.rand(8, 25, 50, generator=g) * 0.7
    w = torch.randn(8, 25, 50, generator=g)
    xs, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    mem = lif.init_leaky()
    spk = []
    for x_t in xs.unbind(1):
        s_t, mem = lif(x_t, mem)
        spk.append(s_t)
    s_snn = torch.stack(spk, 1)
    ((s_snn * w).sum() + mem.sum()).backward()
    s, st, _ = ours.sequence(xo)
    ((s * w).sum() + st.v.sum()).backward()
    _exact(s, s_snn, "spikes")
    _exact(st.v, mem, "final membrane")
    _exact(xo.grad, xs.grad, "input gradient")
    _exact(ours.beta.grad, lif.beta.grad, "beta gradient")
    _exact(ours.threshold.grad, lif.threshold.grad, "threshold gradient")


@pytest.mark.skipif(native_unbuildable(), reason="no C++ compiler: no native op")
def test_native_covers_every_rule_on_its_fast_loop() -> None:
    """Deny by default, but nothing of the rule table is denied: the native op lists every
    charge, reset, timing and comparator, and every built-in surrogate with a kernel id."""
    assert native.COVERED == {kind: frozenset(names) for kind, names in rules.ALLOWED.items()}
    for charge, reset, timing in itertools.product(CHARGES, rules.ALLOWED["reset"],
                                                   rules.ALLOWED["reset_timing"]):
        p, x, v0 = make(1, charge, reset, timing, ">", b=2, t=3)
        os.environ["BRAIN_AI_KERNEL"] = "native"
        try:
            st = SpikingState(v=v0)
            from brain_ai.kernels import fused_config
            c = fused_config(x, st, p)
            assert c is not None and native.native_config(c, x) is not None
        finally:
            del os.environ["BRAIN_AI_KERNEL"]
