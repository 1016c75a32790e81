"""``brain-ai debug-report``: look at a spiking network instead of reading numbers.

On a model and an input batch ``(B, T, ...)``, one forward with ``return_details=True`` and
one backward give the files below. The model is a built-in example (a small network trained
for a few seconds on a synthetic rate-coded task, :func:`example_model`; its input is a
held-out batch of that task, and every layer is in the healthy ranges) or ``--model
module:factory`` plus ``--checkpoint`` (input: synthetic Bernoulli spikes, or ``--input
file.pt``). User errors (a missing or unreadable file, a shape or a number that does not fit)
exit with status 2 and one line on stderr that ends in a hint.

* ``report.html`` -- self-contained (PNGs embedded as base64): probe table with the seed-000
  healthy ranges, unhealthy layers called out with the seed's failure-mode hints, spike raster
  per layer, membrane traces of sample neurons, firing-rate histogram with the healthy band,
  gradient norm per layer, dead/saturated fractions;
* ``report.json`` -- every number in the report (probes, verdicts, per-neuron rates, raster
  events, traces, gradient norms, the ``return_details`` overhead);
* the PNGs themselves, beside the report.

Python API: :func:`build_report` (any :class:`~brain_ai.core.snn.SpikingSequential` and input),
:func:`example_model`, :func:`example_task`, :func:`synthetic_input`, :func:`load_model`.
"""

from __future__ import annotations

import argparse
import base64
import functools
import html
import importlib
import io
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import Tensor, nn

from brain_ai.config import SNNConfig
from brain_ai.core.losses import HEALTHY_RANGES, SNNMetrics, SpikeRateRegularization
from brain_ai.core.snn import (
    ConvSNN,
    NetworkOutput,
    SNNCore,
    SpikingSequential,
    network_probes,
)
from brain_ai.core.snntorch_losses import count_cross_entropy, mse_count
from brain_ai.errors import BrainAIError, ConfigError, PeerMissingError, ShapeError
from brain_ai.text_table import text_table

__all__ = [
    "EXAMPLE_CLASSES",
    "EXAMPLE_TRAINING",
    "FAILURE_HINTS",
    "DebugReport",
    "add_arguments",
    "build_report",
    "example_model",
    "example_task",
    "load_model",
    "run",
    "synthetic_input",
]

#: The seed's failure-mode hints, keyed by what is out of range.
FAILURE_HINTS: dict[str, str] = {
    "firing_rate_low": "too few spikes: lower the threshold, scale up the input or the weight "
                       "init, or widen the surrogate (smaller alpha/slope) so gradients reach "
                       "silent neurons",
    "firing_rate_high": "too many spikes: raise the threshold, scale down the input or the "
                        "weight init, or add SpikeRateRegularization",
    "spike_sparsity_low": "activity is dense: raise the threshold or add "
                          "SpikeRateRegularization (sparsity < 0.5 wastes the SNN's advantage)",
    "spike_sparsity_high": "activity is nearly silent: lower the threshold or scale up the "
                           "input / weight init",
    "dead_neuron_frac": "dead neurons: widen sigma (the surrogate's width: smaller alpha/slope) "
                        "/ lower the threshold; check weight init and input scaling",
    "saturated_neuron_frac": "saturated neurons: raise the threshold / lower the input gain; "
                             "add rate regularization",
    "membrane_mean": "membrane explodes: beta >= 1 (unclamped) makes it grow without bound "
                     "(keep beta in [0, 0.999]); under fp16 keep state in fp32 "
                     "(dtype_policy='float32')",
    "membrane_var": "membrane is constant: the layer receives no varying input (disconnected "
                    "or detached input, zero weights)",
    "grad_zero": "gradients are zero: spikes detached before the loss, or surrogate slope too "
                 "narrow",
    "grad_nonfinite": "non-finite gradients ('training converges then suddenly NaNs'): "
                      "beta >= 1 (unclamped), the membrane explodes",
}

_PROBES = ("firing_rate", "spike_sparsity", "dead_neuron_frac", "saturated_neuron_frac",
           "membrane_mean", "membrane_var")
_MAX_RASTER_NEURONS = 256
_TRACE_NEURONS = 4


# ----------------------------------------------------------------------------- inputs / models


#: The built-in examples' task: 10 classes, each a fixed prototype of firing probabilities.
EXAMPLE_CLASSES = 10
#: Training of the built-in examples: Adam steps, batch size, time steps, learning rate.
EXAMPLE_TRAINING: dict[str, float] = {"steps": 60, "batch_size": 32, "num_steps": 25,
                                       "lr": 3e-3}
_TASK_SEED = 2024  # the prototypes: one task for every --seed
_TRAIN_SEED = 2**32  # training batches use seeds >= 2**32, so a report's batch is held out


def _example_shape(name: str) -> tuple[int, ...]:
    if name not in ("mlp", "conv"):
        raise ConfigError("example_model", "unknown example", got=repr(name),
                          expected="'mlp' | 'conv'", hint="or pass --model module:factory")
    return (100,) if name == "mlp" else (1, 16, 16)


def example_task(name: str = "mlp", batch_size: int = 8, num_steps: int = 25, *,
                 max_rate: float = 0.5, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A batch of the built-in examples' synthetic task: ``(x (B, T, *features), y (B,))``.

    :data:`EXAMPLE_CLASSES` classes; class ``c`` is a prototype ``p_c`` of per-feature firing
    probabilities drawn once from ``U(0, max_rate)`` (a fixed generator: the same task for
    every ``seed``). A sample of class ``y`` fires feature ``i`` with probability
    ``p_y[i]`` at each step, independently (a Bernoulli rate code, like
    :func:`synthetic_input`). ``x`` is float32 0/1; ``y`` int64. Features: ``(100,)`` for
    ``"mlp"``, ``(1, 16, 16)`` for ``"conv"``. Seeded ``torch.Generator``; global RNG untouched.
    """
    shape = _example_shape(name)
    _check_sizes("example_task", batch_size, num_steps, max_rate)
    protos = torch.rand((EXAMPLE_CLASSES, *shape),
                        generator=torch.Generator().manual_seed(_TASK_SEED)) * max_rate
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, EXAMPLE_CLASSES, (batch_size,), generator=g)
    u = torch.rand((batch_size, num_steps, *shape), generator=g)
    return (u < protos[y].unsqueeze(1)).float(), y


def _fresh_example(name: str, seed: int) -> SpikingSequential:
    """The example network as initialised from ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "mlp":
            return SNNCore(input_size=100, hidden_sizes=(128, 64), output_size=EXAMPLE_CLASSES)
        return ConvSNN(in_channels=1, input_hw=(16, 16), channels=(8, 16),
                       num_classes=EXAMPLE_CLASSES)


@functools.lru_cache(maxsize=8)
def _trained_state(name: str, seed: int, steps: int) -> dict[str, Tensor]:
    """Weights of the example after ``steps`` Adam steps on :func:`example_task` (cached)."""
    model = _fresh_example(name, seed)
    # Rate code at the output (a correct class fires at 0.6, the others at 0.1, so no output
    # neuron is silent), plus a pull of every hidden layer toward a rate of 0.1 with a strong
    # penalty below 0.05: the seed's own remedy for dead neurons (SpikeRateRegularization).
    rate_reg = SpikeRateRegularization(0.1, min_rate=0.05, range_weight=100.0)
    opt = torch.optim.Adam(model.parameters(), lr=EXAMPLE_TRAINING["lr"])
    for i in range(steps):
        x, y = example_task(name, int(EXAMPLE_TRAINING["batch_size"]),
                            int(EXAMPLE_TRAINING["num_steps"]), seed=_TRAIN_SEED + seed * 1000 + i)
        out = model(x, return_details=True)
        hidden = {k: v for k, v in out.spikes.items() if k != "lif_out"}
        loss = (mse_count(out.output, y, correct_rate=0.6, incorrect_rate=0.1)
                + 10.0 * rate_reg(out.output, layers=hidden)[0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def example_model(name: str = "mlp", seed: int = 0, *,
                  train_steps: int | None = None) -> SpikingSequential:
    """A built-in example network, trained briefly on :func:`example_task` (global RNG untouched).

    Initialised from ``seed``, then ``train_steps`` Adam steps (default
    ``EXAMPLE_TRAINING["steps"]``, i.e. 60) on batches of :func:`example_task` drawn with
    seeds ``>= 2**32`` (so a report's batch, drawn with ``seed``, is held out). The loss is a
    rate code at the output (``mse_count``, correct class 0.6, others 0.1) plus
    :class:`SpikeRateRegularization` of the hidden layers toward 0.1 (penalty below 0.05):
    the firing rates of a fresh init are not healthy (dead neurons, a silent output layer);
    after training every layer is, on a batch of ``B=8, T=25``. The trained weights are
    cached per ``(name, seed, train_steps)``; every call returns a new module.

    Args:
        name: ``"mlp"`` -- :class:`SNNCore` ``100 -> 128 -> 64 -> 10``; ``"conv"`` --
            :class:`ConvSNN` on ``(1, 16, 16)`` frames, channels ``(8, 16)``, 10 classes.
        seed: weight-init and training seed.
        train_steps: Adam steps (``0``: the untrained init).
    """
    _example_shape(name)
    steps = int(EXAMPLE_TRAINING["steps"]) if train_steps is None else train_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError("example_model", "train_steps must be an int >= 0",
                          got=repr(train_steps), expected="an int >= 0 (0 = untrained)",
                          hint="leave it out for the default training")
    model = _fresh_example(name, seed)
    if steps:
        model.load_state_dict(_trained_state(name, seed, steps))
    return model


def _check_sizes(where: str, batch_size: object, num_steps: object, max_rate: object) -> None:
    for name, v in (("batch_size", batch_size), ("num_steps", num_steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(where, f"{name} must be a positive int", got=repr(v),
                              expected="an int > 0", hint=f"set {name} to at least 1")
    if not isinstance(max_rate, (int, float)) or not 0.0 <= max_rate <= 1.0:
        raise ConfigError(where, "max_rate is outside [0, 1]", got=max_rate,
                          expected="0 <= max_rate <= 1", hint="a rate is a probability per step")


def synthetic_input(feature_shape: tuple[int, ...], batch_size: int = 8, num_steps: int = 25,
                    *, max_rate: float = 0.5, seed: int = 0) -> Tensor:
    """Rate-coded Bernoulli spikes ``(B, T, *feature_shape)``, float32.

    Each ``(sample, feature)`` fires with a probability drawn from ``U(0, max_rate)``, constant
    over time (what a rate-encoded image looks like). Seeded ``torch.Generator``.
    """
    _check_sizes("synthetic_input", batch_size, num_steps, max_rate)
    g = torch.Generator().manual_seed(seed)
    p = torch.rand((batch_size, 1, *feature_shape), generator=g) * max_rate
    u = torch.rand((batch_size, num_steps, *feature_shape), generator=g)
    return (u < p).float()


def load_model(spec: str, checkpoint: str | Path | None = None) -> nn.Module:
    """Import ``module:factory``, call ``factory()``, optionally load a checkpoint.

    The checkpoint is read with ``torch.load(weights_only=True)``; it is a ``state_dict`` or a
    dict holding one under ``"state_dict"`` / ``"model_state_dict"`` / ``"model"``, loaded
    strictly.
    """
    where = "load_model"
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise ConfigError(where, "the model must be given as module:factory", got=repr(spec),
                          expected="e.g. mypkg.models:build_net",
                          hint="factory is a callable in the module returning the network")
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ConfigError(where, f"cannot import {mod_name!r}", got=repr(exc),
                          expected="an importable module",
                          hint="run from the project root or add it to PYTHONPATH") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(where, f"{mod_name!r} has no attribute {attr!r}", got=repr(spec),
                              expected="module:factory with an existing callable",
                              hint="check the spelling of the factory")
        obj = getattr(obj, part)
    if callable(obj) and not isinstance(obj, nn.Module):
        try:
            obj = obj()
        except TypeError as exc:  # the usual user error: a factory that needs arguments
            raise ConfigError(where, f"calling {spec} with no arguments failed",
                              got=f"TypeError: {exc}", expected="a factory callable as FACTORY()",
                              hint="give every argument of the factory a default, or wrap it "
                                   "in a function that takes none") from exc
    model = obj
    if not isinstance(model, nn.Module):
        raise ConfigError(where, "the factory did not return an nn.Module",
                          got=type(model).__name__, expected="a SpikingSequential",
                          hint="return the network from the factory")
    if checkpoint is not None:
        state = _load_file(where, "checkpoint", checkpoint)
        if isinstance(state, dict):
            for key in ("state_dict", "model_state_dict", "model"):
                if isinstance(state.get(key), dict):
                    state = state[key]
                    break
        if not isinstance(state, dict):
            raise ConfigError(where, "the checkpoint holds no state_dict",
                              got=type(state).__name__,
                              expected="a state_dict, or a dict with one under 'state_dict'",
                              hint="save it with torch.save(model.state_dict(), path)")
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:  # missing / unexpected keys, shape mismatches
            first = str(exc).strip().splitlines()
            raise ConfigError(where, "the checkpoint does not fit the model",
                              got=" ".join(line.strip() for line in first[:3])[:300],
                              expected=f"the state_dict of {spec}()",
                              hint="use the factory that built the checkpointed network, with "
                                   "the same sizes") from exc
    return model


def _load_file(where: str, what: str, path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; unreadable files raise ConfigError."""
    if not Path(path).is_file():
        raise ConfigError(where, f"the {what} file does not exist", got=str(path),
                          expected="an existing file written by torch.save",
                          hint="check the path (relative paths start at the current folder)")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and weights_only errors alike: not a torch file
        first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:120]
        raise ConfigError(where, f"cannot read the {what} file",
                          got=f"{path}: {type(exc).__name__}: {first}",
                          expected="a file written by torch.save holding tensors",
                          hint="save plain tensors / state_dicts with torch.save") from exc


def infer_feature_shape(model: nn.Module) -> tuple[int, ...]:
    """Feature shape of one input step, read from the model (SNNCore, ConvSNN, first Linear)."""
    if isinstance(model, SNNCore):
        return (model.input_size,)
    if isinstance(model, ConvSNN):
        return (model.in_channels, *model.input_hw)
    first = next(iter(model.children()), None)
    if isinstance(first, nn.Linear):
        return (first.in_features,)
    raise ShapeError("debug-report", "cannot infer the input shape of this model",
                     got=type(first).__name__ if first is not None else None,
                     expected="SNNCore, ConvSNN or a first nn.Linear layer",
                     hint="pass --input-shape C,H,W (one step, no batch/time) or --input x.pt")


# ----------------------------------------------------------------------------- the report


@dataclass(eq=False)
class DebugReport:
    """What :func:`build_report` wrote, and every number in it.

    Attributes:
        html_path / json_path: the report files.
        png_paths: plot name -> PNG file beside the report.
        data: the JSON content (a plain dict).
        probes: layer -> :class:`SNNMetrics` of the analysed forward.
    """

    html_path: Path
    json_path: Path
    png_paths: dict[str, Path]
    data: dict[str, Any]
    probes: dict[str, SNNMetrics] = field(default_factory=dict)

    @property
    def unhealthy(self) -> dict[str, list[str]]:
        """Layer -> probes outside the healthy range (healthy layers omitted)."""
        return {k: v for k, v in self.data["unhealthy"].items() if v}

    def summary(self) -> str:
        """A short text summary (what the CLI prints): one table row per layer, then findings."""
        d = self.data
        rows = []
        for name, layer in d["layers"].items():
            p = layer["probes"]
            bad = layer["unhealthy"]
            rows.append((name, str(layer["num_neurons"]),
                         *(_fmt(p[k]) for k in _PROBES),
                         "UNHEALTHY: " + ", ".join(bad) if bad else "ok"))
        lines = [f"brain-ai debug-report: {d['model']['name']}, input "
                 f"{tuple(d['input']['shape'])} ({d['input']['source']})",
                 text_table(("layer", "neurons", "rate", "sparsity", "dead", "sat", "v_mean",
                             "v_var", "status"), rows, right=range(1, 8))]
        for c in d["callouts"]:
            lines.append(f"  ! {c['layer']}: {c['probe']} = {_fmt(c['value'])} -> {c['hint']}")
        o = d["overhead"]
        lines.append(f"return_details overhead: {o['ratio']:.3f}x (plain "
                     f"{o['plain_s'] * 1e3:.2f} ms, details {o['details_s'] * 1e3:.2f} ms, "
                     f"best of {o['repeats']})")
        lines.append(f"report: {self.html_path}")
        lines.append(f"json:   {self.json_path}")
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


def _jsonable(v: Any) -> Any:
    """Floats that JSON cannot hold (nan, inf) become strings; containers recurse."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _range_text(name: str) -> str:
    lo, hi = HEALTHY_RANGES[name]
    if name == "membrane_mean":
        return f"finite, |mean| < {hi:g}·v_th"
    if name == "membrane_var":
        return "finite, > 0"
    if lo is None:
        return f"< {hi:g}"
    return f"{lo:g} – {hi:g}"


def _hint_key(name: str, value: float | None) -> str:
    if name in ("firing_rate", "spike_sparsity"):
        lo, _ = HEALTHY_RANGES[name]
        low = value is not None and lo is not None and value < lo
        return f"{name}_{'low' if low else 'high'}"
    return name


def _time_forward(model: nn.Module, x: Tensor, repeats: int) -> dict[str, Any]:
    """Wall time of ``model(x)`` vs ``model(x, return_details=True)`` (probes included).

    Interleaved, under ``no_grad``; the ratio compares the fastest of ``repeats`` runs of each
    (timeit's rule: the minimum is the run least disturbed by other load).
    """
    plain: list[float] = []
    details: list[float] = []
    with torch.no_grad():
        model(x)
        model(x, return_details=True)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            t1 = time.perf_counter()
            out = model(x, return_details=True)
            if not hasattr(out, "probes"):
                network_probes(model, out)
            t2 = time.perf_counter()
            plain.append(t1 - t0)
            details.append(t2 - t1)
    p, d = min(plain), min(details)
    pm, dm = statistics.median(plain), statistics.median(details)
    return {"plain_s": p, "details_s": d, "ratio": d / p if p > 0 else float("nan"),
            "median_plain_s": pm, "median_details_s": dm,
            "median_ratio": dm / pm if pm > 0 else float("nan"),
            "repeats": repeats, "plain_times_s": plain, "details_times_s": details,
            "mode": "torch.no_grad, interleaved; ratio of the fastest runs (least disturbed by "
                    "other load), medians also given"}


def _gradients(model: nn.Module, out: NetworkOutput, seed: int) -> dict[str, Any]:
    """Backward of a probe loss; L2 norm of the gradient per top-level layer."""
    y = out.output
    if y.dim() == 3:
        g = torch.Generator().manual_seed(seed)
        targets = torch.randint(0, y.shape[-1], (y.shape[0],), generator=g)
        loss = count_cross_entropy(y, targets)
        kind = "count_cross_entropy(output, random targets)"
    else:
        loss = y.float().mean()
        kind = "mean(output)"
    model.zero_grad(set_to_none=True)
    loss.backward()
    layers: dict[str, Any] = {}
    for name, module in model.named_children():
        params = {pn: p for pn, p in module.named_parameters() if p.requires_grad}
        if not params:
            continue
        norms = {pn: (float(p.grad.detach().float().norm()) if p.grad is not None else 0.0)
                 for pn, p in params.items()}
        total = math.sqrt(sum(v * v for v in norms.values())) if all(
            math.isfinite(v) for v in norms.values()) else float("nan")
        flags = []
        if not math.isfinite(total):
            flags.append("grad_nonfinite")
        elif total == 0.0:
            flags.append("grad_zero")
        layers[name] = {"norm": total, "params": norms, "flags": flags}
    model.zero_grad(set_to_none=True)
    return {"loss": {"kind": kind, "value": float(loss.detach())}, "layers": layers}


def _sample_indices(n: int, k: int) -> list[int]:
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _layer_data(name: str, m: SNNMetrics, spikes: Tensor, membrane: Tensor | None,
                threshold: float) -> dict[str, Any]:
    s = spikes.detach().float()
    b, t = s.shape[:2]
    flat = s.reshape(b, t, -1)
    rate = flat.mean(dim=(0, 1))  # per neuron
    healthy = m.healthy()
    bad = [k for k in _PROBES if k in healthy and not healthy[k]]
    idx = _sample_indices(flat.shape[-1], _MAX_RASTER_NEURONS)
    sub = flat[0][:, idx]
    events = [[int(tt), int(nn_)] for tt, nn_ in torch.nonzero(sub).tolist()]
    # membrane traces: sample-0 neurons from most to least active
    order = torch.argsort(flat[0].mean(0), descending=True, stable=True).tolist()
    pick = [order[i] for i in _sample_indices(len(order), _TRACE_NEURONS)]
    traces: list[list[float]] = []
    if membrane is not None:
        v = membrane.detach().float().reshape(b, t, -1)[0]
        traces = [v[:, j].tolist() for j in pick]
    return {
        "probes": m.as_dict(),
        "healthy": healthy,
        "unhealthy": bad,
        "threshold": threshold,
        "shape": list(spikes.shape),
        "num_neurons": int(flat.shape[-1]),
        "rate_per_neuron": rate.tolist(),
        "population_rate_per_step": flat.mean(dim=(0, 2)).tolist(),
        "raster": {"sample": 0, "neurons": idx, "events": events},
        "membrane_traces": {"sample": 0, "neurons": pick, "values": traces},
    }


def build_report(model: nn.Module, x: Tensor, out_dir: str | Path, *, name: str | None = None,
                 input_source: str = "user", repeats: int = 10, seed: int = 0) -> DebugReport:
    """Analyse ``model`` on ``x`` and write ``report.html``, ``report.json`` and the PNGs.

    Args:
        model: a :class:`SpikingSequential` (e.g. :class:`SNNCore`, :class:`ConvSNN`); its
            train/eval mode is used as is (in train mode the timed forwards update
            batch-norm running statistics; gradients are cleared afterwards).
        x: input batch ``(B, T, ...)``.
        out_dir: created if missing.
        name: model name in the report (default: the class name).
        input_source: how ``x`` was made (recorded in the report).
        repeats: timed forwards for the ``return_details`` overhead.
        seed: seed of the random targets of the gradient probe loss.
    Returns:
        :class:`DebugReport`.
    """
    where = "build_report"
    if not isinstance(model, SpikingSequential):
        raise ConfigError(where, "the model must be a SpikingSequential",
                          got=type(model).__name__, expected="SpikingSequential (SNNCore, ...)",
                          hint="wrap the layers in brain_ai.core.snn.SpikingSequential; "
                               "convert peers with `brain-ai migrate`")
    if not isinstance(x, Tensor) or x.dim() < 2 or not x.is_floating_point():
        raise ShapeError(where, "x must be a floating (B, T, ...) tensor",
                         got=getattr(x, "shape", type(x).__name__),
                         expected="rank >= 2, batch-first, float",
                         hint="time-first data: time_to_batch_first(x)")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats <= 0:
        raise ConfigError(where, "repeats must be a positive int", got=repr(repeats),
                          expected="an int > 0", hint="e.g. repeats=10")
    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)

    out = model(x, return_details=True)
    probes: dict[str, SNNMetrics] = getattr(out, "probes", None) or network_probes(model, out)
    grads = _gradients(model, out, seed)
    overhead = _time_forward(model, x, repeats)

    layers: dict[str, Any] = {}
    for lname, m in probes.items():
        layers[lname] = _layer_data(lname, m, out.spikes[lname], out.membrane.get(lname),
                                    m.threshold)
    callouts = []
    for lname, layer in layers.items():
        for probe in layer["unhealthy"]:
            value = layer["probes"][probe]
            callouts.append({"layer": lname, "probe": probe, "value": value,
                             "healthy_range": _range_text(probe),
                             "hint": FAILURE_HINTS[_hint_key(probe, value)]})
    for lname, gl in grads["layers"].items():
        for flag in gl["flags"]:
            callouts.append({"layer": lname, "probe": "gradient_norm", "value": gl["norm"],
                             "healthy_range": "finite, > 0", "hint": FAILURE_HINTS[flag]})

    data: dict[str, Any] = {
        "format": "brain_ai.apps.debug_report/1",
        "model": {"name": name or type(model).__name__, "class": type(model).__name__,
                  "repr": repr(model), "training": model.training,
                  "fold_time": bool(getattr(model, "fold_time", False)),
                  "num_parameters": sum(p.numel() for p in model.parameters())},
        "input": {"shape": list(x.shape), "source": input_source,
                  "mean": float(x.detach().float().mean())},
        "healthy_ranges": {k: list(v) for k, v in HEALTHY_RANGES.items()},
        "layers": layers,
        "gradients": grads,
        "overhead": overhead,
        "unhealthy": {k: v["unhealthy"] for k, v in layers.items()},
        "callouts": callouts,
    }
    pngs = _render_plots(data)
    png_paths: dict[str, Path] = {}
    for pname, blob in pngs.items():
        p = out_path / f"{pname}.png"
        p.write_bytes(blob)
        png_paths[pname] = p
    data["plots"] = {k: v.name for k, v in png_paths.items()}
    json_path = out_path / "report.json"
    json_path.write_text(json.dumps(_jsonable(data), indent=1, allow_nan=False))
    html_path = out_path / "report.html"
    html_path.write_text(_render_html(data, pngs), encoding="utf-8")
    return DebugReport(html_path, json_path, png_paths, data, probes)


# ----------------------------------------------------------------------------- rendering


def _figure(nrows: int, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PeerMissingError("debug-report", "matplotlib is needed for the PNG plots",
                               got="not installed", expected="matplotlib",
                               hint="pip install matplotlib (or brain-ai-snn[peers])") from exc
    fig = Figure(figsize=(8.0, max(2.2, height * nrows)), layout="constrained")
    axes = fig.subplots(nrows, 1, squeeze=False)[:, 0]
    return fig, list(axes)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)  # a bare Figure renders through Agg
    return buf.getvalue()


def _render_plots(data: dict[str, Any]) -> dict[str, bytes]:
    layers = data["layers"]
    names = list(layers)
    n = max(1, len(names))
    plots: dict[str, bytes] = {}
    bad_color, ok_color = "#c0392b", "#2c7fb8"

    fig, axes = _figure(n, 1.6)
    for ax, lname in zip(axes, names, strict=False):
        r = layers[lname]["raster"]
        ev = r["events"]
        ax.scatter([e[0] for e in ev], [e[1] for e in ev], marker="|", s=30,
                   color=bad_color if layers[lname]["unhealthy"] else "black")
        ax.set_xlim(-0.5, layers[lname]["shape"][1] - 0.5)
        ax.set_ylim(-0.5, len(r["neurons"]) - 0.5)
        if not ev:
            ax.text(0.5, 0.5, "no spikes", transform=ax.transAxes, ha="center",
                    va="center", color=bad_color)
        ax.set_ylabel("neuron")
        ax.set_title(f"{lname}: spike raster, sample 0 ({len(r['neurons'])} of "
                     f"{layers[lname]['num_neurons']} neurons)", fontsize=9)
    axes[-1].set_xlabel("time step")
    plots["raster"] = _png(fig)

    fig, axes = _figure(n, 1.6)
    for ax, lname in zip(axes, names, strict=False):
        tr = layers[lname]["membrane_traces"]
        for j, vals in zip(tr["neurons"], tr["values"], strict=True):
            ax.plot(range(len(vals)), vals, lw=1, label=f"n{j}")
        ax.axhline(layers[lname]["threshold"], color="gray", ls="--", lw=1, label="v_th")
        ax.set_ylabel("v")
        ax.set_title(f"{lname}: membrane of sample neurons (most to least active)", fontsize=9)
        ax.legend(fontsize=7, loc="upper right", ncols=5)
    axes[-1].set_xlabel("time step")
    plots["membrane"] = _png(fig)

    fig, axes = _figure(n, 1.6)
    lo, hi = HEALTHY_RANGES["firing_rate"]
    for ax, lname in zip(axes, names, strict=False):
        ax.axvspan(lo, hi, color="#2ca25f", alpha=0.15, label=f"healthy {lo:g}–{hi:g}")
        ax.hist(layers[lname]["rate_per_neuron"], bins=40, range=(0.0, 1.0),
                color=bad_color if "firing_rate" in layers[lname]["unhealthy"] else ok_color)
        ax.axvline(layers[lname]["probes"]["firing_rate"], color="black", lw=1,
                   label="layer mean")
        ax.set_ylabel("neurons")
        ax.set_title(f"{lname}: per-neuron firing rate", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("spikes per step")
    plots["firing_rates"] = _png(fig)

    grads = data["gradients"]["layers"]
    fig, axes = _figure(1, max(2.2, 0.35 * max(1, len(grads)) + 1.0))
    ax = axes[0]
    gnames = list(grads)
    vals = [grads[g]["norm"] if math.isfinite(grads[g]["norm"]) else 0.0 for g in gnames]
    colors = [bad_color if grads[g]["flags"] else ok_color for g in gnames]
    ax.barh(range(len(gnames)), vals, color=colors)
    ax.set_yticks(range(len(gnames)), gnames)
    ax.invert_yaxis()
    if any(v > 0 for v in vals):
        ax.set_xscale("log")
        ax.set_xlim(min(v for v in vals if v > 0) / 3, max(vals) * 3)
    ax.set_xlabel("‖grad‖₂ (red: zero or non-finite)")
    ax.set_title(f"gradient norm per layer, loss = {data['gradients']['loss']['kind']}",
                 fontsize=9)
    plots["gradients"] = _png(fig)

    fig, axes = _figure(1, 2.6)
    ax = axes[0]
    xs = range(len(names))
    dead = [layers[k]["probes"]["dead_neuron_frac"] for k in names]
    sat = [layers[k]["probes"]["saturated_neuron_frac"] for k in names]
    limit = HEALTHY_RANGES["dead_neuron_frac"][1]
    ax.bar([i - 0.2 for i in xs], dead, width=0.4, label="dead",
           color=[bad_color if v >= limit else "#636363" for v in dead])
    ax.bar([i + 0.2 for i in xs], sat, width=0.4, label="saturated", hatch="//",
           color=[bad_color if v >= limit else "#bdbdbd" for v in sat])
    ax.axhline(limit, color="black", ls="--", lw=1, label=f"limit {limit:g}")
    ax.set_xticks(list(xs), names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction of neurons")
    ax.set_title("dead / saturated neurons (red: flagged)", fontsize=9)
    ax.legend(fontsize=7)
    plots["dead_saturated"] = _png(fig)
    return plots


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f4f4f4}td.bad{background:#f8d0cc;font-weight:bold}
td.name{text-align:left}.callout{background:#fff3f0;border-left:4px solid #c0392b;
padding:6px 10px;margin:4px 0}img{max-width:100%;border:1px solid #eee;margin:6px 0}
pre{background:#f7f7f7;padding:8px;font-size:12px;overflow-x:auto}
"""


def _render_html(data: dict[str, Any], pngs: dict[str, bytes]) -> str:
    e = html.escape
    m = data["model"]
    rows = []
    head = "".join(f"<th>{e(p)}<br><small>{e(_range_text(p))}</small></th>" for p in _PROBES)
    for lname, layer in data["layers"].items():
        cells = []
        for p in _PROBES:
            v = layer["probes"][p]
            cls = " class='bad'" if p in layer["unhealthy"] else ""
            cells.append(f"<td{cls}>{e(_fmt(v))}</td>")
        status = "UNHEALTHY" if layer["unhealthy"] else "ok"
        rows.append(f"<tr><td class='name'>{e(lname)}</td><td>{layer['num_neurons']}</td>"
                    f"{''.join(cells)}<td>{status}</td></tr>")
    callouts = "".join(
        f"<div class='callout'><b>{e(c['layer'])}</b>: {e(c['probe'])} = {e(_fmt(c['value']))}"
        f" (healthy: {e(c['healthy_range'])}) &mdash; {e(c['hint'])}</div>"
        for c in data["callouts"]) or "<p>All layers inside the healthy ranges.</p>"
    titles = {"raster": "Spike raster per layer", "membrane": "Membrane traces",
              "firing_rates": "Firing-rate histogram (healthy band shaded)",
              "gradients": "Gradient norm per layer",
              "dead_saturated": "Dead / saturated neurons"}
    imgs = "".join(
        f"<h2>{e(titles.get(k, k))}</h2><img alt='{e(k)}' "
        f"src='data:image/png;base64,{base64.b64encode(v).decode('ascii')}'>"
        for k, v in pngs.items())
    o = data["overhead"]
    g = data["gradients"]
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>brain-ai debug report: {e(m['name'])}</title>
<style>{_CSS}</style></head><body>
<h1>brain-ai debug report: {e(m['name'])}</h1>
<p>Input {e(str(tuple(data['input']['shape'])))} ({e(data['input']['source'])}, mean
{data['input']['mean']:.4g}); {m['num_parameters']} parameters; mode
{'train' if m['training'] else 'eval'}; fold_time={m['fold_time']}.
Probe loss {e(g['loss']['kind'])} = {e(_fmt(g['loss']['value']))}.</p>
<h2>Layer probes</h2>
<table><tr><th>layer</th><th>neurons</th>{head}<th>status</th></tr>{''.join(rows)}</table>
<h2>Findings</h2>{callouts}
<p><code>return_details=True</code> overhead: <b>{o['ratio']:.3f}x</b> (plain
{o['plain_s'] * 1e3:.2f} ms, details {o['details_s'] * 1e3:.2f} ms; best of
{o['repeats']}, no_grad; median ratio {o['median_ratio']:.3f}x).</p>
{imgs}
<h2>Model</h2><pre>{e(m['repr'])}</pre>
<p>Every number above is in <code>report.json</code>.</p>
</body></html>
"""


# ----------------------------------------------------------------------------- CLI


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a shape: {text!r} (expected e.g. 1,28,28)") \
            from exc
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"not a shape: {text!r} (expected e.g. 1,28,28)")
    return dims


def _usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """argparse's error, as one line with a hint (argparse would print the whole usage)."""
    print(f"error: {parser.prog}: {message}. Hint: see `{parser.prog} --help`", file=sys.stderr)
    raise SystemExit(2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``brain-ai debug-report``; a malformed argument exits 2 with one line."""
    parser.error = functools.partial(_usage_error, parser)  # type: ignore[method-assign]
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--example", choices=("mlp", "conv"), default="mlp",
                     help="built-in example network (default: mlp)")
    src.add_argument("--model", metavar="MODULE:FACTORY",
                     help="your network: FACTORY() in MODULE returns a SpikingSequential")
    parser.add_argument("--checkpoint", help="state_dict file loaded into --model")
    parser.add_argument("--input", metavar="FILE.pt",
                        help="input batch (B, T, ...) saved with torch.save (default: a held-out "
                             "batch of the example task, or synthetic spikes for --model)")
    parser.add_argument("--input-shape", type=_shape, metavar="C,H,W",
                        help="feature shape of one synthetic input step (default: from model)")
    parser.add_argument("--batch-size", type=int, default=8, help="generated batch size")
    parser.add_argument("--steps", type=int, default=SNNConfig().num_steps,
                        help="generated time steps T")
    parser.add_argument("--max-rate", type=float, default=0.5,
                        help="generated firing rates are drawn from U(0, max-rate)")
    parser.add_argument("--seed", type=int, default=0, help="seed of inputs, example, targets")
    parser.add_argument("--eval", action="store_true", help="run the model in eval mode")
    parser.add_argument("--repeats", type=int, default=10,
                        help="timed forwards for the return_details overhead")
    parser.add_argument("--out", default="debug_report", help="output folder")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 when a layer is unhealthy")


def _check_args(args: argparse.Namespace) -> None:
    """The numbers of the command line, checked before anything runs."""
    where = "brain-ai debug-report"
    for flag, value in (("--batch-size", args.batch_size), ("--steps", args.steps),
                        ("--repeats", args.repeats)):
        if value <= 0:
            raise ConfigError(where, f"{flag} must be at least 1", got=value,
                              expected="an int > 0", hint=f"e.g. {flag} 8")
    if not 0.0 <= args.max_rate <= 1.0:  # also refuses nan
        raise ConfigError(where, "--max-rate is outside [0, 1]", got=args.max_rate,
                          expected="a firing probability per step, 0 <= p <= 1",
                          hint="e.g. --max-rate 0.5")
    if args.checkpoint and not args.model:
        raise ConfigError(where, "--checkpoint needs --model", got=args.checkpoint,
                          expected="--model module:factory",
                          hint="the built-in examples have no checkpoints")
    if args.input and args.input_shape:
        raise ConfigError(where, "--input and --input-shape exclude each other",
                          got=f"--input {args.input} --input-shape {args.input_shape}",
                          expected="one of them", hint="the file's shape is the input shape")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(where, "--out is a file, not a folder", got=str(out),
                          expected="a folder (created if missing)",
                          hint="pick another --out path")


def _feature_shape(model: nn.Module) -> tuple[int, ...] | None:
    """The model's input feature shape, or ``None`` when it cannot be read from the model."""
    try:
        return infer_feature_shape(model)
    except ShapeError:
        return None


def _load_input(path: str, model: nn.Module) -> Tensor:
    """``--input``: a float ``(B, T, *features)`` tensor of finite values fitting ``model``."""
    where = "brain-ai debug-report --input"
    x = _load_file(where, "input", path)
    if not isinstance(x, Tensor):
        raise ShapeError(where, "the file does not hold one tensor", got=type(x).__name__,
                         expected="a (B, T, ...) tensor", hint="torch.save(x, path) with x a "
                                                                  "tensor, not a dict or list")
    want = _feature_shape(model)
    if x.dim() < 2 or (want is not None and tuple(x.shape[2:]) != want):
        expected = "(B, T, ...)" if want is None else str(("B", "T", *want)).replace("'", "")
        raise ShapeError(where, "the input does not fit the model", got=tuple(x.shape),
                         expected=expected, hint="batch first, then time: time-first data "
                                                 "needs x.transpose(0, 1) before saving")
    if not x.is_floating_point():
        raise ShapeError(where, "the input is not a floating tensor", got=x.dtype,
                         expected="float32 (spikes as 0.0 / 1.0)",
                         hint="save x.float() instead")
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ConfigError(where, "the input holds NaN or inf", got=f"{bad} non-finite values",
                          expected="finite values", hint="clean the data before saving it")
    return x


def _build(args: argparse.Namespace) -> DebugReport:
    """The report the command line asks for (user errors raise BrainAIError)."""
    _check_args(args)
    if args.model:
        model = load_model(args.model, args.checkpoint)
        name = args.model
    else:
        model = example_model(args.example, args.seed)
        name = f"example:{args.example}"
    if args.eval:
        model.eval()
    want = _feature_shape(model)
    if args.input:
        x = _load_input(args.input, model)
        source = f"file {args.input}"
    elif args.model:
        shape = args.input_shape or infer_feature_shape(model)
        if want is not None and tuple(shape) != want:
            raise ShapeError("brain-ai debug-report", "--input-shape does not fit the model",
                             got=",".join(map(str, shape)), expected=",".join(map(str, want)),
                             hint="leave --input-shape out: it is read from the model")
        x = synthetic_input(shape, args.batch_size, args.steps, max_rate=args.max_rate,
                            seed=args.seed)
        source = f"synthetic Bernoulli, rates U(0, {args.max_rate:g}), seed {args.seed}"
    else:
        if args.input_shape and tuple(args.input_shape) != want:
            raise ShapeError("brain-ai debug-report", "--input-shape does not fit the example",
                             got=",".join(map(str, args.input_shape)),
                             expected=",".join(map(str, want or ())),
                             hint="the examples have fixed shapes: leave --input-shape out")
        x, _ = example_task(args.example, args.batch_size, args.steps, max_rate=args.max_rate,
                            seed=args.seed)
        source = (f"example task, held-out batch: {EXAMPLE_CLASSES} classes of Bernoulli rate "
                  f"prototypes U(0, {args.max_rate:g}), seed {args.seed}")
    return build_report(model, x, args.out, name=name, input_source=source,
                        repeats=args.repeats, seed=args.seed)


def run(args: argparse.Namespace, print_fn: Callable[[str], None] = print) -> int:
    """Run the subcommand; returns the exit status.

    0: report written (and, with ``--strict``, every layer healthy); 1: ``--strict`` and a
    layer is unhealthy; 2: a user error (missing or unreadable file, a shape or number that
    does not fit), printed to stderr as one line ending in its hint, without a traceback.
    """
    try:
        report = _build(args)
    except BrainAIError as exc:
        print("error: " + str(exc).replace("\n  Hint: ", " Hint: "), file=sys.stderr)
        return 2
    print_fn(report.summary())
    return 1 if args.strict and report.unhealthy else 0


if __name__ == "__main__":  # pragma: no cover
    _parser = argparse.ArgumentParser(prog="python -m brain_ai.apps.debug_report")
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
