"""torchrun / DistributedDataParallel: who am I, which share of a batch is mine, and gathering on rank 0.

A stage script runs unchanged as one process or under `torchrun --nproc_per_node=N` (one process per
GPU: NCCL; on CPUs: gloo), also across machines with torchrun's rendezvous options. torchrun sets
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them this is world size 1.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist

from .device import pick_device
from .diffusion import Diffusion
from .guidance import ClassifierFreeGuidance
from .samplers import sample_seeded


class DistributedError(RuntimeError):
    """A launch that cannot work (too many processes, a batch that does not split, no rendezvous): one line."""


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints, logs, grids and reports."""
        return self.rank == 0

    def share(self, n: int) -> slice:
        """This rank's contiguous part of n items (sizes differ by at most one; rank order = item order)."""
        lo = n * self.rank // self.size
        return slice(lo, n * (self.rank + 1) // self.size)

    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for in one process)."""
        if self.size > 1:
            dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar over the ranks (the value itself in one process)."""
        if self.size == 1:
            return value
        value = value.detach().clone()
        dist.all_reduce(value)
        return value / self.size

    def gather_on_main(self, part: Any) -> list[Any] | None:
        """Every rank's `part`, in rank order, on rank 0 (None elsewhere)."""
        if self.size == 1:
            return [part]
        parts: list[Any] | None = [None] * self.size if self.is_main else None
        dist.gather_object(part, parts, dst=0)
        return parts


def init(device_name: str = "auto", timeout_s: float = 1800.0) -> tuple[World, torch.device]:
    """Join the process group torchrun set up (if any); return this process's World and device.

    timeout_s bounds joining and every collective: long, since the other ranks wait at the next step while
    rank 0 writes a checkpoint and samples its monitoring grid.

    One GPU per process (cuda:LOCAL_RANK, NCCL); gloo on CPUs. Fails with one line when the
    launch asks for more GPUs than are visible or the rendezvous cannot be reached.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), pick_device(device_name)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name)
    if device.type == "cuda":
        visible = torch.cuda.device_count()
        if local_rank >= visible:
            raise DistributedError(f"torchrun started process {local_rank} on this machine but only {visible} GPU(s) "
                                   f"are visible; set the stage's nproc (--nproc_per_node) ≤ {visible}")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, rank=rank, world_size=size, timeout=datetime.timedelta(seconds=timeout_s))
    except Exception as e:  # a rendezvous that never answers, a port in use…
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        raise DistributedError(f"rank {rank}: cannot join the process group at {where} ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''}); check torchrun's --rdzv-endpoint / "
                               "--master-addr and that every machine can reach it") from None
    return World(rank, size, local_rank), device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_launch(nproc: int, batch_size: int | None, device_name: str = "auto", section: str = "train_mnist") -> None:
    """Before starting N processes: enough devices, and a global batch that splits evenly (one-line errors)."""
    device = pick_device(device_name)
    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise DistributedError(f"{section}.nproc = {nproc} but only {torch.cuda.device_count()} GPU(s) are visible; "
                               f"set {section}.nproc ≤ {torch.cuda.device_count()}")
    if device.type != "cuda" and nproc > (os.cpu_count() or 1):
        raise DistributedError(f"{section}.nproc = {nproc} CPU processes but this machine has {os.cpu_count()} cores; "
                               f"lower {section}.nproc")
    if batch_size is not None and batch_size % nproc:
        raise DistributedError(f"{section}.batch_size = {batch_size} (the global batch) does not split evenly over "
                               f"{section}.nproc = {nproc} processes; make it a multiple of {nproc}")


def run_sharded(n: int, batch_size: int, world: World, draw: Callable[[int, int], torch.Tensor],
                item_shape: tuple[int, ...]) -> torch.Tensor | None:
    """draw(lo, hi) for this rank's share of items 0…n−1, batch_size at a time; all n results, in order, on rank 0."""
    mine = world.share(n)
    parts = [draw(lo, min(lo + batch_size, mine.stop)).cpu() for lo in range(mine.start, mine.stop, batch_size)]
    gathered = world.gather_on_main(torch.cat(parts) if parts else torch.empty(0, *item_shape))
    return torch.cat(gathered) if gathered is not None else None


def sample_sharded(diffusion: Diffusion, model: torch.nn.Module, n: int, shape: tuple[int, ...], batch_size: int, seed: int,
                   world: World, device: torch.device, context: torch.Tensor | None = None, guidance: float = 0.0,
                   **kwargs: Any) -> torch.Tensor | None:
    """n samples, this rank drawing its share batch_size at a time; all of them, in order, on rank 0 (None elsewhere).

    context: one row per image (a zero row: unconditional), sampled with classifier-free guidance w = `guidance`.
    Any number of processes gives the same images (up to floating-point summation order).
    """
    def draw(lo: int, hi: int) -> torch.Tensor:
        net = model if context is None else ClassifierFreeGuidance(model, context[lo:hi].to(device), guidance)
        return sample_seeded(diffusion, net, range(lo, hi), shape, seed, hi - lo, device, **kwargs)

    return run_sharded(n, batch_size, world, draw, shape)
