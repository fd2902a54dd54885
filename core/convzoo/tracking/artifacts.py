"""Reading a run's artifacts: models loaded into memory and files downloaded, without leaving copies behind."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import mlflow
from mlflow.exceptions import MlflowException

from convzoo.tracking.store import environment_defaults

# a progress bar per download (MLflow shows one whenever tqdm is installed) would be the only output of `predict`
# that is not its answer; the user's own setting wins
QUIET = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def load_logged_model(load_model: Callable[..., Any], uri: str) -> Any:
    """``load_model(uri)`` for an MLflow flavour's loader, downloading into a temp folder that is removed afterwards.

    Left to themselves, MLflow's loaders download each model into a new temp folder and never remove it.
    """
    with tempfile.TemporaryDirectory(prefix="convzoo-model-") as folder, environment_defaults(QUIET):
        return load_model(uri, dst_path=folder)


def download_artifact(run_id: str, artifact_path: str, folder: str) -> Path | None:
    """Run ``run_id``'s artifact ``artifact_path`` downloaded into ``folder``; None if the run has no such artifact
    (or the store cannot give it)."""
    try:
        with environment_defaults(QUIET):
            return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path,
                                                            dst_path=folder))
    except (MlflowException, OSError):
        return None
