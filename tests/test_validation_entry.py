"""Issue 16, neurons: every public entry (``forward``, ``.step``, ``.sequence``, a
:class:`SpikingSequential`) checks what it is given, and nothing is accepted silently.

``CASES`` are the probes: each names the call and the error class and public name it must
raise; ``RESULTS`` are the accepted edges, each with its numbers. A property test drives the
same entries with generated bad input: a clear error (a :class:`BrainAIError` with a ``Hint:``)
or a correct result, never a raw error from torch internals.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn

from brain_ai.core.neurons import (
    AdaptiveLIFNeuron,
    AdvancedLIFNeuron,
    LIFNeuron,
    RecurrentLIFNeuron,
)
from brain_ai.core.snn import SpikingSequential
from brain_ai.errors import BrainAIError, ConfigError, ShapeError
from brain_ai.physics.state import SpikingState

EXACT = {"rtol": 0, "atol": 0}


def assert_clear(err: BaseException, where: str = "") -> None:
    """The house shape: a BrainAIError naming the public entry, got/expected, a Hint."""
    assert isinstance(err, BrainAIError), f"{type(err).__name__}: {err}"
    msg = str(err)
    assert msg.startswith(where), msg
    assert "(got " in msg and "; expected " in msg and "\n  Hint: " in msg, msg


def _z(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.zeros(shape, dtype=dtype)


def _lif(**kw: object) -> LIFNeuron:
    return LIFNeuron(features=4, **kw)  # type: ignore[arg-type]


CASES: list[tuple[str, Callable[[], object], type[BrainAIError], str]] = [
    # ---- features= holds on every entry, not only forward
    ("step, other neuron count", lambda: _lif().step(_z(2, 5)), ShapeError, "LIFNeuron.step"),
    ("sequence, other neuron count", lambda: _lif().sequence(_z(2, 3, 5)), ShapeError,
     "LIFNeuron.sequence"),
    ("step given a sequence", lambda: _lif().step(_z(2, 3, 4)), ShapeError, "LIFNeuron.step"),
    ("sequence given one step", lambda: _lif().sequence(_z(2, 4)), ShapeError,
     "LIFNeuron.sequence"),
    ("SpikingSequential, other neuron count",
     lambda: SpikingSequential(nn.Linear(3, 5), _lif())(_z(2, 3, 3)), ShapeError,
     "LIFNeuron.sequence"),
    ("SpikingSequential folded, other neuron count",
     lambda: SpikingSequential(nn.Linear(3, 5), _lif(), fold_time=True)(_z(2, 3, 3)),
     ShapeError, "LIFNeuron.sequence"),
    ("step, integer input", lambda: _lif().step(_z(2, 4, dtype=torch.long)), ShapeError,
     "LIFNeuron.step"),
    ("sequence, bool input", lambda: _lif().sequence(_z(2, 3, 4, dtype=torch.bool)),
     ShapeError, "LIFNeuron.sequence"),
    ("step, not a tensor", lambda: _lif().step([[0.0] * 4]), ShapeError, "LIFNeuron.step"),
    ("projected recurrent step, other input size",
     lambda: RecurrentLIFNeuron(4, in_features=3).step(_z(2, 4)), ShapeError,
     "RecurrentLIFNeuron.step"),
    # ---- every state field is checked, not only v
    ("synapse current (1, N) is not broadcast",
     lambda: _lif(alpha=0.5).step(_z(2, 4), SpikingState(v=_z(2, 4), i=_z(1, 4))),
     ShapeError, "LIFNeuron.step"),
    ("refractory counter of another batch",
     lambda: _lif(refractory_steps=2).sequence(_z(2, 3, 4),
                                               SpikingState(v=_z(2, 4), ref=_z(3, 4))),
     ShapeError, "LIFNeuron.sequence"),
    ("state of an adaptive neuron (extra field a)",
     lambda: _lif().step(_z(2, 4), AdaptiveLIFNeuron(features=4).reset_state(2)),
     ShapeError, "LIFNeuron.step"),
    ("state of a recurrent neuron (extra field prev_spk)",
     lambda: _lif().sequence(_z(2, 3, 4), RecurrentLIFNeuron(4).reset_state(2)),
     ShapeError, "LIFNeuron.sequence"),
    ("spike history of another depth",
     lambda: AdvancedLIFNeuron(4, max_delay=2).step(
         _z(2, 4), AdvancedLIFNeuron(4, max_delay=3).reset_state(2)),
     ShapeError, "AdvancedLIFNeuron.step"),
    ("integer membrane", lambda: _lif().step(_z(2, 4), SpikingState(v=_z(2, 4,
                                                                        dtype=torch.long))),
     ShapeError, "LIFNeuron.step"),
    ("a field that is not a tensor",
     lambda: _lif(alpha=0.5).step(_z(2, 4), SpikingState(v=_z(2, 4), i=[0.0] * 4)),
     ShapeError, "LIFNeuron.step"),
    ("network state with a broadcast current",
     lambda: SpikingSequential(nn.Linear(3, 4), _lif(alpha=0.5))(
         _z(2, 3, 3), (None, SpikingState(v=_z(2, 4), i=_z(1, 4)))),
     ShapeError, "LIFNeuron.sequence"),
    ("reset_state, empty feature axis", lambda: LIFNeuron().reset_state(2, (0,)), ShapeError,
     "LIFNeuron.reset_state"),
    ("reset_state, bool batch", lambda: _lif().reset_state(True), ShapeError,
     "LIFNeuron.reset_state"),
    # ---- configuration numbers
    ("v_reset NaN", lambda: LIFNeuron(v_reset=float("nan")), ConfigError, "LIFNeuron"),
    ("v_reset +Inf", lambda: LIFNeuron(v_reset=float("inf")), ConfigError, "LIFNeuron"),
    ("v_reset -Inf, adaptive", lambda: AdaptiveLIFNeuron(v_reset=-float("inf")), ConfigError,
     "AdaptiveLIFNeuron"),
    ("v_reset per neuron", lambda: LIFNeuron(v_reset=torch.zeros(3)), ConfigError, "LIFNeuron"),
    ("v_reset a string", lambda: LIFNeuron(v_reset="0"), ConfigError, "LIFNeuron"),
    ("negative threshold, adaptive (no peer)",
     lambda: AdaptiveLIFNeuron(threshold=-0.5), ConfigError, "AdaptiveLIFNeuron"),
    ("negative per-neuron threshold, advanced (no peer)",
     lambda: AdvancedLIFNeuron(2, threshold=torch.tensor([1.0, -1.0])), ConfigError,
     "AdvancedLIFNeuron"),
]


@pytest.mark.parametrize(("name", "call", "cls", "where"), CASES, ids=[c[0] for c in CASES])
def test_entry_refuses_with_a_clear_error(name: str, call: Callable[[], object],
                                          cls: type[BrainAIError], where: str) -> None:
    with pytest.raises(cls) as info:
        call()
    assert_clear(info.value, where)


def test_messages_name_the_field_and_both_shapes() -> None:
    with pytest.raises(ShapeError) as info:
        _lif(alpha=0.5).step(_z(2, 4), SpikingState(v=_z(2, 4), i=_z(1, 4)))
    msg = str(info.value)
    assert "state.i has shape (1, 4)" in msg and "(2, 4)" in msg and "never broadcast" in msg
    with pytest.raises(ShapeError) as info:
        _lif().step(_z(2, 4), AdaptiveLIFNeuron(features=4).reset_state(2))
    assert "['a']" in str(info.value) and "never dropped or carried" in str(info.value)
    with pytest.raises(ShapeError) as info:
        _lif().step(_z(2, 5))
    assert "(got (2, 5); expected (B, 4))" in str(info.value)
    with pytest.raises(ConfigError) as info:
        AdaptiveLIFNeuron(threshold=-0.5)
    assert "negative threshold is refused" in str(info.value)


# ----------------------------------------------------------------------------- accepted edges


def test_negative_threshold_is_accepted_where_snntorch_accepts_it() -> None:
    """snnTorch ``Leaky(beta=0.9, threshold=-0.5)`` (delayed subtract reset) and brain_ai give
    the same spikes and membranes bit for bit; such a neuron fires at rest (x = 0):
    mem_0 = 0 > -0.5 fires, then mem_1 = 0.9·0 + 0 - (-0.5) = 0.5, ... as the peer computes."""
    import snntorch as snn  # a peer: installed wherever tests run (never skipped)

    from brain_ai.adapters.snntorch import from_snntorch

    peer = snn.Leaky(beta=0.9, threshold=-0.5)
    ours = from_snntorch(peer)
    assert float(ours.threshold) == -0.5
    x = torch.rand(6, 3, 4, generator=torch.Generator().manual_seed(0)) - 0.5  # (T, B, N)
    mem = peer.init_leaky()
    spk_peer, mem_peer = [], []
    for x_t in x:
        s, mem = peer(x_t, mem)
        spk_peer.append(s)
        mem_peer.append(mem)
    spikes, _, tr = ours.sequence(x.transpose(0, 1), record=("v",))
    torch.testing.assert_close(spikes, torch.stack(spk_peer, 1), **EXACT)
    torch.testing.assert_close(tr["v"], torch.stack(mem_peer, 1), **EXACT)
    silent, _, _ = ours.sequence(torch.zeros(1, 4, 4))
    assert silent[0, 0].tolist() == [1.0] * 4  # fires at rest, as the peer does


def test_zero_threshold_is_accepted_by_the_adaptive_neuron() -> None:
    """θ = 0, κ = 0.5, ρ = 1, x = [0.2, 0.2]: h = 0.2 > 0 fires, a = 1, v = 0.2 - 0 = 0.2;
    then h = 0.9·0.2 + 0.2 = 0.38 < θ_eff = 0.5: silent."""
    n = AdaptiveLIFNeuron(threshold=0.0, adapt_scale=0.5, adapt_decay=1.0, features=1)
    spikes, _ = n(torch.tensor([[[0.2], [0.2]]]))
    assert spikes.flatten().tolist() == [1.0, 0.0]


@pytest.mark.parametrize("decay_input", [True, False])
def test_float64_rate_charge_equals_spikingjelly_plif_bit_for_bit(decay_input: bool) -> None:
    """The rate charge's ``q = sigmoid(w)`` is computed in the model's dtype: in float64 the
    neuron equals SpikingJelly ``ParametricLIFNode`` in float64 exactly (it used to compute
    ``q`` in float32, which differs from float64 ``1/3`` in the 9th digit)."""
    import spikingjelly.activation_based.neuron as sj  # a peer (never skipped)

    from brain_ai.physics.surrogates import Sigmoid

    node = sj.ParametricLIFNode(init_tau=3.0, decay_input=decay_input, v_reset=0.0,
                                step_mode="m").double()
    ours = LIFNeuron(beta=None, tau=3.0, charge="rate_input" if decay_input else "rate",
                     comparator=">=", reset="zero", learn_tau=True, surrogate=Sigmoid(4.0),
                     dtype_policy="input", features=5).double()
    assert ours.leak().dtype == torch.float64
    assert ours.leak().item() == node.w.sigmoid().item()  # 1/3 in float64, not float32
    x = torch.rand(3, 20, 5, generator=torch.Generator().manual_seed(1),
                   dtype=torch.float64) * 1.5
    spikes_peer = node(x.transpose(0, 1).contiguous()).transpose(0, 1)
    spikes, state, _ = ours.sequence(x)
    assert spikes.dtype == state.v.dtype == torch.float64
    assert float(spikes.detach().sum()) > 5  # the comparison is not vacuous
    torch.testing.assert_close(spikes, spikes_peer, **EXACT)
    torch.testing.assert_close(state.v, node.v, **EXACT)


def test_rate_charge_keeps_at_least_float32() -> None:
    """A half-precision model still resolves q in float32 (as before): only float64 changed."""
    n = LIFNeuron(beta=None, tau=2.0, charge="rate", features=2)
    assert n.leak().dtype == torch.float32
    assert n.half().leak().dtype == torch.float32


def test_a_matching_state_of_every_field_is_used_as_given() -> None:
    """Nothing is repaired: i = 1 with α = 0.5, x = 0: i' = 0.5, v' = 0.9·0 + 0.5 = 0.5."""
    n = _lif(alpha=0.5)
    spikes, state = n.step(_z(2, 4), SpikingState(v=_z(2, 4), i=torch.ones(2, 4)))
    assert state.i.tolist() == [[0.5] * 4] * 2 and state.v.tolist() == [[0.5] * 4] * 2
    assert spikes.tolist() == [[0.0] * 4] * 2


# ----------------------------------------------------------------------------- properties

VARIANTS: dict[str, Callable[[], nn.Module]] = {
    "lif": lambda: LIFNeuron(features=3),
    "lif-synapse-refractory": lambda: LIFNeuron(features=3, alpha=0.5, refractory_steps=2),
    "adaptive": lambda: AdaptiveLIFNeuron(features=3),
    "recurrent": lambda: RecurrentLIFNeuron(3),
    "advanced": lambda: AdvancedLIFNeuron(3, max_delay=2),
    "network": lambda: SpikingSequential(nn.Linear(2, 3), LIFNeuron(features=3)),
}
FIELDS = ("v", "i", "a", "prev_spk", "spike_history", "ref")
DTYPES = (torch.float32, torch.float64, torch.int64, torch.bool, torch.float16)


@st.composite
def neuron_inputs(draw: st.DrawFn) -> tuple[str, str, torch.Tensor, object]:
    """A variant, an entry, an input of a random shape/dtype/values, and maybe a state.

    Drawn near the valid input (right sizes, float) so that both outcomes are exercised."""
    variant = draw(st.sampled_from(sorted(VARIANTS)))
    entry = draw(st.sampled_from(("forward", "step", "sequence")))
    good = 2 if variant == "network" else 3
    b = draw(st.sampled_from((1, 2, 3, 0)))
    t = draw(st.sampled_from((1, 2, 3, 0)))
    n = draw(st.sampled_from((good, good, good, 4)))
    one_step = entry == "step" and variant != "network"
    right = (b, n) if one_step else (b, t, n)
    shape = draw(st.sampled_from((right, right, right, (b, n), (b, t, n, 1), (n,))))
    dtype = draw(st.sampled_from((torch.float32, torch.float32, torch.float64, torch.float16,
                                  torch.int64, torch.bool)))
    fill = draw(st.sampled_from((0.5, 2.0, 2.0, float("nan"), float("inf"), -float("inf"))))
    x = (torch.full(shape, fill) if dtype.is_floating_point else torch.ones(shape)).to(dtype)
    state: object = None
    if variant != "network" and draw(st.booleans()):
        proper = VARIANTS[variant]().reset_state(max(b, 1))  # type: ignore[operator]
        fields = set(proper.tensors())
        if draw(st.booleans()):  # a wrong field set or a wrong shape
            fields = {"v"} | draw(st.sets(st.sampled_from(FIELDS)))
        sb = draw(st.sampled_from((max(b, 1), max(b, 1), 1, 3)))
        sn = draw(st.sampled_from((3, 3, 1, 4)))
        depth = getattr(proper.spike_history, "shape", (0, 4))[1]
        state = SpikingState(**{f: torch.zeros((sb, depth, sn) if f == "spike_history"
                                               else (sb, sn)) for f in fields})
    return variant, entry, x, state


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(neuron_inputs())
def test_generated_bad_input_gives_a_clear_error_or_a_correct_result(
        case: tuple[str, str, torch.Tensor, object]) -> None:
    variant, entry, x, state = case
    module = VARIANTS[variant]()
    call = module if entry == "forward" or variant == "network" else getattr(module, entry)
    try:
        out = call(x, state) if variant != "network" or state is None else call(x)
    except BrainAIError as err:
        assert_clear(err)
        event(f"clear error: {type(err).__name__}")
        return
    event("accepted")
    spikes, new_state = out[0], out[1]
    # accepted: the shapes matched, so the result is the documented one
    assert x.is_floating_point() and x.shape[0] > 0
    n_out = 3
    assert spikes.shape[-1] == n_out and spikes.shape[:-1] == x.shape[:-1]
    if x.dim() == 3 and variant != "network":  # a sequence equals its step loop, bit for bit
        loop_state, loop = state, []
        for x_t in x.unbind(1):
            s_t, loop_state = module.step(x_t, loop_state)
            loop.append(s_t)
        torch.testing.assert_close(spikes, torch.stack(loop, 1), **EXACT)
    finite_in = bool(torch.isfinite(x).all())
    values = spikes.unique().tolist()
    assert set(values) <= {0.0, 1.0}, values
    if not finite_in and variant != "network":
        # NaN policy of the neurons: values are not inspected (no host sync per step);
        # a NaN input never fires (NaN > θ is false) and leaves a NaN membrane
        v = new_state.v
        if bool(torch.isnan(x).all()):
            assert values in ([0.0], []) and bool(torch.isnan(v).all())
