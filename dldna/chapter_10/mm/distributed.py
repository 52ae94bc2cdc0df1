"""Spread a study's independent runs over the processes that ``torchrun`` starts.

The ablation's runs (version x mode x seed) never talk to each other, so the cheapest way
to use every GPU of a node is to give each process its own share of them::

    torchrun --nproc-per-node 8 -m dldna.chapter_10.mm.study --profile full

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` for each process (the
``torch.distributed`` convention); :func:`from_environment` reads them. Rank ``r`` of
``W`` takes runs ``r, r + W, r + 2W, ...`` (:func:`share`) on its own GPU
(``cuda:<LOCAL_RANK>``, or the CPU), and writes each finished run into the same
resumable folder as a single process would. After a barrier, rank 0 alone reads all of
them back and writes the summary. The process group (NCCL on GPUs, gloo on CPUs) is used
for those barriers only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

__all__ = ["Ranks", "barrier", "from_environment", "process_group", "share"]


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among the processes of one launch."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def device(self) -> torch.device:
        """This process's GPU (one per local rank), or the CPU without CUDA."""
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return torch.device("cpu")


def from_environment(environ: dict[str, str] | None = None) -> Ranks | None:
    """The ranks ``torchrun`` set, or ``None`` for a plain single-process run."""
    environ = os.environ if environ is None else environ
    try:
        world_size = int(environ.get("WORLD_SIZE", "1"))
        rank, local_rank = int(environ.get("RANK", "0")), int(environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (torchrun sets them): {exc}") from None
    if world_size <= 1:
        return None
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is outside 0..{world_size - 1} (WORLD_SIZE={world_size}).")
    return Ranks(rank=rank, world_size=world_size, local_rank=local_rank)


def share(items: Sequence[T], ranks: Ranks | None) -> list[T]:
    """This rank's items: every ``world_size``-th one, starting at ``rank`` (all without ranks)."""
    if ranks is None:
        return list(items)
    return list(items[ranks.rank :: ranks.world_size])


@contextmanager
def process_group(ranks: Ranks) -> Iterator[None]:
    """Join the launch's process group (NCCL with GPUs, gloo otherwise) for its duration."""
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(ranks.device)
    dist.init_process_group(backend=backend, rank=ranks.rank, world_size=ranks.world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process of the group gets here (a no-op outside a group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
