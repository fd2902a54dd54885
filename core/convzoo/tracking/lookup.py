"""Looking a run up by id: any run, a run ``convzoo train`` made (with its data set and input size), and a run's
verified ONNX model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow

from convzoo.errors import ConvzooError
from convzoo.registry.catalogue import Dataset
from convzoo.registry.plugins import get_registry
from convzoo.vocabulary import ONNX_MODEL, PARITY_TAG, run_uri


def get_run(run_id: str):
    """The run ``run_id`` from the tracking store; an unknown id is a one-line error."""
    try:
        return mlflow.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise ConvzooError(f"no run {run_id!r} in the tracking store {mlflow.get_tracking_uri()}") from None


@dataclass(frozen=True)
class TrainedRun:
    """A run ``convzoo train`` made, with the data set and input size its models take."""

    run: Any
    dataset: Dataset
    input_size: int

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    def model_uri(self, model: str) -> str:
        return run_uri(self.run_id, model)

    def load_data(self, data_dir: str | None = None):
        """The run's data set as it was loaded for training: from ``data_dir``, else the folder the run recorded,
        with the run's image size and data options. Returns (splits, the data set as loaded)."""
        from convzoo.config import DATA_OPTIONS

        params = self.run.data.params
        kinds = {"test_fraction": float, "channels": int, "skip_bad_images": lambda value: value == "True"}
        options = {name: kinds[name](params[name]) for name in DATA_OPTIONS if name in params}
        splits = self.dataset.load_splits(data_dir or params.get("data_source"), image_size=self.input_size,
                                          **options)
        return splits, self.dataset.loaded(splits)

    @classmethod
    def of(cls, run) -> TrainedRun:
        """``run`` with its data set and input size; a run ``convzoo train`` did not make is a one-line error."""
        params = run.data.params
        if "resize" not in params or "dataset" not in params:
            raise ConvzooError(f"run {run.info.run_id} was not made by convzoo train (it has no resize/dataset params)")
        return cls(run, get_registry().get_dataset(params["dataset"]), int(params["resize"]))


def trained_run(run_id: str) -> TrainedRun:
    """The run ``run_id``; an unknown id, or a run ``convzoo train`` did not make, is a one-line error."""
    return TrainedRun.of(get_run(run_id))


def verified_onnx_uri(run_id: str) -> str:
    """The URI of run ``run_id``'s ONNX model; an error if the run is unknown or has no logged model that passed
    parity."""
    run = get_run(run_id)
    parity = run.data.tags.get(PARITY_TAG, "not run")
    if parity != "passed":
        advice = f"; export it first: convzoo export --run-id {run_id}" if parity == "not run" else ""
        raise ConvzooError(f"run {run_id} has no verified ONNX model (parity: {parity}){advice}")
    logged = mlflow.MlflowClient().search_logged_models([run.info.experiment_id], f"source_run_id = '{run_id}'")
    if ONNX_MODEL not in {model.name for model in logged}:
        raise ConvzooError(f"run {run_id} has no logged model {ONNX_MODEL!r}")
    return run_uri(run_id, ONNX_MODEL)
