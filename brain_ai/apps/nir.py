"""``brain-ai nir import|export|verify``: NIR files in and out, checked.

* ``brain-ai nir import FILE.nir [--dt 1e-4] [--out model.safetensors]``: import, print what
  each node became; ``--out`` saves the model with :func:`brain_ai.core.serialization.save`.
* ``brain-ai nir export MODEL --dt 1e-4 --out FILE.nir [--carry metadata]``: ``MODEL`` is
  ``module:factory``, ``path/to/file.py:factory`` or a ``.safetensors`` file written by
  ``brain_ai.save``; a lossy model is refused unless ``--carry metadata``.
* ``brain-ai nir verify FILE.nir [--dt 1e-4]``: import, run it and an independent float64
  integration of NIR's equations (:func:`brain_ai.nir.simulate`) on seeded random input, compare
  every node; then export the import and read it back (bit-identical outputs required).

Exit codes: 0 done (``verify``: everything matched); 1 ``verify`` found a mismatch; 2 a user
error (a missing file, no dt, a graph or model with no exact conversion), printed as one line
on stderr ending in its hint.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import torch
from torch import Tensor, nn

from brain_ai.core.snn import SpikingSequential
from brain_ai.errors import BrainAIError, ConfigError
from brain_ai.nir import DISCRETIZATIONS, NIRNetwork, from_nir, read_graph, simulate, to_nir
from brain_ai.nir.graph import plan_graph
from brain_ai.nir.modules import LeakyIntegrator
from brain_ai.nir.reference import SPIKING

__all__ = ["add_arguments", "run"]

PROG = "brain-ai nir"


def _usage_error(prog: str) -> Callable[[str], NoReturn]:
    def error(message: str) -> NoReturn:
        print(f"error: {prog}: {message}. Hint: see `{prog} --help`", file=sys.stderr)
        raise SystemExit(2)

    return error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``import``, ``export`` and ``verify`` on ``parser``."""
    parser.error = _usage_error(PROG)  # type: ignore[method-assign]
    sub = parser.add_subparsers(dest="nir_command", metavar="{import,export,verify}")

    def common(p: argparse.ArgumentParser, dt_required: bool = False) -> None:
        p.add_argument("--dt", type=float, required=dt_required,
                       help="seconds per step (default: the file's metadata['dt'])")
        p.add_argument("--discretization", choices=DISCRETIZATIONS,
                       help="euler (NIR's reference; default) or exact")
        p.error = _usage_error(f"{PROG} {p.prog.split()[-1]}")  # type: ignore[method-assign]

    imp = sub.add_parser("import", help="import a .nir file and show the brain_ai model")
    imp.add_argument("file", help="a .nir (HDF5) file")
    common(imp)
    imp.add_argument("--no-metadata", action="store_true",
                     help="ignore brain_ai metadata (read the NIR semantics only)")
    imp.add_argument("--out", help="save the model here (.safetensors; load with brain_ai.load)")
    imp.add_argument("--force", action="store_true", help="overwrite --out")

    exp = sub.add_parser("export", help="export a brain_ai model to a .nir file")
    exp.add_argument("model", help="module:factory, path/to/file.py:factory, or a .safetensors "
                     "file written by brain_ai.save")
    common(exp, dt_required=True)
    exp.add_argument("--out", required=True, help="the .nir file to write")
    exp.add_argument("--force", action="store_true", help="overwrite --out")
    exp.add_argument("--carry", choices=("metadata",),
                     help="carry what NIR cannot express in node metadata instead of refusing")
    exp.add_argument("--input-shape", help="per-sample input shape, e.g. 2,8,8 (default: from "
                     "the first layer)")

    ver = sub.add_parser("verify", help="check an import against NIR's equations")
    ver.add_argument("file", help="a .nir (HDF5) file")
    common(ver)
    ver.add_argument("--steps", type=int, default=50, help="time steps T (default 50)")
    ver.add_argument("--batch", type=int, default=4, help="batch size B (default 4)")
    ver.add_argument("--scale", type=float, default=1.0,
                     help="inputs are uniform in [0, scale) (default 1)")
    ver.add_argument("--seed", type=int, default=0)


def _one_line(err: BaseException) -> str:
    return "error: " + " ".join(str(err).replace("\n  Hint: ", " Hint: ").split())


def _new_file(flag: str, path: str, force: bool) -> Path:
    p = Path(path)
    if p.exists() and not force:
        raise ConfigError(f"{PROG} {flag}", "the output file exists", got=str(p),
                          expected="a new path", hint="pass --force to overwrite it")
    if not p.parent.is_dir():
        raise ConfigError(f"{PROG} {flag}", "the output directory does not exist",
                          got=str(p.parent), expected="an existing directory",
                          hint="create it first")
    return p


def _describe(model: nn.Module) -> list[str]:
    """One line per layer / node: name and module."""
    if isinstance(model, NIRNetwork):
        rows = [f"  {n}: {type(m).__name__ if m is not None else 'sum of inputs'}"
                for n, m in ((n, model.module(n)) for n in model.order)]
        return [f"NIRNetwork: inputs {model.input_shapes}, outputs {model.output_shapes}, "
                f"{len(model.edges)} edges", *rows]
    if not isinstance(model, SpikingSequential):
        return [f"{type(model).__name__} ({model.extra_repr()})"]
    names = getattr(model, "nir_names", {})
    rows = [f"  {names.get(k, k)}: {type(m).__name__}"
            + (f" ({m.extra_repr()})" if m.extra_repr() else "")
            for k, m in model.named_children()]
    return [f"SpikingSequential ({len(rows)} layers):", *rows]


def _import(args: argparse.Namespace) -> int:
    model = from_nir(args.file, args.dt, discretization=args.discretization,
                     use_metadata=not args.no_metadata)
    print("\n".join(_describe(model)))
    if args.out:
        from brain_ai.core.serialization import save

        save(model, _new_file("import --out", args.out, args.force))
        print(f"saved: {args.out} (load with brain_ai.load)")
    return 0


def _load_model(spec: str) -> nn.Module:
    if spec.endswith(".safetensors"):
        from brain_ai.core.serialization import load

        return load(spec)
    from brain_ai.apps.migrate import load_factory

    model = load_factory(spec)()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{PROG} export", "the factory did not return an nn.Module",
                          got=type(model).__name__, expected="a brain_ai model",
                          hint="return the model from the factory")
    return model


def _export(args: argparse.Namespace) -> int:
    import nir

    out = _new_file("export --out", args.out, args.force)
    shape = None
    if args.input_shape:
        try:
            shape = tuple(int(s) for s in args.input_shape.split(","))
        except ValueError:
            raise ConfigError(f"{PROG} export", "not a shape", got=args.input_shape,
                              expected="e.g. 2,8,8", hint="comma-separated sizes") from None
    model = _load_model(args.model)
    graph = to_nir(model, args.dt, discretization=args.discretization or "euler",
                   carry=args.carry, input_shape=shape)
    nir.write(str(out), graph)
    kinds = [type(n).__name__ for n in graph.nodes.values()]
    print(f"wrote {out}: {len(kinds)} nodes ({', '.join(kinds)}), {len(graph.edges)} edges, "
          f"dt={args.dt}, {args.discretization or 'euler'}"
          + (", brain_ai metadata carried" if args.carry else ""))
    return 0


def _outputs(model: nn.Module, x: Tensor, outputs: tuple[str, ...]) -> dict[str, Tensor]:
    """Every neuron's output (spikes, or an integrator's membrane) and the graph outputs, by
    NIR node name."""
    with torch.no_grad():
        out = model(x, return_details=True)
    names = getattr(model, "nir_names", {})
    result = {names.get(k, k): v for k, v in out.spikes.items()}
    if isinstance(model, NIRNetwork):  # integrators report their membrane, not spikes
        result.update({k: v for k, v in out.membrane.items()
                       if isinstance(model.module(k), LeakyIntegrator)})
    y = out.output
    result.update({outputs[0]: y} if isinstance(y, Tensor) else y)
    return result


def _verify(args: argparse.Namespace) -> int:
    for flag, value in (("--steps", args.steps), ("--batch", args.batch)):
        if value <= 0:
            raise ConfigError(f"{PROG} verify {flag}", f"{flag} must be positive", got=value,
                              expected="an int > 0", hint=f"e.g. {flag} 10")
    graph = read_graph(args.file)
    md = getattr(graph, "metadata", None) or {}
    dt = args.dt if args.dt is not None else (float(md["dt"]) if "dt" in md else None)
    disc = args.discretization or str(md.get("discretization", "euler"))
    model = from_nir(graph, dt, discretization=disc, use_metadata=False)
    dt = float(dt) if dt is not None else 0.0
    plan = plan_graph(PROG, graph)
    if len(plan.inputs) != 1:
        raise ConfigError(f"{PROG} verify", "verify drives graphs with one Input",
                          got=list(plan.inputs), expected="one Input node",
                          hint="use brain_ai.nir.simulate from Python for several inputs")
    shape = tuple(int(s) for s in plan.nodes[plan.inputs[0]].input_type["input"])
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.rand((args.batch, args.steps, *shape), generator=gen) * args.scale
    ref = simulate(graph, x, dt, disc)
    ours = _outputs(model, x, plan.outputs)
    rows, ok = [], True
    for name, node in plan.nodes.items():
        kind = type(node).__name__
        if name not in ours or name not in ref:
            continue
        a, b = ours[name].detach().double(), ref[name]
        if kind in SPIKING:
            bad = int((a != b).sum())
            rows.append(f"  {name} ({kind}): {bad} spike mismatches of {b.numel()}, "
                        f"rate {float(b.mean()):.3f}")
            ok &= bad == 0
        else:
            diff = float((a - b).abs().max())
            rows.append(f"  {name} ({kind}): max |diff| {diff:.3g}")
            ok &= diff <= 1e-4 * max(1.0, float(b.abs().max()))
    back = from_nir(to_nir(model, dt, discretization=disc))
    y1, y2 = _outputs(model, x, plan.outputs), _outputs(back, x, plan.outputs)
    same = all(torch.equal(y1[n], y2[n]) for n in plan.outputs)
    ok &= same
    print(f"verify {args.file}: dt={dt}, {disc}, input (B={args.batch}, T={args.steps}, "
          f"{shape}) x U(0, {args.scale})")
    print("\n".join(rows) if rows else "  (no neuron nodes)")
    print(f"  round trip brain_ai -> NIR -> brain_ai: {'bit-identical' if same else 'DIFFERS'}")
    print("verify: OK" if ok else "verify: MISMATCH")
    return 0 if ok else 1


def run(args: argparse.Namespace) -> int:
    """Run ``brain-ai nir <command>``; see the module docstring for the exit codes."""
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "import": _import, "export": _export, "verify": _verify}
    command = getattr(args, "nir_command", None)
    if command not in commands:
        print(f"error: {PROG}: name a command. Hint: {PROG} import|export|verify --help",
              file=sys.stderr)
        return 2
    try:
        return commands[command](args)
    except BrainAIError as err:
        print(_one_line(err), file=sys.stderr)
        return 2

