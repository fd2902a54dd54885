"""Starting and ending this process's active MLflow run, and what ``mlflow run`` did before convzoo started.
How a run ends is decided in ``convzoo.runs.lifecycle``, never here."""
from __future__ import annotations

import contextlib
import os
import re
from typing import Mapping

import mlflow

from convzoo.errors import ConvzooError
from convzoo.tracking.store import refusals_as_errors, set_experiment
from convzoo.vocabulary import NOTE_TAG, RESUMED_TAG, inside_mlflow_run

# MLflow's own random names ("indecisive-cat-746"): convzoo replaces them, never a name somebody chose
MLFLOW_RANDOM_NAME = re.compile(r"^[a-z]+-[a-z]+-\d+$")


def start_run(experiment: str | None = None, run_id: str | None = None, *, run_name: str | None = None,
              parent_run_id: str | None = None, tags: Mapping[str, str] | None = None) -> str:
    """Start a run (or, under ``mlflow run`` or given ``run_id``, continue one) with system metrics, as this
    process's active run; its id. ``convzoo.runs.lifecycle`` alone calls this, and decides how the run ends.

    Inside an active run (``convzoo compare``) the new run is its child, which the MLflow UI nests; ``parent_run_id``
    nests it under a run no process has active (a sweep's parent, which several workers share).
    """
    with refusals_as_errors():
        if experiment:
            set_experiment(experiment)
        run = mlflow.start_run(run_id=run_id, log_system_metrics=True, nested=mlflow.active_run() is not None,
                               run_name=run_name, parent_run_id=parent_run_id, tags=dict(tags or {}) or None)
    return run.info.run_id


def end_run(status: str, server_away: bool = False) -> None:
    """End the active run with ``status`` (``FINISHED``, ``FAILED`` or ``KILLED``). With the server away the attempt
    may fail: the run then stays RUNNING there, and ``convzoo runs`` shows it STALE once its heartbeat is old."""
    if server_away:
        with contextlib.suppress(Exception):
            mlflow.end_run(status)
        return
    mlflow.end_run(status)


class TrackingUnavailable(ConvzooError):
    """The tracking server stayed away longer than the run waits for it."""


def run_name(default: str, given: str | None) -> str | None:
    """The name a new run gets: ``given``, else ``default``; under ``mlflow run`` only if MLflow named the run at
    random (not ``mlflow run --run-name``)."""
    if given:
        return given
    if inside_mlflow_run():
        current = mlflow.MlflowClient().get_run(os.environ["MLFLOW_RUN_ID"]).info.run_name or ""
        if not MLFLOW_RANDOM_NAME.match(current):
            return None
    return default


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


def last_run() -> tuple[str, str] | None:
    """The id and status of the run this process last ended, if any."""
    last = mlflow.last_active_run()
    return (last.info.run_id, last.info.status) if last else None
