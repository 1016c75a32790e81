"""``brain-ai validate``: runtime contract checks over every neuron variant (seed 000).

The command form of the seed's ``validate_spiking.py``. Every variant in :data:`VARIANTS` is
built, fed seeded random input, and checked against the contract of
:mod:`brain_ai.core.neurons`:

=============  ===========================================================================
column         passes when
=============  ===========================================================================
``shape_step`` step input ``(B, *f_in)`` gives spikes and ``state.v`` of shape ``(B, *f)``
``shape_seq``  sequence input ``(B, T, *f_in)`` gives spikes ``(B, T, *f)``, ``state.v``
               ``(B, *f)``
``binary``     every forward spike is exactly ``0.0`` or the variant's spike value (1, or the
               graded factor), in both modes
``purity``     the state passed in is unchanged by the call, and the module's attributes and
               buffers are unchanged (no state on ``self``)
``detach``     ``detach_state`` keeps the values and cuts the graph; ``carry_state=True``
               returns a detached state
``finite``     no NaN/Inf in spikes or membrane over ``T = 1000`` steps of large inputs
``fp32_amp``   under ``torch.autocast("cpu", dtype=torch.bfloat16)``, with the input coming
               from an autocast ``Linear`` (bf16), every state tensor is float32
``tbptt``      ``chunk_size=3`` gives spikes and final state bit-identical to full BPTT
``grads``      the gradient of the spikes reaches the input and every learnable parameter,
               finite and not all zero
=============  ===========================================================================

It prints a pass/fail table (rows = variants, columns = checks), then the reason of each
failure, then the codec rows of :mod:`brain_ai.apps.validate_codecs` if that module is installed,
then one total over every check that ran (neuron and codec checks together), and returns 1 if
anything failed, else 0.

:data:`VARIANTS` is also the list the contract tests are parametrized over, so a new variant
is covered by the CLI and the test suite by adding one entry.
"""

from __future__ import annotations

import argparse
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from brain_ai.core.neurons import (
    AdaptiveLIFNeuron,
    AdvancedLIFNeuron,
    LIFNeuron,
    RecurrentLIFNeuron,
    SpikingNeuronBase,
)
from brain_ai.physics.state import SpikingState
from brain_ai.text_table import text_table

__all__ = [
    "CHECKS",
    "VARIANTS",
    "Variant",
    "add_arguments",
    "run",
    "run_checks",
    "seeded_init",
]

F = 4  # neurons per sample in the flat variants


def seeded_init(module: nn.Module, seed: int) -> nn.Module:
    """Re-draw every ``Linear``/``Conv2d`` weight and bias of ``module`` from a seeded generator.

    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (PyTorch's default range), so a variant is the same
    module in every run regardless of the global RNG. Returns ``module``.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, (nn.Linear, nn.Conv2d)):
                bound = 1.0 / math.sqrt(sub.weight[0].numel())
                for p in (sub.weight, sub.bias):
                    if p is not None:
                        p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * bound)
    return module


@dataclass(frozen=True)
class Variant:
    """One neuron configuration under test.

    Attributes:
        name: row label.
        build: ``() -> neuron``, deterministic (seeded weights).
        in_shape: feature shape of one input sample (``(3,)`` for an input projection).
        out_shape: feature shape of one output sample.
        spike_value: the nonzero forward spike value (1.0, or the graded factor).
    """

    name: str
    build: Callable[[], SpikingNeuronBase]
    in_shape: tuple[int, ...] = (F,)
    out_shape: tuple[int, ...] = (F,)
    spike_value: float = 1.0

    def __repr__(self) -> str:
        return f"Variant({self.name})"


def _rec(**kwargs: object) -> Callable[[], SpikingNeuronBase]:
    def build() -> SpikingNeuronBase:
        return seeded_init(RecurrentLIFNeuron(**kwargs), 1234)  # type: ignore[arg-type]
    return build


VARIANTS: tuple[Variant, ...] = (
    Variant("lif", lambda: LIFNeuron(beta=0.9, features=F, learn_beta=True,
                                     learn_threshold=True)),
    Variant("lif_alpha_synapse", lambda: LIFNeuron(beta=0.9, alpha=0.8, learn_alpha=True,
                                                   features=F)),
    Variant("lif_refractory", lambda: LIFNeuron(beta=0.9, refractory_steps=2, features=F)),
    Variant("lif_graded", lambda: LIFNeuron(beta=0.9, graded_spikes_factor=0.5,
                                            learn_graded_spikes_factor=True, features=F),
            spike_value=0.5),
    Variant("lif_tau", lambda: LIFNeuron(beta=None, tau=2.0, charge="tau", learn_tau=True,
                                         features=F)),
    Variant("lif_tau_input", lambda: LIFNeuron(beta=None, tau=2.0, charge="tau_input",
                                               learn_tau=True, features=F)),
    Variant("lif_rate", lambda: LIFNeuron(beta=None, tau=2.0, charge="rate", learn_tau=True,
                                          features=F)),
    Variant("lif_rate_input", lambda: LIFNeuron(beta=None, tau=2.0, charge="rate_input",
                                                learn_tau=True, features=F)),
    Variant("lif_sigmoid_beta", lambda: LIFNeuron(beta=0.9, beta_param="sigmoid",
                                                  learn_beta=True, features=F)),
    Variant("lif_delayed_reset", lambda: LIFNeuron(beta=0.9, reset_timing="delayed",
                                                   features=F)),
    Variant("lif_zero_ge", lambda: LIFNeuron(beta=0.9, reset="zero", comparator=">=",
                                             detach_reset=True, features=F)),
    Variant("adaptive", lambda: AdaptiveLIFNeuron(beta=0.9, learn_adaptation=True,
                                                  features=F)),
    Variant("recurrent_linear", _rec(features=F)),
    Variant("recurrent_one_to_one", _rec(features=F, recurrent="one_to_one", V=0.5)),
    Variant("recurrent_conv2d", _rec(features=(2, 4, 4), recurrent="conv2d"),
            in_shape=(2, 4, 4), out_shape=(2, 4, 4)),
    Variant("recurrent_in_features", _rec(features=F, in_features=3), in_shape=(3,)),
    Variant("advanced", lambda: AdvancedLIFNeuron(F)),
)

B, T = 3, 8


def _input(v: Variant, g: torch.Generator, steps: int | None = T, scale: float = 2.0) -> Tensor:
    shape = (B, *v.in_shape) if steps is None else (B, steps, *v.in_shape)
    return torch.rand(shape, generator=g) * scale


def _clone(state: SpikingState) -> dict[str, Tensor]:
    return {k: t.detach().clone() for k, t in state.tensors().items()}


def _same(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def _random_state(n: SpikingNeuronBase, v: Variant, g: torch.Generator) -> SpikingState:
    state = n.reset_state(B, v.out_shape)
    return SpikingState(**{k: torch.rand(t.shape, generator=g) for k, t in
                           state.tensors().items()})


# Each check returns "" on success, else the reason of the failure.
def check_shape_step(v: Variant, g: torch.Generator) -> str:
    n = v.build()
    s, st = n(_input(v, g, None))
    want = (B, *v.out_shape)
    if tuple(s.shape) != want or tuple(st.v.shape) != want:
        return f"spikes {tuple(s.shape)}, state.v {tuple(st.v.shape)}; expected {want}"
    return ""


def check_shape_seq(v: Variant, g: torch.Generator) -> str:
    n = v.build()
    s, st = n(_input(v, g))
    if tuple(s.shape) != (B, T, *v.out_shape) or tuple(st.v.shape) != (B, *v.out_shape):
        return (f"spikes {tuple(s.shape)}, state.v {tuple(st.v.shape)}; expected "
                f"{(B, T, *v.out_shape)} and {(B, *v.out_shape)}")
    return ""


def check_binary(v: Variant, g: torch.Generator) -> str:
    n = v.build()
    allowed = torch.tensor([0.0, v.spike_value])
    # a large step input, so that one step from rest fires (tau charges halve the input)
    for mode, x in (("step", _input(v, g, None, 6.0)), ("sequence", _input(v, g))):
        s, _ = n(x)
        values = s.detach().unique()
        if not torch.isin(values, allowed).all():
            return f"{mode} spikes take values {values.tolist()}"
        if not (values == v.spike_value).any():
            return f"{mode}: no neuron fired; the check is vacuous"
    return ""


def check_purity(v: Variant, g: torch.Generator) -> str:
    n = v.build()
    attrs = dict(vars(n))
    buffers = {k: b.clone() for k, b in n.named_buffers()}
    params = {k: p.detach().clone() for k, p in n.named_parameters()}
    for mode, x in (("step", _input(v, g, None)), ("sequence", _input(v, g))):
        state = _random_state(n, v, g)
        before = _clone(state)
        n(x, state)
        if not _same(before, _clone(state)):
            return f"{mode} mode changed the state passed in"
    if vars(n).keys() != attrs.keys() or any(vars(n)[k] is not attrs[k] for k in attrs):
        return "forward changed the module's attributes"
    now = dict(n.named_buffers())
    if now.keys() != buffers.keys() or any(not torch.equal(now[k], buffers[k]) for k in now):
        return "forward changed a buffer"
    if any(not torch.equal(p, params[k]) for k, p in n.named_parameters()):
        return "forward changed a parameter"
    return ""


def check_detach(v: Variant, g: torch.Generator) -> str:
    n = v.build()
    x = _input(v, g).requires_grad_()
    _, st = n(x)
    if st.v.grad_fn is None:
        return "the final state has no graph to cut (input requires grad)"
    d = n.detach_state(st)
    if any(t.requires_grad for t in d.tensors().values()):
        return "detach_state left a tensor attached to the graph"
    if not _same(_clone(st), _clone(d)):
        return "detach_state changed the values"
    _, carried = n(x, carry_state=True)
    if any(t.requires_grad for t in carried.tensors().values()):
        return "carry_state=True returned a state attached to the graph"
    if not _same(_clone(st), _clone(carried)):
        return "carry_state=True changed the final state"
    return ""


def check_finite(v: Variant, g: torch.Generator) -> str:
    n = v.build()
    steps = 1000
    x = torch.randn((B, steps, *v.in_shape), generator=g) * 100.0
    with torch.no_grad():
        s, st, traces = n.sequence(x, record=("v",))
    bad = [name for name, t in (("spikes", s), ("membrane", traces["v"]),
                                *st.tensors().items()) if not torch.isfinite(t).all()]
    return f"non-finite values in {bad}" if bad else ""


def check_fp32_amp(v: Variant, g: torch.Generator) -> str:
    n = v.build()
    lin = seeded_init(nn.Linear(v.in_shape[-1], v.in_shape[-1]), 7)
    x = _input(v, g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = lin(x)
        s, st = n(h)
    if h.dtype != torch.bfloat16:
        return f"the autocast Linear gave {h.dtype}; the check needs bf16 input"
    wrong = {k: str(t.dtype) for k, t in st.tensors().items() if t.dtype != torch.float32}
    if wrong:
        return f"state dtypes {wrong} under autocast; expected float32"
    if not torch.isin(s.detach().unique(), torch.tensor([0.0, v.spike_value])).all():
        return "spikes not binary under autocast"
    return ""


def check_tbptt(v: Variant, g: torch.Generator) -> str:
    n = v.build()
    x = _input(v, g)
    with torch.no_grad():
        s_full, st_full = n(x)
        s_chunk, st_chunk = n(x, chunk_size=3)
    if not torch.equal(s_full, s_chunk):
        return "chunked spikes differ from full BPTT"
    if not _same(_clone(st_full), _clone(st_chunk)):
        return "chunked final state differs from full BPTT"
    return ""


def check_grads(v: Variant, g: torch.Generator) -> str:
    n = v.build()
    x = _input(v, g).requires_grad_()
    s, _ = n(x)
    w = torch.rand(s.shape, generator=g)
    (s * w).sum().backward()
    problems = []
    for name, grad in (("input", x.grad), *((k, p.grad) for k, p in n.named_parameters()
                                            if p.requires_grad)):
        if grad is None:
            problems.append(f"{name}: no gradient")
        elif not torch.isfinite(grad).all():
            problems.append(f"{name}: non-finite gradient")
        elif not (grad != 0).any():
            problems.append(f"{name}: gradient is all zero")
    return "; ".join(problems)


CHECKS: dict[str, Callable[[Variant, torch.Generator], str]] = {
    "shape_step": check_shape_step,
    "shape_seq": check_shape_seq,
    "binary": check_binary,
    "purity": check_purity,
    "detach": check_detach,
    "finite": check_finite,
    "fp32_amp": check_fp32_amp,
    "tbptt": check_tbptt,
    "grads": check_grads,
}


def run_checks(seed: int = 0, only: list[str] | None = None
               ) -> dict[str, dict[str, str]]:
    """Run every check on every variant (or the variants named in ``only``).

    Returns ``{variant: {check: reason}}``; an empty reason is a pass. A check that raises
    fails with the exception as its reason.
    """
    results: dict[str, dict[str, str]] = {}
    for i, variant in enumerate(VARIANTS):
        if only and variant.name not in only:
            continue
        row: dict[str, str] = {}
        for j, (check, fn) in enumerate(CHECKS.items()):
            g = torch.Generator().manual_seed(seed * 1_000_003 + i * 101 + j)
            try:
                row[check] = fn(variant, g)
            except Exception as exc:  # report, never hide: the reason names the exception
                row[check] = f"raised {type(exc).__name__}: {exc}".replace("\n", " ")
        results[variant.name] = row
    return results


def _table(results: dict[str, dict[str, str]]) -> str:
    """Rows = variants, columns = checks, cells ``ok`` / ``FAIL``."""
    return text_table(("variant", *CHECKS), [
        (name, *("ok" if not row[c] else "FAIL" for c in CHECKS)) for name, row in results.items()])


def _codec_section() -> tuple[list[str], list[tuple[str, bool, str]] | None]:
    """The codec table's lines and its rows (``None`` when the codec module is absent)."""
    try:
        validate_codecs = importlib.import_module("brain_ai.apps.validate_codecs")
    except ModuleNotFoundError as exc:
        if exc.name != "brain_ai.apps.validate_codecs":
            raise
        return ["codecs: skipped (brain_ai.apps.validate_codecs is not installed)"], None
    rows = validate_codecs.codec_checks()
    if not rows:
        return ["codecs: no checks reported"], rows
    table = text_table(("codec check", "result", "detail"),
                       [(name, "ok" if ok else "FAIL", detail) for name, ok, detail in rows])
    return [table], rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brain-ai validate``."""
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random inputs (default 0)")
    parser.add_argument("--only", action="append", metavar="VARIANT",
                        choices=[v.name for v in VARIANTS],
                        help="check only this variant (repeatable)")
    parser.add_argument("--no-codecs", action="store_true",
                        help="skip the codec checks of brain_ai.apps.validate_codecs")


def run(args: argparse.Namespace) -> int:
    """Print the pass/fail tables; return 1 if any check failed, else 0.

    The last line counts every check that ran, neuron and codec checks together, e.g.
    ``PASS: 177/177 checks passed (153/153 neuron checks over 17 variants, 24/24 codec
    checks)``.
    """
    results = run_checks(seed=args.seed, only=args.only)
    lines = ["brain-ai validate: neuron contract checks "
             f"(B={B}, T={T}, seed={args.seed})", "", _table(results)]
    failures = [(name, check, reason) for name, row in results.items()
                for check, reason in row.items() if reason]
    if failures:
        lines += ["", "failures:"]
        lines += [f"  {name} / {check}: {reason}" for name, check, reason in failures]
    codec_rows: list[tuple[str, bool, str]] | None = None
    if not args.no_codecs:
        codec_lines, codec_rows = _codec_section()
        lines += ["", *codec_lines]
    n_neuron = sum(len(row) for row in results.values())
    ok_neuron = n_neuron - len(failures)
    variants = f"{len(results)} variant{'' if len(results) == 1 else 's'}"
    parts = [f"{ok_neuron}/{n_neuron} neuron checks over {variants}"]
    n_codec = ok_codec = 0
    if codec_rows is None:
        parts.append("codec checks not run" if args.no_codecs else "codec checks skipped")
    else:
        n_codec, ok_codec = len(codec_rows), sum(ok for _, ok, _ in codec_rows)
        parts.append(f"{ok_codec}/{n_codec} codec checks")
    ok = ok_neuron == n_neuron and ok_codec == n_codec
    lines += ["", f"{'PASS' if ok else 'FAIL'}: {ok_neuron + ok_codec}/{n_neuron + n_codec} "
                  f"checks passed ({', '.join(parts)})"]
    print("\n".join(lines))
    return 0 if ok else 1
