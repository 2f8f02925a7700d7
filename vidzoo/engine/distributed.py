"""PyTorch distributed helpers: ``torchrun`` initialisation, rank queries, reductions, samplers.

A run launched with ``torchrun --nproc_per_node N -m vidzoo train ...`` gets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` from the launcher; :func:`init_distributed` reads them and
starts the process group (NCCL on CUDA, gloo on CPU). Without them everything here works as a
world of one, so the engine has a single code path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler

from .errors import UserError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the run.

    Attributes:
        rank: Global rank (0 in a single-process run).
        world_size: Number of processes.
        local_rank: Rank on this machine (selects the GPU).
        device: The device this process computes on.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints summaries (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """``'auto'`` (CUDA when available), ``'cpu'``, ``'cuda'`` or ``'cuda:N'`` as a device.

    Raises:
        UserError: CUDA was asked for but is not available.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {device} asked for, but CUDA is not available here; use --device cpu")
        if device == "cuda":
            device = f"cuda:{local_rank}"
        dev = torch.device(device)
        torch.cuda.set_device(dev)
        return dev
    if device != "cpu":
        raise UserError(f"unknown --device {device!r}; expected auto, cpu, cuda or cuda:N")
    return torch.device("cpu")


def init_distributed(device: str = "auto") -> DistInfo:
    """Start the process group when launched by ``torchrun`` and pick this process's device.

    Args:
        device: See :func:`resolve_device`; under ``torchrun`` with CUDA each process takes GPU
            ``LOCAL_RANK``.

    Returns:
        The :class:`DistInfo` of this process.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size > 1 and not is_distributed():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
    if is_distributed():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev)
    return DistInfo(0, 1, 0, dev)


def cleanup_distributed() -> None:
    """Destroy the process group if this module's caller started one."""
    if is_distributed():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """Whether a process group is up."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place and return it (unchanged in a single process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` as a list indexed by rank (``[obj]`` in a single process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


class ShardedEvalSampler(Sampler[int]):
    """Deterministic, non-padding shard of a dataset for evaluation: rank ``r`` of ``W`` gets
    indices ``r, r + W, r + 2W, ...``.

    Unlike :class:`torch.utils.data.DistributedSampler` no sample is duplicated to even out the
    shards, so metrics summed over ranks count each sample exactly once.
    """

    def __init__(self, dataset: Dataset, num_replicas: int | None = None, rank: int | None = None) -> None:
        self.num_samples_total = len(dataset)  # type: ignore[arg-type]
        self.num_replicas = get_world_size() if num_replicas is None else num_replicas
        self.rank = get_rank() if rank is None else rank

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.num_samples_total, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.num_samples_total, self.num_replicas))
