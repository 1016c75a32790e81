"""snnTorch models in the style of its tutorials: the migration targets used by tests,
conformance and ``brain-ai migrate`` (factories take no arguments)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["tutorial_conv", "tutorial_mlp", "tutorial_recurrent"]


class TutorialMLP(nn.Module):
    """Tutorial 5: fc -> Leaky -> fc -> Leaky with a hand-written time loop over (T, B, 784)."""

    def __init__(self, num_inputs: int = 784, num_hidden: int = 100, num_outputs: int = 10,
                 beta: float = 0.95) -> None:
        super().__init__()
        import snntorch as snn

        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec, mem2_rec = [], []
        for x_t in x.unbind(0):
            spk1, mem1 = self.lif1(self.fc1(x_t), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec), torch.stack(mem2_rec)


class TutorialRecurrent(nn.Module):
    """RLeaky (all-to-all, with bias) between two linear layers, hand-written loop."""

    def __init__(self, num_inputs: int = 40, num_hidden: int = 64, num_outputs: int = 10,
                 beta: float = 0.9) -> None:
        super().__init__()
        import snntorch as snn

        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.rlif = snn.RLeaky(beta=beta, linear_features=num_hidden)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.Leaky(beta=beta, reset_mechanism="zero")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spk1, mem1 = self.rlif.init_rleaky()
        mem2 = self.lif2.init_leaky()
        out_spk, out_mem = [], []
        for x_t in x.unbind(0):
            spk1, mem1 = self.rlif(self.fc1(x_t), spk1, mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out_spk.append(spk2)
            out_mem.append(mem2)
        return torch.stack(out_spk), torch.stack(out_mem)


def tutorial_mlp() -> nn.Module:
    torch.manual_seed(0)
    return TutorialMLP()


def tutorial_recurrent() -> nn.Module:
    torch.manual_seed(0)
    return TutorialRecurrent()


def tutorial_conv() -> nn.Module:
    """Tutorial 7: the convolutional ``init_hidden=True`` Sequential over 28x28 inputs."""
    import snntorch as snn
    from snntorch import surrogate

    torch.manual_seed(0)
    grad = surrogate.fast_sigmoid(slope=25)
    beta = 0.5
    return nn.Sequential(
        nn.Conv2d(1, 12, 5), nn.MaxPool2d(2),
        snn.Leaky(beta=beta, spike_grad=grad, init_hidden=True),
        nn.Conv2d(12, 64, 5), nn.MaxPool2d(2),
        snn.Leaky(beta=beta, spike_grad=grad, init_hidden=True),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 10),
        snn.Leaky(beta=beta, spike_grad=grad, init_hidden=True, output=True),
    )
