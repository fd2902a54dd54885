"""One training run from start to finish: the process set up, the model trained inside ``run_lifecycle``, and what
the run records on the way."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pluggy
import torch

from convzoo._moved import moved_names
from convzoo.config import AUTO_RECIPE, TrainConfig
from convzoo.data.checks import check_labels, check_outputs
from convzoo.data.pipeline import BatchLoader, model_input
from convzoo.data.splits import ImageSplits
from convzoo.data.validation import with_validation
from convzoo.errors import ConvzooError
from convzoo.registry.catalogue import Architecture, Dataset
from convzoo.registry.hookspecs import RunContext
from convzoo.registry.plugins import get_plugin_manager
from convzoo.registry.summary import count_params
from convzoo.runs.budget import BudgetGuard, BudgetPlan, plan_budget
from convzoo.runs.lifecycle import Lifecycle, run_lifecycle
from convzoo.runs.resume import Resume
from convzoo.tracking import run_log
from convzoo.tracking.active_run import TrackingUnavailable, run_name
from convzoo.tracking.outbox import Outbox, server_wait_seconds
from convzoo.tracking.store import check_tracking_store, tracking_uri
from convzoo.training import checkpoint
from convzoo.training.callbacks import Callback
from convzoo.training.console import ConsoleOutput
from convzoo.training.distributed import SINGLE, World, check_batch, leave, rank_seed
from convzoo.training.early_stop import BEST_FILE, EarlyStopping
from convzoo.training.epoch_log import EpochLog
from convzoo.training.flip_tta import FlipAveraged, FlipTTAScore
from convzoo.training.observers import PluginHooks
from convzoo.training.setup import build_model, describe_world, make_loaders, prepare_device
from convzoo.training.trainer import EpochMetrics, Trainer
from convzoo.training.utilization import run_utilization
from convzoo.vocabulary import CHECKPOINTS_DIR, EPOCHS_TAG, PLUGIN_ERRORS_TAG


@dataclass
class TrainResult:
    """What a finished run hands back: its id, per-epoch metrics, where and how it trained, and the trained model."""

    run_id: str
    history: list[EpochMetrics]
    device: str
    precision: str
    model: torch.nn.Module
    arch: str


@dataclass(frozen=True)
class RunPlacement:
    """Where a new run goes in MLflow: its name, a parent to nest under, and tags it starts with; or ``run_id``, an
    empty run made for this training beforehand (a sweep's trial, whose id the study must know before it trains)."""

    run_name: str | None = None
    parent_run_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    run_id: str | None = None


@dataclass
class Prepared:
    """A process ready to train: device, precision, seeded model, the data set as loaded (its classes and
    channels read from the data), its splits and this rank's batches."""

    device: torch.device
    precision: str
    model: torch.nn.Module
    dataset: Dataset
    splits: ImageSplits
    train_loader: BatchLoader
    test_loader: BatchLoader
    val_loader: BatchLoader | None


def prepare(config: TrainConfig, arch: Architecture, dataset: Dataset, resume: Resume | None, world: World,
            tune_process: bool) -> Prepared:
    """Everything that can fail on bad input, the data's checks included, checked before any run is started or
    changed."""
    check_batch(config.hyper.batch_size, world.size)
    device, precision = prepare_device(config, world, tune_process)
    if resume:
        if resume.state["device"] != device.type:
            raise ConvzooError(f"run {resume.run_id} was trained on {resume.state['device']}; resume it there "
                               f"(--device {resume.state['device']}): its random state belongs to that device")
        precision = resume.state["precision"]  # the checkpoint's precision: resuming in another is not exact
    arch.resolve_options(config.hyper.options)  # a bad architecture option fails here, before the data loads
    loaded = dataset.load_splits(config.data_dir, image_size=config.hyper.resize, **config.data_options())
    dataset = dataset.loaded(loaded)
    check_labels(loaded, dataset.num_classes)
    # the same images held out on every rank, after a resume, in every trial: a function of the seed and the data
    splits = with_validation(loaded, config.hyper.val_fraction or 0.0, config.seed)
    model = build_model(config, arch, dataset, device)
    check_outputs(model, arch.name, splits, dataset.num_classes, config.hyper.resize, device)
    if world.rank:
        torch.manual_seed(rank_seed(config.seed, world.rank))  # its own dropout; DDP gives it rank 0's weights
    else:
        check_tracking_store()
    return Prepared(device, precision, model, dataset, splits, *make_loaders(config, splits, device, world))


def train(config: TrainConfig, arch: Architecture, dataset: Dataset, *, experiment: str | None = None,
          echo: Callable[[str], None] = print, pm: pluggy.PluginManager | None = None,
          callbacks: Sequence[Callback] = (), resume: Resume | None = None,
          placement: RunPlacement = RunPlacement(), world: World = SINGLE, tune_process: bool = True) -> TrainResult:
    """Train ``arch`` on ``dataset`` as ``config`` says, tracked in one MLflow run (``resume.run_id`` continued from
    its checkpoint when given, else a new run placed as ``placement`` says); ``pm`` supplies the observers,
    ``callbacks`` join the run's own. Under several processes (``world``) every rank calls this; rank 0 alone
    tracks, checkpoints, prints and calls the observers. ``tune_process``: see ``prepare_device``."""
    ready = prepare(config, arch, dataset, resume, world, tune_process)
    plan = None
    if config.hyper.budget and not resume:  # a resumed run keeps the epochs its budget planned
        config, plan = plan_budget(config, ready, world)
        echo(plan.describe(config.hyper.budget, len(ready.train_loader)))
    if not world.is_main:
        return train_untracked(ready, config, world, callbacks, resume, arch)
    if world.distributed:
        echo(describe_world(world, config.hyper.batch_size, ready.device))
    if config.recipe == AUTO_RECIPE and not resume:
        why = ("a GPU is available" if ready.device.type == "cuda"
               else "no GPU: the seed recipe takes hours on a CPU; --recipe seed forces it")
        echo(f"recipe auto -> {config.recipe_resolved} ({why})")
    name = None if resume else run_name(f"{config.arch}-{config.dataset}-{config.recipe_resolved}",
                                        placement.run_name)
    with run_lifecycle(experiment, run_id=resume.run_id if resume else placement.run_id, run_name=name,
                       parent_run_id=placement.parent_run_id, tags=placement.tags) as life:
        tracked = TrackedTraining(life, ready, config, arch, world, echo, plan)
        trainer = tracked.run(pm or get_plugin_manager(), callbacks, resume)
    shutil.rmtree(tracked.path.parent, ignore_errors=True)  # the run has the checkpoint logged
    with contextlib.suppress(OSError):
        tracked.path.parent.parent.rmdir()  # the checkpoints folder, when no other run keeps one there
    return TrainResult(life.run_id, trainer.state.history, str(ready.device), ready.precision, trainer.weights,
                       arch.name)


class TrackedTraining:
    """Rank 0's training inside a started run: its callbacks, what it logs, and the steps after the last epoch."""

    def __init__(self, life: Lifecycle, ready: Prepared, config: TrainConfig, arch: Architecture, world: World,
                 echo: Callable[[str], None], plan: BudgetPlan | None = None) -> None:
        self.life, self.ready, self.config, self.arch, self.dataset = life, ready, config, arch, ready.dataset
        self.plan = plan
        self.world, self.echo = world, echo
        self.run_id = life.run_id
        self.outbox = Outbox(echo)
        self.path = checkpoint.local_checkpoint(config.checkpoint_dir, self.run_id)
        life.before_end(self._flush_on_error)

    def _flush_on_error(self, error: BaseException | None) -> None:
        if error is not None and not isinstance(error, TrackingUnavailable):
            self.outbox.flush(server_wait_seconds())  # the last metrics and checkpoint, before the run ends

    def _tag(self, key: str, value: str) -> None:
        self.outbox.put(None, lambda client: client.set_tag(self.run_id, key, value))

    def run(self, pm: pluggy.PluginManager, callbacks: Sequence[Callback], resume: Resume | None) -> Trainer:
        config, ready = self.config, self.ready
        hooks = PluginHooks(pm, RunContext(config.arch, config.dataset, config.to_params(), str(ready.device),
                                           self.run_id),
                            on_failure=lambda failures: self._tag(PLUGIN_ERRORS_TAG, "; ".join(failures)))
        self.life.attach(hooks)
        utilization = run_utilization(self.arch, self.dataset, config.hyper.resize, config.hyper.options,
                                      ready.device, ready.precision, self.world.size, self.echo)
        epoch_log = EpochLog(utilization, config.hyper.target_acc)
        self.early_stop = early_stopping(config, self.path.with_name(BEST_FILE), self._upload("best-checkpoint"),
                                         self.echo)
        self.flip_tta = flip_tta_score(config)
        self.checkpointer = self._checkpointer()
        guard = [BudgetGuard(self.plan, self.echo, self._replanned)] if self.plan else []  # re-plans before a save
        trainer = Trainer(ready.model, ready.train_loader, ready.test_loader, config.hyper, ready.precision,
                          world=self.world, val=ready.val_loader, num_classes=ready.dataset.num_classes,
                          last_epoch_steps=config.last_epoch_steps, callbacks=[*self.early_stop, *self.flip_tta,
            *guard, self.checkpointer, run_log.MetricsLogger(self.outbox, self.run_id, epoch_log),
            ConsoleOutput(self.echo, epoch_log),
            run_log.StuckAtChance(self.arch.name, self.dataset.num_classes, self._tag, self.echo),
            run_log.ClassesNeverPredicted(self.arch.name, self.dataset, self._tag, self.echo), hooks, *callbacks])
        if resume:
            self._continue(trainer, resume, epoch_log, utilization)
        else:
            run_log.log_setup(config, self.arch, self.dataset, ready.splits, str(ready.device), ready.precision,
                              count_params(ready.model), utilization, self.world)
            if self.plan:
                run_log.log_budget_plan(self.plan.metrics())
        with run_log.Heartbeat(self.outbox, self.run_id, run_log.heartbeat_seconds()):
            trainer.fit()
            leave()  # the other ranks are done; what follows is rank 0's alone
            if self.plan:
                run_log.log_budget_used(self.plan.started, self.plan.budget_s, self.echo)
            self.wait_for_server()
            self.finish(trainer)
            run_log.describe_run(self.config, trainer.state.history, str(ready.device), ready.precision)
        self.wait_for_server()
        return trainer

    def _checkpointer(self) -> checkpoint.Checkpointer:
        meta = {"run_id": self.run_id, "config": self.config.to_dict(), "device": self.ready.device.type,
                "precision": self.ready.precision, "host": socket.gethostname(), "pid": os.getpid(),
                "world_size": self.world.size}
        return checkpoint.Checkpointer(self.path, self.config.checkpoint_every, meta, upload=self._upload("checkpoint"))

    def _replanned(self, epoch: int, epochs: int, last_epoch_steps: int, steps: int) -> None:
        """A budget's new plan after ``epoch``: in the run's config and the checkpoints from now on (a resumed run
        keeps it), as ``planned_epochs`` / ``planned_steps`` at that step, and as the run's epochs tag."""
        hyper = dataclasses.replace(self.config.hyper, epochs=epochs)
        self.config = dataclasses.replace(self.config, hyper=hyper, last_epoch_steps=last_epoch_steps)
        self.checkpointer.meta["config"] = self.config.to_dict()
        for key, value in (("planned_epochs", epochs), ("planned_steps", steps)):
            self.outbox.put(None, lambda client, key=key, value=value: client.log_metric(
                self.run_id, key, value, step=epoch))
        self._tag(EPOCHS_TAG, str(epochs))

    def _upload(self, key: str) -> Callable[[Path], None]:
        """Queue a saved checkpoint file for the run's checkpoints folder (a newer one under ``key`` replaces it)."""
        def upload(saved: Path) -> None:
            self.outbox.put(key, lambda client: client.log_artifact(self.run_id, str(saved), CHECKPOINTS_DIR))

        return upload

    def _continue(self, trainer: Trainer, resume: Resume, epoch_log: EpochLog, utilization) -> None:
        load_trainer(trainer, resume, self.config)
        run_log.log_missing_epochs(self.run_id, trainer.state.history, epoch_log)
        run_log.log_resumed(self.config, self.world, utilization)
        self.echo(f"resuming run {self.run_id} from {resume.path}: epoch {trainer.state.epoch}, "
                  f"step {trainer.state.step}/{len(self.ready.train_loader)}")
        saved_size = resume.state.get("world_size", 1)
        if saved_size != self.world.size:
            self.echo(f"its checkpoint was made by {saved_size} process(es), this is {self.world.size}: the global "
                      f"batch stays {self.config.hyper.batch_size}, but the rest of the run is not bit-exact (sums "
                      f"in another order, other dropout streams)")

    def wait_for_server(self) -> None:
        """Everything the run queued reaches the store, or a one-line error says where the checkpoint is."""
        wait = server_wait_seconds()
        if not self.outbox.flush(wait):
            raise TrackingUnavailable(
                f"the tracking server at {tracking_uri()} is still unreachable after {wait:.0f} s: run "
                f"{self.run_id} kept training, and its checkpoint is {self.path}; once the server is back: convzoo "
                f"resume {self.run_id}")

    def finish(self, trainer: Trainer) -> None:
        """Plots, the PyTorch model and, unless turned off, the ONNX export with its parity check."""
        splits, config, state = self.ready.splits, self.config, trainer.state
        run_log.log_training_time(state.history)
        for stopper in self.early_stop:
            run_log.log_best_epoch(stopper.best_epoch, stopper.metric, stopper.best_value, len(state.history))
        run_log.log_plots(state.history, splits, state.predictions, self.dataset)
        run_log.log_predictions(splits.test_labels, state.predictions, state.confidence)
        model = trainer.weights
        for score in self.flip_tta:
            model = FlipAveraged(model)
            run_log.log_flip_tta(score.accuracy, self.echo)
        example = model_input(splits.test_images[:2], config.hyper.resize)  # batch 2 keeps batch dynamic
        run_log.log_model(model, example)
        if config.export:
            from convzoo.deploy.publish import publish_onnx

            publish_onnx(model, splits, self.dataset, config.hyper.resize, self.run_id,
                         register_as=config.register_as, echo=self.echo)


def load_trainer(trainer: Trainer, resume: Resume, config: TrainConfig) -> None:
    """The checkpoint's state into ``trainer``. A run given more epochs than it had trains on even if early stopping
    had ended it: the user asked for them (its patience goes on counting)."""
    trainer.load_state_dict(resume.state["trainer"])
    if config.hyper.epochs > resume.state["config"]["hyper"]["epochs"]:
        trainer.state.stopped_early = False


def early_stopping(config: TrainConfig, path: Path | None, upload: Callable[[Path], None] = lambda path: None,
                   echo: Callable[[str], None] = lambda line: None) -> list[EarlyStopping]:
    """The run's early stopping, if its recipe asks for it (``path``: where rank 0 keeps the best weights)."""
    hyper = config.hyper
    if not hyper.early_stop:
        return []
    return [EarlyStopping(hyper.early_stop, hyper.early_stop_metric, hyper.min_delta, path, upload, echo)]


def flip_tta_score(config: TrainConfig) -> list[FlipTTAScore]:
    """The flip test-time augmentation's measurement, if the recipe asks for it."""
    return [FlipTTAScore()] if config.hyper.tta_flip else []


def train_untracked(ready: Prepared, config: TrainConfig, world: World, callbacks: Sequence[Callback],
                    resume: Resume | None, arch: Architecture) -> TrainResult:
    """A rank other than 0: the same training steps and collectives, nothing tracked, written or printed."""
    trainer = Trainer(ready.model, ready.train_loader, ready.test_loader, config.hyper, ready.precision, world=world,
                      val=ready.val_loader, num_classes=ready.dataset.num_classes,
                      last_epoch_steps=config.last_epoch_steps,
                      callbacks=[*early_stopping(config, None), *flip_tta_score(config),
                                 checkpoint.Checkpointer(None, config.checkpoint_every, {}), *callbacks])
    if resume:
        load_trainer(trainer, resume, config)
    trainer.fit()
    leave()
    return TrainResult(resume.run_id if resume else "", trainer.state.history, str(ready.device), ready.precision,
                       trainer.weights, arch.name)


__getattr__ = moved_names(__name__)  # names this module held before the layered core
