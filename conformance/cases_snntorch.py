"""Conformance cases: brain_ai vs snnTorch 1.0.0 (neurons, surrogates, models, guards).

Each neuron case drives both implementations with the same time-first input ``(T, B, N)``
(T = 100; firing rates between 5% and 50%, except ``reset="none"``, which fires more),
snnTorch with explicit zero states, brain_ai through ``sequence`` on the batch-first view;
then compares
spikes, membranes (the value snnTorch returns) and the gradients of
``Σ spk·w_s + Σ mem·w_m`` w.r.t. the input and every learnable parameter (paired by name).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import snntorch as snn
import torch
from snntorch import surrogate as sn_sg
from torch import Tensor, nn

from brain_ai.adapters.metrics import max_abs_diff, max_rel_diff, spike_mismatches
from brain_ai.adapters.snntorch import (
    NEURON_RULES,
    brain_ai_param_name,
    from_snntorch,
    migrate,
    to_snntorch,
)
from brain_ai.adapters.verify import verify_migration
from brain_ai.conformance.models_snntorch import tutorial_conv, tutorial_mlp, tutorial_recurrent
from brain_ai.conformance.registry import Case, register
from brain_ai.core.neurons import LIFNeuron, RecurrentLIFNeuron, SpikingNeuronBase
from brain_ai.physics import surrogates as sg
from brain_ai.physics.axes import batch_to_time_first, time_to_batch_first

T, B, N = 100, 4, 16
# "silent" = 1 when the reference spike train is empty: an equality of silent trains proves
# nothing, so such a case fails instead of passing vacuously.
EXACT = {"spikes": 0, "membrane": 0.0, "grad": 1e-6, "silent": 0}


def run_snntorch(peer: nn.Module, x: Tensor, detach_every: int | None = None
                 ) -> tuple[Tensor, Tensor]:
    """Drive an snnTorch neuron over time-first ``x`` with explicit zero initial states.

    (Zeros of the step shape rather than ``reset_mem()``'s empty tensors: snnTorch treats
    both alike, except RSynaptic's ``reset_delay=False`` branch, which crashes on the empty
    ones.)
    """
    names = NEURON_RULES[type(peer).__name__][0]
    states = tuple(torch.zeros_like(x[0]) for _ in names)
    spikes, mems = [], []
    for t, x_t in enumerate(x.unbind(0)):
        if detach_every and t and t % detach_every == 0:  # snnTorch's TBPTT idiom
            states = tuple(s.detach() for s in states)
        out = peer(x_t, *states)
        # outputs: (spk, *states without spk); inputs: states in `names` order
        by_name = dict(zip([n for n in names if n != "spk"], out[1:], strict=True))
        by_name["spk"] = out[0]
        states = tuple(by_name[n] for n in names)
        spikes.append(out[0])
        mems.append(by_name["mem"])
    return torch.stack(spikes), torch.stack(mems)


def run_ours(neuron: SpikingNeuronBase, x: Tensor, chunk_size: int | None = None
             ) -> tuple[Tensor, Tensor]:
    spikes, _, traces = neuron.sequence(time_to_batch_first(x), chunk_size=chunk_size,
                                        record=("v",))
    return batch_to_time_first(spikes), batch_to_time_first(traces["v"])


def compare(peer: nn.Module, ours: SpikingNeuronBase, x: Tensor, seed: int,
            chunk_size: int | None = None) -> dict[str, float]:
    """Spikes, membranes and gradients of one neuron pair on the same input.

    ``chunk_size``: truncated BPTT: snnTorch detaches its states every ``chunk_size`` steps,
    brain_ai runs ``sequence(chunk_size=...)``.
    """
    gen = torch.Generator().manual_seed(seed + 7)
    x_p = x.clone().requires_grad_()
    x_o = x.clone().requires_grad_()
    s_p, m_p = run_snntorch(peer, x_p, chunk_size)
    s_o, m_o = run_ours(ours, x_o, chunk_size)
    w_s, w_m = torch.randn(s_p.shape, generator=gen), torch.randn(s_p.shape, generator=gen)
    (s_p * w_s + m_p * w_m).sum().backward()
    (s_o * w_s + m_o * w_m).sum().backward()
    grads = [max_rel_diff(x_o.grad, x_p.grad)]
    ours_p = dict(ours.named_parameters())
    for name, p in peer.named_parameters():
        q = ours_p.get(brain_ai_param_name(name))
        if p.grad is None and (q is None or q.grad is None):
            continue
        grads.append(float("inf") if q is None or q.grad is None or p.grad is None
                     else max_rel_diff(q.grad, p.grad))
    rate = float(s_p.detach().float().mean())
    return {"spikes": spike_mismatches(s_o, s_p), "membrane": max_abs_diff(m_o, m_p),
            "grad": max(grads), "rate": rate, "silent": float(rate == 0.0)}


def _input(seed: int, shape: tuple[int, ...], lo: float, hi: float) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen) * (hi - lo) + lo


def _per_neuron(seed: int, lo: float, hi: float, n: int = N) -> Tensor:
    gen = torch.Generator().manual_seed(seed + 1000)
    return torch.rand(n, generator=gen) * (hi - lo) + lo


def _peer_factory(kind: str, reset: str, delay: bool, spike_grad: Any, learn: bool,
                  recurrent: str, graded: bool) -> Callable[[int], nn.Module]:
    def make(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        kw: dict[str, Any] = dict(
            beta=_per_neuron(seed, 0.6, 0.95), threshold=_per_neuron(seed + 1, 0.8, 1.2),
            reset_mechanism=reset, reset_delay=delay, spike_grad=spike_grad,
            learn_beta=learn, learn_threshold=learn)
        if kind in ("Synaptic", "RSynaptic"):
            kw.update(alpha=_per_neuron(seed + 2, 0.5, 0.9), learn_alpha=learn)
        if kind in ("RLeaky", "RSynaptic"):
            if recurrent == "linear":
                kw.update(linear_features=N)
            else:
                kw.update(all_to_all=False, V=_per_neuron(seed + 3, -0.5, 0.5))
        if graded:
            kw.update(graded_spikes_factor=torch.tensor(0.75), learn_graded_spikes_factor=True)
        if kind == "Lapicque":  # built from beta: R = time_step = 1
            kw.pop("learn_beta")
            kw.pop("reset_delay")
            kw.update(beta=0.9)
        return getattr(snn, kind)(**kw)

    return make


_INPUT_RANGE = {"Leaky": (-0.1, 0.6), "Lapicque": (-0.5, 3.0), "Synaptic": (-0.1, 0.3),
                "RLeaky": (-0.1, 0.6), "RSynaptic": (-0.1, 0.25)}


def _register_from(kind: str, reset: str, delay: bool, grad_name: str = "atan",
                   learn: bool = True, recurrent: str = "linear", graded: bool = False) -> None:
    spike_grad = {"atan": sn_sg.atan(), "fast_sigmoid": sn_sg.fast_sigmoid(slope=25),
                  "sigmoid": sn_sg.sigmoid(slope=5), "ste": sn_sg.straight_through_estimator(),
                  "triangular": sn_sg.triangular()}[grad_name]
    make = _peer_factory(kind, reset, delay, spike_grad, learn, recurrent, graded)
    lo, hi = _INPUT_RANGE[kind]

    def run(seed: int) -> dict[str, float]:
        peer = make(seed)
        ours = from_snntorch(peer)
        return compare(peer, ours, _input(seed, (T, B, N), lo, hi), seed)

    words = [reset, f"delay={delay}", grad_name]
    if kind in ("RLeaky", "RSynaptic"):
        words.insert(0, recurrent)
    if graded:
        words.append("graded")
    if not learn:
        words.append("buffers")
    config = {"reset_mechanism": reset, "reset_delay": delay, "spike_grad": grad_name,
              "learnable": learn, "per_neuron_params": True}
    tol = dict(EXACT)
    if grad_name == "sigmoid":  # same function, different operation order
        tol["grad"] = 1e-5
    register(Case(name=f"snntorch/{kind}/{'-'.join(words)}/from", family=kind,
                  peer="snntorch", run=run, tolerances=tol, config=config,
                  direction="from", steps=T))


for _kind in ("Leaky", "Synaptic", "RLeaky", "RSynaptic", "Lapicque"):
    for _reset in ("subtract", "zero", "none"):
        for _delay in (True, False) if _kind != "Lapicque" else (True,):
            _register_from(_kind, _reset, _delay)
for _kind in ("RLeaky", "RSynaptic"):
    for _reset in ("subtract", "zero"):
        _register_from(_kind, _reset, True, recurrent="one_to_one")
for _g in ("fast_sigmoid", "sigmoid", "ste", "triangular"):
    _register_from("Leaky", "subtract", True, grad_name=_g)
_register_from("Leaky", "subtract", True, graded=True)
_register_from("Leaky", "subtract", False, graded=True)
_register_from("Leaky", "zero", True, learn=False)


def _register_alpha(reset: str, learn: bool, grad_name: str = "atan") -> None:
    """snnTorch ``Alpha`` (two synaptic currents) -> brain_ai ``AlphaNeuron``."""
    spike_grad = {"atan": sn_sg.atan(), "fast_sigmoid": sn_sg.fast_sigmoid(slope=25)}[grad_name]

    def run(seed: int) -> dict[str, float]:
        peer = snn.Alpha(alpha=0.9, beta=_per_neuron(seed, 0.5, 0.85),
                         threshold=_per_neuron(seed + 1, 0.8, 1.2), reset_mechanism=reset,
                         spike_grad=spike_grad, learn_beta=learn, learn_threshold=learn)
        return compare(peer, from_snntorch(peer), _input(seed, (T, B, N), -0.05, 0.6), seed)

    words = [reset, grad_name] + ([] if learn else ["buffers"])
    register(Case(name=f"snntorch/Alpha/{'-'.join(words)}/from", family="Alpha",
                  peer="snntorch", run=run, tolerances=EXACT, direction="from", steps=T,
                  config={"reset_mechanism": reset, "spike_grad": grad_name,
                          "learnable": learn, "per_neuron_params": True}))


for _reset in ("zero", "subtract", "none"):
    _register_alpha(_reset, True)
_register_alpha("zero", False, "fast_sigmoid")


# ---------------------------------------------------------------- brain_ai -> snnTorch
def _register_to(name: str, build: Callable[[int], SpikingNeuronBase],
                 lo: float, hi: float) -> None:
    def run(seed: int) -> dict[str, float]:
        torch.manual_seed(seed)
        ours = build(seed)
        peer = to_snntorch(ours)
        return compare(peer, ours, _input(seed, (T, B, N), lo, hi), seed)

    register(Case(name=f"snntorch/{name}/to", family=name.split("/")[0], peer="snntorch",
                  run=run, tolerances=EXACT, direction="to", steps=T,
                  config={"built": "brain_ai native"}))


# kernel="reference": brain_ai neurons built by hand for the brain_ai -> snnTorch direction
# run the per-step autograd graph by name (converted neurons run the fast kernel, whose
# gradients follow the same order: tests/test_fast_path.py; with graded spikes or a synapse
# they stay within 1e-6 relative, so these cases pin the reference).
_PEER_RULES: dict[str, Any] = dict(beta_clamp=(0.0, 1.0), learn_beta=True, learn_threshold=True,
                                   kernel="reference")
_register_to("Leaky/delayed-subtract",
             lambda s: LIFNeuron(beta=_per_neuron(s, 0.6, 0.95), reset_timing="delayed",
                                 **_PEER_RULES), -0.1, 0.7)
_register_to("Leaky/immediate-zero",
             lambda s: LIFNeuron(beta=_per_neuron(s, 0.6, 0.95), reset="zero",
                                 surrogate=sg.FastSigmoid(), **_PEER_RULES), -0.1, 0.7)
_register_to("Leaky/compensated-subtract-graded",
             lambda s: LIFNeuron(beta=0.8, reset_timing="compensated",
                                 graded_spikes_factor=0.5, **_PEER_RULES), -0.1, 0.7)
_register_to("Synaptic/delayed-zero",
             lambda s: LIFNeuron(beta=0.9, alpha=0.7, reset="zero", reset_timing="delayed",
                                 **_PEER_RULES), -0.1, 0.35)
_register_to("RLeaky/compensated-subtract",
             lambda s: RecurrentLIFNeuron(N, beta=0.85, reset_timing="compensated",
                                          **_PEER_RULES), -0.15, 0.4)
_register_to("RSynaptic/delayed-subtract",
             lambda s: RecurrentLIFNeuron(N, beta=0.85, alpha=0.6, reset_timing="delayed",
                                          recurrent="one_to_one", V=0.3, **_PEER_RULES),
             -0.1, 0.2)


# ---------------------------------------------------------------- truncated BPTT
def _register_tbptt(kind: str, reset: str, chunk: int) -> None:
    make = _peer_factory(kind, reset, True, sn_sg.atan(), True, "linear", False)
    lo, hi = _INPUT_RANGE[kind]

    def run(seed: int) -> dict[str, float]:
        peer = make(seed)
        return compare(peer, from_snntorch(peer), _input(seed, (T, B, N), lo, hi), seed,
                       chunk_size=chunk)

    register(Case(name=f"snntorch/{kind}/{reset}-tbptt{chunk}/from", family=kind,
                  peer="snntorch", run=run, tolerances=EXACT, direction="from", steps=T,
                  config={"reset_mechanism": reset, "truncated_bptt": chunk,
                          "snntorch": "states detached every chunk steps"}))


_register_tbptt("Leaky", "subtract", 20)
_register_tbptt("Synaptic", "zero", 25)
_register_tbptt("RLeaky", "subtract", 30)


def _guard_tbptt_vs_full(seed: int) -> dict[str, float]:
    """Same forward, different gradient: brain_ai chunked vs snnTorch full BPTT."""
    peer = _peer_factory("Leaky", "subtract", True, sn_sg.atan(), True, "linear", False)(seed)
    ours = from_snntorch(peer)
    x = _input(seed, (T, B, N), *_INPUT_RANGE["Leaky"])
    gen = torch.Generator().manual_seed(seed + 7)
    x_p, x_o = x.clone().requires_grad_(), x.clone().requires_grad_()
    s_p, m_p = run_snntorch(peer, x_p)
    s_o, m_o = run_ours(ours, x_o, chunk_size=10)
    w = torch.randn(s_p.shape, generator=gen)
    (m_p * w).sum().backward()
    (m_o * w).sum().backward()
    return {"spikes": spike_mismatches(s_o, s_p), "membrane": max_abs_diff(m_o, m_p),
            "grad": max_rel_diff(x_o.grad, x_p.grad)}


# ---------------------------------------------------------------- guards
def _guard(name: str, family: str, run: Callable[[int], dict[str, float]], why: str,
           tolerances: dict[str, float] | None = None) -> None:
    register(Case(name=f"snntorch/{family}/{name}/guard", family=family, peer="snntorch",
                  run=run, tolerances=tolerances or {"spikes": 0}, expect="differs",
                  why=why, direction="native", steps=T))


def _guard_native_default(seed: int) -> dict[str, float]:
    peer = snn.Leaky(beta=0.9)
    ours = LIFNeuron(beta=0.9)
    return compare(peer, ours, _input(seed, (T, B, N), -0.1, 0.45), seed)


def _guard_compensated(seed: int) -> dict[str, float]:
    peer = snn.Leaky(beta=1.0, reset_delay=False)
    ours = LIFNeuron(beta=1.0, beta_clamp=(0.0, 1.0))  # immediate subtract
    x = torch.full((T, B, N), 0.05)
    x[::10] = 2.5  # a spike that leaves the reset membrane above threshold
    return compare(peer, ours, x, seed)


def _guard_tie(seed: int) -> dict[str, float]:
    peer = snn.Leaky(beta=0.5, reset_delay=False)
    ours = LIFNeuron(beta=0.5, reset_timing="compensated", comparator=">=")
    x = torch.zeros(T, B, N)
    x[::5] = 1.0  # membrane hits the threshold exactly
    return compare(peer, ours, x, seed)


def _guard_rsynaptic(seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    peer = snn.RSynaptic(alpha=0.6, beta=0.85, linear_features=N, reset_delay=False)
    ours = RecurrentLIFNeuron(N, beta=0.85, alpha=0.6, reset_timing="compensated",
                              beta_clamp=(0.0, 1.0))
    ours.recurrent.load_state_dict(peer.recurrent.state_dict())
    return compare(peer, ours, _input(seed, (T, B, N), 0.0, 0.6), seed)


_guard("tbptt-vs-full-bptt", "Leaky", _guard_tbptt_vs_full,
       "truncated BPTT changes only the gradient: spikes and membranes stay identical, the "
       "input gradient does not", tolerances={"grad": 1e-6})
_guard("native-default", "Leaky", _guard_native_default,
       "snnTorch resets one step late with the undecayed threshold and returns the pre-reset "
       "membrane; brain_ai's default resets immediately")
_guard("compensated-vs-immediate", "Leaky", _guard_compensated,
       "snnTorch reset_delay=False adds the threshold back when a reset membrane is still "
       "above threshold; an immediate reset fires again")
_guard("tie-comparator", "Leaky", _guard_tie,
       "snnTorch fires on v > threshold; v == threshold does not fire (SpikingJelly's >= does)")
_guard("reset_delay-false-is-delayed", "RSynaptic", _guard_rsynaptic,
       "RSynaptic's reset_delay=False branch writes a local variable in snnTorch 1.0.0: it "
       "behaves as delayed, not as the compensated timing of the other neurons")


# ---------------------------------------------------------------- whole models
def _register_model(name: str, factory: Callable[[], nn.Module],
                    make_input: Callable[[int], Tensor]) -> None:
    def run(seed: int) -> dict[str, float]:
        model = factory()
        report = verify_migration(model, migrate(model), make_input(seed), seed=seed)
        rates = [r.firing_rate for r in report.layers]
        return {"spikes": sum(r.spike_mismatches for r in report.layers)
                + report.output_spike_mismatches,
                "membrane": max(r.max_abs_membrane for r in report.layers),
                "grad": max(report.grads.values(), default=0.0),
                "rate": sum(rates) / len(rates), "silent": float(max(rates) == 0.0)}

    register(Case(name=f"snntorch/model/{name}", family="model", peer="snntorch", run=run,
                  tolerances=EXACT, direction="from", steps=None,
                  config={"factory": factory.__name__}))


_register_model("tutorial-mlp", tutorial_mlp,
                lambda s: _input(s, (100, 8, 784), 0.0, 1.0))
_register_model("tutorial-recurrent", tutorial_recurrent,
                lambda s: _input(s, (100, 8, 40), 0.0, 1.5))
_register_model("tutorial-conv-init_hidden", tutorial_conv,
                lambda s: (_input(s, (25, 4, 1, 28, 28), 0.0, 1.0) > 0.6).float() * 2.0)
