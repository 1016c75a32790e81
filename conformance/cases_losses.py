"""Conformance cases: brain_ai loss functions vs ``snntorch.functional`` 1.0.0.

Every case builds one batch-first record ``x`` of shape ``(B, T, C)`` from the seed, gives
brain_ai a leaf copy of ``x`` and snnTorch a time-first leaf ``batch_to_time_first(x)``
(contiguous, as a time-first pipeline would hold it), runs both, back-propagates both, and
reports:

* ``value``: ``max |ours - theirs|`` (snnTorch's ``(1,)`` results are reshaped to ours: the shape
  difference itself is pinned by the ``.../shape`` guards);
* ``grad``: :func:`~brain_ai.adapters.metrics.max_rel_grad` of the input gradients (theirs
  brought back to batch-first).

The mapping table lives in the docstring of :mod:`brain_ai.core.snntorch_losses`; every row
of it is a case here, plus guards for the deliberate differences. The ``probspikes_*`` cases
compare the seed's own :class:`~brain_ai.core.losses.ProbSpikes` term with ``ce_count_loss``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import snntorch.functional as SF
import torch
from torch import Tensor

from brain_ai.adapters.metrics import max_abs_diff, max_rel_grad
from brain_ai.conformance.registry import Case, register
from brain_ai.core import losses as L
from brain_ai.core import snntorch_losses as SL
from brain_ai.physics.axes import batch_to_time_first, time_to_batch_first

Ours = Callable[[Tensor, Tensor], Any]
Theirs = Callable[[Tensor, Tensor], Any]

EXACT = {"value": 0.0, "grad": 1e-6}


def _record(seed: int, kind: str, b: int, t: int, c: int, rate: float, classes: int
            ) -> tuple[Tensor, Tensor]:
    """A ``(B, T, C)`` record (binary spikes or Gaussian membrane) and ``(B,)`` targets."""
    g = torch.Generator().manual_seed(1000 + seed)
    if kind == "spikes":
        x = (torch.rand(b, t, c, generator=g) < rate).float()
    else:
        x = torch.randn(b, t, c, generator=g) * 1.5
    y = torch.randint(0, classes, (b,), generator=g)
    return x, y


def _compare(
    ours: Ours,
    theirs: Theirs,
    *,
    kind: str = "spikes",
    b: int = 8,
    t: int = 10,
    c: int = 5,
    rate: float = 0.3,
    num_classes: int | None = None,
    grad: bool = True,
    shape_only: bool = False,
) -> Callable[[int], dict[str, float]]:
    """Build ``run(seed) -> metrics`` comparing ``ours(x_bf, y)`` with ``theirs(x_tf, y)``."""

    def run(seed: int) -> dict[str, float]:
        x, y = _record(seed, kind, b, t, c, rate, num_classes if num_classes else c)
        x_bf = x.clone().requires_grad_(grad)
        x_tf = batch_to_time_first(x).contiguous().requires_grad_(grad)
        a = ours(x_bf, y.clone())
        z = theirs(x_tf, y.clone())
        if shape_only:
            return {"shape": float(tuple(a.shape) != tuple(z.shape))}
        if not isinstance(a, Tensor):  # accuracy: python / numpy floats
            return {"value": abs(float(a) - float(z))}
        metrics = {"value": max_abs_diff(a, z.reshape(a.shape))}
        if grad:
            a.sum().backward()
            z.sum().backward()
            metrics["grad"] = max_rel_grad([x_bf.grad], [time_to_batch_first(x_tf.grad)])
        return metrics

    return run


def _case(name: str, run: Callable[[int], dict[str, float]], config: dict[str, object], *,
          tolerances: dict[str, float] | None = None, expect: str = "equal", why: str = "",
          peer: str = "snntorch", steps: int = 10) -> None:
    register(Case(name=name, family="loss", peer=peer, run=run,
                  tolerances=tolerances if tolerances is not None else EXACT,
                  expect=expect,  # type: ignore[arg-type]
                  config=config, direction="native", steps=steps, why=why))


W5 = torch.tensor([0.5, 2.0, 1.0, 1.5, 0.25])  # class weights for C = 5

# --- ce_count_loss ---------------------------------------------------------------------------
_case("snntorch/loss/ce_count",
      _compare(lambda s, y: SL.count_cross_entropy(s, y), SF.ce_count_loss()),
      {"brain_ai": "count_cross_entropy(s, y)", "snntorch": "ce_count_loss()"})
_case("snntorch/loss/ce_count/weighted",
      _compare(lambda s, y: SL.count_cross_entropy(s, y, weight=W5),
               SF.ce_count_loss(weight=W5)),
      {"brain_ai": "count_cross_entropy(weight=w)", "snntorch": "ce_count_loss(weight=w)"})
_case("snntorch/loss/ce_count/none",
      _compare(lambda s, y: SL.count_cross_entropy(s, y, reduction="none"),
               SF.ce_count_loss(reduction="none")),
      {"brain_ai": "reduction='none'", "snntorch": "ce_count_loss(reduction='none')"})
_case("snntorch/loss/ce_count/population",
      _compare(lambda s, y: SL.count_cross_entropy(s, y, num_classes=3),
               SF.ce_count_loss(population_code=True, num_classes=3), c=12, num_classes=3),
      {"brain_ai": "count_cross_entropy(num_classes=3), 12 outputs",
       "snntorch": "ce_count_loss(population_code=True, num_classes=3)"})

# --- ce_rate_loss ----------------------------------------------------------------------------
_case("snntorch/loss/ce_rate",
      _compare(lambda s, y: SL.rate_cross_entropy(s, y), SF.ce_rate_loss()),
      {"brain_ai": "rate_cross_entropy(s, y)", "snntorch": "ce_rate_loss()"})
_case("snntorch/loss/ce_rate/weighted",
      _compare(lambda s, y: SL.rate_cross_entropy(s, y, weight=W5), SF.ce_rate_loss(weight=W5)),
      {"brain_ai": "rate_cross_entropy(weight=w)", "snntorch": "ce_rate_loss(weight=w)"})
_case("snntorch/loss/ce_rate/none",
      _compare(lambda s, y: SL.rate_cross_entropy(s, y, reduction="none"),
               SF.ce_rate_loss(reduction="none")),
      {"brain_ai": "reduction='none'", "snntorch": "ce_rate_loss(reduction='none')"})
_case("snntorch/loss/ce_rate/shape",
      _compare(lambda s, y: SL.rate_cross_entropy(s, y), SF.ce_rate_loss(), shape_only=True),
      {"brain_ai": "0-d scalar", "snntorch": "shape (1,)"},
      tolerances={"shape": 0.0}, expect="differs",
      why="snnTorch accumulates into torch.zeros((1)) and returns shape (1,); brain_ai returns "
          "a 0-d scalar like every torch.nn loss")

# --- mse_count_loss --------------------------------------------------------------------------
_case("snntorch/loss/mse_count",
      _compare(lambda s, y: SL.mse_count(s, y), SF.mse_count_loss()),
      {"brain_ai": "mse_count(s, y)", "snntorch": "mse_count_loss()"})
_case("snntorch/loss/mse_count/rates_truncated",
      _compare(lambda s, y: SL.mse_count(s, y, correct_rate=0.75, incorrect_rate=0.3),
               SF.mse_count_loss(correct_rate=0.75, incorrect_rate=0.3), t=7),
      {"brain_ai": "mse_count(correct_rate=0.75, incorrect_rate=0.3), T=7",
       "snntorch": "mse_count_loss(0.75, 0.3): on=int(5.25)=5, off=int(2.1)=2"}, steps=7)
_case("snntorch/loss/mse_count/on_below_off",
      _compare(lambda s, y: SL.mse_count(s, y, correct_rate=0.2, incorrect_rate=0.5),
               SF.mse_count_loss(correct_rate=0.2, incorrect_rate=0.5), t=7),
      {"brain_ai": "mse_count(0.2, 0.5), T=7",
       "snntorch": "on=int(1.4)=1 <= off=int(3.5)=3: the non-clamp branch"}, steps=7)
_case("snntorch/loss/mse_count/none",
      _compare(lambda s, y: SL.mse_count(s, y, correct_rate=0.8, reduction="none"),
               SF.mse_count_loss(correct_rate=0.8, reduction="none")),
      {"brain_ai": "mse_count(0.8, reduction='none')",
       "snntorch": "mse_count_loss(0.8, reduction='none')"})
_case("snntorch/loss/mse_count/population",
      _compare(lambda s, y: SL.mse_count(s, y, correct_rate=0.6, incorrect_rate=0.15,
                                        num_classes=3),
               SF.mse_count_loss(correct_rate=0.6, incorrect_rate=0.15, population_code=True,
                                 num_classes=3), c=12, num_classes=3),
      {"brain_ai": "mse_count(0.6, 0.15, num_classes=3), 12 outputs",
       "snntorch": "on=int(10*0.6*4)=24, off=int(10*0.15*4)=6"})

# --- mse_membrane_loss -----------------------------------------------------------------------
_case("snntorch/loss/mse_membrane",
      _compare(lambda v, y: SL.mse_membrane(v, y), SF.mse_membrane_loss(), kind="membrane"),
      {"brain_ai": "mse_membrane(v, y)", "snntorch": "mse_membrane_loss()"})
_case("snntorch/loss/mse_membrane/on_off",
      _compare(lambda v, y: SL.mse_membrane(v, y, on_target=1.2, off_target=0.3),
               SF.mse_membrane_loss(on_target=1.2, off_target=0.3), kind="membrane"),
      {"brain_ai": "mse_membrane(on=1.2, off=0.3)", "snntorch": "mse_membrane_loss(1.2, 0.3)"})
_case("snntorch/loss/mse_membrane/none",
      _compare(lambda v, y: SL.mse_membrane(v, y, reduction="none"),
               SF.mse_membrane_loss(reduction="none"), kind="membrane"),
      {"brain_ai": "reduction='none'", "snntorch": "mse_membrane_loss(reduction='none')"})
_case("snntorch/loss/mse_membrane/negative_off",
      _compare(lambda v, y: SL.mse_membrane(v, y, on_target=1.0, off_target=-0.5),
               SF.mse_membrane_loss(on_target=1.0, off_target=-0.5), kind="membrane"),
      {"brain_ai": "off-class target -0.5", "snntorch": "clamp(one_hot*1, min=-0.5) -> 0"},
      tolerances={"value": 0.0}, expect="differs",
      why="snnTorch's targets_convert clamps one_hot*on at min=off, so a negative off_target "
          "becomes 0 for the incorrect classes (issue #253 family); brain_ai targets off_target")
_case("snntorch/loss/mse_membrane/shape",
      _compare(lambda v, y: SL.mse_membrane(v, y), SF.mse_membrane_loss(), kind="membrane",
               shape_only=True),
      {"brain_ai": "0-d scalar", "snntorch": "shape (1,)"},
      tolerances={"shape": 0.0}, expect="differs",
      why="snnTorch returns shape (1,); brain_ai returns a 0-d scalar")

# --- ce_max_membrane_loss --------------------------------------------------------------------
_case("snntorch/loss/ce_max_membrane",
      _compare(lambda v, y: SL.max_membrane_cross_entropy(v, y), SF.ce_max_membrane_loss(),
               kind="membrane"),
      {"brain_ai": "max_membrane_cross_entropy(v, y)", "snntorch": "ce_max_membrane_loss()"})
_case("snntorch/loss/ce_max_membrane/weighted",
      _compare(lambda v, y: SL.max_membrane_cross_entropy(v, y, weight=W5),
               SF.ce_max_membrane_loss(weight=W5), kind="membrane"),
      {"brain_ai": "weight=w", "snntorch": "ce_max_membrane_loss(weight=w)"})

# --- ce_temporal_loss ------------------------------------------------------------------------
_case("snntorch/loss/ce_temporal",
      _compare(lambda s, y: SL.temporal_cross_entropy(s, y), SF.ce_temporal_loss(), rate=0.12),
      {"brain_ai": "temporal_cross_entropy(s, y)", "snntorch": "ce_temporal_loss()",
       "note": "rate 0.12: some neurons never fire (t_first = T-1, gradient there too)"})
_case("snntorch/loss/ce_temporal/reciprocal",
      _compare(lambda s, y: SL.temporal_cross_entropy(s, y, inverse="reciprocal"),
               SF.ce_temporal_loss(inverse="reciprocal"), rate=0.12),
      {"brain_ai": "inverse='reciprocal'", "snntorch": "ce_temporal_loss('reciprocal')"})
_case("snntorch/loss/ce_temporal/weighted",
      _compare(lambda s, y: SL.temporal_cross_entropy(s, y, weight=W5),
               SF.ce_temporal_loss(weight=W5), rate=0.12),
      {"brain_ai": "weight=w", "snntorch": "ce_temporal_loss(weight=w)"})

# --- mse_temporal_loss -----------------------------------------------------------------------
_case("snntorch/loss/mse_temporal/on2_off8",
      _compare(lambda s, y: SL.mse_temporal(s, y, on_target=2, off_target=8),
               SF.mse_temporal_loss(on_target=2, off_target=8), rate=0.12),
      {"brain_ai": "mse_temporal(on=2, off=8)", "snntorch": "mse_temporal_loss(on=2, off=8)"})
_case("snntorch/loss/mse_temporal/on0_off_last",
      _compare(lambda s, y: SL.mse_temporal(s, y, on_target=0, off_target=9),
               SF.mse_temporal_loss(on_target=0, off_target=9), rate=0.12),
      {"brain_ai": "mse_temporal(on=0, off=9) == mse_temporal() at T=10",
       "snntorch": "mse_temporal_loss(on=0, off=9)"})
_case("snntorch/loss/mse_temporal/defaults",
      _compare(lambda s, y: SL.mse_temporal(s, y), SF.mse_temporal_loss(), rate=0.12),
      {"brain_ai": "targets: correct t=0, others t=T-1",
       "snntorch": "clamp(one_hot*0, min=-1) = 0: every target t=0"},
      tolerances={"value": 0.0}, expect="differs",
      why="with its defaults (on=0, off=-1) snnTorch's clamp rule makes every target 0, so all "
          "neurons are pushed to fire at t=0, contrary to its docstring (PR #361); brain_ai "
          "follows the docstring")

# --- l1_rate_sparsity, accuracy_rate ---------------------------------------------------------
_case("snntorch/loss/l1_rate_sparsity",
      _compare(lambda s, y: SL.l1_rate_sparsity(s, 1e-3),
               lambda s, y: SF.l1_rate_sparsity(Lambda=1e-3)(s)),
      {"brain_ai": "l1_rate_sparsity(s, 1e-3)", "snntorch": "l1_rate_sparsity(Lambda=1e-3)"})
_case("snntorch/loss/accuracy_rate",
      _compare(lambda s, y: SL.accuracy_rate(s, y), SF.accuracy_rate, grad=False, b=64, rate=0.2),
      {"brain_ai": "accuracy_rate(s, y)", "snntorch": "accuracy_rate (ties: first index)"},
      tolerances={"value": 0.0})
_case("snntorch/loss/accuracy_rate/population",
      _compare(lambda s, y: SL.accuracy_rate(s, y, num_classes=3),
               lambda s, y: SF.accuracy_rate(s, y, population_code=True, num_classes=3),
               grad=False, b=64, c=12, num_classes=3),
      {"brain_ai": "accuracy_rate(num_classes=3)",
       "snntorch": "accuracy_rate(population_code=True, num_classes=3)"},
      tolerances={"value": 0.0})

# --- brain_ai's ProbSpikes term against ce_count_loss ----------------------------------------
_case("snntorch/loss/probspikes_raw_vs_ce_count",
      _compare(lambda s, y: L.ProbSpikes(normalize=False, eps=0.0)(s, y)[0],
               SF.ce_count_loss()),
      {"brain_ai": "ProbSpikes(temperature=1, normalize=False, eps=0)",
       "snntorch": "ce_count_loss()"})
_case("snntorch/loss/probspikes_default_vs_ce_count",
      _compare(lambda s, y: L.ProbSpikes()(s, y)[0], SF.ce_count_loss()),
      {"brain_ai": "ProbSpikes() (counts / T)", "snntorch": "ce_count_loss() (raw counts)"},
      tolerances={"value": 0.0}, expect="differs",
      why="ProbSpikes normalizes counts by T by default so the loss does not scale with the "
          "window length; ce_count_loss uses raw counts")
