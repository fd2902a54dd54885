"""What a training run writes into its MLflow run: params, tags, the data set input, per-epoch metrics, heartbeats,
plots, the PyTorch model and the description the UI shows."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import threading
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import mlflow
import mlflow.pytorch
import torch
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from torch import nn

from convzoo.training.callbacks import Callback
from convzoo.config import TrainConfig
from convzoo.data.splits import ImageSplits
from convzoo.training.distributed import SINGLE, World
from convzoo.tracking.outbox import Outbox
from convzoo.registry.catalogue import Architecture, Dataset
from convzoo.training.epoch_log import EpochLog
from convzoo.training.utilization import Utilization
from convzoo.training.trainer import MIN_STEPS_FOR_VERDICT, EpochMetrics, is_stuck_at_chance
from convzoo.vocabulary import (ARCH_TAG, BACKEND_TAG, CLASSES_FILE, CONFIG_FILE, DATASET_TAG, DEVICE_TAG, EPOCHS_TAG,
                                HEARTBEAT_TAG, NEVER_PREDICTED_TAG, NOTE_TAG, NUM_PARAMS_TAG, PARITY_TAG, PLOTS_DIR,
                                PLUGIN_TAG, PLUGIN_VERSION_TAG, PRECISION_TAG, PREDICTION_COLUMNS, PREDICTIONS_FILE,
                                PYTORCH_MODEL, RECIPE_TAG, SKIPPED_FILE, STUCK_TAG, VERSION_TAG, WORLD_SIZE_TAG)

DEFAULT_HEARTBEAT_SECONDS = 30


def describe_run(config: TrainConfig, history: list[EpochMetrics], device: str, precision: str) -> None:
    """The run's description in the MLflow UI: what was trained, how, and how it ended."""
    hyper, final = config.hyper, history[-1]
    parity = mlflow.MlflowClient().get_run(mlflow.active_run().info.run_id).data.tags.get(PARITY_TAG, "not checked")
    options = ", ".join(f"{key}={value}" for key, value in config.hyper.options.items())
    validation = (f", validation accuracy {final.val_acc:.4f} on {hyper.val_fraction:.4g} of the training images "
                  f"held out" if final.val_acc is not None else ", no validation split")
    mlflow.set_tag(NOTE_TAG, (
        f"**{config.arch}**{f' ({options})' if options else ''}, recipe **{config.recipe_resolved}**: "
        f"{hyper.epochs} epoch(s), batch {hyper.batch_size}, {hyper.optimizer} lr {hyper.lr:g}, {hyper.resize} px, "
        f"on {device} ({precision}).\n\n"
        f"Final test accuracy **{final.test_acc:.4f}** (train accuracy {final.train_acc:.4f}, loss "
        f"{final.train_loss:.4f}){validation}. ONNX parity: **{parity}**."))


def world_tags(world: World) -> dict[str, str]:
    return {WORLD_SIZE_TAG: str(world.size), BACKEND_TAG: world.backend}


def log_setup(config: TrainConfig, arch: Architecture, dataset: Dataset, splits: ImageSplits, device: str,
              precision: str, num_params: int, utilization: Utilization, world: World = SINGLE) -> None:
    """Params, tags, the data set input and ``config.json``: what a run is, before it trains."""
    from convzoo.version import __version__

    split = {"val_digest": splits.val_digest, "val_images": len(splits.val_labels)} if splits.has_validation else {}
    log_new_params({**config.to_params(), "world_size": world.size,
                    "per_rank_batch_size": config.hyper.batch_size // world.size, "backend": world.backend, **split,
                    "data_source": splits.source, "data_digest": splits.digest, "num_classes": dataset.num_classes,
                    "in_channels": dataset.in_channels})
    mlflow.log_dict({"class_names": list(dataset.class_names)}, CLASSES_FILE)
    if splits.skipped:
        mlflow.log_metric("skipped_images", len(splits.skipped))
        mlflow.log_text("\n".join(splits.skipped) + "\n", SKIPPED_FILE)
    mlflow.set_tags({**world_tags(world),
        NUM_PARAMS_TAG: str(num_params), **utilization.tags(),
        ARCH_TAG: arch.name, PLUGIN_TAG: arch.plugin, PLUGIN_VERSION_TAG: arch.plugin_version,
        VERSION_TAG: __version__, DEVICE_TAG: device, PRECISION_TAG: precision,
        RECIPE_TAG: config.recipe_resolved, DATASET_TAG: config.dataset,
    })
    log_dataset(splits)
    effective = {**dataclasses.asdict(config), "device_used": device, "precision_used": precision}
    mlflow.log_dict(json.loads(json.dumps(effective, default=str)), CONFIG_FILE)


def log_resumed(config: TrainConfig, world: World, utilization: Utilization) -> None:
    """Tags a resumed run updates: its epochs and world (the params keep their first values), this machine's peak."""
    mlflow.set_tags({EPOCHS_TAG: str(config.hyper.epochs), **world_tags(world), **utilization.tags()})


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


class ClassesNeverPredicted(Callback):
    """Warns and tags the run when its last test evaluation gave some class no image: a class whose output is 0 on
    every image gets no gradient and stays so (the seed NiN's ReLU on its class scores, dead from initialization)."""

    def __init__(self, arch: str, dataset: Dataset, tag: Callable[[str, str], None],
                 echo: Callable[[str], None]) -> None:
        self.arch, self.tag, self.echo = arch, tag, echo
        self.class_names = dataset.class_names or [str(index) for index in range(dataset.num_classes)]

    def on_train_end(self, trainer) -> None:
        predicted = trainer.state.predictions
        if trainer.global_step < MIN_STEPS_FOR_VERDICT or not len(predicted):
            return
        missing = [name for index, name in enumerate(self.class_names) if not bool((predicted == index).any())]
        if missing:
            self.tag(NEVER_PREDICTED_TAG, ",".join(missing))
            self.echo(f"warning: {self.arch} predicted none of its {len(predicted):,} test images as "
                      f"{', '.join(missing)}: a class output that is 0 on every image never learns "
                      f"(docs/architectures.md#classes-never-predicted); another --seed starts from other weights")


def log_plots(history: list[EpochMetrics], splits: ImageSplits, predictions: torch.Tensor, dataset: Dataset) -> None:
    """Confusion matrix, learning curves and misclassified images of the last evaluation."""
    from convzoo.tracking import figures

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
    """Record the data set as the run's inputs: the training images (``training``) and, with a split, the validation
    images (``validation``), each with its digest, size and where it was read from."""
    log_input(splits, splits.train_digest or splits.digest, len(splits.train_labels), "training")
    if splits.has_validation:
        log_input(splits, splits.val_digest, len(splits.val_labels), "validation")


def log_input(splits: ImageSplits, digest: str, rows: int, context: str) -> None:
    """One dataset input of the run: ``rows`` images of ``splits`` named by ``digest``."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    class ImagesInput(MetaDataset):
        @property
        def profile(self) -> dict[str, int]:
            return {"num_rows": rows}

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(self.profile)}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the local source type is registered twice inside MLflow
        source = resolve_dataset_source(splits.source)
    for attempt in range(3):
        try:
            return mlflow.log_input(ImagesInput(source, name=splits.name, digest=digest), context=context)
        except MlflowException as error:
            # a tracking server creating the same data set for two runs at once (workers of one sweep starting
            # together) refuses one of them; the data set then exists, and logging again links it
            if attempt == 2 or not any(text in str(error) for text in ("UNIQUE constraint failed: datasets",
                                                                        '"dataset_pk"')):
                raise


def log_predictions(labels: torch.Tensor, predicted: torch.Tensor, confidence: torch.Tensor) -> None:
    """The model's per-image test predictions (``PREDICTIONS_FILE``): what paired significance tests compare."""
    rows = [f"{index},{label},{guess},{probability:.6f}" for index, (label, guess, probability) in enumerate(zip(
        labels[: len(predicted)].tolist(), predicted.tolist(), confidence.tolist()))]
    mlflow.log_text("\n".join([",".join(PREDICTION_COLUMNS), *rows]) + "\n", PREDICTIONS_FILE)


def log_training_time(history: list[EpochMetrics]) -> None:
    """``train_time_s``: the seconds of training and per-epoch evaluation over the whole run (what a comparison's
    time column sums up; the run's wall time also counts start-up and the export)."""
    mlflow.log_metric("train_time_s", sum(metrics.epoch_time for metrics in history))


def log_best_epoch(epoch: int, metric: str, value: float, epochs_trained: int) -> None:
    """Which epoch's model the run keeps, by what validation figure, and how many epochs it trained."""
    mlflow.log_metrics({"best_epoch": epoch, f"best_{metric}": value, "epochs_trained": epochs_trained})


def log_budget_plan(metrics: Mapping[str, float]) -> None:
    """What a budget's probe measured and planned (``BudgetPlan.metrics``)."""
    mlflow.log_metrics(dict(metrics))


def log_budget_used(started: float, budget_s: float, echo: Callable[[str], None]) -> None:
    """The wall time a budget covers (probe, training, evaluations) since ``started`` (``time.perf_counter``), taken
    when training ends."""
    used = time.perf_counter() - started
    mlflow.log_metric("budget_wall_s", used)
    echo(f"budget: trained and evaluated in {used:.0f} s of {budget_s:.0f} s ({used / budget_s:.1%})")


def log_range_test(rates: Sequence[float], losses: Sequence[float], smoothed: Sequence[float],
                   summary: Mapping[str, float]) -> None:
    """The learning-rate range test into the active run: per step (``step`` = the sweep's step) the rate, the loss
    and its smoothed value, the ``summary`` figures (the suggestion first), and the figure ``lr_find.png``."""
    from mlflow.entities import Metric

    from convzoo.tracking.figures import plot_range_test

    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, step) for step, values in enumerate(zip(rates, losses, smoothed))
               for key, value in zip(("lr_find_lr", "lr_find_loss", "lr_find_smoothed_loss"), values)
               if math.isfinite(value)]
    client, run_id = mlflow.MlflowClient(), mlflow.active_run().info.run_id
    for start in range(0, len(metrics), 1000):  # MLflow takes at most 1,000 metrics a batch
        client.log_batch(run_id, metrics=metrics[start:start + 1000])
    mlflow.log_metrics(dict(summary))
    log_figure(plot_range_test(rates, losses, smoothed, summary["suggested_lr"]), "lr_find.png")


def log_flip_tta(accuracy: dict[str, float], echo: Callable[[str], None]) -> None:
    """The flip-averaged model's accuracy (what is logged and exported from here on)."""
    mlflow.log_metrics(accuracy)
    echo("flip test-time augmentation: " + ", ".join(f"{key} {value:.4f}" for key, value in accuracy.items()))


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
