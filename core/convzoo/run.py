"""One training run from start to finish: data, model, training, hooks, and what MLflow records."""
from __future__ import annotations

import functools
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import mlflow
import pluggy
import torch

from convzoo import checkpoint, tracking
from convzoo.callbacks import Callback
from convzoo.config import AUTO_RECIPE, TrainConfig
from convzoo.data import ImageSplits
from convzoo.errors import ConvzooError
from convzoo.devices import resolve_device, resolve_precision
from convzoo.distributed import SINGLE, World, check_batch, cores, leave, rank_seed, threads_per_rank
from convzoo.memory import keep_freed_memory
from convzoo.console import ConsoleOutput
from convzoo.observers import PluginHooks, RunContext
from convzoo.outbox import Outbox, server_wait_seconds
from convzoo.pipeline import BatchLoader, model_input
from convzoo.plugins import get_plugin_manager
from convzoo.registry import Architecture, Dataset, resolve
from convzoo.store import check_tracking_store
from convzoo.summary import count_params
from convzoo.trainer import EpochMetrics, StopTraining, Trainer
from convzoo.utilization import run_utilization
from convzoo.vocabulary import CHECKPOINTS_DIR, EPOCHS_TAG, PLUGIN_ERRORS_TAG


@dataclass
class TrainResult:
    run_id: str
    history: list[EpochMetrics]
    device: str
    precision: str
    model: torch.nn.Module
    arch: str


def prepare_device(config: TrainConfig, world: World = SINGLE, keep_memory: bool = True) -> tuple[torch.device, str]:
    """The run's device and precision, with this process set up to train there (on a CPU freed memory kept, unless
    ``keep_memory`` is false; under several processes, this rank's GPU, or its share of the CPU cores)."""
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)  # bad input fails before the process is changed
    if device.type == "cpu":
        if keep_memory:
            keep_freed_memory()
        if world.distributed:
            torch.set_num_threads(threads_per_rank(world.local_size))
    elif world.distributed:
        device = torch.device("cuda", world.local_rank)
    return device, precision


def describe_world(world: World, batch_size: int, device: torch.device) -> str:
    """One line on how the work is spread: processes, threads or GPUs, and each one's share of the batch."""
    where = (f"{world.size} processes x {torch.get_num_threads()} thread(s) ({world.local_size} on this machine's "
             f"{cores()} cores)" if device.type == "cpu" else f"{world.size} processes, one GPU each")
    return (f"{where}, backend {world.backend}: each takes {batch_size // world.size} of every {batch_size}-image "
            f"batch")


def build_model(config: TrainConfig, arch: Architecture, dataset: Dataset, device: torch.device) -> torch.nn.Module:
    """The run's network, seeded, on ``device`` in the run's memory format."""
    torch.manual_seed(config.seed)
    model = arch.create(dataset.in_channels, dataset.num_classes, input_size=config.hyper.resize,
                        **config.hyper.options)
    return model.to(device, memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)


def make_loaders(config: TrainConfig, splits: ImageSplits, device: torch.device,
                 world: World = SINGLE) -> tuple[BatchLoader, BatchLoader]:
    """The run's training and test batches (this rank's rows of them)."""
    loader = functools.partial(BatchLoader, batch_size=config.hyper.batch_size, size=config.hyper.resize, device=device,
                               seed=config.seed, channels_last=config.channels_last, world=world)
    train = loader(splits.train_images, splits.train_labels, shuffle=True, augment=config.hyper.augment,
                   flip_shift=config.hyper.flip_shift, limit_batches=config.limit_train_batches)
    test = loader(splits.test_images, splits.test_labels, shuffle=False, limit_batches=config.limit_eval_batches)
    return train, test


def local_checkpoint(checkpoint_dir: str | None, run_id: str) -> Path:
    """Where this machine keeps ``run_id``'s checkpoint while it trains (``checkpoint_dir``: ``--checkpoint-dir``)."""
    return Path(checkpoint_dir or checkpoint.default_folder()).absolute() / run_id / checkpoint.FILE_NAME


@dataclass
class Resume:
    """A run to continue and the checkpoint it continues from."""

    run_id: str
    state: dict[str, Any]
    path: str


@dataclass(frozen=True)
class RunPlacement:
    """Where a new run goes in MLflow: its name, a parent to nest under, and tags it starts with; or ``run_id``, an
    empty run made for this training beforehand (a sweep's trial, whose id the study must know before it trains)."""

    run_name: str | None = None
    parent_run_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    run_id: str | None = None


def train(config: TrainConfig, arch: Architecture, dataset: Dataset, *, experiment: str | None = None,
          echo: Callable[[str], None] = print, pm: pluggy.PluginManager | None = None,
          callbacks: Sequence[Callback] = (), resume: Resume | None = None,
          placement: RunPlacement = RunPlacement(), world: World = SINGLE, keep_memory: bool = True) -> TrainResult:
    """Train ``arch`` on ``dataset`` as ``config`` says, tracked in one MLflow run (``resume.run_id`` continued from
    its checkpoint when given, else a new run placed as ``placement`` says); ``pm`` supplies the observers,
    ``callbacks`` join the run's own. Under several processes (``world``) every rank calls this; rank 0 alone
    tracks, checkpoints, prints and calls the observers. ``keep_memory``: see ``convzoo.memory``."""
    check_batch(config.hyper.batch_size, world.size)
    device, precision = prepare_device(config, world, keep_memory)
    if resume:
        if resume.state["device"] != device.type:
            raise ConvzooError(f"run {resume.run_id} was trained on {resume.state['device']}; resume it there "
                               f"(--device {resume.state['device']}): its random state belongs to that device")
        precision = resume.state["precision"]  # the checkpoint's precision: resuming in another is not exact
    model = build_model(config, arch, dataset, device)  # a bad architecture option fails here, first
    if world.rank:
        torch.manual_seed(rank_seed(config.seed, world.rank))  # its own dropout; DDP gives it rank 0's weights
    else:
        check_tracking_store()
    splits = resolve(dataset.load)(config.data_dir)
    train_loader, test_loader = make_loaders(config, splits, device, world)
    if not world.is_main:
        return train_untracked(model, train_loader, test_loader, config, precision, world, callbacks, resume, arch)
    if world.distributed:
        echo(describe_world(world, config.hyper.batch_size, device))
    if config.recipe == AUTO_RECIPE and not resume:
        why = ("a GPU is available" if device.type == "cuda"
               else "no GPU: the seed recipe takes hours on a CPU; --recipe seed forces it")
        echo(f"recipe auto -> {config.recipe_resolved} ({why})")

    pm = pm or get_plugin_manager()
    name = None if resume else tracking.run_name(config, placement.run_name)
    with tracking.mlflow_run(experiment, run_id=resume.run_id if resume else placement.run_id, run_name=name,
                             parent_run_id=placement.parent_run_id, tags=placement.tags) as active:
        run_id = active.info.run_id
        outbox = Outbox(echo)

        def tag(key: str, value: str) -> None:
            outbox.put(None, lambda client: client.set_tag(run_id, key, value))

        hooks = PluginHooks(pm, RunContext(config.arch, config.dataset, config.to_params(), str(device), run_id),
                            on_failure=lambda failures: tag(PLUGIN_ERRORS_TAG, "; ".join(failures)))
        utilization = run_utilization(arch, dataset, config.hyper.resize, config.hyper.options, device, precision,
                                      world.size, echo)
        epoch_log = tracking.EpochLog(utilization, config.hyper.target_acc)
        path = local_checkpoint(config.checkpoint_dir, run_id)
        meta = {"run_id": run_id, "config": config.to_dict(), "device": device.type, "precision": precision,
                "host": socket.gethostname(), "pid": os.getpid(), "world_size": world.size}
        trainer = Trainer(model, train_loader, test_loader, config.hyper, precision, world=world, callbacks=[
            checkpoint.Checkpointer(path, config.checkpoint_every, meta, upload=lambda saved: outbox.put(
                "checkpoint", lambda client: client.log_artifact(run_id, str(saved), CHECKPOINTS_DIR))),
            tracking.MetricsLogger(outbox, run_id, epoch_log), ConsoleOutput(echo, epoch_log),
            tracking.StuckAtChance(arch.name, dataset.num_classes, tag, echo), hooks, *callbacks])
        if resume:
            trainer.load_state_dict(resume.state["trainer"])
            tracking.log_missing_epochs(run_id, trainer.state.history, epoch_log)
            # the epochs and world_size params keep their first values; the peak is this machine's
            mlflow.set_tags({EPOCHS_TAG: str(config.hyper.epochs), **tracking.world_tags(world), **utilization.tags()})
            echo(f"resuming run {run_id} from {resume.path}: epoch {trainer.state.epoch}, "
                 f"step {trainer.state.step}/{len(train_loader)}")
            saved_size = resume.state.get("world_size", 1)
            if saved_size != world.size:
                echo(f"its checkpoint was made by {saved_size} process(es), this is {world.size}: the global batch "
                     f"stays {config.hyper.batch_size}, but the rest of the run is not bit-exact (sums in another "
                     f"order, other dropout streams)")
        else:
            tracking.log_setup(config, arch, splits, str(device), precision, count_params(model), utilization, world)
        try:
            with tracking.Heartbeat(outbox, run_id, tracking.heartbeat_seconds()):
                trainer.fit()
                leave()  # the other ranks are done; what follows is rank 0's alone
                wait_for_server(outbox, run_id, path)
                finish(trainer, config, splits, dataset, echo)
                tracking.describe_run(config, trainer.state.history, str(device), precision)
        except BaseException as error:
            status = "KILLED" if isinstance(error, (KeyboardInterrupt, StopTraining)) else "FAILED"
            hooks.call("on_exception", error=error)
            hooks.call("on_run_end", status=status)
            if not isinstance(error, tracking.TrackingUnavailable):
                outbox.flush(server_wait_seconds())  # the last metrics and checkpoint, before the run ends
            raise
        hooks.call("on_run_end", status="FINISHED")
        wait_for_server(outbox, run_id, path)
        shutil.rmtree(path.parent, ignore_errors=True)  # the run has it as checkpoints/last.pt
    return TrainResult(run_id, trainer.state.history, str(device), precision, model, arch.name)


def train_untracked(model: torch.nn.Module, train_loader: BatchLoader, test_loader: BatchLoader, config: TrainConfig,
                    precision: str, world: World, callbacks: Sequence[Callback], resume: Resume | None,
                    arch: Architecture) -> TrainResult:
    """A rank other than 0: the same training steps and collectives, nothing tracked, written or printed."""
    trainer = Trainer(model, train_loader, test_loader, config.hyper, precision, world=world, callbacks=[
        checkpoint.Checkpointer(None, config.checkpoint_every, {}), *callbacks])
    if resume:
        trainer.load_state_dict(resume.state["trainer"])
    trainer.fit()
    leave()
    return TrainResult(resume.run_id if resume else "", trainer.state.history, str(train_loader.device), precision,
                       model, arch.name)


def wait_for_server(outbox: Outbox, run_id: str, path: Path) -> None:
    """Everything the run queued reaches the store, or a one-line error says where the checkpoint is."""
    wait = server_wait_seconds()
    if not outbox.flush(wait):
        raise tracking.TrackingUnavailable(
            f"the tracking server at {mlflow.get_tracking_uri()} is still unreachable after {wait:.0f} s: run "
            f"{run_id} kept training, and its checkpoint is {path}; once the server is back: convzoo resume {run_id}")


def finish(trainer: Trainer, config: TrainConfig, splits: ImageSplits, dataset: Dataset,
           echo: Callable[[str], None]) -> None:
    """Plots, the PyTorch model and, unless turned off, the ONNX export with its parity check."""
    tracking.log_plots(trainer.state.history, splits, trainer.state.predictions, dataset)
    example = model_input(splits.test_images[:2], config.hyper.resize)  # batch 2 keeps batch dynamic
    tracking.log_model(trainer.model, example)
    if config.export:
        from convzoo.publish import publish_onnx

        publish_onnx(trainer.model, splits, dataset, config.hyper.resize, register_as=config.register_as, echo=echo)
