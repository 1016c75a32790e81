"""brain-ai: the command line of brain_ai; each subcommand lives in its own module.

A subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int`` (exit code);
a subcommand whose module is absent from this version is left out of the parser.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main"]

# name -> (module, one-line help). The module owns its arguments and behaviour.
COMMANDS: dict[str, tuple[str, str]] = {
    "conformance": (
        "brain_ai.conformance.cli",
        "equivalence matrix against the installed snnTorch / SpikingJelly (the main job)",
    ),
    "validate": ("brain_ai.apps.validate", "runtime contract checks over every neuron variant"),
    "migrate": ("brain_ai.apps.migrate", "convert an snnTorch/SpikingJelly model and verify it"),
    "amp-stress": ("brain_ai.apps.amp_stress", "every encoder, decoder and loss under autocast"),
    "debug-report": ("brain_ai.apps.debug_report", "HTML report of firing rates, membranes, grads"),
    "nir": ("brain_ai.apps.nir", "NIR files: import, export, verify against NIR's equations"),
    "build-kernels": ("brain_ai.apps.build_kernels",
                      "build the native kernel ahead of time; status of every kernel"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="brain-ai", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    available = {}
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # subcommand not built in this version
                continue
            raise
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        available[name] = module
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(available[args.command].run(args))


if __name__ == "__main__":
    sys.exit(main())
