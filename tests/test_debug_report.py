"""``brain-ai debug-report``: files exist, PNGs decode, JSON matches the probes, hints show."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot; the report itself never does

import matplotlib.image as mpimg
import pytest
import torch

from brain_ai.apps.cli import main
from brain_ai.apps.debug_report import (
    FAILURE_HINTS,
    build_report,
    example_model,
    example_task,
    load_model,
    synthetic_input,
)
from brain_ai.config import SNNConfig
from brain_ai.core.snn import SNNCore
from brain_ai.core.snntorch_losses import count_cross_entropy
from brain_ai.errors import ConfigError, ShapeError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = {"raster", "membrane", "firing_rates", "gradients", "dead_saturated"}


def _small_mlp(threshold: float = 1.0) -> SNNCore:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SNNCore(SNNConfig(threshold=threshold), input_size=20, hidden_sizes=(16,),
                       output_size=4)


@pytest.fixture(scope="module")
def mlp_report(tmp_path_factory: pytest.TempPathFactory):
    model = _small_mlp()
    x = synthetic_input((20,), 4, 6, max_rate=0.8, seed=1)
    report = build_report(model, x, tmp_path_factory.mktemp("mlp"), repeats=2, seed=3)
    return model, x, report


def test_files_exist_and_pngs_decode(mlp_report) -> None:
    _, _, report = mlp_report
    assert report.html_path.is_file() and report.json_path.is_file()
    assert set(report.png_paths) == PLOTS
    html = report.html_path.read_text(encoding="utf-8")
    embedded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(embedded) == len(PLOTS)
    files = {p.read_bytes() for p in report.png_paths.values()}
    for blob in embedded:
        raw = base64.b64decode(blob)
        assert raw.startswith(PNG_SIGNATURE)
        assert raw in files  # the embedded image is the file beside the report
    for path in report.png_paths.values():
        img = mpimg.imread(path)
        assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 200
    assert "<img" in html and "src='http" not in html  # self-contained


def test_json_matches_the_probes(mlp_report) -> None:
    """Every probe in the JSON equals a fresh ``return_details=True`` forward."""
    model, x, report = mlp_report
    data = json.loads(report.json_path.read_text())
    fresh = model(x, return_details=True)
    assert list(data["layers"]) == list(fresh.probes) == ["lif1", "lif_out"]
    for name, m in fresh.probes.items():
        layer = data["layers"][name]
        assert layer["probes"] == m.as_dict()
        assert layer["healthy"] == m.healthy()
        assert layer["unhealthy"] == [k for k, ok in m.healthy().items() if not ok]
        rate = fresh.spikes[name].float().mean(dim=(0, 1))
        assert layer["rate_per_neuron"] == rate.tolist()
        assert sum(layer["rate_per_neuron"]) / len(rate) == pytest.approx(m.firing_rate)
        events = torch.nonzero(fresh.spikes[name][0]).tolist()
        assert sorted(map(tuple, layer["raster"]["events"])) == sorted(map(tuple, events))
        v = fresh.membrane[name][0]
        for j, trace in zip(layer["membrane_traces"]["neurons"],
                            layer["membrane_traces"]["values"], strict=True):
            assert trace == v[:, j].tolist()
    assert data["healthy_ranges"]["firing_rate"] == [0.01, 0.5]


def test_json_gradient_norms_match(mlp_report) -> None:
    """Gradient norm per layer = the norm of a fresh backward of the same probe loss."""
    model, x, report = mlp_report
    data = report.data
    out = model(x, return_details=True)
    y = torch.randint(0, 4, (x.shape[0],), generator=torch.Generator().manual_seed(3))
    loss = count_cross_entropy(out.output, y)
    assert data["gradients"]["loss"]["value"] == pytest.approx(float(loss.detach()), rel=1e-6)
    model.zero_grad(set_to_none=True)
    loss.backward()
    for name in ("fc1", "fc_out"):
        layer = getattr(model, name)
        expected = math.sqrt(float(layer.weight.grad.norm()) ** 2
                             + float(layer.bias.grad.norm()) ** 2)
        assert data["gradients"]["layers"][name]["norm"] == pytest.approx(expected, rel=1e-5)
    assert set(data["gradients"]["layers"]) == {"fc1", "fc_out"}


def test_overhead_is_measured(mlp_report) -> None:
    o = mlp_report[2].data["overhead"]
    assert o["repeats"] == 2 and len(o["plain_times_s"]) == 2
    assert o["plain_s"] == min(o["plain_times_s"]) and o["details_s"] == min(o["details_times_s"])
    assert o["ratio"] == pytest.approx(o["details_s"] / o["plain_s"])
    assert 0 < o["ratio"] < 100


def test_unhealthy_layers_get_the_seed_hints(tmp_path: Path) -> None:
    """A threshold of 1000 silences everything: dead neurons, firing rate too low."""
    x = synthetic_input((20,), 2, 4, seed=0)
    report = build_report(_small_mlp(threshold=1000.0), x, tmp_path, repeats=1)
    assert report.unhealthy["lif1"] == ["firing_rate", "spike_sparsity", "dead_neuron_frac"]
    hints = {(c["layer"], c["probe"]): c["hint"] for c in report.data["callouts"]}
    assert hints[("lif1", "dead_neuron_frac")] == FAILURE_HINTS["dead_neuron_frac"]
    assert hints[("lif1", "firing_rate")] == FAILURE_HINTS["firing_rate_low"]
    assert "widen sigma" in FAILURE_HINTS["dead_neuron_frac"]
    html = report.html_path.read_text(encoding="utf-8")
    assert "dead neurons: widen sigma" in html and "class='bad'" in html
    assert "UNHEALTHY: firing_rate, spike_sparsity, dead_neuron_frac" in report.summary()


def test_cli_builtin_conv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The conv example on its own defaults (B=8, T=25): every layer healthy, --strict is 0."""
    out = tmp_path / "rep"
    rc = main(["debug-report", "--example", "conv", "--repeats", "1", "--out", str(out),
               "--strict"])
    text = capsys.readouterr().out
    assert rc == 0
    assert f"report: {out / 'report.html'}" in text and "return_details overhead:" in text
    data = json.loads((out / "report.json").read_text())
    assert data["model"]["name"] == "example:conv"
    assert data["input"]["shape"] == [8, 25, 1, 16, 16]
    assert data["input"]["source"].startswith("example task, held-out batch")
    assert list(data["layers"]) == ["lif1", "lif2", "lif_out"]
    assert data["unhealthy"] == {"lif1": [], "lif2": [], "lif_out": []} and not data["callouts"]
    assert data["plots"] == {k: f"{k}.png" for k in data["plots"]} and set(data["plots"]) == PLOTS
    rows = {line.split()[0]: line.split() for line in text.splitlines()
            if line.startswith("lif")}
    assert {k: (v[1], v[-1]) for k, v in rows.items()} == {
        "lif1": ("512", "ok"), "lif2": ("256", "ok"), "lif_out": ("10", "ok")}  # 8x8x8, 16x4x4


def test_builtin_mlp_is_trained_and_healthy(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Untrained, the mlp example has dead neurons and a near-silent output; after its 60
    training steps every probe of every layer is inside the healthy ranges, and the network
    classifies held-out task samples (chance is 1/10)."""
    x, _ = example_task("mlp", 8, 25, seed=0)
    fresh = build_report(example_model("mlp", train_steps=0), x, tmp_path / "fresh", repeats=1)
    assert set(fresh.unhealthy) == {"lif1", "lif2", "lif_out"}
    assert "dead_neuron_frac" in fresh.unhealthy["lif_out"]
    trained = example_model("mlp")
    report = build_report(trained, x, tmp_path / "trained", repeats=1)
    assert report.unhealthy == {}
    for m in report.probes.values():
        assert 0.01 <= m.firing_rate <= 0.5 and m.dead_neuron_frac == 0.0
        assert m.saturated_neuron_frac == 0.0
    xs, ys = example_task("mlp", 200, 25, seed=1)
    with torch.no_grad():
        counts = trained(xs)[0].sum(1)
    assert float((counts.argmax(1) == ys).float().mean()) >= 0.9

    assert main(["debug-report", "--strict", "--repeats", "1", "--out", str(tmp_path / "cli")]) \
        == 0
    text = capsys.readouterr().out
    assert "UNHEALTHY" not in text and " ! " not in text
    assert [line.split()[-1] for line in text.splitlines() if line.startswith("lif")] == \
        ["ok", "ok", "ok"]


def test_example_task_is_seeded_and_fixed() -> None:
    """Same seed, same batch; the class prototypes do not depend on the seed."""
    x1, y1 = example_task("conv", 4, 6, seed=3)
    x2, y2 = example_task("conv", 4, 6, seed=3)
    assert x1.shape == (4, 6, 1, 16, 16) and x1.dtype == torch.float32 and y1.shape == (4,)
    torch.testing.assert_close(x1, x2, rtol=0, atol=0)
    assert torch.equal(y1, y2) and set(x1.unique().tolist()) <= {0.0, 1.0}
    a, ya = example_task("mlp", 2000, 50, seed=1)
    b, yb = example_task("mlp", 2000, 50, seed=2)
    rate_a = torch.stack([a[ya == c].mean((0, 1)) for c in range(10)])
    rate_b = torch.stack([b[yb == c].mean((0, 1)) for c in range(10)])
    assert float((rate_a - rate_b).abs().max()) < 0.05  # ~10^4 draws per rate: sd < 0.005
    assert 0.0 <= float(rate_a.min()) and float(rate_a.max()) <= 0.5 + 0.05


def test_cli_user_model_checkpoint_and_strict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "my_snn_models.py").write_text(
        "from brain_ai.core.snn import SNNCore\n"
        "def build():\n"
        "    return SNNCore(input_size=5, hidden_sizes=(6,), output_size=3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    trained = load_model("my_snn_models:build")
    with torch.no_grad():
        trained.fc1.bias.fill_(-50.0)  # silence layer 1: a recognisable checkpoint
    torch.save({"state_dict": trained.state_dict()}, tmp_path / "ckpt.pt")
    args = ["debug-report", "--model", "my_snn_models:build", "--checkpoint",
            str(tmp_path / "ckpt.pt"), "--steps", "3", "--batch-size", "2", "--repeats", "1",
            "--out", str(tmp_path / "rep")]
    assert main(args) == 0
    assert main([*args, "--strict"]) == 1  # lif1 is dead
    capsys.readouterr()
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["model"]["name"] == "my_snn_models:build"
    assert data["layers"]["lif1"]["probes"]["dead_neuron_frac"] == 1.0


def test_bad_inputs_raise(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="module:factory"):
        load_model("no_colon_here")
    with pytest.raises(ConfigError, match="must be a SpikingSequential"):
        build_report(torch.nn.Linear(2, 2), torch.rand(1, 2, 2), tmp_path)
    with pytest.raises(ShapeError, match=r"\(B, T, \.\.\.\)"):
        build_report(example_model("mlp"), torch.rand(3), tmp_path)
    with pytest.raises(ConfigError, match="unknown example"):
        example_model("transformer")


def _user_error_files(folder: Path) -> dict[str, Path]:
    """Inputs a user gets wrong, saved with torch.save (or not a torch file at all)."""
    files = {"text": folder / "notes.pt", "dict": folder / "dict.pt", "wide": folder / "wide.pt",
             "int": folder / "int.pt", "nan": folder / "nan.pt", "flat": folder / "flat.pt",
             "a_file": folder / "a_file"}
    files["text"].write_text("not a torch file")
    files["a_file"].write_text("")
    torch.save({"x": torch.zeros(2)}, files["dict"])
    torch.save(torch.zeros(2, 3, 7), files["wide"])
    torch.save(torch.zeros(2, 3, 100, dtype=torch.long), files["int"])
    torch.save(torch.full((2, 3, 100), float("nan")), files["nan"])
    torch.save(torch.zeros(3, 100), files["flat"])
    return files


USER_ERRORS = [  # (arguments, what the one line must say)
    (["--input", "{missing}"], "the input file does not exist"),
    (["--input", "{text}"], "cannot read the input file"),
    (["--input", "{dict}"], "the file does not hold one tensor (got dict;"),
    (["--input", "{wide}"], "does not fit the model (got (2, 3, 7); expected (B, T, 100))"),
    (["--input", "{flat}"], "does not fit the model (got (3, 100); expected (B, T, 100))"),
    (["--input", "{int}"], "the input is not a floating tensor (got torch.int64;"),
    (["--input", "{nan}"], "the input holds NaN or inf (got 600 non-finite values;"),
    (["--batch-size", "0"], "--batch-size must be at least 1 (got 0;"),
    (["--steps", "-3"], "--steps must be at least 1 (got -3;"),
    (["--repeats", "0"], "--repeats must be at least 1 (got 0;"),
    (["--max-rate", "2"], "--max-rate is outside [0, 1] (got 2.0;"),
    (["--max-rate", "nan"], "--max-rate is outside [0, 1] (got nan;"),
    (["--input-shape", "3,4"], "--input-shape does not fit the example (got 3,4; expected 100)"),
    (["--checkpoint", "{missing}"], "--checkpoint needs --model"),
    (["--out", "{a_file}"], "--out is a file, not a folder"),
    (["--model", "no_colon"], "the model must be given as module:factory"),
    (["--model", "brain_ai.core.snn:SNNCore", "--checkpoint", "{missing}"],
     "the checkpoint file does not exist"),
    (["--model", "brain_ai.core.snn:SNNCore", "--checkpoint", "{dict}"],
     "the checkpoint does not fit the model"),
    (["--model", "brain_ai.core.snn:ConvSNN", "--input-shape", "2,28,28"],
     "--input-shape does not fit the model (got 2,28,28; expected 1,28,28)"),
]


@pytest.mark.parametrize(("argv", "message"), USER_ERRORS, ids=[m for _, m in USER_ERRORS])
def test_cli_user_errors_are_one_line_with_a_hint(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {k: str(v) for k, v in _user_error_files(tmp_path).items()}
    files["missing"] = str(tmp_path / "missing.pt")
    args = [a.format(**files) for a in argv]
    assert main(["debug-report", "--repeats", "1", "--out", str(tmp_path / "rep"), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert ". Hint: " in lines[0] and "Traceback" not in captured.err
    assert not (tmp_path / "rep").exists()  # nothing half-written


@pytest.mark.parametrize("argv", [["--steps", "abc"], ["--example", "transformer"],
                                  ["--example", "conv", "--model", "a:b"],
                                  ["--input-shape", "0,1"]])
def test_cli_malformed_arguments_are_one_line(argv: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["debug-report", *argv])
    assert exc.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: brain-ai debug-report: argument --")
    assert lines[0].endswith("Hint: see `brain-ai debug-report --help`")
