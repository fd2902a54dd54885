"""Runs sized to a time budget (``--budget 10m``): a short probe measures this machine's training step and evaluation
batch for this architecture and recipe, and the plan is the most whole epochs whose training and evaluation, with
the probe itself, end within the budget. The run then trains exactly as ``--epochs PLANNED`` would: the probe trains
a copy of the model and leaves every random generator as it found it."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from dataclasses import dataclass

from convzoo.config import TrainConfig
from convzoo.errors import ConvzooError
from convzoo.recipes import Recipe, budget_seconds
from convzoo.training.callbacks import Callback

# the share of the budget the plan fills: room for the epoch-to-epoch spread of a 2-core machine's throughput
FILL = 0.97
WARMUP_STEPS = 2  # untimed: the first steps set up the kernels and the memory
MIN_TIMED, MAX_TIMED, TIMED_SECONDS = 3, 30, 3.0


@dataclass(frozen=True)
class BudgetPlan:
    """What the probe measured and what was planned from it (all in seconds but ``epochs``)."""

    budget_s: float
    epochs: int
    step_s: float
    eval_batch_s: float
    epoch_s: float  # one epoch's training and evaluation, as predicted
    end_s: float  # evaluations after the last epoch (the flip test-time augmentation's)
    probe_s: float
    started: float  # time.perf_counter() when the probe began: the budget's clock

    def metrics(self) -> dict[str, float]:
        return {"planned_epochs": self.epochs, "planned_epoch_s": self.epoch_s, "probe_s": self.probe_s,
                "planned_s": self.probe_s + self.epochs * self.epoch_s + self.end_s}

    def describe(self, text: str) -> str:
        return (f"budget {text} ({self.budget_s:.0f} s): one epoch takes about {self.epoch_s:.1f} s on this machine "
                f"(step {self.step_s * 1000:.0f} ms, evaluation batch {self.eval_batch_s * 1000:.0f} ms; probe "
                f"{self.probe_s:.1f} s) -> {self.epochs} epoch(s), about {self.metrics()['planned_s']:.0f} s")


class _Measured(Exception):
    """Ends a probe once it has timed enough steps."""


class Stopwatch:
    """Times the batches after ``WARMUP_STEPS`` until ``MAX_TIMED`` of them, or ``TIMED_SECONDS`` with at least
    ``MIN_TIMED``, or the loader's ``available`` batches, then raises ``_Measured``."""

    def __init__(self, available: int) -> None:
        self.available, self.stamps = available, [time.perf_counter()]
        self.warmup = min(WARMUP_STEPS, available - 1)

    def tick(self) -> None:
        self.stamps.append(time.perf_counter())
        timed = len(self.stamps) - 1 - self.warmup
        if (timed >= MAX_TIMED or len(self.stamps) - 1 >= self.available
                or (timed >= MIN_TIMED and self.stamps[-1] - self.stamps[self.warmup] >= TIMED_SECONDS)):
            raise _Measured

    @property
    def seconds_each(self) -> float:
        return (self.stamps[-1] - self.stamps[self.warmup]) / (len(self.stamps) - 1 - self.warmup)


class ProbeClock(Callback):
    """A stopwatch over the training steps, then (``evaluation``, set when it starts) over the evaluation batches."""

    def __init__(self, train_batches: int) -> None:
        self.steps, self.evaluation = Stopwatch(train_batches), None

    def on_step_end(self, trainer) -> None:
        self.steps.tick()

    def on_eval_step_end(self, trainer) -> None:
        self.evaluation.tick()


def probe(ready, hyper: Recipe, world) -> tuple[float, float]:
    """Seconds per training step and per evaluation batch, measured on a copy of ``ready.model`` with the run's
    recipe (augmentation, mixing, the moving average, its precision); every global random generator is restored."""
    from convzoo.training.trainer import Trainer, rng_state, set_rng_state

    saved = rng_state()
    clock = ProbeClock(len(ready.train_loader))
    hyper = dataclasses.replace(hyper, epochs=int(hyper.warmup_epochs) + 1)  # any length: only the time is kept
    trainer = Trainer(copy.deepcopy(ready.model), ready.train_loader, ready.test_loader, hyper, ready.precision,
                      world=world, num_classes=ready.dataset.num_classes, callbacks=[clock])
    with contextlib.suppress(_Measured):
        trainer.fit()
    clock.evaluation = Stopwatch(len(ready.test_loader))
    with contextlib.suppress(_Measured):
        trainer.evaluate(ready.test_loader)
    set_rng_state(saved)
    return clock.steps.seconds_each, clock.evaluation.seconds_each


def plan_budget(config: TrainConfig, ready, world) -> tuple[TrainConfig, BudgetPlan]:
    """``config`` with the number of epochs the budget fits, and the plan; a budget too short for one epoch and its
    evaluation is a one-line error saying what one needs."""
    if world.distributed:
        raise ConvzooError("--budget plans a run of one process; leave out --nproc (or give --epochs)")
    text = config.hyper.budget
    budget = budget_seconds(text)
    started = time.perf_counter()
    step_s, eval_batch_s = probe(ready, config.hyper, world)
    probe_s = time.perf_counter() - started
    eval_batches = len(ready.test_loader) + (len(ready.val_loader) if ready.val_loader else 0)
    epoch_s = len(ready.train_loader) * step_s + eval_batches * eval_batch_s
    end_s = 2 * eval_batches * eval_batch_s if config.hyper.tta_flip else 0.0  # each image and its mirror
    epochs = math.floor((budget * FILL - probe_s - end_s) / epoch_s)
    if epochs < 1:
        raise ConvzooError(
            f"budget {text} ({budget:.0f} s) is too short for one epoch of {config.arch} on this machine: "
            f"one epoch with its evaluation takes about {epoch_s:.0f} s, and the probe took {probe_s:.0f} s; give "
            f"at least {math.ceil((probe_s + epoch_s + end_s) / FILL)}s")
    if epochs <= config.hyper.warmup_epochs:
        raise ConvzooError(f"budget {text} fits {epochs} epoch(s) of {config.arch} on this machine, not more than "
                           f"the warm-up of {config.hyper.warmup_epochs:g}; give a longer budget or fewer "
                           f"--warmup-epochs")
    hyper = dataclasses.replace(config.hyper, epochs=epochs)
    plan = BudgetPlan(budget, epochs, step_s, eval_batch_s, epoch_s, end_s, probe_s, started)
    return dataclasses.replace(config, hyper=hyper), plan
