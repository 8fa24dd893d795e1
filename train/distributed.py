"""Several processes: DistributedDataParallel under ``torchrun`` (gloo on CPU, NCCL on CUDA).

``torchrun --nproc_per_node N -m train.cli train --config C`` starts N ranks; each reads its own
share of the data (``train.data``), DDP averages gradients, and rank 0 alone writes checkpoints,
logs, plots and evaluations while the others wait at a barrier. Without torchrun's environment
(``WORLD_SIZE`` unset or 1) everything here is a no-op and the trainer runs as one process.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    """This process's place: ``rank`` of ``world`` processes, ``local_rank`` on its host."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device_type: str) -> Dist:
    """Join the process group torchrun describes (env ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``,
    ``MASTER_ADDR``/``MASTER_PORT``); a single process when ``WORLD_SIZE`` is unset or 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
        log.info("rank %d of %d joined (%s)", rank, world, backend)
    return Dist(rank=rank, world=world, local_rank=local)


def teardown(ctx: Dist) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(ctx: Dist) -> None:
    if ctx.enabled:
        dist.barrier()


def gather_objects(ctx: Dist, obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in a single process."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(ctx: Dist, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(ctx: Dist, sums: dict[str, tuple[float, int]]) -> dict[str, float]:
    """Per key (sum, count) on every rank -> the mean over every rank's entries.

    Keys may differ between ranks (a task with nothing to score on one of them)."""
    parts = gather_objects(ctx, sums)
    total: dict[str, list[float]] = {}
    for part in parts:
        for key, (value, count) in part.items():
            acc = total.setdefault(key, [0.0, 0])
            acc[0] += value
            acc[1] += count
    return {k: v / n for k, (v, n) in total.items() if n}
