"""Loads models logged to MLflow into memory without leaving a downloaded copy behind."""
from __future__ import annotations

import tempfile
from typing import Any, Callable

from convzoo.store import environment_defaults

# a progress bar per download (MLflow shows one whenever tqdm is installed) would be the only output of `predict`
# that is not its answer; the user's own setting wins
QUIET = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def load_logged_model(load_model: Callable[..., Any], uri: str) -> Any:
    """``load_model(uri)`` for an MLflow flavour's loader, downloading into a temp folder that is removed afterwards.

    Left to themselves, MLflow's loaders download each model into a new temp folder and never remove it.
    """
    with tempfile.TemporaryDirectory(prefix="convzoo-model-") as folder, environment_defaults(QUIET):
        return load_model(uri, dst_path=folder)
