"""A training callback that records how long each step took (the benchmarks' stopwatch)."""
from __future__ import annotations

import time

from convzoo.training.callbacks import Callback


class StepClock(Callback):
    """Records how long each training step took: ``times``, in seconds."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.last = time.perf_counter()

    def on_run_start(self, trainer) -> None:
        self.last = time.perf_counter()

    def on_step_end(self, trainer) -> None:
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now
