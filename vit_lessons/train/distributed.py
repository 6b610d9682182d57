"""Several processes, one run: what ``torchrun`` needs from the training loop, in one small object.

Lesson 08, section 8 teaches it. Under ``torchrun`` each process trains on its shard of every batch
with ``DistributedDataParallel`` (nccl on GPUs, gloo on CPUs); ``--batch-size`` stays the global
batch; sums are reduced across processes; only rank 0 prints and saves. Without ``torchrun`` every
method is a no-op, so the loop reads the same either way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..settings import pick_device

__all__ = ["Distributed"]


@dataclass
class Distributed:
    """This process's place in the run: ``rank`` of ``world_size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def setup(cls, device: torch.device | None) -> tuple[Distributed, torch.device]:
        """Join the process group ``torchrun`` describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``); pick the device."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls(), device or pick_device()
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
        if use_cuda:
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
            processes_here = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // processes_here))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
        return cls(rank, world_size, local_rank), device

    def all_reduce(self, values: list[float], device, op: str = "sum") -> list[float]:
        """``values`` summed (or their ``max``/``min``) over all processes; nccl needs ``device`` to be the GPU."""
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op])
        return tensor.tolist()

    def all_true(self, flag: torch.Tensor) -> bool:
        """True only if ``flag`` (a 0-dim float tensor, 1 or 0) is 1 on every process: all step, or none does."""
        if self.enabled:
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def gather(self, value) -> list:
        """``value`` of every process, in rank order (any picklable object); ``[value]`` alone."""
        if not self.enabled:
            return [value]
        values = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def seed(self, seed: int) -> None:
        """A random stream of its own for each process (drop-path masks, dropout) from the run's seed.

        Called after the model is built, so every process starts from the same weights; without it all
        processes would draw the same masks and stochastic depth would be weaker than on one device.
        """
        if self.enabled:
            torch.manual_seed(seed + self.rank)  # the CPU and every CUDA generator

    def broadcast_buffers(self, module) -> None:
        """Give every process rank 0's buffers (BatchNorm's running statistics) of ``module``.

        Each process updates them from its own shard of the batch, and an EMA averages its own copy, so
        without this each rank would evaluate with different statistics than the ones rank 0 saves.
        """
        if self.enabled:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    @staticmethod
    def teardown() -> None:
        """Leave the process group (the command line calls this after a ``torchrun`` run)."""
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
