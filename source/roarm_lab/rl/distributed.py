"""Data-parallel training under torchrun, through rsl_rl's own multi-process path: each rank steps its own
environments with its own seed, rsl_rl all-reduces the gradients, and rank 0 alone writes the run folder.

rsl_rl 5.5 starts its process group with ``nccl`` and expects ``cuda:<local_rank>``; ranks on CPUs need ``gloo``.
``configure`` is the runner's replacement for that one step (the rest of rsl_rl's path is used as it is).

    torchrun --standalone --nproc_per_node=2 scripts/train.py --task RoArm-Reach-v0 --distributed
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Rank:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def writer(self) -> bool:
        """Rank 0 writes logs, progress, checkpoints and the export; the others only compute."""
        return self.rank == 0

    def device(self, asked: str) -> str:
        """``cuda`` (or ``cuda:N``) means this rank's own GPU under torchrun; the CPU stays the CPU."""
        return f"cuda:{self.local_rank}" if self.distributed and asked.startswith("cuda") else asked


def backend_for(device: str) -> str:
    return "nccl" if device.startswith("cuda") else "gloo"


def from_torchrun(asked: bool) -> Rank:
    """This process's rank from torchrun's variables; ValueError with the command when flag and launcher disagree."""
    world = os.environ.get("WORLD_SIZE")
    if asked and world is None:
        raise ValueError("--distributed runs under torchrun, which starts one process per rank: torchrun --standalone "
                         "--nproc_per_node=N scripts/train.py --task ... --distributed")
    if not asked:
        if world is not None and int(world) > 1:
            raise ValueError(f"WORLD_SIZE={world} is set (torchrun?) but --distributed is not: add --distributed, or "
                             "run train.py without torchrun")
        return Rank()
    try:
        rank = Rank(int(world), int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError:
        raise ValueError("WORLD_SIZE, RANK and LOCAL_RANK must be whole numbers (torchrun sets them)") from None
    if not 0 <= rank.rank < rank.world_size or not 0 <= rank.local_rank < rank.world_size:
        raise ValueError(f"RANK {rank.rank} / LOCAL_RANK {rank.local_rank} do not fit WORLD_SIZE {rank.world_size}")
    return rank


def configure(runner: object, device: str) -> None:
    """rsl_rl's multi-process set-up with the backend the device needs (the runner calls this in its place)."""
    rank = from_torchrun(asked=int(os.environ.get("WORLD_SIZE", "1")) > 1)
    runner.gpu_world_size = rank.world_size  # rsl_rl's names, whatever the device
    runner.is_distributed = rank.distributed
    runner.gpu_local_rank, runner.gpu_global_rank = rank.local_rank, rank.rank
    if not rank.distributed:
        runner.cfg["multi_gpu"] = None
        return
    if device != rank.device(device):
        raise ValueError(f"device {device} is not this rank's: use {rank.device(device)} (train.py picks it)")
    runner.cfg["multi_gpu"] = {"global_rank": rank.rank, "local_rank": rank.local_rank, "world_size": rank.world_size}
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend_for(device), rank=rank.rank, world_size=rank.world_size)
    if device.startswith("cuda"):
        torch.cuda.set_device(rank.local_rank)


def weights_agree(module: torch.nn.Module) -> bool:
    """Every rank holds the same weights (a collective: every rank must call it). rsl_rl starts the ranks from
    rank 0's weights and all-reduces each gradient, so they stay identical; False means they drifted apart."""
    flat = torch.cat([p.detach().reshape(-1).double().cpu() for p in module.parameters()])
    mine = torch.stack([flat.sum(), (flat * flat).sum(), (flat * torch.arange(len(flat), dtype=flat.dtype)).sum()])
    device = next(module.parameters()).device
    gathered = [torch.zeros_like(mine).to(device) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(gathered, mine.to(device))
    return all(torch.equal(g.cpu(), gathered[0].cpu()) for g in gathered)
