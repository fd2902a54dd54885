"""convzoo's MLflow vocabulary: the names of the tags, logged models and artifact folders its runs carry, and looking
a run up by id. Every module that writes or reads a run takes its names from here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mlflow

from convzoo.errors import ConvzooError

if TYPE_CHECKING:
    from convzoo.registry import Dataset

# what a training run is: every run `convzoo train` makes has these
ARCH_TAG = "convzoo.arch"
RECIPE_TAG = "convzoo.recipe"
PLUGIN_TAG = "convzoo.plugin"
PLUGIN_VERSION_TAG = "convzoo.plugin_version"
NUM_PARAMS_TAG = "convzoo.num_params"
FLOPS_TAG = "convzoo.flops_per_example"  # forward and backward, as torch's flop counter counts them
PEAK_TAG = "convzoo.peak_flops_per_sec"  # what `mfu` divides by: the measured peak of every process together
ISA_TAG = "convzoo.isa"  # the instruction set oneDNN dispatches to (on a GPU, its name)
VERSION_TAG = "convzoo.version"
DEVICE_TAG = "convzoo.device"
PRECISION_TAG = "convzoo.precision"
DATASET_TAG = "convzoo.dataset"
WORLD_SIZE_TAG = "convzoo.world_size"
BACKEND_TAG = "convzoo.backend"
EPOCHS_TAG = "convzoo.epochs"  # the epochs asked for last: a resumed run may have been given more
PARITY_TAG = "parity"  # "passed" or "failed": whether the ONNX model agrees with PyTorch on the whole test set

# how a run went
HEARTBEAT_TAG = "convzoo.heartbeat"
MARKED_STALE_TAG = "convzoo.marked_stale"
STUCK_TAG = "convzoo.stuck_at_chance"
PLUGIN_ERRORS_TAG = "convzoo.plugin_errors"
RESUMED_TAG = "convzoo.resumed_run"  # on the empty run `mlflow run -P resume=RUN` made: where the work went
SUPERSEDED_TAG = "convzoo.superseded"  # on a trial run trained again from the start in another run

# sweeps and comparisons
SWEEP_TAG = "convzoo.sweep"  # "parent" on a sweep's parent run
STUDY_TAG = "convzoo.sweep.study"
TRIAL_TAG = "convzoo.sweep.trial"
PRUNED_TAG = "convzoo.sweep.pruned"
BEST_TAG = "convzoo.sweep.best"  # "true" on the best trial's run
BEST_RUN_TAG = "convzoo.sweep.best_run"
BEST_TRIAL_TAG = "convzoo.sweep.best_trial"
BEST_PARAM_TAG = "convzoo.sweep.best.{}"  # one per varied value of the best trial
COMPARE_TAG = "convzoo.compare"  # "parent" on a comparison's parent run
COMPARE_FAILED_TAG = "convzoo.compare.failed"
COMPARE_FAILURE_TAG = "convzoo.compare.failure.{}"  # one per failed architecture, with its reason

# MLflow's own tags
NOTE_TAG = "mlflow.note.content"  # the description the MLflow UI shows on the run's page
PARENT_RUN_TAG = "mlflow.parentRunId"

# logged models (MLflow 3 keeps them apart from artifacts) and artifact folders
PYTORCH_MODEL = "model"
ONNX_MODEL = "onnx-model"
INT8_MODEL = "onnx-int8-model"
CONFIG_FILE = "config.json"
CHECKPOINTS_DIR = "checkpoints"
PLOTS_DIR = "plots"
COMPARISON_DIR = "comparison"
SWEEP_DIR = "sweep"


def get_run(run_id: str):
    """The run ``run_id`` from the tracking store; an unknown id is a one-line error."""
    try:
        return mlflow.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise ConvzooError(f"no run {run_id!r} in the tracking store {mlflow.get_tracking_uri()}") from None


def run_uri(run_id: str, name: str) -> str:
    """Where MLflow finds a run's logged model (``PYTORCH_MODEL``, ``ONNX_MODEL``, ...) or artifact ``name``."""
    return f"runs:/{run_id}/{name}"


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

    @classmethod
    def of(cls, run) -> TrainedRun:
        """``run`` with its data set and input size; a run ``convzoo train`` did not make is a one-line error."""
        from convzoo.plugins import get_registry

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
        raise ConvzooError(f"run {run_id} has no verified ONNX model (parity: {parity})")
    logged = mlflow.MlflowClient().search_logged_models([run.info.experiment_id], f"source_run_id = '{run_id}'")
    if ONNX_MODEL not in {model.name for model in logged}:
        raise ConvzooError(f"run {run_id} has no logged model {ONNX_MODEL!r}")
    return run_uri(run_id, ONNX_MODEL)
