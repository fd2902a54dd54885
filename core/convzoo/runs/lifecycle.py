"""The one owner of a run's life. ``run_lifecycle`` starts (or continues) the MLflow run, tells the plugins' trainer
hooks how it ended, and decides FINISHED, FAILED or KILLED: here and nowhere else. Every run convzoo makes goes
through it: ``convzoo train`` and ``resume``, sweep trials, comparison children and parents, the notebook API and
``mlflow run``."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Mapping

from convzoo.tracking import active_run
from convzoo.tracking.active_run import TrackingUnavailable
from convzoo.training.observers import PluginHooks
from convzoo.training.trainer import StopTraining


def end_status(error: BaseException | None) -> str:
    """How a run ends: ``FINISHED`` without an error; ``KILLED`` when it was stopped on purpose (Ctrl-C, a signal,
    a pruner) or lost its tracking server (it can be resumed); ``FAILED`` for any other error."""
    if error is None:
        return "FINISHED"
    if isinstance(error, (KeyboardInterrupt, StopTraining, TrackingUnavailable)):
        return "KILLED"
    return "FAILED"


class Lifecycle:
    """A run in progress: its id, the plugin hooks told when it ends, and what must happen before the end."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.hooks: PluginHooks | None = None
        self._before_end: list[Callable[[BaseException | None], None]] = []

    def attach(self, hooks: PluginHooks) -> None:
        """The trainer hooks of this run: once ``on_run_start`` has fired, the end calls ``on_exception`` (when the
        run raised) and ``on_run_end``."""
        self.hooks = hooks

    def before_end(self, action: Callable[[BaseException | None], None]) -> None:
        """Call ``action(error)`` after the hooks and before the MLflow run ends (the last metrics and checkpoint)."""
        self._before_end.append(action)

    def end(self, error: BaseException | None) -> str:
        status = end_status(error)
        if self.hooks is not None and self.hooks.started:
            if error is not None:
                self.hooks.call("on_exception", error=error)
            self.hooks.call("on_run_end", status=status)
        for action in self._before_end:
            action(error)
        active_run.end_run(status, server_away=isinstance(error, TrackingUnavailable))
        return status


@contextlib.contextmanager
def run_lifecycle(experiment: str | None = None, *, run_id: str | None = None, run_name: str | None = None,
                  parent_run_id: str | None = None, tags: Mapping[str, str] | None = None) -> Iterator[Lifecycle]:
    """A new MLflow run (or ``run_id`` continued), active inside the block, ended as ``end_status`` says when the
    block exits, however it exits."""
    life = Lifecycle(active_run.start_run(experiment, run_id, run_name=run_name, parent_run_id=parent_run_id,
                                          tags=tags))
    try:
        yield life
    except BaseException as error:
        life.end(error)
        raise
    life.end(None)
