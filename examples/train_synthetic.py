"""Train a small SNN on a synthetic spiking task with the codecs and the loss composer.

Four classes of noisy prototype vectors are rate-encoded into spike trains (B, T, 20), a
two-layer LIF network is trained with the default loss pack (ProbSpikes + rate, temporal and
ISI regularisation), and the rate decoder reads the class from output spike counts.
Runs in well under 2 minutes on a 2-core CPU:  python examples/train_synthetic.py
"""

from __future__ import annotations

import time

import torch
from torch import nn
from tqdm import tqdm

from brain_ai.config import LossConfig
from brain_ai.core.decoding import RateDecoder
from brain_ai.core.encoding import RateEncoder
from brain_ai.core.losses import SNNLossComposer
from brain_ai.core.neurons import LIFNeuron
from brain_ai.core.snn import SpikingSequential

CLASSES, FEATURES, T, EPOCHS, BATCH = 4, 20, 25, 15, 64


def dataset(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(CLASSES, FEATURES, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, CLASSES, (n,), generator=gen)
    x = (prototypes[y] + 0.15 * torch.randn(n, FEATURES, generator=gen)).clamp(0, 1)
    return x, y


def main(epochs: int = EPOCHS) -> float:
    torch.manual_seed(0)
    encoder = RateEncoder(num_steps=T, normalization="clamp", seed=0)
    net = SpikingSequential(nn.Linear(FEATURES, 64), LIFNeuron(beta=0.9),
                            nn.Linear(64, CLASSES), LIFNeuron(beta=0.9))
    loss_fn = SNNLossComposer.from_config(LossConfig(w_membrane=0.0))
    decoder = RateDecoder()
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    x_train, y_train = dataset(1024, seed=1)
    x_test, y_test = dataset(512, seed=2)
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc="training", unit="epoch", disable=None)  # None: TTY only
    for _epoch in bar:
        net.train()
        encoder.train()
        for i in range(0, len(x_train), BATCH):
            spikes_in = encoder(x_train[i:i + BATCH]).spikes.float()
            out = net(spikes_in, return_details=True)
            loss, log = loss_fn(out.output, y_train[i:i + BATCH], layers=out.spikes)
            opt.zero_grad()
            loss.backward()
            opt.step()
        bar.set_postfix(loss=f"{log['total']:.3f}")
    net.eval()
    encoder.eval()
    with torch.no_grad():
        out, _ = net(encoder(x_test).spikes.float())
        accuracy = float((decoder(out).prediction == y_test).float().mean())
    print(f"test accuracy: {accuracy:.3f}  ({time.perf_counter() - start:.1f} s)")
    return accuracy


if __name__ == "__main__":
    main()
