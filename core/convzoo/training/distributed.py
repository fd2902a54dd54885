"""Data-parallel training over processes that torchrun started: which process this is, and the few collectives the
training loop needs. A run without torchrun is ``SINGLE``, whose collectives return their input.

Every rank reads the same data in the same order (same seed); rank ``r`` takes its contiguous slice of each global
batch. Rank 0 alone talks to MLflow and writes checkpoints. A rank that fails writes its one-line error into the
process group's store, so rank 0 can say which rank failed and why instead of "connection closed by peer".
"""
from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import torch

from convzoo.data.pipeline import Shard
from convzoo.errors import ConvzooError, one_line

FAILURE_KEY = "convzoo/failed/"
DEFAULT_TIMEOUT_SECONDS = 300


class PeerFailed(ConvzooError):
    """Another rank failed, so this one could not go on."""


@dataclass(frozen=True)
class World(Shard):
    """This process's place among ``size`` training processes (``local_*``: on this machine)."""

    local_rank: int = 0
    local_size: int = 1
    backend: str = "none"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` as DistributedDataParallel (rank 0's weights broadcast to all), or itself."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def all_sum(self, values: list[float | torch.Tensor]) -> list[float]:
        """Each value summed over every rank, as Python floats (float64 on the way)."""
        device = self.device()
        tensor = torch.stack([torch.as_tensor(value, dtype=torch.float64).to(device) for value in values])
        if self.distributed:
            torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def max(self, value: int) -> int:
        """The largest ``value`` any rank passed (a stop request that one rank received, for all of them)."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], device=self.device())
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return int(tensor.item())

    def gather(self, tensor: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
        """Every rank's 1-D ``tensor`` (rank ``r``'s has ``lengths[r]`` items), on this rank."""
        if not self.distributed:
            return [tensor]
        longest = max(lengths)
        padded = torch.zeros(longest, dtype=tensor.dtype, device=self.device())
        padded[: len(tensor)] = tensor.to(padded.device)
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        torch.distributed.all_gather(parts, padded)
        return [part[:length] for part, length in zip(parts, lengths)]

    def gather_objects(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), on every rank."""
        if not self.distributed:
            return [value]
        values: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(values, value)
        return values

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (picklable), on every rank."""
        if not self.distributed:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    def report_failure(self, error: BaseException) -> None:
        """Tell the other ranks why this one failed (best effort: the store may be gone too)."""
        if self.distributed:
            try:
                store().set(f"{FAILURE_KEY}{self.rank}", one_line(error))
            except Exception:
                pass

    def peer_failures(self) -> dict[int, str]:
        """The one-line errors other ranks reported."""
        if not self.distributed:
            return {}
        found = {}
        try:
            for rank in range(self.size):
                key = f"{FAILURE_KEY}{rank}"
                if rank != self.rank and store().check([key]):
                    found[rank] = store().get(key).decode()
        except Exception:
            pass
        return found


SINGLE = World()


def store():
    """The process group's key-value store (torchrun's agent hosts it, so it outlives any one rank)."""
    from torch.distributed import distributed_c10d

    return distributed_c10d._get_default_store()


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s own random stream (dropout): rank 0 keeps the run's seed, as one process would."""
    return seed + 1_000_003 * rank


def under_torchrun() -> bool:
    """Whether torchrun (or any launcher that sets its variables) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def environment_world(device_type: str) -> World:
    """This process's ``World`` from torchrun's variables; ``nccl`` on CUDA, ``gloo`` on CPUs."""
    return World(rank=int(os.environ["RANK"]), size=int(os.environ["WORLD_SIZE"]),
                 local_rank=int(os.environ.get("LOCAL_RANK", 0)), local_size=int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
                 backend="nccl" if device_type == "cuda" else "gloo")


def timeout_seconds() -> float:
    """How long a rank waits in a collective for the others (``CONVZOO_DIST_TIMEOUT_SECONDS``, default 300)."""
    return float(os.environ.get("CONVZOO_DIST_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))


def join(world: World) -> None:
    """Join the process group (once per process); on CUDA each rank takes the GPU of its local rank."""
    if torch.distributed.is_initialized():
        return
    if world.backend == "nccl":
        if world.local_rank >= torch.cuda.device_count():
            raise ConvzooError(f"local rank {world.local_rank} has no GPU: this machine has "
                               f"{torch.cuda.device_count()}; start at most that many processes per node")
        torch.cuda.set_device(world.local_rank)
    torch.distributed.init_process_group(world.backend, timeout=datetime.timedelta(seconds=timeout_seconds()))


def leave(together: bool = True) -> None:
    """Leave the process group; ``together``: once every rank got here (a rank that leaves while another still
    works can abort at exit in gloo's threads, "terminate called without an active exception")."""
    if torch.distributed.is_initialized():
        if together:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def end_helper_rank() -> NoReturn:
    """End a rank other than 0 once its part of the run is done, skipping the interpreter's teardown: objects that
    still hold gloo's work (DDP's reducer) are destroyed there, and gloo's threads can then abort the process
    ("terminate called without an active exception", SIGABRT), which makes torchrun stop rank 0 mid-export."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_rank(local_size: int) -> int:
    """This machine's cores divided among its ranks (at least one each)."""
    return max(1, cores() // local_size)


def check_batch(batch_size: int, size: int) -> None:
    """The recipe's batch is the global batch: it must split evenly over the ranks."""
    if batch_size % size:
        raise ConvzooError(f"batch_size {batch_size} does not divide among {size} processes; the batch size is the "
                           f"global batch (each process takes batch_size/{size}): use a multiple of {size}")
