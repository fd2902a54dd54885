"""Runs sized to a time budget (``--budget 10m``): a short probe measures this machine's training step, evaluation
batch and checkpoint save for this architecture and recipe, and the plan is the most training steps that, with each
epoch's end and the probe itself, end within the budget: whole epochs, the last one cut. The probe trains a copy of
the model and leaves every random generator as it found it, so the run draws what ``--epochs`` would. A guard plans
the rest again after each epoch from the steps measured so far, and ends the run early if the machine turns slower
still."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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
    """What the probe measured (seconds per training step, per epoch's end) and the plan: ``epochs``, the last of them
    cut to ``last_epoch_steps`` steps (0: whole), ``steps`` in all."""

    budget_s: float
    epochs: int
    steps: int
    last_epoch_steps: int
    step_s: float
    epoch_end_s: float  # what each epoch costs beyond its steps: evaluating validation and test, saving checkpoints
    end_s: float  # evaluations after the last epoch (the flip test-time augmentation's)
    probe_s: float
    started: float  # time.perf_counter() when the probe began: the budget's clock

    @property
    def planned_s(self) -> float:
        return self.probe_s + self.steps * self.step_s + self.epochs * self.epoch_end_s + self.end_s

    def metrics(self) -> dict[str, float]:
        return {"planned_epochs": self.epochs, "planned_steps": self.steps, "planned_step_s": self.step_s,
                "planned_epoch_end_s": self.epoch_end_s, "probe_s": self.probe_s, "planned_s": self.planned_s}

    def describe(self, text: str, steps_per_epoch: int) -> str:
        last = f", the last cut to {self.last_epoch_steps} of {steps_per_epoch} steps" if self.last_epoch_steps else ""
        return (f"budget {text} ({self.budget_s:.0f} s): step {self.step_s * 1000:.0f} ms, evaluation and checkpoint "
                f"{self.epoch_end_s:.1f} s an epoch on this machine (probe {self.probe_s:.1f} s) -> {self.epochs} "
                f"epoch(s){last}, about {self.planned_s:.0f} s")


class BudgetGuard(Callback):
    """Holds the plan to the clock. After each epoch it plans the rest again from the steps this run has measured
    (a probe of a few seconds can be off by a tenth over a long run), and the schedule is made to end at the new last
    step; ``replanned(epoch, epochs, last_epoch_steps, steps)`` hears of each change. Once the budget has less left
    than an epoch's end (evaluation, checkpoint; the flip-TTA evaluation) and a step, the epoch in progress ends at
    this step, is evaluated, and is the last. A resumed run, whose clock is gone, has none."""

    def __init__(self, plan: BudgetPlan, echo, replanned=lambda epoch, epochs, last_epoch_steps, steps: None) -> None:
        self.plan, self.echo, self.replanned = plan, echo, replanned
        self.training_started = None  # set when the run starts: the plan's step time is measured from there

    def on_run_start(self, trainer) -> None:
        self.training_started = time.perf_counter()

    def on_step_end(self, trainer) -> None:
        plan = self.plan
        left = plan.budget_s - (time.perf_counter() - plan.started)
        if left < plan.epoch_end_s + plan.end_s + plan.step_s and not trainer.state.stopped_early:
            trainer.stop_after_this_step()
            self.echo(f"budget: {left:.1f} s left, ending epoch {trainer.state.epoch} after step "
                      f"{trainer.state.step} of {trainer.steps_in(trainer.state.epoch)} (this machine ran slower "
                      f"than the probe measured)")

    def on_epoch_end(self, trainer, metrics) -> None:
        if trainer.finished:
            return
        plan, now, done = self.plan, time.perf_counter(), trainer.state.epoch - 1
        per_epoch, steps_done = len(trainer.train_loader), trainer.global_step
        step_s = max(now - self.training_started - done * plan.epoch_end_s, 0.0) / steps_done or plan.step_s
        room = plan.budget_s * FILL - (now - plan.started) - plan.end_s
        more, steps, last_epoch_steps = plan_steps(room, per_epoch, step_s, plan.epoch_end_s)
        epochs = done + more
        if (epochs, last_epoch_steps) != (trainer.hyper.epochs, trainer.last_epoch_steps):
            trainer.replan(epochs, last_epoch_steps)
            self.replanned(done, epochs, last_epoch_steps, steps_done + steps)


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


def probe(ready, hyper: Recipe, world) -> tuple[float, float, float]:
    """Seconds per training step, per evaluation batch and per checkpoint save (into a temporary folder), measured on a
    copy of ``ready.model`` with the run's recipe (augmentation, mixing, the moving average, its precision); every
    global random generator is restored."""
    from convzoo.training import checkpoint
    from convzoo.training.rng import rng_state, set_rng_state
    from convzoo.training.trainer import Trainer

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
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        checkpoint.save(trainer.state_dict(), Path(folder) / checkpoint.FILE_NAME)
        save_s = time.perf_counter() - started
    set_rng_state(saved)
    return clock.steps.seconds_each, clock.evaluation.seconds_each, save_s


def plan_budget(config: TrainConfig, ready, world) -> tuple[TrainConfig, BudgetPlan]:
    """``config`` with the number of epochs the budget fits, and the plan; a budget too short for one epoch and its
    evaluation is a one-line error saying what one needs."""
    if world.distributed:
        raise ConvzooError("--budget plans a run of one process; leave out --nproc (or give --epochs)")
    text = config.hyper.budget
    budget = budget_seconds(text)
    started = time.perf_counter()
    step_s, eval_batch_s, save_s = probe(ready, config.hyper, world)
    probe_s = time.perf_counter() - started
    eval_batches = len(ready.test_loader) + (len(ready.val_loader) if ready.val_loader else 0)
    per_epoch = len(ready.train_loader)
    saves = 1 + ((per_epoch - 1) // config.checkpoint_every if config.checkpoint_every else 0)
    epoch_end_s = eval_batches * eval_batch_s + saves * save_s
    end_s = 2 * eval_batches * eval_batch_s if config.hyper.tta_flip else 0.0  # each image and its mirror, once
    room, one_epoch = budget * FILL - probe_s - end_s, per_epoch * step_s + epoch_end_s
    if room < one_epoch:
        raise ConvzooError(
            f"budget {text} ({budget:.0f} s) is too short for one epoch of {config.arch} on this machine: "
            f"one epoch with its evaluation takes about {one_epoch:.0f} s, and the probe took {probe_s:.0f} s; give "
            f"at least {math.ceil((probe_s + one_epoch + end_s) / FILL)}s")
    epochs, steps, last_epoch_steps = plan_steps(room, per_epoch, step_s, epoch_end_s)
    if epochs <= config.hyper.warmup_epochs:
        raise ConvzooError(f"budget {text} fits {epochs} epoch(s) of {config.arch} on this machine, not more than "
                           f"the warm-up of {config.hyper.warmup_epochs:g}; give a longer budget or fewer "
                           f"--warmup-epochs")
    plan = BudgetPlan(budget, epochs, steps, last_epoch_steps, step_s, epoch_end_s, end_s, probe_s, started)
    hyper = dataclasses.replace(config.hyper, epochs=epochs)
    return dataclasses.replace(config, hyper=hyper, last_epoch_steps=plan.last_epoch_steps), plan


def plan_steps(room: float, per_epoch: int, step_s: float, epoch_end_s: float) -> tuple[int, int, int]:
    """The most training steps that fit ``room`` seconds with an epoch's end (``epoch_end_s``) after each epoch of
    ``per_epoch`` steps (and after a last, shorter epoch): the epochs they make, the steps, and the steps of the last
    epoch when it is cut (0: whole); (0, 0, 0) when not a step fits."""
    epochs = 1
    while True:
        steps = min(math.floor((room - epochs * epoch_end_s) / step_s), epochs * per_epoch)
        if steps <= (epochs - 1) * per_epoch:  # another epoch's evaluation leaves no time to train in it
            return epochs - 1, (epochs - 1) * per_epoch, 0
        if steps < epochs * per_epoch:
            return epochs, steps, steps - (epochs - 1) * per_epoch
        epochs += 1
