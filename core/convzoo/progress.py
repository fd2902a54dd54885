"""A one-line progress bar with rate and ETA, drawn only on a terminal."""
from __future__ import annotations

import sys
import time
from typing import TextIO

REFRESH_SECONDS = 0.25


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class Progress:
    """``update()`` once per step; ``describe`` is called only when the bar is redrawn."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.total, self.label, self.done = total, label, 0
        self.start = self.last_draw = time.monotonic()

    def update(self, describe=lambda: "") -> None:
        self.done += 1
        now = time.monotonic()
        if self.enabled and (now - self.last_draw >= REFRESH_SECONDS or self.done == self.total):
            self.last_draw = now
            elapsed = now - self.start
            rate = self.done / elapsed if elapsed else 0.0
            eta = (self.total - self.done) / rate if rate else 0.0
            filled = int(24 * self.done / self.total)
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (24 - filled)}] {self.done}/{self.total} "
                              f"{rate:.1f} it/s ETA {_clock(eta)} {describe()}\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
