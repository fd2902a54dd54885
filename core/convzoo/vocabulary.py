"""convzoo's MLflow vocabulary: the names of the tags, logged models and artifact folders its runs carry. Every module
that writes or reads a run takes its names from here; this module imports nothing heavy (``convzoo.tracking.lookup``
finds runs by id)."""
from __future__ import annotations

from convzoo._moved import moved_names

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
NEVER_PREDICTED_TAG = "convzoo.never_predicted"  # the classes the last test evaluation gave no image
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
CLASSES_FILE = "data/classes.json"  # the class names, in label order
SKIPPED_FILE = "data/skipped_images.txt"  # images --skip-bad-images left out, one path a line
EVALUATION_DIR = "evaluation"
# on an evaluation's child run: the data it evaluated on, whether that was the run's own, whether it met --require
EVALUATION_DIGEST_TAG = "convzoo.evaluation.data_digest"
EVALUATION_SOURCE_TAG = "convzoo.evaluation.data_source"
EVALUATION_OWN_DATA_TAG = "convzoo.evaluation.own_data"
EVALUATION_PASSED_TAG = "convzoo.evaluation.passed"
CHECKPOINTS_DIR = "checkpoints"
PLOTS_DIR = "plots"
COMPARISON_DIR = "comparison"
SWEEP_DIR = "sweep"
# per test image, what the run's model predicted: paired significance tests read it
PREDICTIONS_FILE = "predictions/test_predictions.csv"
PREDICTION_COLUMNS = ("index", "label", "predicted", "probability")
SIGNIFICANCE_FILE = f"{COMPARISON_DIR}/significance.csv"
GROUP_TAG = "convzoo.compare.group"  # on a comparison's child: the architecture whose seed repeats it is one of
SEED_TAG = "convzoo.seed"


def inside_mlflow_run() -> bool:
    """Whether ``mlflow run`` started this process (it created the run, named it in this variable, and logged its
    ``-P`` values)."""
    import os

    return bool(os.environ.get("MLFLOW_RUN_ID"))


def run_uri(run_id: str, name: str) -> str:
    """Where MLflow finds a run's logged model (``PYTORCH_MODEL``, ``ONNX_MODEL``, ...) or artifact ``name``."""
    return f"runs:/{run_id}/{name}"


__getattr__ = moved_names(__name__)  # names this module held before the layered core
