"""DDP (gloo, 2 CPU processes) trains to the same parameters as one process."""

from __future__ import annotations

import os
import runpy
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ddp_train.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    ex = runpy.run_path(str(EXAMPLE))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model = torch.nn.parallel.DistributedDataParallel(ex["build"]())
    ex["train"](model, rank, world)
    if rank == 0:
        torch.save(model.module.state_dict(), out)
    dist.barrier()  # no rank tears gloo down while the other still talks to it
    dist.destroy_process_group()


def test_ddp_two_processes_equal_single_process(tmp_path: Path) -> None:
    ex = runpy.run_path(str(EXAMPLE))
    single = ex["train"](ex["build"]()).state_dict()
    out = str(tmp_path / "ddp.pt")
    mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    for name, value in single.items():
        # gradients are averaged across ranks: equal to the full-batch mean up to rounding
        torch.testing.assert_close(ddp[name], value, rtol=1e-6, atol=1e-7)
