"""The training loop's seam: each concern (tracking, checkpoints, console, plugin hooks, signals) is a callback.

A callback overrides only the events it needs; ``state_dict``/``load_state_dict`` put its own state into the run's
checkpoint, so a resumed run carries on exactly where it stopped. Callbacks are called in list order.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convzoo.training.trainer import EpochMetrics, Trainer


class Callback:
    """Does nothing; subclasses override what they need. ``name`` keys its state in checkpoints."""

    name = ""

    def on_run_start(self, trainer: Trainer) -> None:
        """Before the first step of this process (also when resuming)."""

    def on_step_end(self, trainer: Trainer) -> None:
        """After each optimizer step; ``trainer.state`` is consistent, so a checkpoint here is exact."""

    def on_eval_step_end(self, trainer: Trainer) -> None:
        """After each evaluation batch."""

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        """After each epoch's evaluation; ``trainer.state`` already points at the next epoch."""

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        """When training raises (a stop request, Ctrl-C or an error), before the exception propagates."""

    def on_train_end(self, trainer: Trainer) -> None:
        """After the last epoch."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


class CallbackList:
    """Calls one event on every callback in order."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = list(callbacks)

    def __getattr__(self, event: str):
        def call(*args: Any) -> None:
            for callback in self.callbacks:
                getattr(callback, event)(*args)

        return call

    def state_dict(self) -> dict[str, Any]:
        return {callback.name: callback.state_dict() for callback in self.callbacks if callback.name}

    def load_state_dict(self, states: dict[str, Any]) -> None:
        for callback in self.callbacks:
            if callback.name in states:
                callback.load_state_dict(states[callback.name])
