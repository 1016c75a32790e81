"""``brain-ai migrate module:factory``: convert a peer model, verify it, save it.

Builds the user's model with ``factory()``: ``mypkg.nets:build`` is imported from the installed
packages and ``$PYTHONPATH`` (the working directory is not searched unless ``--path .`` says
so), ``path/to/nets.py:build`` is loaded from that file. Optionally loads a checkpoint (a
``state_dict``: a ``.safetensors`` file, or a ``torch.save`` file read with
``weights_only=True``: no pickled code runs), converts the model, verifies the conversion on
generated inputs (firing rates between 5% and 50% when the scale search finds one), saves it
and prints the report.

The migrated model is saved without pickle (:func:`brain_ai.core.serialization.save`): weights
in safetensors plus a JSON description, rebuilt by ``brain_ai.load(path)``. A model the format
cannot describe (a custom ``forward``) is saved as its ``state_dict`` only, and the code that
rebuilds it is printed.

Exit codes: 0 equivalent; 1 NOT EQUIVALENT; 2 a usage error (a bad argument, a module,
factory or checkpoint that is not there, an existing ``--out`` without ``--force``); 3 the
converter refused the model. Every error is one line on stderr with a hint.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import math
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import Tensor, nn

from brain_ai.core.serialization import save, save_weights
from brain_ai.errors import BrainAIError, ConfigError, ConversionError

__all__ = ["EXIT_CONVERSION", "EXIT_NOT_EQUIVALENT", "EXIT_USAGE", "add_arguments",
           "load_factory", "run"]

SCALES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
WHERE = "brain-ai migrate"
EXIT_NOT_EQUIVALENT, EXIT_USAGE, EXIT_CONVERSION = 1, 2, 3


def _usage_error(prog: str) -> Callable[[str], NoReturn]:
    """argparse's own errors (a missing argument, ``--steps abc``) as one line with a hint."""

    def error(message: str) -> NoReturn:
        print(f"{prog}: {message}. Hint: see `{prog} --help`", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)

    return error


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("factory", help="module:callable or path/to/file.py:callable returning the "
                   "peer model, e.g. brain_ai.conformance.models_snntorch:tutorial_conv")
    p.add_argument("--from", dest="source", choices=("snntorch", "spikingjelly"),
                   default="snntorch", help="framework of the model (default snntorch)")
    p.add_argument("--path", metavar="DIR", help="also import the module from DIR (e.g. "
                   "--path . for the working directory, which is not searched otherwise)")
    p.add_argument("--checkpoint", help="state_dict to load into the model first "
                   "(.safetensors, or torch.save read with weights_only=True)")
    p.add_argument("--out", default="migrated.safetensors", help="where to save the migrated "
                   "model (.safetensors; load with brain_ai.load)")
    p.add_argument("--force", action="store_true", help="overwrite --out / --json")
    p.add_argument("--input-shape", help="per-sample input shape, e.g. 1,28,28 (default: "
                   "in_features of the first Linear)")
    p.add_argument("--steps", type=int, default=100, help="time steps T (default 100)")
    p.add_argument("--batch", type=int, default=8, help="batch size B (default 8)")
    p.add_argument("--scale", type=float, help="input scale (default: searched so that "
                   "firing rates fall between 5%% and 50%%)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the report as JSON here")
    p.error = _usage_error(p.prog)  # type: ignore[method-assign]


# ---------------------------------------------------------------- the model
@contextlib.contextmanager
def _search_path(directory: str | None) -> Iterator[None]:
    """``directory`` first on ``sys.path`` while the command runs (only when asked)."""
    if directory is None:
        yield
        return
    d = Path(directory)
    if not d.is_dir():
        raise ConfigError(f"{WHERE} --path", "no such directory", got=directory,
                          expected="a directory holding the model's module",
                          hint="give the directory the module is imported from, e.g. --path .")
    entry = str(d.resolve())
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def _import(spec: str, target: str, attr: str) -> Any:
    if target.endswith(".py"):  # an explicit file: loaded from there, nothing else searched
        path = Path(target)
        if not path.is_file():
            raise ConfigError(WHERE, "no such file", got=target, expected="path/to/file.py",
                              hint="check the path in path/to/file.py:factory")
        name = f"_brain_ai_migrate_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError(WHERE, "cannot load the file as a module", got=target,
                              expected="a Python source file", hint="give a .py file")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and (target == exc.name or target.startswith(exc.name + ".")):
            raise ConfigError(WHERE, f"module {target!r} not found", got=spec,
                              expected="an installed module, one on $PYTHONPATH, or "
                                       "path/to/file.py:factory",
                              hint="the working directory is not searched: add --path DIR "
                                   f"(e.g. --path .) or give the file, "
                                   f"{target.replace('.', '/')}.py:{attr}") from exc
        raise ConfigError(WHERE, f"importing {target!r} failed: {exc}", got=spec,
                          expected="a module whose imports are installed",
                          hint=f"install {exc.name!r} or fix the import in the module"
                          ) from exc


def load_factory(spec: str) -> Callable[[], nn.Module]:
    """The factory named by ``module:callable`` or ``path/to/file.py:callable``.

    Nothing is added to ``sys.path`` here (``run`` adds ``--path DIR`` when given).

    Raises:
        ConfigError: a malformed spec, a module or file that is not there, a missing or
            non-callable attribute.
    """
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(WHERE, "the model must be given as module:factory", got=repr(spec),
                          expected="e.g. mypkg.models:build_net or path/to/nets.py:build_net",
                          hint="name the callable that returns the peer model after a colon")
    obj: Any = _import(spec, target, attr)
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n in vars(obj) if not n.startswith("_")
                           and callable(vars(obj)[n]))[:8] if hasattr(obj, "__dict__") else []
            raise ConfigError(WHERE, f"{target!r} has no attribute {part!r}", got=repr(spec),
                              expected=f"one of {names}" if names else "an existing callable",
                              hint="check the spelling of the factory")
        obj = getattr(obj, part)
    if isinstance(obj, nn.Module):
        module = obj
        return lambda: module
    if not callable(obj):
        raise ConfigError(WHERE, f"{attr!r} is not callable", got=type(obj).__name__,
                          expected="a function returning the model",
                          hint="name a function (or class) that builds the model")
    return obj  # type: ignore[no-any-return]


def _build(spec: str) -> nn.Module:
    model = load_factory(spec)()
    if not isinstance(model, nn.Module):
        raise ConfigError(WHERE, "the factory did not return an nn.Module",
                          got=type(model).__name__, expected="the peer model (nn.Module)",
                          hint="return the model from the factory")
    return model


def _load_checkpoint(model: nn.Module, checkpoint: str) -> None:
    where = f"{WHERE} --checkpoint"
    path = Path(checkpoint)
    if not path.is_file():
        raise ConfigError(where, "no such file", got=checkpoint, expected="a state_dict file",
                          hint="check the path")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # untrusted input: any failure to read it is the user's to fix
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(where, "the checkpoint cannot be read as plain tensors "
                          "(torch.load with weights_only=True refused it)", got=first,
                          expected="torch.save(model.state_dict(), path) or a .safetensors "
                                   "file", hint="save the state_dict, not the whole module: "
                          "brain_ai never unpickles code") from exc
    if isinstance(state, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError(where, "the checkpoint is not a state_dict", got=type(state).__name__,
                          expected="a dict of tensors (model.state_dict())",
                          hint="save model.state_dict()")
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ConfigError(where, "the checkpoint does not fit the model",
                          got=f"missing {result.missing_keys[:4]}, unexpected "
                              f"{result.unexpected_keys[:4]}",
                          expected="the keys of factory().state_dict()",
                          hint="use the checkpoint of this model, built by this factory")


# ---------------------------------------------------------------- arguments
def _positive_int(flag: str, value: int) -> int:
    if value < 1:
        raise ConfigError(f"{WHERE} {flag}", f"{flag} must be an int >= 1", got=value,
                          expected="e.g. 100 for --steps, 8 for --batch",
                          hint=f"pass a positive {flag}")
    return value


def _feature_shape(model: nn.Module, given: str | None) -> tuple[int, ...]:
    if given is not None:
        parts = [s.strip() for s in given.split(",")]
        if not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ConfigError(f"{WHERE} --input-shape", "the shape must be positive ints "
                              "separated by commas", got=repr(given), expected="e.g. 784 or "
                              "1,28,28 (one sample, no batch or time axis)",
                              hint="give the per-sample shape the model's first layer takes")
        return tuple(int(p) for p in parts)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            return (m.in_features,)
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            break
    raise ConfigError(f"{WHERE} --input-shape", "cannot infer the input shape", got=None,
                      expected="--input-shape C,H,W", hint="give the per-sample shape")


def _output(flag: str, value: str | None, force: bool, suffix: str | None = None) -> None:
    if value is None:
        return
    path = Path(value)
    where = f"{WHERE} {flag}"
    if suffix and path.suffix != suffix:
        raise ConfigError(where, f"the file must end in {suffix}", got=value,
                          expected=f"e.g. migrated{suffix}",
                          hint="the model is saved as safetensors (no pickle); load it with "
                               "brain_ai.load(path)")
    if path.is_dir() or (path.exists() and not force):
        raise ConfigError(where, "the file exists", got=value, expected="a new file",
                          hint="pick another name, or add --force to overwrite it")
    if not path.parent.is_dir():
        raise ConfigError(where, "the directory does not exist", got=str(path.parent),
                          expected="an existing directory", hint="create it first")


def _check(args: argparse.Namespace) -> None:
    """Everything that can be checked before the model is built."""
    _positive_int("--steps", args.steps)
    _positive_int("--batch", args.batch)
    if args.scale is not None and not (math.isfinite(args.scale) and args.scale > 0):
        raise ConfigError(f"{WHERE} --scale", "--scale must be a number > 0", got=args.scale,
                          expected="e.g. 2.0", hint="or leave it out to search for a scale")
    _output("--out", args.out, args.force, ".safetensors")
    _output("--json", args.json, args.force)
    if args.input_shape is not None:
        _feature_shape(nn.Identity(), args.input_shape)


# ---------------------------------------------------------------- run
def _inputs(shape: tuple[int, ...], steps: int, batch: int, scale: float, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((steps, batch, *shape), generator=gen) * scale


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _rebuild_hint(spec: str, source: str, out: str) -> str:
    target, _, attr = spec.rpartition(":")
    factory = (f"from {target} import {attr.split('.')[0]}" if not target.endswith(".py")
               else f"{attr.split('.')[0]} = ...  # the factory {attr} of {target}")
    return (f"from safetensors.torch import load_model\n"
            f"from brain_ai.adapters.{source} import migrate\n{factory}\n"
            f"model = migrate({attr}())\nload_model(model, {out!r})")


def _save(migrated: nn.Module, args: argparse.Namespace) -> None:
    try:
        save(migrated, args.out)
    except ConversionError as err:
        hint = _rebuild_hint(args.factory, args.source, args.out)
        save_weights(migrated, args.out, note=hint)
        reason = str(err).split(" (got ")[0]
        print(f"saved: {args.out} (weights only, as safetensors; no model description: "
              f"{reason})")
        print("rebuild the model with:\n  " + hint.replace("\n", "\n  "))
        return
    print(f"saved: {args.out} (safetensors weights + model description, no pickle): "
          "model = brain_ai.load(path)")


def _migrate(args: argparse.Namespace) -> int:
    _check(args)
    model = _build(args.factory)
    if args.checkpoint:
        _load_checkpoint(model, args.checkpoint)
    if args.source == "snntorch":
        from brain_ai.adapters.snntorch import migrate
        from brain_ai.adapters.verify import verify_migration as verify
    else:
        from brain_ai.adapters import spikingjelly as sj_adapter

        migrate = sj_adapter.migrate
        verify = sj_adapter.verify_spikingjelly_migration
    try:
        migrated = migrate(model)
    except ConversionError as err:
        print(f"{_one_line(err)} [converting {args.factory}]", file=sys.stderr)
        return EXIT_CONVERSION
    shape = _feature_shape(model, args.input_shape)
    report: Any = None
    best: tuple[int, float] | None = None
    for candidate in (args.scale,) if args.scale else SCALES:
        x = _inputs(shape, args.steps, args.batch, candidate, args.seed)
        try:
            trial = verify(model, migrated, x)
        except ConversionError:
            raise
        except (BrainAIError, RuntimeError) as exc:
            raise ConfigError(f"{WHERE} --input-shape", "the model does not run on the "
                              "generated input", got=f"x {tuple(x.shape)} (T, B, *shape): "
                              f"{_one_line(exc)[:200]}", expected="the per-sample shape the "
                              "model takes", hint="pass --input-shape (e.g. 1,28,28)") from exc
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
    _save(migrated, args)
    if args.json:
        data = report.to_dict() if hasattr(report, "to_dict") else vars(report)
        with open(args.json, "w") as f:
            json.dump(data, f, indent=2, default=float)
    return 0 if report.equivalent else EXIT_NOT_EQUIVALENT


def run(args: argparse.Namespace) -> int:
    try:
        with _search_path(args.path):
            return _migrate(args)
    except ConversionError as err:
        print(_one_line(err), file=sys.stderr)
        return EXIT_CONVERSION
    except BrainAIError as err:
        print(_one_line(err), file=sys.stderr)
        return EXIT_USAGE
