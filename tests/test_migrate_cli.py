"""``brain-ai migrate``: user errors are one line with a hint (exit 2), a refused model exits 3,
NOT EQUIVALENT exits 1; the working directory is never searched unless asked; checkpoints are
read without unpickling code; the output loads with ``brain_ai.load`` (no pickle)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_model, save_file

import brain_ai
from brain_ai.adapters import snntorch as snntorch_adapter
from brain_ai.apps.cli import main

MLP = "brain_ai.conformance.models_snntorch:tutorial_mlp"
SEQUENTIAL = """
import snntorch as snn
from torch import nn

def build():
    return nn.Sequential(nn.Linear(4, 6), snn.Leaky(beta=0.8, init_hidden=True),
                         nn.Linear(6, 3), snn.Leaky(beta=0.7, init_hidden=True, output=True))

def unsupported():
    return nn.Sequential(nn.Linear(4, 4), snn.LeakyParallel(input_size=4, hidden_size=4))

def not_a_model():
    return 3
"""
FAST = ["--steps", "12", "--batch", "2"]


def cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code or 0)


@pytest.fixture
def nets(tmp_path: Path) -> Path:
    path = tmp_path / "nets.py"
    path.write_text(SEQUENTIAL)
    return path


def _bad_checkpoint(tmp: Path) -> str:
    """A torch.save file holding a pickled object (its reduce would print PWNED)."""
    path = tmp / "evil.pt"
    torch.save({"fc1.weight": _Evil()}, path)
    return str(path)


class _Evil:
    def __reduce__(self) -> tuple:
        return (print, ("PWNED",))


def _wrong_checkpoint(tmp: Path) -> str:
    path = tmp / "other.safetensors"
    save_file({"nope.weight": torch.zeros(2)}, str(path))
    return str(path)


def _existing(tmp: Path) -> str:
    path = tmp / "taken.safetensors"
    path.write_bytes(b"precious")
    return str(path)


#: (argv builder, exit code, words of the one-line error). 22 user errors.
BAD: dict[str, tuple[Callable[[Path, Path], list[str]], int, str]] = {
    "no factory": (lambda t, n: [], 2, "required: factory"),
    "no colon": (lambda t, n: ["tutorial_mlp"], 2, "must be given as module:factory"),
    "missing module": (lambda t, n: ["no_such_module_4711:build"], 2,
                       "module 'no_such_module_4711' not found"),
    "missing file": (lambda t, n: [str(t / "absent.py") + ":build"], 2, "no such file"),
    "missing factory": (lambda t, n: ["brain_ai.conformance.models_snntorch:nope"], 2,
                        "has no attribute 'nope'"),
    "not callable": (lambda t, n: ["brain_ai.conformance.models_snntorch:__all__"], 2,
                     "is not callable"),
    "not a model": (lambda t, n: [f"{n}:not_a_model"], 2, "did not return an nn.Module"),
    "missing checkpoint": (lambda t, n: [MLP, "--checkpoint", str(t / "no.pt")], 2,
                           "no such file"),
    "pickled checkpoint": (lambda t, n: [MLP, "--checkpoint", _bad_checkpoint(t)], 2,
                           "weights_only=True refused it"),
    "wrong checkpoint": (lambda t, n: [MLP, "--checkpoint", _wrong_checkpoint(t)], 2,
                         "does not fit the model"),
    "shape a,b": (lambda t, n: [MLP, "--input-shape", "a,b"], 2, "positive ints"),
    "shape 0": (lambda t, n: [MLP, "--input-shape", "0,3"], 2, "positive ints"),
    "wrong shape": (lambda t, n: [f"{n}:build", "--input-shape", "5", *FAST,
                                  "--out", str(t / "o.safetensors")], 2,
                    "does not run on the generated input"),
    "steps 0": (lambda t, n: [MLP, "--steps", "0"], 2, "--steps must be an int >= 1"),
    "batch -1": (lambda t, n: [MLP, "--batch", "-1"], 2, "--batch must be an int >= 1"),
    "steps abc": (lambda t, n: [MLP, "--steps", "abc"], 2, "invalid int value: 'abc'"),
    "scale -1": (lambda t, n: [MLP, "--scale", "-1"], 2, "--scale must be a number > 0"),
    "out exists": (lambda t, n: [MLP, "--out", _existing(t)], 2, "the file exists"),
    "out pickle name": (lambda t, n: [MLP, "--out", str(t / "m.pt")], 2,
                        "must end in .safetensors"),
    "out no dir": (lambda t, n: [MLP, "--out", str(t / "no" / "m.safetensors")], 2,
                   "directory does not exist"),
    "path missing": (lambda t, n: [MLP, "--path", str(t / "nowhere")], 2, "no such directory"),
    "converter refuses": (lambda t, n: [f"{n}:unsupported", *FAST], 3,
                          "snnTorch LeakyParallel is not supported"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_user_error_is_one_line_with_a_hint(case: str, tmp_path: Path, nets: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv, code, words = BAD[case]
    assert cli(["migrate", *argv(tmp_path, nets)]) == code
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert words in lines[0] and "Hint" in lines[0], lines[0]
    if code == 2:
        assert lines[0].startswith("brain-ai migrate")
    assert "Traceback" not in out.err and "PWNED" not in out.out + out.err
    if case == "out exists":
        assert (tmp_path / "taken.safetensors").read_bytes() == b"precious"


def test_the_bad_argument_table_covers_the_issue_list() -> None:
    assert len(BAD) == 22
    assert sum(code == 2 for _, code, _ in BAD.values()) == 21


# ---------------------------------------------------------------- where the model comes from
def _module_in(tmp_path: Path, marker: Path) -> str:
    name = f"cwd_model_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        + SEQUENTIAL)
    importlib.invalidate_caches()
    return name


def test_the_working_directory_is_not_searched(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A module in the working directory (say a malicious snntorch.py) is never imported by
    accident: before, ``load_factory`` put ``""`` first on ``sys.path``."""
    marker = tmp_path / "marker"
    name = _module_in(tmp_path, marker)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    before = list(sys.path)
    assert cli(["migrate", f"{name}:build", *FAST]) == 2
    assert not marker.exists() and sys.path == before
    assert "--path" in capsys.readouterr().err


def test_path_option_and_file_spec_import_on_request(tmp_path: Path, nets: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "marker"
    name = _module_in(tmp_path, marker)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    before = list(sys.path)
    out = tmp_path / "a.safetensors"
    assert cli(["migrate", f"{name}:build", "--path", str(tmp_path), *FAST,
                "--out", str(out)]) == 0
    assert marker.read_text() == "imported" and out.exists()
    assert sys.path == before  # --path is removed again
    assert cli(["migrate", f"{nets}:build", *FAST, "--out", str(tmp_path / "b.safetensors")]) == 0


# ---------------------------------------------------------------- outputs and verdicts
def test_the_output_loads_without_pickle_and_computes_the_same(
        tmp_path: Path, nets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.safetensors"
    torch.manual_seed(5)  # the factory is the command's first use of the global RNG
    assert cli(["migrate", f"{nets}:build", *FAST, "--out", str(out)]) == 0
    assert "brain_ai.load(path)" in capsys.readouterr().out
    head = out.read_bytes()[:9]  # safetensors: 8-byte header length, then the JSON header
    assert head[8:9] == b"{" and not head.startswith(b"PK")  # not torch.save's zip of a pickle
    loaded = brain_ai.load(out)
    torch.manual_seed(5)
    migrated = snntorch_adapter.migrate(_factory(nets, "build")())
    x = torch.rand(2, 12, 4, generator=torch.Generator().manual_seed(0)) * 2
    ours, state = loaded(x)
    expected, expected_state = migrated(x)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    torch.testing.assert_close(state[-1].v, expected_state[-1].v, rtol=0, atol=0)
    assert float(ours.detach().sum()) > 0


def _factory(nets: Path, name: str) -> Callable[[], torch.nn.Module]:
    spec = importlib.util.spec_from_file_location(f"nets_{uuid.uuid4().hex[:8]}", nets)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def test_a_model_with_its_own_forward_is_saved_as_weights_with_a_recipe(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.safetensors"
    spec = "brain_ai.conformance.models_snntorch:tutorial_recurrent"
    torch.manual_seed(3)
    assert cli(["migrate", spec, *FAST, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "weights only" in printed and "load_model(model," in printed
    from brain_ai.conformance.models_snntorch import tutorial_recurrent

    torch.manual_seed(4)  # other initial weights: the file must overwrite every one
    model = snntorch_adapter.migrate(tutorial_recurrent())
    load_model(model, str(out))
    torch.manual_seed(3)
    expected = snntorch_adapter.migrate(tutorial_recurrent()).state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["torch", "safetensors"])
def test_a_checkpoint_is_loaded_as_plain_tensors(kind: str, tmp_path: Path, nets: Path) -> None:
    state = _factory(nets, "build")().state_dict()
    state["0.weight"] = torch.full_like(state["0.weight"], 0.25)
    ckpt = tmp_path / ("c.pt" if kind == "torch" else "c.safetensors")
    if kind == "torch":
        torch.save(state, ckpt)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(ckpt))
    out = tmp_path / "m.safetensors"
    assert cli(["migrate", f"{nets}:build", "--checkpoint", str(ckpt), *FAST,
                "--out", str(out)]) == 0
    torch.testing.assert_close(brain_ai.load(out)[0].weight, torch.full((6, 4), 0.25),
                               rtol=0, atol=0)


def test_not_equivalent_exits_1(tmp_path: Path, nets: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    real = snntorch_adapter.migrate

    def broken(model: torch.nn.Module) -> torch.nn.Module:
        out = real(model)
        out[1].beta = torch.tensor(0.5)  # snnTorch's layer decays with 0.8
        return out

    monkeypatch.setattr(snntorch_adapter, "migrate", broken)
    assert cli(["migrate", f"{nets}:build", *FAST, "--out", str(tmp_path / "m.safetensors")]) == 1
    assert "NOT EQUIVALENT" in capsys.readouterr().out


def test_force_overwrites(tmp_path: Path, nets: Path) -> None:
    out = _existing(tmp_path)
    assert cli(["migrate", f"{nets}:build", *FAST, "--out", out, "--force"]) == 0
    assert isinstance(brain_ai.load(out), torch.nn.Module)
