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
    out = tmp_path / "rep"
    rc = main(["debug-report", "--example", "conv", "--batch-size", "2", "--steps", "4",
               "--repeats", "1", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert f"report: {out / 'report.html'}" in text and "return_details overhead:" in text
    data = json.loads((out / "report.json").read_text())
    assert data["model"]["name"] == "example:conv" and data["input"]["shape"] == [2, 4, 1, 16, 16]
    assert list(data["layers"]) == ["lif1", "lif2", "lif_out"]
    assert data["plots"] == {k: f"{k}.png" for k in data["plots"]} and set(data["plots"]) == PLOTS


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
