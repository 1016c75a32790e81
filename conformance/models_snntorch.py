"""snnTorch models in the style of its tutorials: the migration targets used by tests,
conformance and ``brain-ai migrate`` (factories take no arguments)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "SNNTORCH_MODELS",
    "sae_init_hidden",
    "sigmoid_mlp",
    "tutorial_alpha_unbatched",
    "tutorial_conv",
    "tutorial_lapicque_loop",
    "tutorial_lapicque_rc",
    "tutorial_leaky_unbatched",
    "tutorial_mlp",
    "tutorial_recurrent",
    "tutorial_synaptic_unbatched",
    "unused_neuron_mlp",
]


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


class TutorialLeakyUnbatched(nn.Module):
    """Tutorial 3: one Leaky neuron, a 0-d current per step and ``mem = torch.zeros(1)``."""

    def __init__(self, beta: float = 0.8) -> None:
        super().__init__()
        import snntorch as snn

        self.lif1 = snn.Leaky(beta=beta)

    def forward(self, cur_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem = torch.zeros(1)
        spk_rec, mem_rec = [], []
        for step in range(cur_in.shape[0]):
            spk, mem = self.lif1(cur_in[step], mem)
            spk_rec.append(spk)
            mem_rec.append(mem)
        return torch.stack(spk_rec), torch.stack(mem_rec)


class TutorialSynapticUnbatched(nn.Module):
    """Tutorial 4: one Synaptic neuron driven by a 0-d input per step."""

    def __init__(self, alpha: float = 0.9, beta: float = 0.8) -> None:
        super().__init__()
        import snntorch as snn

        self.lif1 = snn.Synaptic(alpha=alpha, beta=beta)

    def forward(self, spk_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        syn, mem = self.lif1.init_synaptic()
        spk_rec, mem_rec = [], []
        for step in range(spk_in.shape[0]):
            spk, syn, mem = self.lif1(spk_in[step], syn, mem)
            spk_rec.append(spk)
            mem_rec.append(mem)
        return torch.stack(spk_rec), torch.stack(mem_rec)


class TutorialLapicqueLoop(nn.Module):
    """Tutorial 2: ``Lapicque(beta=...)`` (R = time_step = 1) over a 1-d current per step."""

    def __init__(self) -> None:
        super().__init__()
        import snntorch as snn

        self.lif1 = snn.Lapicque(beta=0.9)

    def forward(self, cur_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem = torch.zeros(1)
        spk_rec, mem_rec = [], []
        for step in range(cur_in.shape[0]):
            spk, mem = self.lif1(cur_in[step], mem)
            spk_rec.append(spk)
            mem_rec.append(mem)
        return torch.stack(spk_rec), torch.stack(mem_rec)


class TutorialAlphaUnbatched(nn.Module):
    """Tutorial 4's Alpha neuron: ``spk, syn_exc, syn_inh, mem = lif(x[step], ...)``."""

    def __init__(self) -> None:
        super().__init__()
        import snntorch as snn

        self.lif1 = snn.Alpha(alpha=0.9, beta=0.8)

    def forward(self, spk_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        syn_exc, syn_inh, mem = self.lif1.init_alpha()
        spk_rec, mem_rec = [], []
        for step in range(spk_in.shape[0]):
            spk, syn_exc, syn_inh, mem = self.lif1(spk_in[step], syn_exc, syn_inh, mem)
            spk_rec.append(spk)
            mem_rec.append(mem)
        return torch.stack(spk_rec), torch.stack(mem_rec)


def tutorial_alpha_unbatched() -> nn.Module:
    return TutorialAlphaUnbatched()


class TutorialLapicqueRC(nn.Module):
    """Tutorial 2: ``Lapicque(R=5, C=1e-3, time_step=1e-3)`` from ``mem = 0.9``, a current
    of shape (1,) per step."""

    def __init__(self) -> None:
        super().__init__()
        import snntorch as snn

        self.lif1 = snn.Lapicque(R=5, C=1e-3, time_step=1e-3)

    def forward(self, cur_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem = torch.ones(1) * 0.9
        spk_rec, mem_rec = [], []
        for step in range(cur_in.shape[0]):
            spk, mem = self.lif1(cur_in[step], mem)
            spk_rec.append(spk)
            mem_rec.append(mem)
        return torch.stack(spk_rec), torch.stack(mem_rec)


def tutorial_lapicque_rc() -> nn.Module:
    return TutorialLapicqueRC()


class SAEInitHidden(nn.Module):
    """The spiking-autoencoder tutorial's pattern: ``init_hidden=True`` neurons inside a
    custom module whose ``forward`` loops over time (encoder and decoder Sequentials)."""

    def __init__(self, steps: int = 5) -> None:
        super().__init__()
        import snntorch as snn
        from snntorch import surrogate

        grad = surrogate.atan(alpha=2.0)
        self.steps = steps
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1, stride=2), nn.BatchNorm2d(4),
            snn.Leaky(beta=0.5, spike_grad=grad, init_hidden=True, threshold=0.5),
            nn.Flatten(), nn.Linear(4 * 4 * 4, 8),
            snn.Leaky(beta=0.5, spike_grad=grad, init_hidden=True, output=True, threshold=0.5))
        self.decoder = nn.Sequential(
            nn.Linear(8, 16),
            snn.Leaky(beta=0.5, spike_grad=grad, init_hidden=True, output=True, threshold=0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mems = []
        for _ in range(self.steps):
            _, mem = self.encoder(x)
            mems.append(mem)
        latent = torch.stack(mems).mean(0)
        out = []
        for _ in range(self.steps):
            _, mem = self.decoder(latent)
            out.append(mem)
        return torch.stack(out)


class SigmoidMLP(TutorialMLP):
    """Tutorial 5's MLP with ``surrogate.sigmoid()``: snnTorch's backward is NaN where
    ``slope·(U - θ) < -88.7`` (the membrane far below threshold)."""

    def __init__(self) -> None:
        super().__init__(num_inputs=20, num_hidden=16, num_outputs=4)
        from snntorch import surrogate

        self.lif1.spike_grad = surrogate.sigmoid(slope=25)
        self.lif2.spike_grad = surrogate.sigmoid(slope=25)


class UnusedNeuronMLP(TutorialMLP):
    """A model that defines a neuron its ``forward`` never calls."""

    def __init__(self) -> None:
        super().__init__(num_inputs=20, num_hidden=16, num_outputs=4)
        import snntorch as snn

        self.spare = snn.Leaky(beta=0.9)


def tutorial_leaky_unbatched() -> nn.Module:
    return TutorialLeakyUnbatched()


def tutorial_synaptic_unbatched() -> nn.Module:
    return TutorialSynapticUnbatched()


def tutorial_lapicque_loop() -> nn.Module:
    return TutorialLapicqueLoop()


def sae_init_hidden() -> nn.Module:
    torch.manual_seed(0)
    return SAEInitHidden()


def sigmoid_mlp() -> nn.Module:
    torch.manual_seed(0)
    return SigmoidMLP()


def unused_neuron_mlp() -> nn.Module:
    torch.manual_seed(0)
    return UnusedNeuronMLP()


def _rand(shape: tuple[int, ...], lo: float, hi: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen) * (hi - lo) + lo


#: name -> (factory, input(seed)): the snnTorch tutorial-style models the conformance suite
#: migrates and verifies (small sizes).
SNNTORCH_MODELS = {
    "tutorial3-leaky-unbatched": (tutorial_leaky_unbatched,
                                  lambda s: _rand((60,), 0.0, 0.5, s)),
    "tutorial4-synaptic-unbatched": (tutorial_synaptic_unbatched,
                                     lambda s: (_rand((60,), 0.0, 1.0, s) > 0.7).float()),
    "tutorial4-alpha-unbatched": (tutorial_alpha_unbatched,
                                  lambda s: (_rand((60,), 0.0, 1.0, s) > 0.5).float() * 0.5),
    "tutorial2-lapicque-1d": (tutorial_lapicque_loop, lambda s: _rand((60, 3), 0.0, 3.0, s)),
    "tutorial2-lapicque-RC": (tutorial_lapicque_rc, lambda s: _rand((60, 1), 0.0, 0.6, s)),
    "tutorial5-mlp": (tutorial_mlp, lambda s: _rand((10, 2, 784), 0.0, 1.0, s)),
    "tutorial-recurrent": (tutorial_recurrent, lambda s: _rand((10, 2, 40), 0.0, 1.5, s)),
    "sae-init_hidden-custom": (sae_init_hidden, lambda s: _rand((2, 1, 8, 8), 0.0, 3.0, s)),
    "sigmoid-surrogate-mlp": (sigmoid_mlp, lambda s: _rand((25, 4, 20), -4.0, 4.0, s)),
    "unused-neuron-mlp": (unused_neuron_mlp, lambda s: _rand((25, 4, 20), 0.0, 2.0, s)),
}
