"""Several training processes for one run: ``convzoo train --nproc N`` hands the same command to PyTorch's own
launcher (torchrun's elastic agent, ``torch.distributed.launcher``), and each copy it starts joins as one rank.

Multi-node training is torchrun itself (``torchrun --nnodes 2 --rdzv-endpoint HOST:PORT -m convzoo train ...``): the
ranks do the same thing whichever launcher started them.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
import uuid
from typing import Any, Callable, Sequence

from convzoo.training.distributed import SINGLE, PeerFailed, World, leave, threads_per_rank, under_torchrun
from convzoo.errors import ConvzooError, one_line


def without_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` less its ``--nproc N`` (or ``--nproc=N``): what each rank runs."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def launch(nproc: int, argv: Sequence[str], device: str, echo: Callable[[str], None]) -> int:
    """Run ``python -m convzoo ARGV`` as ``nproc`` ranks on this machine (one GPU each when ``device`` resolves to
    CUDA); the exit code to leave with.

    SIGTERM, SIGINT or SIGHUP to this process reach every rank (torchrun sends them on and waits 30 s), and each
    stops after the same step. A rank that fails makes torchrun stop the others; rank 0 says why.
    """
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    import torch

    from convzoo.training.devices import resolve_device

    if under_torchrun():
        raise ConvzooError("--nproc starts torchrun itself; under torchrun, leave --nproc out")
    if resolve_device(device).type == "cuda" and nproc > torch.cuda.device_count():
        raise ConvzooError(f"--nproc {nproc} needs a GPU per process on CUDA, and this machine has "
                           f"{torch.cuda.device_count()}; use at most that many, or --device cpu")
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # convzoo says what happened
    os.environ["OMP_NUM_THREADS"] = str(threads_per_rank(nproc))  # from the first import on, not only after it
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, rdzv_backend="c10d",
                          rdzv_endpoint="127.0.0.1:0", run_id=f"convzoo-{uuid.uuid4().hex[:8]}", max_restarts=0)
    try:
        elastic_launch(config, sys.executable)("-m", "convzoo", *argv)
    except SignalException as stopped:
        return 128 + stopped.sigval
    except ChildFailedError as failed:
        for rank, failure in sorted(failed.failures.items()):
            # a rank that exits with a code has printed why; one killed (not by torchrun's SIGTERM) could not
            if failure.exitcode < 0 and -failure.exitcode != signal.SIGTERM:
                echo(f"Error: rank {rank} was killed by {signal.Signals(-failure.exitcode).name} (pid {failure.pid}); "
                     f"`convzoo runs` shows how its run ended")
        return 1
    return 0


def rank_world(device: str) -> World:
    """This process's rank under torchrun, joined to the others; ``SINGLE`` when torchrun did not start it."""
    if not under_torchrun():
        return SINGLE
    from convzoo.training.devices import resolve_device
    from convzoo.training.distributed import environment_world, join
    from convzoo.training.signals import stop_with_parent

    world = environment_world(resolve_device(device).type)
    join(world)
    stop_with_parent()  # a rank outliving its launcher (killed with SIGKILL) still stops cleanly
    return world


def from_rank_zero(world: World, make: Callable[[], Any]) -> Any:
    """``make()`` on rank 0 (say, what it reads from MLflow) and its value on every rank; if it fails, rank 0
    prints the one-line error and the other ranks leave quietly."""
    if not world.distributed:
        return make()
    if world.is_main:
        try:
            value = make()
        except ConvzooError as error:
            world.broadcast((False, None))
            raise error
        world.broadcast((True, value))
        return value
    made, value = world.broadcast(None)
    if not made:
        raise SystemExit(1)
    return value


@contextlib.contextmanager
def as_one_of_many(world: World, run_note: Callable[[], str]):
    """A rank's part of the run: it leaves the process group with the others (or alone, after a failure). Its error
    is written where the others can read it; an error that is only the consequence of another rank's failure (a
    closed connection) becomes rank 0's one line naming that rank and its error, and ends the other ranks quietly."""
    from convzoo.training.trainer import StopTraining

    if not world.distributed:
        yield
        return
    try:
        yield
    except (StopTraining, SystemExit):
        leave()
        raise
    except BaseException as error:
        lost = lost_peer(error)
        failed = world.peer_failures()
        if lost and not failed:
            time.sleep(1)  # a rank writes its error before it exits, but it may still be on its way
            failed = world.peer_failures()
        if not (failed or lost):  # this rank's own error: the others learn it from the store
            world.report_failure(error)
            leave(together=False)
            raise
        leave(together=False)
        if not world.is_main:
            raise SystemExit(1) from None
        if not failed:
            raise PeerFailed(f"another rank stopped without saying why (killed?): {one_line(error)}"
                             f"{run_note()}") from None
        rank, reason = min(failed.items())
        raise PeerFailed(f"rank {rank} failed: {reason}{run_note()}") from None
    leave()


def lost_peer(error: BaseException) -> bool:
    """Whether a collective failed because another rank went away (gloo's words for it)."""
    return isinstance(error, RuntimeError) and any(
        words in str(error) for words in ("closed by peer", "reset by peer", "Broken pipe", "Connection refused"))
