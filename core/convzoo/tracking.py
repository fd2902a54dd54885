"""Everything convzoo writes to MLflow; every run ends FINISHED, FAILED or KILLED, never RUNNING."""
from __future__ import annotations

import contextlib
import copy
import os
import warnings
from typing import Any, Mapping

import mlflow
import mlflow.pytorch
import torch
from mlflow.models import infer_signature
from torch import nn

from convzoo.data import ImageSplits


@contextlib.contextmanager
def mlflow_run(experiment: str | None = None):
    """Start (or, under ``mlflow run``, resume) a run with system metrics; end it with the right status."""
    if experiment:
        mlflow.set_experiment(experiment)
    run = mlflow.start_run(log_system_metrics=True)
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
