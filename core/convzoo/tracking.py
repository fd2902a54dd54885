"""Everything convzoo writes to MLflow; every run ends FINISHED, FAILED or KILLED, never RUNNING."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import warnings
from typing import Any, Mapping

import mlflow
import mlflow.pytorch
import torch
from mlflow.models import infer_signature
from torch import nn

from convzoo.config import TrainConfig
from convzoo.data import ImageSplits
from convzoo.registry import Architecture, Dataset
from convzoo.trainer import EpochMetrics


@contextlib.contextmanager
def mlflow_run(experiment: str | None = None):
    """Start (or, under ``mlflow run``, resume) a run with system metrics; end it with the right status.

    Inside an active run (``convzoo compare``) the new run is its child, which the MLflow UI nests.
    """
    if experiment:
        mlflow.set_experiment(experiment)
    run = mlflow.start_run(log_system_metrics=True, nested=mlflow.active_run() is not None)
    try:
        yield run
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


def inside_mlflow_run() -> bool:
    """Whether ``mlflow run`` started this process (it created the run and logged its ``-P`` values)."""
    return bool(os.environ.get("MLFLOW_RUN_ID"))


def log_setup(config: TrainConfig, arch: Architecture, splits: ImageSplits, device: str, precision: str,
              num_params: int) -> None:
    """Params, tags, the data set input and ``config.json``: what a run is, before it trains."""
    from convzoo import __version__

    log_new_params(config.to_params())
    mlflow.set_tags({
        "convzoo.num_params": str(num_params),
        "convzoo.arch": arch.name, "convzoo.plugin": arch.plugin, "convzoo.plugin_version": arch.plugin_version,
        "convzoo.version": __version__, "convzoo.device": device, "convzoo.precision": precision,
        "convzoo.recipe": config.recipe_resolved, "convzoo.dataset": config.dataset,
    })
    log_dataset(splits)
    effective = {**dataclasses.asdict(config), "device_used": device, "precision_used": precision}
    mlflow.log_dict(json.loads(json.dumps(effective, default=str)), "config.json")


def log_epoch(metrics: EpochMetrics) -> None:
    mlflow.log_metrics(metrics.as_dict(), step=metrics.epoch)


def tag_stuck_at_chance() -> None:
    mlflow.set_tag("convzoo.stuck_at_chance", "true")


def log_plots(history: list[EpochMetrics], splits: ImageSplits, predictions: torch.Tensor, dataset: Dataset) -> None:
    """Confusion matrix, learning curves and misclassified images of the last evaluation."""
    from convzoo import figures

    labels = splits.test_labels[: len(predictions)]
    matrix = figures.confusion_matrix(labels, predictions, dataset.num_classes)
    log_figure(figures.plot_confusion_matrix(matrix, dataset.class_names), "plots/confusion_matrix.png")
    log_figure(figures.plot_learning_curves(history), "plots/learning_curves.png")
    log_figure(figures.plot_misclassified(splits.test_images, labels, predictions, dataset.class_names),
               "plots/misclassified.png")


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
    mlflow.log_input(MetaDataset(source, name=splits.name, digest=splits.digest), context="training")


def log_figure(figure, path: str) -> None:
    """Log a matplotlib figure as a PNG artifact and free it."""
    import matplotlib.pyplot as plt

    mlflow.log_figure(figure, path)
    plt.close(figure)


def log_model(model: nn.Module, example: torch.Tensor) -> None:
    """Log a CPU, fp32, eval-mode copy of ``model`` with an input example and signature."""
    cpu_model = copy.deepcopy(model).cpu().float().to(memory_format=torch.contiguous_format).eval()
    example = example.cpu().float().contiguous().numpy()
    with torch.no_grad():
        output = cpu_model(torch.from_numpy(example)).numpy()
    mlflow.pytorch.log_model(cpu_model, name="model", input_example=example,
                             signature=infer_signature(example, output))
