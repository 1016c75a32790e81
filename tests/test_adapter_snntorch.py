"""snnTorch adapter: what converts, what raises, the drop-in's state protocol, migrate, CLI.

Numeric equivalence across configurations lives in conformance/cases_snntorch.py (run by
conformance/test_conformance.py); here: the edges, each with numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import snntorch as snn
import torch
from snntorch import surrogate as sn_sg
from snntorch.functional import quant
from torch import nn

from brain_ai.adapters.snntorch import (
    SnnTorchNeuron,
    from_snntorch,
    from_snntorch_surrogate,
    migrate,
    reset_timing_for,
    to_snntorch,
)
from brain_ai.adapters.verify import verify_migration
from brain_ai.apps.cli import main
from brain_ai.core import surrogates as sg
from brain_ai.core.neurons import LIFNeuron, RecurrentLIFNeuron
from brain_ai.core.snn import SpikingSequential
from brain_ai.errors import ConversionError, ShapeError


@pytest.mark.parametrize(("kind", "reset", "delay", "timing"), [
    ("Leaky", "subtract", True, "delayed"),
    ("Leaky", "zero", True, "delayed_pre"),
    ("Leaky", "zero", False, "compensated_pre"),
    ("Synaptic", "zero", True, "delayed"),
    ("RLeaky", "subtract", False, "compensated"),
    ("RSynaptic", "subtract", False, "delayed"),  # 1.0.0's branch has no effect
    ("Leaky", "none", True, "immediate"),
])
def test_reset_timing_table(kind: str, reset: str, delay: bool, timing: str) -> None:
    assert reset_timing_for(kind, reset, delay) == timing


def test_default_leaky_converts_to_the_delayed_rule_with_hand_values() -> None:
    """Leaky(beta=0.5): x = [1.5, 0, 0]: mem 1.5 (spike), 0.75 - 1 = -0.25, -0.125."""
    lif = from_snntorch(snn.Leaky(beta=0.5))
    assert (lif.reset, lif.reset_timing, lif.comparator) == ("subtract", "delayed", ">")
    spikes, _, tr = lif.sequence(torch.tensor([[[1.5], [0.0], [0.0]]]), record=("v",))
    torch.testing.assert_close(spikes.flatten(), torch.tensor([1.0, 0.0, 0.0]), rtol=0, atol=0)
    torch.testing.assert_close(tr["v"].flatten(), torch.tensor([1.5, -0.25, -0.125]),
                               rtol=0, atol=0)


def test_parameters_keep_learnability_and_raw_values() -> None:
    peer = snn.Leaky(beta=torch.tensor([1.3, 0.5]), learn_beta=True, threshold=2.0)
    ours = from_snntorch(peer)
    assert isinstance(ours.beta, nn.Parameter) and not isinstance(ours.threshold, nn.Parameter)
    # the raw beta (1.3, clamped to 1 at use as in snnTorch) is kept
    torch.testing.assert_close(ours.beta.detach(), torch.tensor([1.3, 0.5]), rtol=0, atol=0)
    torch.testing.assert_close(ours.leak(), torch.tensor([1.0, 0.5]), rtol=0, atol=0)


@pytest.mark.parametrize(("make", "feature"), [
    (lambda: snn.Leaky(beta=0.9, inhibition=True), "inhibition"),
    (lambda: snn.Leaky(beta=0.9, state_quant=quant.state_quant(4)),
     "state_quant"),
    (lambda: snn.Leaky(beta=0.9, surrogate_disable=True), "surrogate_disable"),
    (lambda: snn.SLSTM(4, 4), "SLSTM"),
    (lambda: snn.Leaky(beta=0.9, spike_grad=sn_sg.SSO()), "spike_grad"),
])
@pytest.mark.filterwarnings("ignore:Inhibition is an unstable feature:UserWarning")
def test_unrepresentable_features_raise_naming_them(make, feature: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConversionError, match="Hint:") as info:
        from_snntorch(make())
    assert feature in str(info.value)


def test_changed_reset_mechanism_after_construction_raises() -> None:
    peer = snn.Leaky(beta=0.9)
    peer.reset_mechanism = "zero"  # snnTorch now runs two different rules at once
    with pytest.raises(ConversionError, match="after construction"):
        from_snntorch(peer)


def test_surrogate_mapping_reads_closure_values() -> None:
    assert from_snntorch_surrogate(sn_sg.atan(alpha=3.0)) == sg.ATan(alpha=3.0)
    assert from_snntorch_surrogate(sn_sg.fast_sigmoid(slope=7)) == sg.FastSigmoid(slope=7.0)
    assert from_snntorch_surrogate(sn_sg.triangular(threshold=2)) == sg.Triangular(2.0)


def test_to_snntorch_refuses_immediate_subtract_and_ge() -> None:
    with pytest.raises(ConversionError, match="immediate subtract differs"):
        to_snntorch(LIFNeuron(beta=0.9))
    with pytest.raises(ConversionError, match="comparator"):
        to_snntorch(LIFNeuron(beta=0.9, comparator=">=", reset_timing="delayed"))


def test_round_trip_to_and_from_snntorch_keeps_everything() -> None:
    ours = RecurrentLIFNeuron(3, beta=0.8, alpha=0.5, reset_timing="delayed",
                              beta_clamp=(0.0, 1.0), learn_beta=True)
    back = from_snntorch(to_snntorch(ours))
    assert type(back) is RecurrentLIFNeuron and back.reset_timing == "delayed"
    for name, p in ours.state_dict().items():
        torch.testing.assert_close(back.state_dict()[name], p, rtol=0, atol=0)


def test_drop_in_state_protocol() -> None:
    """Empty tensors (init_leaky) and all-zero states of another shape (the tutorials'
    ``torch.zeros(1)``) mean fresh, as in snnTorch; None or a mis-shaped non-zero state
    raises (snnTorch would silently replace it with zeros)."""
    drop = SnnTorchNeuron(from_snntorch(snn.Leaky(beta=0.5)), "Leaky")
    mem = drop.init_leaky()
    spk, mem = drop(torch.tensor([[1.5, 0.2]]), mem)
    torch.testing.assert_close(spk, torch.tensor([[1.0, 0.0]]), rtol=0, atol=0)
    torch.testing.assert_close(mem, torch.tensor([[1.5, 0.2]]), rtol=0, atol=0)
    spk, mem = drop(torch.tensor([[1.5, 0.2]]), torch.zeros(3, 2))  # fresh, as snnTorch
    torch.testing.assert_close(mem, torch.tensor([[1.5, 0.2]]), rtol=0, atol=0)
    with pytest.raises(ShapeError, match="pass every state"):
        drop(torch.ones(1, 2))
    with pytest.raises(ShapeError, match="never broadcast"):
        drop(torch.ones(1, 2), torch.ones(3, 2))




def test_migrate_keeps_the_original_untouched_and_sequential_becomes_spiking() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.8, init_hidden=True, output=True))
    migrated = migrate(model)
    assert isinstance(migrated, SpikingSequential)
    assert isinstance(model[1], snn.Leaky)
    x = torch.rand(30, 2, 4) * 2
    report = verify_migration(model, migrated, x)
    assert report.equivalent and report.layers[0].spike_mismatches == 0


def test_verify_migration_catches_a_wrong_migration() -> None:
    """A deliberately wrong beta must show up as mismatches and a NOT EQUIVALENT verdict."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.8, init_hidden=True))
    migrated = migrate(model)
    migrated[1].beta = torch.tensor(0.7)
    report = verify_migration(model, migrated, torch.rand(30, 2, 4) * 2)
    assert not report.equivalent
    assert report.layers[0].max_abs_membrane > 0.01
    assert "NOT EQUIVALENT" in str(report)


def test_migrate_cli_saves_and_reports(tmp_path: Path) -> None:
    out, js = tmp_path / "m.safetensors", tmp_path / "r.json"
    code = main(["migrate", "brain_ai.conformance.models_snntorch:tutorial_recurrent",
                 "--out", str(out), "--steps", "40", "--batch", "2", "--json", str(js)])
    assert code == 0 and out.exists()
    data = json.loads(js.read_text())
    assert data["equivalent"] is True
    assert all(row["spike_mismatches"] == 0 for row in data["layers"])


def test_migrate_and_verify_after_the_original_ran_with_gradients() -> None:
    """snnTorch keeps a graph-carrying membrane on the module after a forward pass; migrate
    must still copy the model, and verifying must leave the original as it found it."""
    from brain_ai.conformance.models_snntorch import tutorial_mlp

    model = tutorial_mlp()
    x = torch.rand(20, 2, 784, generator=torch.Generator().manual_seed(0))
    model(x)[0].sum().backward()
    migrated = migrate(model)
    assert verify_migration(model, migrated, x).equivalent
    migrate(model)  # again, after verification


def test_verify_in_train_mode_with_dropout_and_batchnorm() -> None:
    """Same RNG state for both runs: dropout masks agree; BN statistics are restored."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Dropout(0.3),
                          snn.Leaky(beta=0.8, init_hidden=True), nn.Linear(8, 3),
                          snn.Leaky(beta=0.8, init_hidden=True, output=True)).train()
    migrated = migrate(model)
    assert migrated.training
    before = model[1].running_mean.clone()
    report = verify_migration(model, migrated, torch.rand(25, 4, 6) * 2)
    assert report.equivalent, str(report)
    torch.testing.assert_close(model[1].running_mean, before, rtol=0, atol=0)


def test_migrate_keeps_eval_mode() -> None:
    model = nn.Sequential(nn.Linear(2, 2), snn.Leaky(beta=0.5, init_hidden=True)).eval()
    assert not migrate(model).training


def test_detach_reset_does_not_convert_to_snntorch() -> None:
    with pytest.raises(ConversionError, match="detach_reset"):
        to_snntorch(LIFNeuron(beta=0.8, reset="zero", detach_reset=True,
                              beta_clamp=(0.0, 1.0)))
