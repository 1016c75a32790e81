"""The house: folders are layers, imports point down, and the kernels read the one rule table.

The import graph is read from the source (AST), lazy imports inside functions and
``TYPE_CHECKING`` blocks included, so a cycle cannot hide behind a deferred import.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import brain_ai
from brain_ai.kernels import KNOWN_FIELDS, fused, fused_config, native, triton_lif
from brain_ai.physics import rules
from brain_ai.physics import surrogates as S
from brain_ai.physics.functional import LIFParams, lif_multi_step
from brain_ai.physics.state import SpikingState

ROOT = Path(__file__).resolve().parents[1]
# import name of each source folder (pyproject's package-dir)
FOLDERS = {"brain_ai": ROOT / "brain_ai", "brain_ai.adapters": ROOT / "adapters",
           "brain_ai.conformance": ROOT / "conformance"}

#: Bottom to top. A module may import only from its own package and from packages below it.
#: A new package must be placed here (the test fails on a module outside every layer).
LAYERS = ("brain_ai.errors", "brain_ai.text_table", "brain_ai.physics", "brain_ai.kernels",
          "brain_ai.config", "brain_ai.core", "brain_ai.adapters", "brain_ai.nir",
          "brain_ai.conformance", "brain_ai.apps", "brain_ai")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if parts and parts[0] in ("adapters", "conformance") and pkg == "brain_ai":
                continue
            if path.name.startswith("test_"):  # the conformance pytest drivers are tests
                continue
            out[".".join([pkg, *parts])] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """Every brain_ai module ``name`` imports, anywhere in the file."""
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in MODULES:
                    yield full
                elif base in MODULES:
                    yield base
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if "." in node.value and node.value in MODULES and node.value != name:  # by name
                yield node.value


GRAPH = {m: sorted(set(_imports(m, p)) - {m}) for m, p in MODULES.items()}


def _package(module: str) -> str:
    for layer in sorted(LAYERS, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    raise AssertionError(f"{module} belongs to no layer of LAYERS")


def _cycle(graph: dict[str, list[str]]) -> list[str] | None:
    color: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        color[n] = 1
        stack.append(n)
        for m in graph.get(n, ()):
            if color.get(m) == 1:
                return [*stack[stack.index(m):], m]
            if m not in color and (found := visit(m)):
                return found
        stack.pop()
        color[n] = 2
        return None

    for n in graph:
        if n not in color and (found := visit(n)):
            return found
    return None


def test_the_graph_is_read() -> None:
    """Guard: the parser sees the edges it must (a broken parser would pass every check)."""
    assert "brain_ai.kernels" in GRAPH["brain_ai.core.neurons"]
    assert "brain_ai.physics.rules" in GRAPH["brain_ai.kernels.fused"]
    assert "brain_ai.core.backends" in GRAPH["brain_ai.adapters.backends"]
    assert len(MODULES) > 40


def test_no_module_cycle() -> None:
    assert _cycle(GRAPH) is None, " -> ".join(_cycle(GRAPH) or [])


def test_no_package_cycle_and_imports_point_down() -> None:
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    upward = []
    packages: dict[str, set[str]] = {}
    for m, deps in GRAPH.items():
        for d in deps:
            a, b = _package(m), _package(d)
            if a != b:
                packages.setdefault(a, set()).add(b)
                if rank[b] > rank[a]:
                    upward.append(f"{m} -> {d}")
    assert not upward, "imports pointing up:\n" + "\n".join(upward)
    assert _cycle({k: sorted(v) for k, v in packages.items()}) is None


def test_nothing_imports_the_public_face() -> None:
    """``brain_ai/__init__`` is the top: no library module imports from it."""
    assert [m for m, deps in GRAPH.items() if "brain_ai" in deps] == []


def test_public_api() -> None:
    for name in brain_ai.__all__:
        assert getattr(brain_ai, name) is not None
    assert len(set(brain_ai.__all__)) == len(brain_ai.__all__)
    from brain_ai.core.backends import backend_names

    assert backend_names() == ("native", "snntorch", "spikingjelly")  # the adapters filled it


# ---------------------------------------------------------------- the one rule table
def test_timing_table_matches_the_rule_names() -> None:
    assert tuple(rules.TIMINGS) == rules.ALLOWED["reset_timing"]
    assert rules.RULE_CODES["reset_timing"] == {n: i for i, n in enumerate(rules.TIMINGS)}


@pytest.mark.parametrize("covered", [fused.COVERED, native.COVERED, triton_lif.COVERED],
                         ids=["fused", "native", "triton"])
def test_kernels_cover_only_names_of_the_table(covered: dict[str, frozenset[str]]) -> None:
    for kind, names in covered.items():
        assert names <= set(rules.ALLOWED[kind]), kind


def test_a_surrogate_no_kernel_lists_runs_on_the_fused_op(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A built-in surrogate added to the table gets a kernel id; the C++ and Triton kernels
    still refuse it until they implement it (the fused op calls its backward)."""

    @dataclasses.dataclass(frozen=True)
    class Newcomer(S.ATan):
        name = "newcomer"

    monkeypatch.setitem(S.SURROGATE_CODES, Newcomer, len(S.SURROGATE_CODES))
    c = fused.FusedConfig(charge="beta", comparator=">", reset="subtract", timing="immediate",
                          v_reset=0.0, detach_reset=False, surrogate=Newcomer(),
                          synapse=False, record_v=False)
    assert fused.covers(c) and not native.covers(c) and triton_lif.triton_config(c) is None
    assert native.covers(dataclasses.replace(c, surrogate=S.ATan()))


def test_cpp_enums_come_from_the_table() -> None:
    """lif_native.cpp defines no enum of its own, and every rule/surrogate constant it names
    is one the generated header defines, with the table's code."""
    src = (ROOT / "brain_ai" / "kernels" / "lif_native.cpp").read_text()
    assert not re.search(r"^\s*enum\s+(Charge|Reset|Timing|Surr)\b", src, re.M)
    header = native.rules_header()
    codes = dict(re.findall(r"(\w+) = (\d+)", header))
    for kind in ("charge", "reset", "reset_timing"):
        for name, code in rules.RULE_CODES[kind].items():
            assert codes[name.upper()] == str(code)
    for cls, code in S.SURROGATE_CODES.items():
        assert codes[cls.name.upper()] == str(code)
    used = set(re.findall(r"\b(?:case |== |!= )([A-Z][A-Z_]+)\b", src))
    assert used and used <= set(codes), used - set(codes)


def test_triton_constants_come_from_the_table() -> None:
    for name in triton_lif._RULE_CONSTANTS:
        prefix, _, rule = name.partition("_")
        table = ({"CHARGE": rules.RULE_CODES["charge"], "RESET": rules.RULE_CODES["reset"]}
                 .get(prefix) or {c.name: i for c, i in S.SURROGATE_CODES.items()})
        assert getattr(triton_lif, name) == table[rule.lower()]


# ---------------------------------------------------------------- deny by default
def _call(p: LIFParams) -> tuple[torch.Tensor, SpikingState]:
    x = torch.rand(2, 5, 3, generator=torch.Generator().manual_seed(0))
    return x, SpikingState(v=torch.zeros(2, 3))


def test_a_rule_no_kernel_lists_runs_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reset timing added to the rule table alone (here: "immediate" under a new name, with
    its flags) runs the reference, whose numbers it then defines; no kernel claims it."""
    monkeypatch.setitem(rules.TIMINGS, "immediate_v2", rules.TIMINGS["immediate"])
    p = LIFParams(leak=torch.tensor(0.9), threshold=torch.tensor(0.5), surrogate=S.ATan(),
                  reset_timing="immediate_v2")
    x, state = _call(p)
    assert fused_config(x, state, p) is None
    c = fused.FusedConfig(charge="beta", comparator=">", reset="subtract",
                          timing="immediate_v2", v_reset=0.0, detach_reset=False,
                          surrogate=S.ATan(), synapse=False, record_v=False)
    assert not fused.covers(c) and not native.covers(c) and triton_lif.triton_config(c) is None
    s_new, st_new, _ = lif_multi_step(x, state, p)
    s_old, st_old, _ = lif_multi_step(x, state, dataclasses.replace(p, reset_timing="immediate"))
    torch.testing.assert_close(s_new, s_old, rtol=0, atol=0)
    torch.testing.assert_close(st_new.v, st_old.v, rtol=0, atol=0)


def test_a_params_field_no_kernel_knows_runs_the_reference() -> None:
    @dataclasses.dataclass(frozen=True, eq=False)
    class Extended(LIFParams):
        new_option: float = 0.0

    base = dict(leak=torch.tensor(0.9), threshold=torch.tensor(0.5), surrogate=S.ATan())
    x, state = _call(LIFParams(**base))
    assert fused_config(x, state, Extended(**base)) is not None  # at its default: as before
    assert fused_config(x, state, Extended(**base, new_option=1.0)) is None
    assert {f.name for f in dataclasses.fields(LIFParams)} == KNOWN_FIELDS


def test_import_without_the_peers() -> None:
    """The peers are an extra: ``import brain_ai`` and a neuron work without them, and a
    SpikingJelly entry point then says what is missing."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('snntorch', 'spikingjelly', 'nir', 'nirtorch'):\n"
        "            raise ImportError(f'blocked {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import torch, brain_ai\n"
        "s, st = brain_ai.LIFNeuron(beta=0.5, features=3)(torch.ones(2, 4, 3))\n"
        "print(int(s.sum()))\n"
        "try:\n"
        "    brain_ai.migrate_spikingjelly\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    # v: 1, 1.5 (fires: > 1 -> 0.5), 1.25 (fires -> 0.25), 1.125 (fires): 3 spikes x 6 neurons
    assert out == ["18", "PeerMissingError"]
