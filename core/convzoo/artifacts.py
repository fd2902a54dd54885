"""Loads models logged to MLflow into memory without leaving a downloaded copy behind."""
from __future__ import annotations

import tempfile
from typing import Any, Callable


def load_logged_model(load_model: Callable[..., Any], uri: str) -> Any:
    """``load_model(uri)`` for an MLflow flavour's loader, downloading into a temp folder that is removed afterwards.

    Left to themselves, MLflow's loaders download each model into a new temp folder and never remove it.
    """
    with tempfile.TemporaryDirectory(prefix="convzoo-model-") as folder:
        return load_model(uri, dst_path=folder)
