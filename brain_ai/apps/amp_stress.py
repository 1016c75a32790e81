"""``brain-ai amp-stress``: every encoder, decoder and loss under autocast.

Settings: ``bfloat16`` autocast on CPU, plus ``float16`` and (where supported) ``bfloat16``
autocast on CUDA when a GPU is available. For each setting it checks:

* **losses** (the :mod:`brain_ai.core.losses` terms, the default composer and the
  snnTorch-compatible functions): the loss is finite and float32, the gradient reaching a
  float32 weight through an autocast network is finite, and the loss does not scale with
  ``T``: the record is repeated to ``2T`` steps (the same rates) and
  ``|L(2T) / L(T) - 1| <= --t-rtol``. Functions that scale with ``T`` by their peer definition
  (raw spike counts, first-spike times, L1 of the total count) report the ratio but are not held
  to it (``T-inv`` column ``n/a``).
* **encoders** (every :class:`~brain_ai.config.EncodingConfig` type): spikes are binary and
  ``(B, T, ...)``, and bit-identical to the same encoder run in float32 on the same input (all
  sampling is float32, so autocast must not change a single spike).
* **decoders** (every :class:`~brain_ai.config.DecodingConfig` type): ``logits_proxy`` is
  finite and float32, confidences lie in ``[0, 1]``, and the gradient of a cross-entropy on the
  logits is finite where a gradient path exists.

The network that feeds losses and decoders is one linear map ``(B, T, F) @ W`` run under
autocast, with straight-through spikes ``[u > 0] + σ(u) - sg(σ(u))`` (exactly 0/1 forward,
sigmoid gradient), and ``u`` as the membrane record. Prints one table row per check; exits 1 if
any row fails.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from brain_ai.config import LossConfig
from brain_ai.core import losses as L
from brain_ai.core import snntorch_losses as SL
from brain_ai.core.decoding import build_decoder
from brain_ai.core.encoding import build_encoder
from brain_ai.text_table import text_table

__all__ = ["Row", "add_arguments", "run", "stress"]

ENCODINGS = ("rate_bernoulli", "rate_poisson", "rate_deterministic", "latency", "ttfs",
             "population", "delta")
#: (row label, DecodingConfig keyword arguments)
DECODINGS: tuple[tuple[str, dict[str, object]], ...] = (
    ("rate", {"type": "rate"}),
    ("first_spike", {"type": "first_spike"}),
    ("population/classification", {"type": "population", "population_mode": "classification"}),
    ("population/regression", {"type": "population", "population_mode": "regression"}),
    ("membrane/last", {"type": "membrane", "membrane_reduce": "last"}),
    ("membrane/max", {"type": "membrane", "membrane_reduce": "max"}),
    ("ensemble", {"type": "ensemble"}),
)

LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def _loss_cases(cfg: LossConfig) -> list[tuple[str, LossFn, bool]]:
    """``(name, fn(spikes, targets, membrane) -> loss, must_be_T_invariant)``."""
    composer = L.SNNLossComposer.from_config(cfg)
    return [
        ("ProbSpikes", lambda s, y, m: L.ProbSpikes()(s, y)[0], True),
        ("SpikeRateRegularization", lambda s, y, m: L.SpikeRateRegularization()(s)[0], True),
        ("TemporalConsistency/l1", lambda s, y, m: L.TemporalConsistency(2, "l1")(s)[0], True),
        ("TemporalConsistency/l2", lambda s, y, m: L.TemporalConsistency()(s)[0], True),
        ("TemporalConsistency/variance",
         lambda s, y, m: L.TemporalConsistency(3, "variance")(s)[0], True),
        ("ISIRegularization", lambda s, y, m: L.ISIRegularization()(s)[0], True),
        ("MembraneRegularization",
         lambda s, y, m: L.MembraneRegularization()(s, membrane=m)[0], True),
        ("SNNLossComposer.from_config", lambda s, y, m: composer(s, y, membrane=m)[0], True),
        ("rate_cross_entropy", lambda s, y, m: SL.rate_cross_entropy(s, y), True),
        ("mse_membrane", lambda s, y, m: SL.mse_membrane(m, y), True),
        ("max_membrane_cross_entropy", lambda s, y, m: SL.max_membrane_cross_entropy(m, y), True),
        ("count_cross_entropy", lambda s, y, m: SL.count_cross_entropy(s, y), False),
        ("mse_count", lambda s, y, m: SL.mse_count(s, y, correct_rate=0.5), False),
        ("temporal_cross_entropy", lambda s, y, m: SL.temporal_cross_entropy(s, y), False),
        ("mse_temporal", lambda s, y, m: SL.mse_temporal(s, y), False),
        ("l1_rate_sparsity", lambda s, y, m: SL.l1_rate_sparsity(s), False),
    ]


@dataclass
class Row:
    """One line of the report."""

    kind: str
    name: str
    device: str
    dtype: str
    value: float = float("nan")
    out_dtype: str = "-"
    finite: bool = True
    grad: str = "-"  # "finite", "NONFINITE", "none" (no gradient path) or "-"
    t_ratio: float = float("nan")
    t_inv: str = "-"  # "ok", "FAIL", "n/a" or "-"
    note: str = ""
    passed: bool = True


def _settings(device: str) -> list[tuple[torch.device, torch.dtype]]:
    out: list[tuple[torch.device, torch.dtype]] = []
    if device in ("auto", "cpu"):
        out.append((torch.device("cpu"), torch.bfloat16))
    if device in ("auto", "cuda") and torch.cuda.is_available():
        out.append((torch.device("cuda"), torch.float16))
        if torch.cuda.is_bf16_supported():
            out.append((torch.device("cuda"), torch.bfloat16))
    return out


def _network(x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """``u = x @ w`` under the caller's autocast; straight-through spikes and membrane ``u``."""
    u = x @ w
    soft = torch.sigmoid(u)
    spikes = (u > 0).to(u.dtype) + (soft - soft.detach())
    return spikes, u


def _grad_state(w: Tensor) -> str:
    if w.grad is None:
        return "none"
    return "finite" if bool(torch.isfinite(w.grad).all()) else "NONFINITE"


def _short(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _loss_rows(dev: torch.device, dtype: torch.dtype, args: argparse.Namespace) -> list[Row]:
    g = torch.Generator().manual_seed(args.seed)
    b, t, f, c = args.batch, args.steps, args.features, args.classes
    x = (torch.rand(b, t, f, generator=g) * 2 - 1).to(dev)
    w0 = (torch.randn(f, c, generator=g) * 1.5).to(dev)
    y = torch.randint(0, c, (b,), generator=g).to(dev)
    rows = []
    for name, fn, invariant in _loss_cases(LossConfig()):
        row = Row("loss", name, dev.type, _short(dtype))
        values = []
        try:
            for reps in (1, 2):
                w = w0.clone().requires_grad_(True)
                with torch.autocast(dev.type, dtype=dtype):
                    spikes, mem = _network(x.repeat(1, reps, 1), w)
                    loss = fn(spikes, y, mem)
                loss.backward()
                values.append(float(loss.detach()))
                if reps == 1:
                    row.value, row.out_dtype = values[0], _short(loss.dtype)
                    row.finite = math.isfinite(values[0])
                    row.grad = _grad_state(w)
        except Exception as exc:  # reported as a failed row, never swallowed
            row.note, row.passed = f"{type(exc).__name__}: {exc}".splitlines()[0], False
            rows.append(row)
            continue
        row.t_ratio = values[1] / values[0] if values[0] != 0 else (1.0 if values[1] == 0
                                                                    else float("inf"))
        if invariant:
            row.t_inv = "ok" if abs(row.t_ratio - 1.0) <= args.t_rtol else "FAIL"
        else:
            row.t_inv = "n/a"
            row.note = "not normalized by T (peer definition)"
        row.passed = (row.finite and row.grad == "finite" and row.out_dtype == "float32"
                      and row.t_inv != "FAIL")
        rows.append(row)
    return rows


def _encoder_rows(dev: torch.device, dtype: torch.dtype, args: argparse.Namespace) -> list[Row]:
    from brain_ai.config import EncodingConfig

    g = torch.Generator().manual_seed(args.seed + 1)
    b, t, f = args.batch, args.steps, args.features
    # multiples of 1/256 in [0, 1]: exact in bfloat16 and float16, so autocast sees the same x
    x = (torch.randint(0, 257, (b, f), generator=g).float() / 256).to(dev)
    seq = (torch.randint(0, 257, (b, t, f), generator=g).float() / 256).to(dev)
    rows = []
    for kind in ENCODINGS:
        row = Row("encoder", kind, dev.type, _short(dtype))
        try:
            cfg = EncodingConfig(type=kind, num_steps=t, seed=args.seed)
            inp = seq if kind == "delta" else x
            ref = build_encoder(cfg).to(dev).train()(inp).spikes
            enc = build_encoder(cfg).to(dev).train()
            with torch.autocast(dev.type, dtype=dtype):
                out = enc(inp.to(dtype))
            s = out.spikes
            row.out_dtype = _short(s.dtype)
            row.value = float(s.float().mean())  # firing rate
            row.finite = bool(torch.isfinite(s.float()).all())
            binary = out.is_binary()
            shape_ok = s.dim() >= 3 and s.shape[0] == b and s.shape[1] == t
            mismatches = int((s.float() != ref.float()).sum()) if s.shape == ref.shape else -1
            notes = []
            if not binary:
                notes.append("non-binary spikes")
            if not shape_ok:
                notes.append(f"shape {tuple(s.shape)} is not (B={b}, T={t}, ...)")
            if mismatches:
                notes.append(f"{mismatches} spikes differ from the float32 run")
            row.note = "; ".join(notes) or "binary, (B, T, ...), identical to float32"
            row.passed = row.finite and binary and shape_ok and mismatches == 0
        except Exception as exc:  # reported as a failed row
            row.note, row.passed = f"{type(exc).__name__}: {exc}".splitlines()[0], False
        rows.append(row)
    return rows


def _decoder_rows(dev: torch.device, dtype: torch.dtype, args: argparse.Namespace) -> list[Row]:
    from brain_ai.config import DecodingConfig

    g = torch.Generator().manual_seed(args.seed + 2)
    b, t, f, c = args.batch, args.steps, args.features, args.classes
    x = (torch.rand(b, t, f, generator=g) * 2 - 1).to(dev)
    y = torch.randint(0, c, (b,), generator=g).to(dev)
    rows = []
    for label, kwargs in DECODINGS:
        row = Row("decoder", label, dev.type, _short(dtype))
        try:
            cfg = DecodingConfig(**kwargs)  # type: ignore[arg-type]
            dec = build_decoder(cfg).to(dev)
            width = c * cfg.population_size if cfg.type == "population" else c
            w = (torch.randn(f, width, generator=g) * 1.5).to(dev).requires_grad_(True)
            with torch.autocast(dev.type, dtype=dtype):
                spikes, mem = _network(x, w)
                out = dec(spikes=spikes, membrane=mem)
            logits = out.logits_proxy
            row.out_dtype = _short(logits.dtype)
            row.finite = bool(torch.isfinite(logits).all())
            row.value = float(logits.detach().float().abs().mean())
            conf = out.confidence.detach().float()
            conf_ok = bool(((conf >= 0) & (conf <= 1)).all())
            regression = cfg.type == "population" and cfg.population_mode == "regression"
            if logits.requires_grad:
                target = (logits.float() ** 2).mean() if regression \
                    else F.cross_entropy(logits.float(), y)
                target.backward()
            row.grad = _grad_state(w)
            row.note = "" if conf_ok else "confidence outside [0, 1]"
            if row.grad == "none":
                row.note = (row.note + "; " if row.note else "") + "no gradient path (by design)"
            row.passed = (row.finite and conf_ok and row.out_dtype == "float32"
                          and row.grad != "NONFINITE")
        except Exception as exc:  # reported as a failed row
            row.note, row.passed = f"{type(exc).__name__}: {exc}".splitlines()[0], False
        rows.append(row)
    return rows


def stress(args: argparse.Namespace) -> list[Row]:
    """Run every selected check; one :class:`Row` each."""
    rows: list[Row] = []
    for dev, dtype in _settings(args.device):
        if args.only in ("all", "losses"):
            rows += _loss_rows(dev, dtype, args)
        if args.only in ("all", "encoders"):
            rows += _encoder_rows(dev, dtype, args)
        if args.only in ("all", "decoders"):
            rows += _decoder_rows(dev, dtype, args)
    return rows


def _fmt(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.6g}"


def format_table(rows: list[Row]) -> str:
    """The report as a plain-text table (:func:`brain_ai.conformance.cli.text_table`)."""
    head = ("kind", "name", "device", "autocast", "value", "out dtype", "finite", "grad",
            "L(2T)/L(T)", "T-inv", "status", "note")
    return text_table(head, [
        (r.kind, r.name, r.device, r.dtype, _fmt(r.value), r.out_dtype,
         "yes" if r.finite else "NO", r.grad, _fmt(r.t_ratio), r.t_inv,
         "PASS" if r.passed else "FAIL", r.note) for r in rows], right=(4, 8))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``brain-ai amp-stress``."""
    parser.add_argument("--batch", type=int, default=4, help="batch size B (default 4)")
    parser.add_argument("--steps", type=int, default=32,
                        help="time steps T; the invariance check also runs 2T (default 32)")
    parser.add_argument("--features", type=int, default=8, help="input features (default 8)")
    parser.add_argument("--classes", type=int, default=4, help="output classes (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every input (default 0)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CPU bf16, plus CUDA fp16/bf16 when a GPU is available")
    parser.add_argument("--only", choices=("all", "losses", "encoders", "decoders"),
                        default="all", help="restrict to one family (default all)")
    parser.add_argument("--t-rtol", type=float, default=0.25,
                        help="largest |L(2T)/L(T) - 1| of a T-invariant loss (default 0.25; "
                             "a loss that scales with T gives about 1)")


def run(args: argparse.Namespace) -> int:
    """Run the checks, print the table; 0 if every row passes, 1 otherwise."""
    if min(args.batch, args.steps, args.features, args.classes) < 1:
        print("amp-stress: --batch, --steps, --features and --classes must be >= 1")
        return 2
    if args.steps < 6:
        print("amp-stress: --steps must be >= 6 (TemporalConsistency's default window is 5)")
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("amp-stress: --device cuda but no CUDA device is available")
        return 2
    rows = stress(args)
    print(format_table(rows))
    failed = [r for r in rows if not r.passed]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} checks passed"
          + (f"; FAILED: {', '.join(f'{r.kind}:{r.name}@{r.device}/{r.dtype}' for r in failed)}"
             if failed else ""))
    return 1 if failed else 0
