"""The MLflow writes a run makes while it trains, sent in order by one background thread and retried while the
tracking server is away: training never waits on the network, and an outage loses nothing.

MLflow's own asynchronous logging (``synchronous=False``) gives up on a batch once its HTTP retries are spent and
covers metrics, params and tags only; checkpoints are artifacts, and a restart of the server takes longer than that.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Callable

import mlflow
from mlflow.exceptions import MlflowException

RETRY_SECONDS = (1, 2, 4, 8)
DEFAULT_WAIT_SECONDS = 300


def server_wait_seconds() -> float:
    """How long a run that has finished training waits for an unreachable server (``CONVZOO_SERVER_WAIT_SECONDS``)."""
    return float(os.environ.get("CONVZOO_SERVER_WAIT_SECONDS", DEFAULT_WAIT_SECONDS))


def is_permanent(error: Exception) -> bool:
    """A request the server answered and refused (4xx) fails the same way again; anything else may pass later."""
    return isinstance(error, MlflowException) and 400 <= error.get_http_status_code() < 500


class Outbox:
    """``put(key, send)`` queues ``send(client)``; a queued write with the same key is replaced by the newer one."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.client = mlflow.MlflowClient()
        self.queue: deque[tuple[str | None, Callable]] = deque()
        self.condition = threading.Condition()
        self.sending = False
        self.unreachable_since: float | None = None
        self.thread = threading.Thread(target=self._run, name="convzoo-outbox", daemon=True)
        self.thread.start()

    def put(self, key: str | None, send: Callable[[mlflow.MlflowClient], None]) -> None:
        with self.condition:
            if key is not None:
                self.queue = deque(item for item in self.queue if item[0] != key)
            self.queue.append((key, send))
            self.condition.notify_all()

    def _run(self) -> None:
        while True:
            with self.condition:
                while not self.queue:
                    self.condition.wait()
                key, send = self.queue[0]
                self.sending = True
            delivered = self._deliver(send)
            with self.condition:
                if delivered and self.queue and self.queue[0][1] is send:
                    self.queue.popleft()
                self.sending = False
                self.condition.notify_all()

    def _deliver(self, send: Callable[[mlflow.MlflowClient], None]) -> bool:
        """Send once; whether the write is done with (sent, or refused for good)."""
        try:
            send(self.client)
        except Exception as error:
            if is_permanent(error):
                self.echo(f"warning: the tracking server refused a write and it was dropped: {error}")
                return True
            if self.unreachable_since is None:
                self.unreachable_since = time.monotonic()
                self.echo(f"warning: the tracking server is unreachable ({str(error).splitlines()[0][:200]}); "
                          f"training goes on and its metrics and checkpoints wait here until it is back")
            time.sleep(RETRY_SECONDS[min(len(RETRY_SECONDS) - 1, int(time.monotonic() - self.unreachable_since) // 10)])
            return False
        if self.unreachable_since is not None:
            self.echo(f"the tracking server is back after {time.monotonic() - self.unreachable_since:.0f} s; "
                      f"sending what waited")
            self.unreachable_since = None
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued is sent; whether that happened within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while self.queue or self.sending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.condition.wait(min(left, 1.0))
        return True
