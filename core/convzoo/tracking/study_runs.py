"""The MLflow side of a study: runs made by id before anything trains (a study's parent, each trial's run), and
what a study writes into them. How a run ends is decided in ``convzoo.runs.lifecycle``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import mlflow

from convzoo.tracking.lookup import get_run
from convzoo.tracking.store import refusals_as_errors, set_experiment
from convzoo.vocabulary import SUPERSEDED_TAG


def _with_context(tags: Mapping[str, str]) -> dict[str, str]:
    """``tags`` plus what ``mlflow.start_run`` would add (user, source, git commit), for runs made by id."""
    from mlflow.tracking.context.registry import resolve_tags

    return resolve_tags(dict(tags))


def create_run(experiment_id: str, run_name: str | None, tags: Mapping[str, str],
               params: Mapping[str, Any] | None = None) -> str:
    """A RUNNING run that no process holds active yet (a trial's, or a parent that workers nest trials under)."""
    client = mlflow.MlflowClient()
    with refusals_as_errors():
        run = client.create_run(experiment_id, run_name=run_name, tags=_with_context(tags))
    if params:
        client.log_batch(run.info.run_id, params=[mlflow.entities.Param(k, str(v)[:6000]) for k, v in params.items()])
    return run.info.run_id


def end_if_running(run_id: str, status: str) -> None:
    """End a run made by id that training never reached (``status`` from ``convzoo.runs.lifecycle.end_status``)."""
    if get_run(run_id).info.status == "RUNNING":
        mlflow.MlflowClient().set_terminated(run_id, status)


def reopen(run_id: str) -> None:
    """A continued study's parent is at work again."""
    mlflow.MlflowClient().update_run(run_id, status="RUNNING")


def supersede(run_id: str, why: str) -> None:
    """Delete a run that kept nothing (its worker died before the first checkpoint); a new run takes its place."""
    client = mlflow.MlflowClient()
    client.set_tag(run_id, SUPERSEDED_TAG, why)
    client.set_terminated(run_id, "KILLED")
    client.delete_run(run_id)


def set_tags(run_id: str, tags: Mapping[str, str]) -> None:
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def tag_of(run_id: str, key: str) -> str | None:
    return get_run(run_id).data.tags.get(key)


def metric_of(run_id: str, key: str) -> float | None:
    return get_run(run_id).data.metrics.get(key)


def log_metric(run_id: str, key: str, value: float) -> None:
    mlflow.MlflowClient().log_metric(run_id, key, value)


def log_dict(run_id: str, value: Mapping[str, Any], path: str) -> None:
    mlflow.MlflowClient().log_dict(run_id, dict(value), path)


def log_file(run_id: str, path: Path, folder: str) -> None:
    mlflow.MlflowClient().log_artifact(run_id, str(path), folder)


def log_figures(run_id: str, figures: Mapping[str, Any]) -> None:
    """Matplotlib figures by artifact path; legends drawn outside the axes are kept."""
    client = mlflow.MlflowClient()
    for path, figure in figures.items():
        client.log_figure(run_id, figure, path, save_kwargs={"bbox_inches": "tight"})


def experiment_id(name: str | None) -> str:
    """The id of experiment ``name`` (made if missing), else of the one MLflow would use (``MLFLOW_EXPERIMENT_*``)."""
    if name:
        set_experiment(name)
        return mlflow.get_experiment_by_name(name).experiment_id
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    named = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if named:
        return experiment_id(named)
    return "0"
