"""``brain-ai migrate module:factory``: convert a peer model, verify it, save it.

Builds the user's model (``factory()`` from an importable module, e.g. ``mypkg.nets:build``),
optionally loads a checkpoint (a ``state_dict``), converts it, verifies the conversion on
generated inputs (firing rates between 5% and 50% when the scale search finds one), saves
the migrated model with ``torch.save`` and prints the report. A non-equivalent result exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from brain_ai.errors import ConfigError

__all__ = ["add_arguments", "run"]

SCALES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("factory", help="module:callable returning the peer model, e.g. "
                   "brain_ai.conformance.models_snntorch:tutorial_conv")
    p.add_argument("--from", dest="source", choices=("snntorch", "spikingjelly"),
                   default="snntorch", help="framework of the model (default snntorch)")
    p.add_argument("--checkpoint", help="state_dict to load into the model first")
    p.add_argument("--out", default="migrated.pt", help="where to save the migrated model")
    p.add_argument("--input-shape", help="per-sample input shape, e.g. 1,28,28 (default: "
                   "in_features of the first Linear)")
    p.add_argument("--steps", type=int, default=100, help="time steps T (default 100)")
    p.add_argument("--batch", type=int, default=8, help="batch size B (default 8)")
    p.add_argument("--scale", type=float, help="input scale (default: searched so that "
                   "firing rates fall between 5%% and 50%%)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the report as JSON here")


def load_factory(spec: str) -> Callable[[], nn.Module]:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError("brain-ai migrate", "the model must be given as module:factory",
                          got=spec, expected="e.g. mypkg.models:build_net",
                          hint="the module must be importable from the current directory")
    import sys

    if "" not in sys.path:
        sys.path.insert(0, "")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def _feature_shape(model: nn.Module, given: str | None) -> tuple[int, ...]:
    if given:
        return tuple(int(s) for s in given.split(","))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            return (m.in_features,)
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            break
    raise ConfigError("brain-ai migrate", "cannot infer the input shape", got=None,
                      expected="--input-shape C,H,W", hint="give the per-sample shape")


def _inputs(shape: tuple[int, ...], steps: int, batch: int, scale: float, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((steps, batch, *shape), generator=gen) * scale


def run(args: argparse.Namespace) -> int:
    model = load_factory(args.factory)()
    if args.checkpoint:
        model.load_state_dict(torch.load(args.checkpoint, map_location="cpu"))
    if args.source == "snntorch":
        from brain_ai.adapters.snntorch import migrate
        from brain_ai.adapters.verify import verify_migration as verify
    else:
        from brain_ai.adapters import spikingjelly as sj_adapter

        migrate = sj_adapter.migrate
        verify = sj_adapter.verify_spikingjelly_migration
    migrated = migrate(model)
    shape = _feature_shape(model, args.input_shape)
    report: Any = None
    best: tuple[int, float] | None = None
    for candidate in (args.scale,) if args.scale else SCALES:
        x = _inputs(shape, args.steps, args.batch, candidate, args.seed)
        trial = verify(model, migrated, x)
        in_band = sum(0.05 <= r.firing_rate <= 0.5 for r in trial.layers)
        if best is None or in_band > best[0]:  # the scale that exercises the most layers
            best, report, scale = (in_band, candidate), trial, candidate
        if in_band == len(trial.layers):
            break
    silent = [r.name for r in report.layers if r.firing_rate < 0.05]
    if silent:
        print(f"note: layers firing below 5% at every scale tried: {', '.join(silent)}")
    print(f"input: (T={args.steps}, B={args.batch}, {shape}) x scale {scale}")
    print(report)
    torch.save(migrated, args.out)
    print(f"saved: {args.out} (the whole module: load with torch.load(path, "
          "weights_only=False), or use migrated.state_dict())")
    if args.json:
        data = report.to_dict() if hasattr(report, "to_dict") else vars(report)
        with open(args.json, "w") as f:
            json.dump(data, f, indent=2, default=float)
    return 0 if report.equivalent else 1
