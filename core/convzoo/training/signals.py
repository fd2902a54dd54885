"""Stopping cleanly on SIGTERM, SIGINT (Ctrl-C) and SIGHUP: finish the step, checkpoint, end the run KILLED.

Only the command line installs these handlers (``StopOnSignal.installed()``); library use keeps Python's defaults.
A command that runs a server as a child (``convzoo serve``, ``convzoo ui``) passes the signals on (``passed_on``).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import signal

from convzoo.training.callbacks import Callback
from convzoo.training.distributed import SINGLE, World
from convzoo.training.trainer import StopRequested

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal's number (143 for SIGTERM, 130 for SIGINT)."""
    return 128 + signum


class StopOnSignal(Callback):
    """Asks the trainer to stop at its next step boundary; a second Ctrl-C aborts at once.

    Outside the training loop (loading data, the export at the end) nothing is lost by stopping at once, so the
    signal raises ``StopRequested`` immediately there; once training has failed, the run's ending is not interrupted.
    Under several processes the ranks agree at every step boundary, so all of them stop after the same step.
    """

    def __init__(self, world: World = SINGLE) -> None:
        self.world = world
        self.received: int | None = None
        self.in_loop = self.ending = False

    @contextlib.contextmanager
    def installed(self):
        """Handle the signals inside the block. One rank of several then ignores them: torchrun sends SIGTERM to
        every rank once one has failed, and a rank that is printing why it ended must exit with its own code."""
        previous = {signum: signal.signal(signum, self._handle) for signum in SIGNALS}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, signal.SIG_IGN if self.world.distributed else handler)

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None or self.ending:  # already stopping: only a second Ctrl-C changes that
            self.received = self.received or signum
            if signum == signal.SIGINT and not self.ending:
                raise KeyboardInterrupt
            return
        self.received = signum
        # os.write, not print: a handler that prints while the main thread prints raises "reentrant call"
        if self.world.is_main:
            os.write(2, f"{signal.Signals(signum).name} received: stopping after this step (a second Ctrl-C stops "
                        f"at once, without a checkpoint)\n".encode())
        if not self.in_loop:
            self.check()

    def check(self) -> None:
        if self.received is not None:
            raise StopRequested(self.received, signal.Signals(self.received).name)

    def check_all_ranks(self) -> None:
        """Stop if any rank received a signal (one small all-reduce per step under several processes)."""
        signum = self.world.max(self.received or 0)
        if signum:
            raise StopRequested(signum, signal.Signals(signum).name)

    def on_run_start(self, trainer) -> None:
        self.in_loop = True
        self.check_all_ranks()

    def on_step_end(self, trainer) -> None:
        self.check_all_ranks()

    def on_eval_step_end(self, trainer) -> None:
        self.check_all_ranks()

    def on_train_end(self, trainer) -> None:
        self.in_loop = False

    def on_exception(self, trainer, error: BaseException) -> None:
        self.in_loop = False
        self.ending = not isinstance(error, StopRequested)


def stop_with_parent() -> bool:
    """Get SIGTERM when the parent process dies (Linux): ``mlflow run`` does not pass its signals on to us."""
    if platform.system() != "Linux":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0


@contextlib.contextmanager
def passed_on(child, group: bool = False):
    """Pass SIGTERM, SIGINT and SIGHUP on to the ``child`` process (a ``Popen``) as SIGTERM inside the block, or to
    its whole process group with ``group`` (a server's workers too); the list it yields holds the signals
    received."""
    received: list[int] = []

    def handle(signum: int, frame) -> None:
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(child.pid, signal.SIGTERM)
            else:
                child.send_signal(signal.SIGTERM)

    previous = {signum: signal.signal(signum, handle) for signum in SIGNALS}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
