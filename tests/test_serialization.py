"""``brain_ai.save`` / ``brain_ai.load``: safetensors weights plus a JSON description, rebuilt
from a fixed table of layers; nothing in the file is imported or unpickled.

Every round trip is bit for bit: same outputs and final states, same tensors (dtype, values,
Parameter or buffer, ``requires_grad``), same training flags.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import snntorch as snn
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

import brain_ai
from brain_ai.adapters.snntorch import migrate
from brain_ai.core import serialization as ser
from brain_ai.core.neurons import (
    AdaptiveLIFNeuron,
    AdvancedLIFNeuron,
    LIFNeuron,
    RecurrentLIFNeuron,
)
from brain_ai.core.snn import SpikingSequential
from brain_ai.errors import ConfigError, ConversionError
from brain_ai.physics.surrogates import ATan, FastSigmoid, Sigmoid


def _g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _mlp_variants() -> SpikingSequential:
    g = _g()
    return SpikingSequential(
        nn.Linear(4, 6), LIFNeuron(beta=torch.rand(6, generator=g), learn_beta=True,
                                   surrogate=FastSigmoid(slope=10.0)),
        nn.Dropout(0.2), nn.Linear(6, 5),
        LIFNeuron(tau=3.0, charge="rate", learn_tau=True, alpha=0.7, reset="zero",
                  reset_timing="delayed", comparator=">="),
        nn.Linear(5, 3), LIFNeuron(graded_spikes_factor=0.5, input_gain=2.0,
                                   refractory_steps=2, threshold=torch.full((3,), 0.8))).eval()


def _recurrent_adaptive() -> SpikingSequential:
    return SpikingSequential(
        nn.Linear(4, 5), RecurrentLIFNeuron(5, recurrent="linear", learn_recurrent=False),
        AdaptiveLIFNeuron(features=5, learn_adaptation=True, beta_param="sigmoid", beta=0.7,
                          surrogate=Sigmoid(alpha=3.0)),
        nn.Linear(5, 3), RecurrentLIFNeuron(recurrent="one_to_one",
                                            V=torch.rand(3, generator=_g())))


def _advanced_folded() -> SpikingSequential:
    return SpikingSequential(nn.Linear(4, 5), AdvancedLIFNeuron(5, max_delay=2),
                             LIFNeuron(tau=torch.full((5,), 4.0), kernel="fused"),
                             fold_time=True, chunk_size=5)


def _conv_train_mode() -> SpikingSequential:
    """Train mode with BatchNorm: the batch statistics and running buffers are compared."""
    return SpikingSequential(
        nn.Unflatten(1, (1, 2, 2)), nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2),
        RecurrentLIFNeuron(2, recurrent="conv2d"), nn.MaxPool2d(2), nn.Flatten(1),
        nn.Linear(2, 3), nn.ReLU(),
        LIFNeuron(beta=torch.tensor(0.8, dtype=torch.float64), learn_threshold=True)).train()


def _nested_plain() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.LayerNorm(4), nn.GELU()),
                         nn.Identity())


def _migrated_snntorch() -> nn.Module:
    torch.manual_seed(0)
    return migrate(nn.Sequential(nn.Linear(4, 6), snn.Leaky(beta=0.8, init_hidden=True),
                                 nn.Linear(6, 3),
                                 snn.Synaptic(alpha=0.6, beta=0.7, init_hidden=True,
                                              output=True)))


MODELS: dict[str, Callable[[], nn.Module]] = {
    "mlp_variants": _mlp_variants, "recurrent_adaptive": _recurrent_adaptive,
    "advanced_folded": _advanced_folded, "conv_train_mode": _conv_train_mode,
    "nested_plain": _nested_plain, "migrated_snntorch": _migrated_snntorch,
}


def _run(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    torch.manual_seed(1)  # dropout masks, if any, agree
    out = model(x)
    flat, _ = torch.utils._pytree.tree_flatten(out)
    return [t for t in flat if isinstance(t, torch.Tensor)]


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_is_bit_identical(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MODELS[name]()
    path = tmp_path / "m.safetensors"
    brain_ai.save(model, path)
    loaded = brain_ai.load(path)
    assert type(loaded) is type(model) and repr(loaded) == repr(model)
    assert [m.training for m in loaded.modules()] == [m.training for m in model.modules()]
    for (ka, a), (kb, b) in zip(model.state_dict().items(), loaded.state_dict().items(),
                                strict=True):
        assert ka == kb and a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert ({n: p.requires_grad for n, p in model.named_parameters()}
            == {n: p.requires_grad for n, p in loaded.named_parameters()})
    x = torch.rand(3, 7, 4, generator=_g()) * 3
    ours, theirs = _run(model, x), _run(loaded, x)
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(float(t.detach().float().abs().sum()) > 0 for t in ours)  # not all zeros


def test_the_file_is_safetensors_with_a_json_description(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    brain_ai.save(_mlp_variants(), path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    desc = json.loads(meta[ser.METADATA_KEY])
    assert (desc["format"], desc["version"]) == ("brain_ai.model", 1)
    layers = desc["model"]["children"]
    assert [c[1]["type"] for c in layers] == ["Linear", "LIFNeuron", "Dropout", "Linear",
                                              "LIFNeuron", "Linear", "LIFNeuron"]
    assert layers[1][1]["args"]["beta"] == {"tensor": "beta"}
    assert layers[1][1]["args"]["surrogate"] == {"type": "fast_sigmoid", "args": {"slope": 10.0}}
    assert layers[4][1]["args"]["tau"] == {"tensor": "w"}  # rate charge keeps w = logit(1/τ)
    assert keys == set(_mlp_variants().state_dict())


# ---------------------------------------------------------------- nothing named is imported
def _crafted(tmp_path: Path, node: dict, tensors: dict | None = None) -> Path:
    desc = {"format": "brain_ai.model", "version": 1, "model": node, "frozen": []}
    path = tmp_path / "crafted.safetensors"
    save_file(tensors or {"x": torch.zeros(1)}, str(path),
              metadata={ser.METADATA_KEY: json.dumps(desc)})
    return path


@pytest.mark.parametrize(("node", "message"), [
    ({"type": "os.system", "args": {"command": "touch PWNED"}}, "unknown layer type"),
    ({"type": "builtins.eval", "args": {}}, "unknown layer type"),
    ({"type": "Sequential", "args": {},
      "children": [["0", {"type": "subprocess.Popen", "args": {"args": ["true"]}}]]},
     "unknown layer type"),
    ({"type": "Linear", "args": {"in_features": 1, "out_features": 1, "bias": True,
                                 "device": "meta"}}, "unknown constructor arguments"),
    ({"type": "LIFNeuron", "args": {"surrogate": {"type": "os.system", "args": {}}}},
     "unknown surrogate type"),
    ({"type": "LIFNeuron", "args": {"__class__": "x"}}, "unknown constructor arguments"),
    ({"type": "Linear", "args": {"in_features": "x", "out_features": 1}},
     "the arguments do not build the layer"),
])
def test_a_crafted_description_is_refused(node: dict, message: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import subprocess

    called: list[object] = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: called.append(a))
    with pytest.raises(ConfigError, match=message) as info:
        brain_ai.load(_crafted(tmp_path, node))
    assert str(info.value).startswith("brain_ai.load: ") and "\n  Hint: " in str(info.value)
    assert called == []


def test_a_pickle_is_never_unpickled(tmp_path: Path) -> None:
    """A torch.save file (pickle) is refused as 'not a safetensors file' without reading it
    as a pickle: its payload (here: appending to a list) never runs."""
    path = tmp_path / "evil.safetensors"
    torch.save(_Payload(), path)
    with pytest.raises(ConfigError, match="not a safetensors file"):
        brain_ai.load(path)
    assert RAN == []


RAN: list[str] = []


class _Payload:
    def __reduce__(self) -> tuple:
        return (RAN.append, ("payload ran",))


def test_a_weights_only_file_says_how_to_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    ser.save_weights(_nested_plain(), path, note="model = build()\nload_model(model, path)")
    with pytest.raises(ConfigError, match="weights only") as info:
        brain_ai.load(path)
    assert "Hint: build the model in code, then load the weights: model = build(); " \
           "load_model(model, path)" in str(info.value)


def test_tensors_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    node = {"type": "Linear", "args": {"in_features": 2, "out_features": 2, "bias": False}}
    with pytest.raises(ConfigError, match="tensors do not fit"):
        brain_ai.load(_crafted(tmp_path, node, {"weight": torch.zeros(3, 3)}))


# ---------------------------------------------------------------- what cannot be described
class _Custom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * 2


class _MyLinear(nn.Linear):
    pass


def _shared() -> nn.Module:
    lin = nn.Linear(2, 2)
    return nn.Sequential(lin, nn.ReLU(), lin)


def _user_surrogate() -> nn.Module:
    class Mine(ATan):
        pass

    return SpikingSequential(nn.Linear(2, 2), LIFNeuron(surrogate=Mine()))


def _changed_attribute() -> nn.Module:
    model = SpikingSequential(nn.Linear(2, 2), LIFNeuron())
    model[1].note = "set after construction"  # not a constructor argument: cannot rebuild
    return model


@pytest.mark.parametrize(("build", "message"), [
    (_Custom, "_Custom is not a layer this format describes"),
    (lambda: nn.Sequential(_MyLinear(2, 2)), "_MyLinear is not a layer"),
    (_shared, "appears twice"),
    (_user_surrogate, "user-defined surrogate"),
    (_changed_attribute, "does not rebuild the model exactly"),
], ids=["custom", "subclass", "shared", "surrogate", "attribute"])
def test_what_cannot_be_described_raises(build: Callable[[], nn.Module], message: str,
                                         tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    with pytest.raises(ConversionError, match=message) as info:
        brain_ai.save(build(), path)
    assert "save_weights()" in str(info.value)
    assert not path.exists()


def test_public_names() -> None:
    assert brain_ai.save is ser.save and brain_ai.load is ser.load
