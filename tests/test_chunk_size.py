"""``chunk_size`` (truncated-BPTT window) is resolved in one place, identically in both orders.

Precedence (:func:`brain_ai.physics.windows.resolve_chunk_size`): an explicit ``chunk_size``
given by the caller (a neuron call, or a :class:`SpikingSequential`'s own ``chunk_size`` for
every neuron in it) wins; ``None`` there defers to the neuron's own ``chunk_size``; ``None``
everywhere is full BPTT. A neuron's windows start at ``t % chunk == 0`` of the sequence, in
the layer-by-layer order (``fold_time=True``) and in the step-by-step order alike.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from brain_ai.config import SNNConfig
from brain_ai.core.neurons import AdaptiveLIFNeuron, LIFNeuron, RecurrentLIFNeuron
from brain_ai.core.snn import SNNCore, SpikingSequential
from brain_ai.core.unroll import snn_unroll
from brain_ai.errors import ConfigError
from brain_ai.physics.state import SpikingState, detach_state
from brain_ai.physics.windows import resolve_chunk_size

T = 8
# both orders run the same float64 operations per step; only the order in which a weight
# gradient sums its T·B terms differs (one folded matmul vs one matmul per step)
TIGHT = {"rtol": 1e-12, "atol": 1e-12}
EXACT = {"rtol": 0, "atol": 0}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _net(chunks: tuple[int | None, int | None], fold: bool, container: int | None = None,
         kinds: tuple[str, str] = ("lif", "lif")) -> SpikingSequential:
    """``Linear(4, 6) -> neuron -> Linear(6, 3) -> neuron`` in float64, seeded weights."""
    def neuron(kind: str, n: int, chunk: int | None) -> nn.Module:
        if kind == "adaptive":
            return AdaptiveLIFNeuron(beta=0.8, alpha=0.7, features=n, chunk_size=chunk,
                                     learn_adaptation=True)
        if kind == "recurrent":
            return RecurrentLIFNeuron(n, recurrent="one_to_one", V=0.5, beta=0.8,
                                      chunk_size=chunk)
        return LIFNeuron(beta=0.85, features=n, chunk_size=chunk, learn_beta=True,
                         learn_threshold=True)

    net = SpikingSequential(nn.Linear(4, 6), neuron(kinds[0], 6, chunks[0]),
                            nn.Linear(6, 3), neuron(kinds[1], 3, chunks[1]),
                            fold_time=fold, chunk_size=container).double()
    g = _gen(0)
    with torch.no_grad():
        for p in (net[0].weight, net[0].bias, net[2].weight, net[2].bias):
            p.copy_((torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1) * 1.5)
    return net


def _x() -> torch.Tensor:
    return torch.rand(3, T, 4, generator=_gen(1), dtype=torch.float64) * 2


def _run(net: SpikingSequential, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Output and the gradients of (input, every parameter) of a weighted output sum."""
    x = x.clone().requires_grad_()
    net.zero_grad(set_to_none=True)
    out, _ = net(x)
    w = torch.rand(out.shape, generator=_gen(2), dtype=out.dtype)
    (out * w).sum().backward()
    return out.detach(), [x.grad] + [p.grad for p in net.parameters()]


def _assert_same(a: tuple[torch.Tensor, list[torch.Tensor]],
                 b: tuple[torch.Tensor, list[torch.Tensor]]) -> None:
    torch.testing.assert_close(a[0], b[0], **EXACT)
    assert len(a[1]) == len(b[1])
    for ga, gb in zip(a[1], b[1], strict=True):
        # a parameter whose every path is cut (AdaptiveLIF's adapt_decay with chunk_size=1:
        # the decayed adaptation only reaches the next step, across an edge) gets a zero
        # gradient in one order and none in the other: the same number
        if ga is None and gb is None:
            continue
        ga = torch.zeros_like(gb) if ga is None else ga
        gb = torch.zeros_like(ga) if gb is None else gb
        torch.testing.assert_close(ga, gb, **TIGHT)


def _reference(net: SpikingSequential, x: torch.Tensor,
               chunks: list[int | None]) -> torch.Tensor:
    """Hand-built truncated BPTT, step by step: neuron ``i``'s state is detached before every
    step ``t > 0`` with ``t % chunks[i] == 0``, nothing else is cut."""
    states: list[SpikingState | None] = [None] * len(net)
    outs = []
    for t in range(x.shape[1]):
        h = x[:, t]
        for i, layer in enumerate(net):
            if not hasattr(layer, "chunk_size"):
                h = layer(h)
                continue
            c = chunks[i]
            if c is not None and t > 0 and t % c == 0:
                states[i] = detach_state(states[i])
            h, states[i] = layer.step(h, states[i])
        outs.append(h)
    return torch.stack(outs, 1)


# ---------------------------------------------------------------- the reported repro


def test_neuron_chunk_size_is_honoured_in_both_orders() -> None:
    """The report: ``LIFNeuron(chunk_size=2)`` in a SpikingSequential gave weight gradients
    that differed between ``fold_time=True`` and ``fold_time=False`` (the step-by-step order
    ignored the neuron's window and ran full BPTT)."""
    x = _x()
    folded = _run(_net((2, 2), fold=True), x)
    stepped = _run(_net((2, 2), fold=False), x)
    _assert_same(folded, stepped)
    # and both really are truncated: full BPTT gives other gradients
    full = _run(_net((None, None), fold=False), x)
    assert not torch.allclose(full[1][1], stepped[1][1])


@pytest.mark.parametrize("chunks", [(2, 3), (None, 3), (3, None), (1, 5), (2, 2), (5, 100)])
@pytest.mark.parametrize("kinds", [("lif", "lif"), ("adaptive", "recurrent")])
def test_mixed_neuron_windows_agree_between_orders(chunks: tuple[int | None, int | None],
                                                   kinds: tuple[str, str]) -> None:
    x = _x()
    _assert_same(_run(_net(chunks, fold=True, kinds=kinds), x),
                 _run(_net(chunks, fold=False, kinds=kinds), x))


@pytest.mark.parametrize("chunks", [(2, 3), (None, 3)])
@pytest.mark.parametrize("fold", [False, True])
def test_truncated_gradients_equal_a_hand_detached_loop(chunks: tuple[int | None, int | None],
                                                        fold: bool) -> None:
    net = _net(chunks, fold=fold)
    x = _x()
    got = _run(net, x)
    xr = x.clone().requires_grad_()
    net.zero_grad(set_to_none=True)
    out = _reference(net, xr, [None, chunks[0], None, chunks[1]])
    w = torch.rand(out.shape, generator=_gen(2), dtype=out.dtype)
    (out * w).sum().backward()
    torch.testing.assert_close(got[0], out.detach(), **EXACT)
    for g_got, g_ref in zip(got[1], [xr.grad] + [p.grad for p in net.parameters()],
                            strict=True):
        torch.testing.assert_close(g_got, g_ref, **TIGHT)


@pytest.mark.parametrize("fold", [False, True])
def test_no_gradient_crosses_either_neurons_window_edge(fold: bool) -> None:
    """``d out[t] / d x[s]`` is nonzero only along a path ``s <= u <= t`` with ``u`` in the
    first neuron's window of ``s`` (chunk 2) and in the second neuron's window of ``t``
    (chunk 3); exactly zero otherwise (ATan's surrogate is never zero, so every open path
    carries gradient)."""
    c1, c2 = 2, 3
    net = _net((c1, c2), fold=fold)
    x = _x().requires_grad_()
    out, _ = net(x)
    for t in range(T):
        (g,) = torch.autograd.grad(out[:, t].sum(), x, retain_graph=True)
        for s in range(T):
            open_path = any(u // c1 == s // c1 and u // c2 == t // c2
                            for u in range(s, t + 1))
            if open_path:
                assert (g[:, s] != 0).any(), (t, s)
            else:
                assert (g[:, s] == 0).all(), (t, s)


# ---------------------------------------------------------------- container vs neuron


@pytest.mark.parametrize("own", [(None, None), (2, 5), (3, None)])
@pytest.mark.parametrize("fold", [False, True])
def test_a_container_chunk_size_overrides_every_neurons_own(own: tuple[int | None, int | None],
                                                            fold: bool) -> None:
    x = _x()
    got = _run(_net(own, fold=fold, container=4), x)
    _assert_same(got, _run(_net((4, 4), fold=fold), x))
    _assert_same(got, _run(_net(own, fold=not fold, container=4), x))


def test_container_none_defers_to_each_neuron() -> None:
    """``SpikingSequential(chunk_size=None)``: each neuron keeps its own window."""
    x = _x()
    a = _run(_net((2, 3), fold=False), x)
    b = _run(_net((2, 3), fold=True), x)
    _assert_same(a, b)
    assert not torch.allclose(a[1][1], _run(_net((None, None), fold=False), x)[1][1])


def test_windows_follow_a_chunk_size_changed_after_construction() -> None:
    x = _x()
    net = _net((None, None), fold=False)
    net[1].chunk_size, net[3].chunk_size = 2, 3
    _assert_same(_run(net, x), _run(_net((2, 3), fold=True), x))
    net.chunk_size = 0
    with pytest.raises(ConfigError, match="SpikingSequential"):
        net(x)


def test_snncore_config_chunk_size_agrees_between_orders() -> None:
    cfg = SNNConfig(input_size=4, hidden_sizes=(6,), output_size=3, chunk_size=3)
    a, b = SNNCore(cfg, fold_time=True), SNNCore(cfg, fold_time=False)
    b.load_state_dict(a.state_dict())
    x = torch.rand(2, T, 4, generator=_gen(3)) * 2
    ga, gb = _run(a, x), _run(b, x)
    torch.testing.assert_close(ga[0], gb[0], **EXACT)
    for p, q in zip(ga[1], gb[1], strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- the resolver


def test_resolve_chunk_size_precedence() -> None:
    assert resolve_chunk_size("f") is None
    assert resolve_chunk_size("f", own=4) == 4
    assert resolve_chunk_size("f", call=3) == 3
    assert resolve_chunk_size("f", call=3, own=4) == 3
    assert resolve_chunk_size("f", call=None, own=4) == 4


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3", True])
@pytest.mark.parametrize("slot", ["call", "own"])
def test_resolve_chunk_size_checks_both_values(bad: object, slot: str) -> None:
    with pytest.raises(ConfigError, match=r"^f: chunk_size .*\n  Hint:"):
        resolve_chunk_size("f", **{slot: bad})


def test_a_neuron_call_overrides_its_own_chunk_size() -> None:
    x = torch.rand(2, T, 3, generator=_gen(4)).requires_grad_()
    own = LIFNeuron(beta=0.8, features=3, chunk_size=2)
    plain = LIFNeuron(beta=0.8, features=3)
    (g_own,) = torch.autograd.grad(own(x, chunk_size=3)[0].sum(), x)
    (g_plain,) = torch.autograd.grad(plain(x, chunk_size=3)[0].sum(), x)
    (g_two,) = torch.autograd.grad(plain(x, chunk_size=2)[0].sum(), x)
    torch.testing.assert_close(g_own, g_plain, **EXACT)
    assert not torch.equal(g_own, g_two)


def test_snn_unroll_windows_are_the_same_edges() -> None:
    """``snn_unroll(chunk_size=c)`` cuts before every step ``t > 0`` with ``t % c == 0``."""
    x = torch.ones(1, 7, 1, requires_grad=True)

    def cell(x_t: torch.Tensor, s: SpikingState) -> tuple[torch.Tensor, SpikingState]:
        v = s.v + x_t
        return v, SpikingState(v=v)

    res = snn_unroll(cell, x, SpikingState(v=torch.zeros(1, 1)), chunk_size=3)
    (g,) = torch.autograd.grad(res.spikes[:, 6].sum(), x)
    assert g.flatten().tolist() == [0, 0, 0, 0, 0, 0, 1]
    (g,) = torch.autograd.grad(res.spikes[:, 5].sum(), x)
    assert g.flatten().tolist() == [0, 0, 0, 1, 1, 1, 0]
