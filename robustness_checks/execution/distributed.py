"""torch.distributed for checks: which examples this process owns, and putting results together."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from robustness_checks.errors import RobustnessError
from robustness_checks.execution.launch import launched_by_torchrun


@dataclass(frozen=True)
class World:
    """This process's rank among `size` processes (rank 0 of 1 without torch.distributed)."""

    rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, count: int) -> range:
        """The contiguous block of `count` example positions this rank owns (ranks in order)."""
        return range(count * self.rank // self.size, count * (self.rank + 1) // self.size)


def current_world() -> World:
    """The process group's rank and size, or a single process when none is initialised."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def init_from_environment() -> World:
    """Join the process group torchrun describes: NCCL with one GPU per local rank, else gloo."""
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    return current_world()


def local_device() -> torch.device | None:
    """This rank's own GPU under torchrun with CUDA (None: let the spec decide)."""
    if launched_by_torchrun() and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return None


def _communication_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_objects(local: list[Any], world: World) -> list[Any]:
    """Every rank's list of picklable objects, concatenated in rank order."""
    if not world.distributed:
        return list(local)
    parts: list[list[Any] | None] = [None] * world.size
    dist.all_gather_object(parts, list(local))
    return [item for part in parts for item in part or []]


def total(value: int, world: World) -> int:
    """The sum of an integer over all ranks (for example model evaluations)."""
    if not world.distributed:
        return value
    summed = torch.tensor([value], dtype=torch.int64, device=_communication_device())
    dist.all_reduce(summed)
    return int(summed.item())


def agree_on_failure(error: BaseException | None, world: World) -> None:
    """Raise on every rank when any rank failed, so that no rank waits in a collective alone.

    The first failing rank's error is raised again (with its rank named) on the others.
    """
    if not world.distributed:
        if error is not None:
            raise error
        return
    message = None if error is None else f"{type(error).__name__}: {error}"
    reports: list[str | None] = [None] * world.size
    dist.all_gather_object(reports, message)
    if error is not None:
        raise error
    for rank, report in enumerate(reports):
        if report is not None:
            raise RobustnessError(f"rank {rank} failed: {report}")


def gather_batches(outputs: list[dict[str, Any]], world: World) -> dict[str, Any]:
    """Per-batch outputs of every rank joined in example order.

    Each output maps names to tensors whose first dimension is the batch (concatenated, on the
    CPU) or to lists (concatenated). With ranks owning contiguous blocks in rank order, the
    result is what one process working through every example would have.
    """
    joined = _join(outputs)
    if world.distributed:
        joined = _join([part for part in gather_objects([joined], world) if part])
    return joined


def _join(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    if not outputs:
        return {}
    joined: dict[str, Any] = {}
    for key, first in outputs[0].items():
        values = [output[key] for output in outputs]
        if isinstance(first, torch.Tensor):
            joined[key] = torch.cat([value.detach().cpu() for value in values])
        else:
            joined[key] = [item for value in values for item in value]
    return joined
