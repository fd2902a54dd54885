"""The training loop: ``train_ch5``'s per-epoch loss, train and test accuracy, and time, done efficiently.

Loss and accuracy are summed on the device and read once per epoch (and when the progress bar redraws), so the loop
never waits for the device on every step. Everything else (tracking, checkpoints, console, hooks) is a callback.
Its whole state, RNGs included, is ``Trainer.state_dict()``: loading it continues training bit for bit.
With a validation split, each epoch also logs ``val_loss`` and ``val_acc``; a callback may end training early
(``request_stop``) once an epoch is done. Under several processes (``world``) it is DistributedDataParallel: each
rank trains on its rows of every global batch, and the epoch's sums, the evaluations and the checkpointed state are
gathered over all ranks.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.training.callbacks import Callback, CallbackList
from convzoo.training.distributed import SINGLE, World, rank_seed
from convzoo.training.regularizers import make_ema, make_erasing, make_mixing
from convzoo.training.rng import rng_state, set_rng_state
from convzoo.training.evaluation import Evaluation, evaluate
from convzoo.data.pipeline import BatchLoader, EpochBatches
from convzoo.recipes import Recipe


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    train_loss: float
    train_acc: float
    test_acc: float
    epoch_time: float
    examples_per_sec: float
    lr: float
    train_steps: int
    train_examples: int = 0
    val_loss: float | None = None  # None: the run has no validation split
    val_acc: float | None = None

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in self.__dict__.items() if k != "epoch" and v is not None}


class StopTraining(Exception):
    """Raised between steps to end the run on purpose; it ends ``KILLED``, not ``FAILED``, with a consistent state."""


class StopRequested(StopTraining):
    """Raised between steps when the run was asked to stop (a signal)."""

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(f"stopped by {name}")
        self.signum, self.signal_name = signum, name


@dataclass
class LoopState:
    """Where training is: the epoch in progress (from 1), steps done in it, its running sums, and the history."""

    epoch: int = 1
    step: int = 0
    loss_sum: torch.Tensor | None = None
    correct: torch.Tensor | None = None
    seen: int = 0
    seconds: float = 0.0
    train_seconds: float = 0.0
    history: list[EpochMetrics] = field(default_factory=list)
    # the last test evaluation: per test image, the predicted class and its probability
    predictions: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    confidence: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    stopped_early: bool = False  # a callback ended training before its last epoch

    def start_epoch(self, device: torch.device) -> None:
        self.step = self.seen = 0
        self.seconds = self.train_seconds = 0.0
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items() if k != "history"},
                "history": [asdict(metrics) for metrics in self.history]}

    @classmethod
    def from_dict(cls, values: dict[str, Any], device: torch.device) -> LoopState:
        state = cls(**{**values, "history": [EpochMetrics(**m) for m in values["history"]]})
        state.loss_sum, state.correct = state.loss_sum.to(device), state.correct.to(device)
        return state


def autocast(device: torch.device, precision: str):
    """bf16 autocast for ``precision == "bf16"``, nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


OPTIMIZER_CLASSES = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
WARMUP_START = 0.01  # of lr, where a warm-up starts (torchvision's reference recipes' lr_warmup_decay)


def make_optimizer(model: nn.Module, hyper: Recipe) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD with momentum, fused: one kernel updates every parameter (on a CPU about 10x faster than
    the per-parameter loop, which costs AlexNet a third of its step)."""
    if hyper.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=hyper.lr, momentum=hyper.momentum,
                               weight_decay=hyper.weight_decay, fused=True)
    return OPTIMIZER_CLASSES[hyper.optimizer](model.parameters(), lr=hyper.lr, weight_decay=hyper.weight_decay,
                                              fused=True)


def warmup_steps(hyper: Recipe, steps_per_epoch: int) -> int:
    """Steps of the linear warm-up: ``warmup_epochs`` of them, at least one when asked for."""
    return max(1, round(hyper.warmup_epochs * steps_per_epoch)) if hyper.warmup_epochs else 0


def make_scheduler(optimizer: torch.optim.Optimizer, hyper: Recipe, steps: int, warmup: int = 0):
    """Per step over the run's ``steps``: cosine decay to zero, one cycle (warm-up to ``lr``, then cosine annealing,
    as ``torch.optim.lr_scheduler.OneCycleLR``), or a constant rate (None); after ``warmup`` steps of linear
    warm-up (``LinearLR``, then the rest in ``SequentialLR``) when asked."""
    lr_scheduler = torch.optim.lr_scheduler
    if hyper.schedule == "onecycle":
        return lr_scheduler.OneCycleLR(optimizer, max_lr=hyper.lr, total_steps=steps)
    if not warmup:
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps) if hyper.schedule == "cosine" else None
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=WARMUP_START, total_iters=warmup)
    if hyper.schedule == "none":
        return ramp  # at lr from its last step on
    return lr_scheduler.SequentialLR(optimizer, [ramp, lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps - warmup)],
                                     milestones=[warmup])


def stretch_schedule(scheduler, steps: int, scale_warmup: bool = False) -> None:
    """Make a schedule end after ``steps`` (a resumed run may have been given more epochs); one cycle, and a
    warm-up, keep their warm-up and anneal over the longer run. ``scale_warmup``: a one-cycle warm-up still in
    progress keeps its share of the run instead (a budget's re-plan)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
        phases = scheduler._schedule_phases  # OneCycleLR fixes its phases when it is made
        if scale_warmup and scheduler.last_epoch < phases[0]["end_step"]:
            share = (phases[0]["end_step"] + 1) / scheduler.total_steps
            phases[0]["end_step"] = max(float(scheduler.last_epoch), share * steps - 1)
        scheduler.total_steps = steps
        phases[-1]["end_step"] = steps - 1
    elif isinstance(scheduler, torch.optim.lr_scheduler.SequentialLR):
        scheduler._schedulers[-1].T_max = steps - scheduler._milestones[0]
    elif isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
        scheduler.T_max = steps


MIN_STEPS_FOR_VERDICT = 100


def is_stuck_at_chance(metrics: EpochMetrics, num_classes: int) -> bool:
    """After enough steps to judge, loss still at ln(classes) and accuracy near 1/classes (NiN's known failure)."""
    return (metrics.train_steps >= MIN_STEPS_FOR_VERDICT and abs(metrics.train_loss - math.log(num_classes)) < 0.02
            and metrics.train_acc < 1.5 / num_classes)


def time_to_target(history: list[EpochMetrics], target: float | None) -> tuple[int, float] | None:
    """The first epoch whose validation accuracy reached ``target``, and the seconds of training and evaluation
    until its end (None if none did, or no target). Never the test accuracy: a target is a decision."""
    seconds = 0.0
    for metrics in history if target is not None else ():
        seconds += metrics.epoch_time
        if metrics.val_acc is not None and metrics.val_acc >= target:
            return metrics.epoch, seconds
    return None


class Trainer:
    """Trains ``model`` for ``hyper.epochs``, calling ``callbacks``; ``state_dict()`` is everything it knows.
    ``num_classes``: the data's, over which mixup and CutMix mix the labels (needed only when the recipe mixes);
    ``last_epoch_steps``: the last epoch ends after this many steps (a budget's plan; 0: it is whole)."""

    def __init__(self, model: nn.Module, train: BatchLoader, test: BatchLoader, hyper: Recipe, precision: str,
                 callbacks: list[Callback] = (), world: World = SINGLE, val: BatchLoader | None = None,
                 num_classes: int | None = None, last_epoch_steps: int = 0) -> None:
        self.model, self.train_loader, self.test_loader, self.val_loader = model, train, test, val
        self.world = world
        self.parallel_model = world.wrap(model)  # what trains; ``model`` itself evaluates and is saved
        self.hyper, self.precision, self.device = hyper, precision, train.device
        self.callbacks = CallbackList(callbacks)
        self.optimizer = make_optimizer(model, hyper)
        self.last_epoch_steps = last_epoch_steps
        self.scheduler = make_scheduler(self.optimizer, hyper, self.total_steps, warmup_steps(hyper, len(train)))
        self.erasing, self.mixing = make_erasing(hyper), make_mixing(hyper, num_classes)
        self.ema = make_ema(model, hyper)
        self.state = LoopState()
        self.state.start_epoch(self.device)
        self.batches: EpochBatches | None = None
        self._rng_on_resume: torch.Tensor | None = None
        self._epoch_cut = False

    @property
    def weights(self) -> nn.Module:
        """The network that is evaluated, kept as the best epoch, logged and exported: the moving average of the
        weights when the recipe keeps one, else the model that trains."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def finished(self) -> bool:
        return self.state.epoch > self.hyper.epochs or self.state.stopped_early

    def request_stop(self) -> None:
        """End training after this epoch, as finished (what early stopping calls from ``on_epoch_end``)."""
        self.state.stopped_early = True

    def replan(self, epochs: int, last_epoch_steps: int) -> None:
        """Train ``epochs`` in all, the last cut to ``last_epoch_steps`` steps (0: whole), the schedule made to end
        there (a budget's re-plan at an epoch's end)."""
        self.hyper = dataclasses.replace(self.hyper, epochs=epochs)
        self.last_epoch_steps = last_epoch_steps
        if self.scheduler:
            stretch_schedule(self.scheduler, self.total_steps, scale_warmup=True)

    def stop_after_this_step(self) -> None:
        """End the epoch in progress after this step, evaluate it, and finish (a budget's guard calls it from
        ``on_step_end``)."""
        self.request_stop()
        self._epoch_cut = True

    @property
    def total_steps(self) -> int:
        """Optimizer steps the whole run takes."""
        return (self.hyper.epochs - 1) * len(self.train_loader) + self.steps_in(self.hyper.epochs)

    def steps_in(self, epoch: int) -> int:
        """Steps of ``epoch`` (from 1): all its batches, but the last epoch's cut when the run says so."""
        return self.last_epoch_steps if epoch == self.hyper.epochs and self.last_epoch_steps else len(self.train_loader)

    @property
    def global_step(self) -> int:
        """Optimizer steps done over the whole run."""
        return (self.state.epoch - 1) * len(self.train_loader) + self.state.step

    def state_dict(self) -> dict[str, Any]:
        """Model, optimizer, schedule, loop position, every RNG and the callbacks' states. Under several processes
        every rank must call it: ``ranks`` holds each rank's dropout stream and running sums, ``loop`` their total
        (what another number of processes resumes from)."""
        batches = self.batches
        state = self.state
        loop = state.to_dict()
        ranks = self.world.gather_objects({"rng": torch.get_rng_state(), "loss_sum": state.loss_sum.cpu(),
                                           "correct": state.correct.cpu(), "seen": state.seen})
        if self.world.distributed:
            loop.update(loss_sum=sum(rank["loss_sum"].double() for rank in ranks).float(),
                        correct=sum(rank["correct"] for rank in ranks), seen=sum(rank["seen"] for rank in ranks))
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "loop": loop, "rng": rng_state(), "ranks": ranks,
            "loader_rng": batches.generator.get_state() if batches and self.state.step else None,
            "callbacks": self.callbacks.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler:
            self.scheduler.load_state_dict(state["scheduler"])
            stretch_schedule(self.scheduler, self.total_steps)
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.state = LoopState.from_dict(state["loop"], self.device)
        set_rng_state(state["rng"])
        if self.world.distributed:
            self._load_rank_state(state.get("ranks", []))
        self._rng_on_resume = state["loader_rng"]
        self.callbacks.load_state_dict(state["callbacks"])

    def _load_rank_state(self, ranks: list[dict[str, Any]]) -> None:
        """At the world size that saved it, each rank's own dropout stream and running sums: bit for bit. At another,
        rank 0 carries the sums' total and every other rank starts a new stream."""
        state = self.state
        if len(ranks) == self.world.size:
            mine = ranks[self.world.rank]
            torch.set_rng_state(mine["rng"])
            state.loss_sum, state.correct = mine["loss_sum"].to(self.device), mine["correct"].to(self.device)
            state.seen = mine["seen"]
        elif self.world.rank:
            torch.manual_seed(rank_seed(self.train_loader.seed, self.world.rank))
            state.loss_sum.zero_()
            state.correct.zero_()
            state.seen = 0

    def fit(self) -> None:
        """Train the remaining epochs; callbacks see every event, and every exception before it propagates."""
        try:
            self.callbacks.on_run_start(self)
            while not self.finished:
                self._train_epoch()
                self._end_epoch()
            self.callbacks.on_train_end(self)
        except BaseException as error:
            self.callbacks.on_exception(self, error)
            raise

    def _train_epoch(self) -> None:
        state, model, optimizer = self.state, self.model, self.optimizer
        self.batches = self.train_loader.epoch_batches(state.epoch - 1, state.step, self._rng_on_resume)
        self._rng_on_resume = None
        model.train()
        start = time.perf_counter() - state.train_seconds
        for images, labels in itertools.islice(self.batches, self.steps_in(state.epoch) - state.step):
            images, targets = self.transformed(images, labels)
            with autocast(self.device, self.precision):
                output = self.parallel_model(images)
                loss, loss_sum = self._loss(output, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.hyper.clip_grad_norm:
                nn.utils.clip_grad_norm_(model.parameters(), self.hyper.clip_grad_norm)
            optimizer.step()
            if self.scheduler:
                self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(model)
            state.loss_sum += loss_sum
            state.correct += (output.argmax(dim=1) == labels).sum()
            state.seen += len(labels)
            state.step += 1
            state.train_seconds = time.perf_counter() - start
            self.callbacks.on_step_end(self)
            if self._epoch_cut:
                break
        state.loss_sum.item()  # waits for the device's last step before the clock stops
        state.train_seconds = time.perf_counter() - start

    def transformed(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch and what the loss compares with, as the recipe asks: each image's random erasing, then with
        chance ``mix_prob`` mixup or CutMix (the labels then mixed probabilities); else the labels. Train accuracy
        stays on the labels. Every draw is from torch's generator, which the checkpoint saves."""
        if self.erasing is not None:
            images = torch.stack([self.erasing(image) for image in images])  # on a batch: one box for all
        if self.mixing is None or torch.rand(()).item() >= self.hyper.mix_prob:
            return images, labels
        return self.mixing(images, labels)

    def _loss(self, output: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss to differentiate and its sum over the batch. Under several processes the local sum is scaled so
        that DDP's average over ranks is the global batch's mean, also for a short last batch."""
        smoothing = self.hyper.label_smoothing
        if not self.world.distributed:
            loss = F.cross_entropy(output, labels, label_smoothing=smoothing)
            return loss, loss.detach() * len(labels)
        total = F.cross_entropy(output, labels, reduction="sum", label_smoothing=smoothing)
        return total * (self.world.size / self.batches.rows), total.detach()

    def _end_epoch(self) -> None:
        state = self.state
        eval_start = time.perf_counter()
        test = self.evaluate(self.test_loader)
        val = self.evaluate(self.val_loader) if self.val_loader else None
        if self.world.distributed:
            loss_sum, correct, seen = self.world.all_sum([state.loss_sum, state.correct, state.seen])
        else:
            loss_sum, correct, seen = state.loss_sum.item(), state.correct.item(), state.seen
        metrics = EpochMetrics(
            epoch=state.epoch, train_loss=loss_sum / seen, train_acc=correct / seen,
            test_acc=test.accuracy, epoch_time=state.train_seconds + time.perf_counter() - eval_start,
            examples_per_sec=seen / state.train_seconds, lr=self.optimizer.param_groups[0]["lr"],
            train_steps=state.step, train_examples=int(seen),
            val_loss=val.mean_loss if val else None, val_acc=val.accuracy if val else None,
        )
        state.history.append(metrics)
        state.predictions, state.confidence = test.predicted, test.confidence
        state.epoch += 1
        state.start_epoch(self.device)
        self.batches, self._epoch_cut = None, False
        self.callbacks.on_epoch_end(self, metrics)

    def evaluate(self, loader: BatchLoader, model: nn.Module | None = None) -> Evaluation:
        """Every image of ``loader`` (the test set, or the validation split) through ``model``, by default
        ``weights``, in the run's precision."""
        return evaluate(model or self.weights, loader, self.world, autocast(self.device, self.precision),
                        lambda: self.callbacks.on_eval_step_end(self))
