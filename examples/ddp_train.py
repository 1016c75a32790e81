"""Data-parallel SNN training with explicit state (gloo, CPU).

Run with:  torchrun --nproc_per_node=2 examples/ddp_train.py

Every rank builds the same model (same seed), takes its shard of the global batch, and
DistributedDataParallel averages gradients. Because brain_ai neurons keep no state on the
module, nothing leaks between ranks or steps; the result equals a single process on the
global batch (tests/test_ddp.py checks it bit for bit).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from brain_ai.core.neurons import LIFNeuron
from brain_ai.core.snn import SpikingSequential

STEPS, GLOBAL_BATCH, T = 3, 8, 20


def build() -> SpikingSequential:
    torch.manual_seed(0)
    return SpikingSequential(nn.Linear(12, 16), LIFNeuron(beta=0.9), nn.Linear(16, 4),
                             LIFNeuron(beta=0.9))


def data(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + step)
    x = torch.rand(GLOBAL_BATCH, T, 12, generator=gen) * 1.5
    y = torch.randint(0, 4, (GLOBAL_BATCH,), generator=gen)
    return x, y


def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(out.sum(1), y)


def train(model: nn.Module, rank: int = 0, world: int = 1) -> nn.Module:
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    shard = GLOBAL_BATCH // world
    for step in range(STEPS):
        x, y = data(step)
        x, y = x[rank * shard:(rank + 1) * shard], y[rank * shard:(rank + 1) * shard]
        opt.zero_grad()
        out, _ = model(x)
        loss_fn(out, y).backward()
        opt.step()
    return model


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = nn.parallel.DistributedDataParallel(build())
    train(model, rank, world)
    if rank == 0:
        print({k: float(v.abs().sum()) for k, v in model.module.state_dict().items()})
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
