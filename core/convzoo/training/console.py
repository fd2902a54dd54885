"""What a training run prints: a progress bar per epoch on a terminal, and ``train_ch5``'s line after each epoch."""
from __future__ import annotations

from typing import Callable

from convzoo.training.callbacks import Callback
from convzoo.training.epoch_log import EpochLog
from convzoo.progress import Progress
from convzoo.training.trainer import EpochMetrics, Trainer


class ConsoleOutput(Callback):
    def __init__(self, echo: Callable[[str], None], epoch_log: EpochLog) -> None:
        self.echo, self.epoch_log = echo, epoch_log
        self.progress: Progress | None = None

    def on_step_end(self, trainer: Trainer) -> None:
        state = trainer.state
        if self.progress is None:
            self.progress = Progress(trainer.steps_in(state.epoch), f"epoch {state.epoch}/{trainer.hyper.epochs}")
            self.progress.done = state.step - 1  # a resumed epoch starts where it stopped
        self.progress.update(lambda: f"loss {state.loss_sum.item() / state.seen:.4f} "
                                     f"acc {state.correct.item() / state.seen:.3f}")

    def _close(self) -> None:
        if self.progress:
            self.progress.close()
            self.progress = None

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        self._close()
        logged = self.epoch_log.metrics(metrics, trainer.state.history)
        mfu = f", MFU {logged['mfu']:.0%}" if "mfu" in logged else ""
        val = "" if metrics.val_acc is None else f"val acc {metrics.val_acc:.3f}, "
        self.echo(f"epoch {metrics.epoch}, loss {metrics.train_loss:.4f}, train acc {metrics.train_acc:.3f}, "
                  f"{val}test acc {metrics.test_acc:.3f}, time {metrics.epoch_time:.1f} sec, "
                  f"{metrics.examples_per_sec:.0f} examples/sec{mfu}")
        if "time_to_target" in logged:
            self.echo(f"val acc {metrics.val_acc:.4f} reached the target {self.epoch_log.target_acc} after "
                      f"{logged['time_to_target']:.0f} s of training and evaluation (epoch {metrics.epoch})")

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._close()
