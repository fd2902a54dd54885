"""Early stopping and the best epoch: watch a validation metric, keep the best epoch's weights in ``best.pt`` beside
the last checkpoint, stop once it has not improved for ``patience`` epochs, and end with the best weights in the
model, so what is exported, logged and registered is the best epoch's."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from convzoo.training import checkpoint
from convzoo.training.callbacks import Callback
from convzoo.training.trainer import EpochMetrics, Trainer

BEST_FILE = "best.pt"


class EarlyStopping(Callback):
    """Tracks ``metric`` (``val_acc`` up, ``val_loss`` down, by more than ``min_delta``). ``path``: where the best
    weights go (None on ranks other than 0, which only take the same decision); ``upload`` sends them to the run.
    Its state (best value and epoch, epochs waited) is in every checkpoint, so a resumed run stops where the
    uninterrupted one would. It must come before the ``Checkpointer``, which saves what it decided."""

    name = "early_stop"

    def __init__(self, patience: int, metric: str, min_delta: float, path: Path | None,
                 upload: Callable[[Path], None] = lambda path: None, echo: Callable[[str], None] = lambda line: None):
        self.patience, self.metric, self.min_delta, self.path = patience, metric, min_delta, path
        self.upload, self.echo = upload, echo
        self.best_value: float | None = None
        self.best_epoch = 0
        self.waited = 0

    def improved(self, value: float) -> bool:
        if self.best_value is None:
            return True
        if self.metric == "val_loss":
            return value < self.best_value - self.min_delta
        return value > self.best_value + self.min_delta

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        value = getattr(metrics, self.metric)
        if self.improved(value):
            self.best_value, self.best_epoch, self.waited = value, metrics.epoch, 0
            if self.path is not None:
                checkpoint.save({"format": checkpoint.FORMAT, "epoch": metrics.epoch,
                                 "model": trainer.weights.state_dict(), "predictions": trainer.state.predictions,
                                 "confidence": trainer.state.confidence}, self.path)
                self.upload(self.path)
            return
        self.waited += 1
        if self.waited >= self.patience and not trainer.finished:
            trainer.request_stop()
            self.echo(f"early stop after epoch {metrics.epoch}: {self.metric} has not improved for {self.waited} "
                      f"epoch(s); the best was epoch {self.best_epoch} ({self.metric} {self.best_value:.4f})")

    def on_train_end(self, trainer: Trainer) -> None:
        if self.path is None or self.best_epoch == len(trainer.state.history):
            return  # the model already holds the best epoch's weights
        best = checkpoint.load(self.path)
        trainer.weights.load_state_dict(best["model"])
        trainer.state.predictions, trainer.state.confidence = best["predictions"], best["confidence"]

    def state_dict(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_epoch": self.best_epoch, "waited": self.waited}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value, self.best_epoch, self.waited = state["best_value"], state["best_epoch"], state["waited"]
