"""Everything convzoo writes to MLflow; every run ends FINISHED, FAILED or KILLED, never RUNNING."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import re
import threading
import time
import warnings
from typing import Any, Callable, Mapping

import mlflow
import mlflow.pytorch
import torch
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from torch import nn

from convzoo.callbacks import Callback
from convzoo.config import TrainConfig
from convzoo.data import ImageSplits
from convzoo.distributed import SINGLE, World
from convzoo.errors import ConvzooError
from convzoo.outbox import Outbox
from convzoo.registry import Architecture, Dataset
from convzoo.store import refusals_as_errors, set_experiment
from convzoo.trainer import EpochMetrics, StopTraining, is_stuck_at_chance, time_to_target
from convzoo.utilization import Utilization
from convzoo.vocabulary import (ARCH_TAG, BACKEND_TAG, CONFIG_FILE, DATASET_TAG, DEVICE_TAG, HEARTBEAT_TAG,
                                NOTE_TAG, NUM_PARAMS_TAG, PARITY_TAG, PLOTS_DIR, PLUGIN_TAG, PLUGIN_VERSION_TAG,
                                PRECISION_TAG, PYTORCH_MODEL, RECIPE_TAG, RESUMED_TAG, STUCK_TAG, VERSION_TAG,
                                WORLD_SIZE_TAG)

# MLflow's own random names ("indecisive-cat-746"): convzoo replaces them, never a name somebody chose
MLFLOW_RANDOM_NAME = re.compile(r"^[a-z]+-[a-z]+-\d+$")
DEFAULT_HEARTBEAT_SECONDS = 30


@contextlib.contextmanager
def mlflow_run(experiment: str | None = None, run_id: str | None = None, *, run_name: str | None = None,
               parent_run_id: str | None = None, tags: Mapping[str, str] | None = None):
    """Start a run (or, under ``mlflow run`` or given ``run_id``, continue one) with system metrics; end it with the
    right status: ``KILLED`` for Ctrl-C and stop requests, ``FAILED`` for errors.

    Inside an active run (``convzoo compare``) the new run is its child, which the MLflow UI nests; ``parent_run_id``
    nests it under a run no process has active (a sweep's parent, which several workers share).
    """
    with refusals_as_errors():
        if experiment:
            set_experiment(experiment)
        run = mlflow.start_run(run_id=run_id, log_system_metrics=True, nested=mlflow.active_run() is not None,
                               run_name=run_name, parent_run_id=parent_run_id, tags=dict(tags or {}) or None)
    try:
        yield run
    except TrackingUnavailable:
        with contextlib.suppress(Exception):  # the server is away: the run stays RUNNING there, and goes STALE
            mlflow.end_run("KILLED")
        raise
    except (KeyboardInterrupt, StopTraining):
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


class TrackingUnavailable(ConvzooError):
    """The tracking server stayed away longer than the run waits for it."""


def run_name(config: TrainConfig, given: str | None) -> str | None:
    """The name a new run gets: ``given``, else ``ARCH-RECIPE``; under ``mlflow run`` only if MLflow named the run
    at random (not ``mlflow run --run-name``)."""
    if given:
        return given
    if inside_mlflow_run():
        current = mlflow.MlflowClient().get_run(os.environ["MLFLOW_RUN_ID"]).info.run_name or ""
        if not MLFLOW_RANDOM_NAME.match(current):
            return None
    return f"{config.arch}-{config.recipe_resolved}"


def describe_run(config: TrainConfig, history: list[EpochMetrics], device: str, precision: str) -> None:
    """The run's description in the MLflow UI: what was trained, how, and how it ended."""
    hyper, final = config.hyper, history[-1]
    parity = mlflow.MlflowClient().get_run(mlflow.active_run().info.run_id).data.tags.get(PARITY_TAG, "not checked")
    options = ", ".join(f"{key}={value}" for key, value in config.hyper.options.items())
    mlflow.set_tag(NOTE_TAG, (
        f"**{config.arch}**{f' ({options})' if options else ''}, recipe **{config.recipe_resolved}**: "
        f"{hyper.epochs} epoch(s), batch {hyper.batch_size}, {hyper.optimizer} lr {hyper.lr:g}, {hyper.resize} px, "
        f"on {device} ({precision}).\n\n"
        f"Final test accuracy **{final.test_acc:.4f}** (train accuracy {final.train_acc:.4f}, loss "
        f"{final.train_loss:.4f}). ONNX parity: **{parity}**."))


def inside_mlflow_run() -> bool:
    """Whether ``mlflow run`` started this process (it created the run and logged its ``-P`` values)."""
    return bool(os.environ.get("MLFLOW_RUN_ID"))


def point_mlflow_run_shell_to(resumed_run_id: str) -> None:
    """Under ``mlflow run -P resume=RUN``, MLflow made a new, empty run before convzoo started; training continues in
    RUN, so the new one only says where its work went (tag and note). It stays active: ``mlflow run`` sets its status
    when the command ends and fails on a deleted run."""
    shell = os.environ.pop("MLFLOW_RUN_ID", None)
    if shell and shell != resumed_run_id:
        client = mlflow.MlflowClient()
        client.set_tag(shell, RESUMED_TAG, resumed_run_id)
        client.set_tag(shell, NOTE_TAG, f"`mlflow run` made this run before convzoo started; the "
                                                     f"training it asked for continued in run {resumed_run_id}.")


def world_tags(world: World) -> dict[str, str]:
    return {WORLD_SIZE_TAG: str(world.size), BACKEND_TAG: world.backend}


def log_setup(config: TrainConfig, arch: Architecture, splits: ImageSplits, device: str, precision: str,
              num_params: int, utilization: Utilization, world: World = SINGLE) -> None:
    """Params, tags, the data set input and ``config.json``: what a run is, before it trains."""
    from convzoo import __version__

    log_new_params({**config.to_params(), "world_size": world.size,
                    "per_rank_batch_size": config.hyper.batch_size // world.size, "backend": world.backend})
    mlflow.set_tags({**world_tags(world),
        NUM_PARAMS_TAG: str(num_params), **utilization.tags(),
        ARCH_TAG: arch.name, PLUGIN_TAG: arch.plugin, PLUGIN_VERSION_TAG: arch.plugin_version,
        VERSION_TAG: __version__, DEVICE_TAG: device, PRECISION_TAG: precision,
        RECIPE_TAG: config.recipe_resolved, DATASET_TAG: config.dataset,
    })
    log_dataset(splits)
    effective = {**dataclasses.asdict(config), "device_used": device, "precision_used": precision}
    mlflow.log_dict(json.loads(json.dumps(effective, default=str)), CONFIG_FILE)


@dataclasses.dataclass(frozen=True)
class EpochLog:
    """What a run logs for an epoch: ``train_ch5``'s figures and throughput, utilization where the FLOPs are known,
    and ``time_to_target`` at the epoch whose test accuracy first reached ``target_acc``."""

    utilization: Utilization
    target_acc: float | None = None

    def metrics(self, metrics: EpochMetrics, history: list[EpochMetrics]) -> dict[str, float]:
        logged = {**metrics.as_dict(), **self.utilization.metrics(metrics)}
        reached = time_to_target(history, self.target_acc)
        if reached and reached[0] == metrics.epoch:
            logged["time_to_target"] = reached[1]
        return logged


def log_missing_epochs(run_id: str, history: list[EpochMetrics], epoch_log: EpochLog) -> None:
    """Log the epochs a checkpoint has that the run's metrics lack (the process died between the two)."""
    logged = {metric.step for metric in mlflow.MlflowClient().get_metric_history(run_id, "train_loss")}
    for metrics in history:
        if metrics.epoch not in logged:
            mlflow.log_metrics(epoch_log.metrics(metrics, history), step=metrics.epoch)


def heartbeat_seconds() -> float:
    """How often a training process says it is alive (``CONVZOO_HEARTBEAT_SECONDS``, default 30)."""
    return float(os.environ.get("CONVZOO_HEARTBEAT_SECONDS", DEFAULT_HEARTBEAT_SECONDS))


class Heartbeat:
    """Queues the run's ``convzoo.heartbeat`` tag (Unix time) every few seconds from a background thread.

    A tag, not MLflow's system metrics: those can be switched off, and reading their latest time needs one metric
    history query per run, where the tag comes with every run ``search_runs`` returns.
    """

    def __init__(self, outbox: Outbox, run_id: str, interval: float) -> None:
        self.outbox, self.run_id, self.interval = outbox, run_id, interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="convzoo-heartbeat", daemon=True)

    def _beat(self) -> None:
        while True:
            beat = f"{time.time():.0f}"
            self.outbox.put(HEARTBEAT_TAG, lambda client: client.set_tag(self.run_id, HEARTBEAT_TAG, beat))
            if self.stopped.wait(self.interval):
                return

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()


class MetricsLogger(Callback):
    """Queues each epoch's metrics at step = epoch."""

    def __init__(self, outbox: Outbox, run_id: str, epoch_log: EpochLog) -> None:
        self.outbox, self.run_id, self.epoch_log = outbox, run_id, epoch_log

    def on_epoch_end(self, trainer, metrics: EpochMetrics) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(key, value, now, metrics.epoch)
                 for key, value in self.epoch_log.metrics(metrics, trainer.state.history).items()]
        self.outbox.put(None, lambda client: client.log_batch(self.run_id, metrics=batch))


class StuckAtChance(Callback):
    """Warns and tags the run when the loss sits at ln(classes) with chance accuracy (NiN's known failure)."""

    def __init__(self, arch: str, num_classes: int, tag: Callable[[str, str], None],
                 echo: Callable[[str], None]) -> None:
        self.arch, self.num_classes, self.tag, self.echo = arch, num_classes, tag, echo

    def on_epoch_end(self, trainer, metrics: EpochMetrics) -> None:
        if is_stuck_at_chance(metrics, self.num_classes):
            self.tag(STUCK_TAG, "true")
            self.echo(f"warning: {self.arch} looks stuck at chance (loss {metrics.train_loss:.3f}, train acc "
                      f"{metrics.train_acc:.3f}); a lower learning rate (--lr) usually helps")


def log_plots(history: list[EpochMetrics], splits: ImageSplits, predictions: torch.Tensor, dataset: Dataset) -> None:
    """Confusion matrix, learning curves and misclassified images of the last evaluation."""
    from convzoo import figures

    labels = splits.test_labels[: len(predictions)]
    matrix = figures.confusion_matrix(labels, predictions, dataset.num_classes)
    log_figure(figures.plot_confusion_matrix(matrix, dataset.class_names), f"{PLOTS_DIR}/confusion_matrix.png")
    log_figure(figures.plot_learning_curves(history), f"{PLOTS_DIR}/learning_curves.png")
    log_figure(figures.plot_misclassified(splits.test_images, labels, predictions, dataset.class_names),
               f"{PLOTS_DIR}/misclassified.png")


def log_new_params(params: Mapping[str, Any]) -> None:
    """Log params the run does not have yet; ``mlflow run`` already logged its ``-P`` values in the user's spelling."""
    run = mlflow.active_run()
    existing = mlflow.MlflowClient().get_run(run.info.run_id).data.params
    mlflow.log_params({key: str(value) for key, value in params.items() if key not in existing})


def log_dataset(splits: ImageSplits) -> None:
    """Record the data set as the run's training input: name, digest and where it was read from."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the local source type is registered twice inside MLflow
        source = resolve_dataset_source(splits.source)
    for attempt in range(3):
        try:
            return mlflow.log_input(MetaDataset(source, name=splits.name, digest=splits.digest), context="training")
        except MlflowException as error:
            # a tracking server creating the same data set for two runs at once (workers of one sweep starting
            # together) refuses one of them; the data set then exists, and logging again links it
            if attempt == 2 or not any(text in str(error) for text in ("UNIQUE constraint failed: datasets",
                                                                        '"dataset_pk"')):
                raise


def log_figure(figure, path: str) -> None:
    """Log a matplotlib figure as a PNG artifact."""
    mlflow.log_figure(figure, path)


def log_model(model: nn.Module, example: torch.Tensor) -> None:
    """Log a CPU, fp32, eval-mode copy of ``model`` with an input example and signature."""
    cpu_model = copy.deepcopy(model).cpu().float().to(memory_format=torch.contiguous_format).eval()
    example = example.cpu().float().contiguous().numpy()
    with torch.no_grad():
        output = cpu_model(torch.from_numpy(example)).numpy()
    # pt2 needs torch alone to load: naming the requirements skips MLflow's inference, which loads the model again
    # in a new Python process (about 10 s a run on 2 cores)
    mlflow.pytorch.log_model(cpu_model, name=PYTORCH_MODEL, input_example=example,
                             signature=infer_signature(example, output),
                             pip_requirements=mlflow.pytorch.get_default_pip_requirements())
