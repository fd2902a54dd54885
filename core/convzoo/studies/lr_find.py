"""``convzoo lr-find``: the learning-rate range test. The recipe's network trains from its seeded start while the
learning rate rises exponentially step by step; the loss against the rate, smoothed, shows where training is fastest
and where it diverges. It is its own MLflow run (the figure, per-step figures, the suggestion) and leaves nothing
behind for later runs: no checkpoint, no weights, no change to a recipe."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

from convzoo.config import TrainConfig
from convzoo.errors import ConvzooError
from convzoo.registry.catalogue import Architecture, Dataset
from convzoo.training.callbacks import Callback

SMOOTHING = 0.98  # of the loss's exponential moving average (bias-corrected), as fastai's and Smith's range tests
DIVERGED = 4.0  # the sweep stops once the smoothed loss is this many times its lowest
TURNED_UP = 0.02  # a rise of the smoothed loss over its lowest so far that is more than noise
LR_FIND_TAG = "convzoo.lr_find"


@dataclass(frozen=True)
class RangeTest:
    """What the sweep saw, step by step, and the rate it suggests: a tenth of the rate where the smoothed loss turned
    up (first rose ``TURNED_UP`` above its lowest so far), which sits where the loss still falls fast. A network that
    stays at its starting loss until it diverges (VGG without batch norm, in a few hundred steps) gets a tenth of
    the rate where it blew up, the same rule."""

    rates: list[float]
    losses: list[float]
    smoothed: list[float]
    diverged: bool

    @property
    def lowest(self) -> int:
        return min(range(len(self.smoothed)), key=self.smoothed.__getitem__)

    @property
    def turned_up(self) -> int:
        """The step where the smoothed loss first rose ``TURNED_UP`` above its lowest so far (else the lowest)."""
        lowest = math.inf
        for step, value in enumerate(self.smoothed):
            if value > lowest * (1 + TURNED_UP):
                return step
            lowest = min(lowest, value)
        return self.lowest

    @property
    def suggested_lr(self) -> float:
        return self.rates[self.turned_up] / 10

    def summary(self) -> dict[str, float]:
        return {"suggested_lr": self.suggested_lr, "lr_at_lowest_loss": self.rates[self.lowest],
                "lr_turned_up": self.rates[self.turned_up], "lr_find_diverged": float(self.diverged)}


def rate_at(step: int, steps: int, start_lr: float, end_lr: float) -> float:
    """The exponential sweep's rate at ``step`` (from 0): ``start_lr`` first, ``end_lr`` at the last of ``steps``."""
    return start_lr * (end_lr / start_lr) ** (step / max(steps - 1, 1))


class _Done(Exception):
    """The sweep reached its last step or diverged."""


class RateSweep(Callback):
    """Sets the next step's rate after each step and records the step's loss (``trainer.state``'s running sum)."""

    def __init__(self, steps: int, start_lr: float, end_lr: float) -> None:
        self.steps, self.start_lr, self.end_lr = steps, start_lr, end_lr
        self.rates, self.losses, self.smoothed = [], [], []
        self.diverged, self._sum_before, self._average = False, 0.0, 0.0

    def on_step_end(self, trainer) -> None:
        state = trainer.state
        total = state.loss_sum.item()
        loss = (total - self._sum_before) / trainer.batches.rows
        self._sum_before = total
        step = len(self.losses)
        self._average = SMOOTHING * self._average + (1 - SMOOTHING) * loss
        smoothed = self._average / (1 - SMOOTHING ** (step + 1))
        self.rates.append(trainer.optimizer.param_groups[0]["lr"])
        self.losses.append(loss)
        self.smoothed.append(smoothed)
        self.diverged = not math.isfinite(smoothed) or smoothed > DIVERGED * min(self.smoothed)
        if self.diverged or step + 1 >= self.steps:
            raise _Done
        for group in trainer.optimizer.param_groups:
            group["lr"] = rate_at(step + 1, self.steps, self.start_lr, self.end_lr)

    def result(self) -> RangeTest:
        return RangeTest(self.rates, self.losses, self.smoothed, self.diverged)


def sweep_rates(config: TrainConfig, ready, steps: int, start_lr: float, end_lr: float) -> RangeTest:
    """Train ``ready.model`` for up to ``steps`` steps of the recipe (one epoch's batches at most), the rate rising
    from ``start_lr`` to ``end_lr``, with no schedule, warm-up or moving average of its own."""
    from convzoo.training.trainer import Trainer

    hyper = dataclasses.replace(config.hyper, lr=start_lr, schedule="none", warmup_epochs=0.0, ema_decay=None,
                                epochs=1, budget=None)
    sweep = RateSweep(min(steps, len(ready.train_loader)), start_lr, end_lr)
    trainer = Trainer(ready.model, ready.train_loader, ready.test_loader, hyper, ready.precision,
                      num_classes=ready.dataset.num_classes, callbacks=[sweep])
    try:
        trainer.fit()
    except _Done:
        pass
    return sweep.result()


def check_sweep(steps: int, start_lr: float, end_lr: float) -> None:
    if steps < 10:
        raise ConvzooError(f"--steps must be at least 10 (the sweep's steps), got {steps}")
    if not 0 < start_lr < end_lr:
        raise ConvzooError(f"the sweep needs 0 < --start-lr < --end-lr, got {start_lr:g} and {end_lr:g}")


def lr_find(config: TrainConfig, arch: Architecture, dataset: Dataset, *, steps: int, start_lr: float,
            end_lr: float, experiment: str | None = None, echo: Callable[[str], None] = print) -> RangeTest:
    """Run the range test as one MLflow run of its own and print the suggested rate."""
    from convzoo.runs.lifecycle import run_lifecycle
    from convzoo.runs.training_run import prepare
    from convzoo.tracking import run_log
    from convzoo.tracking.active_run import run_name
    from convzoo.training.distributed import SINGLE

    check_sweep(steps, start_lr, end_lr)
    ready = prepare(config, arch, dataset, None, SINGLE, tune_process=True)
    name = run_name(f"{config.arch}-lr-find-{config.recipe_resolved}", None)
    with run_lifecycle(experiment, run_name=name, tags={LR_FIND_TAG: "true"}) as life:
        run_log.log_new_params({**config.to_params(), "lr_find_steps": steps, "start_lr": start_lr,
                                "end_lr": end_lr})
        found = sweep_rates(config, ready, steps, start_lr, end_lr)
        run_log.log_range_test(found.rates, found.losses, found.smoothed, found.summary())
        echo(f"lr-find {config.arch} ({config.recipe_resolved}): {len(found.rates)} steps from {start_lr:g} to "
             f"{found.rates[-1]:.3g}" + (" (stopped: the loss diverged)" if found.diverged else "")
             + f"; lowest smoothed loss {found.smoothed[found.lowest]:.4f} at lr {found.rates[found.lowest]:.3g}, "
               f"turned up at lr {found.rates[found.turned_up]:.3g}")
        echo(f"suggested lr {found.suggested_lr:.3g} (a tenth of the rate where the loss turned up); run "
             f"{life.run_id}, figure lr_find.png")
    return found
