"""The MLflow side of a study: its parent run, each trial's run (made before it trains), the epochs a trial reports,
and continuing the run of a trial whose worker died."""
from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping

import mlflow
import optuna

from convzoo.callbacks import Callback
from convzoo.store import refusals_as_errors
from convzoo.studies import RUN_ATTR
from convzoo.trainer import EpochMetrics, StopTraining
from convzoo.vocabulary import PARENT_RUN_TAG, SUPERSEDED_TAG, get_run

if TYPE_CHECKING:
    from convzoo.run import RunPlacement, TrainResult


class Pruned(StopTraining):
    """The pruner stopped this trial after an epoch; its run ends ``KILLED`` and is tagged."""

    def __init__(self, epoch: int, metric: str, value: float) -> None:
        super().__init__(f"pruned after epoch {epoch} ({metric} {value:.4f})")


class ReportToTrial(Callback):
    """Reports the metric to the trial after every epoch, and prunes when told."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial, self.metric = trial, metric

    def on_epoch_end(self, trainer, metrics: EpochMetrics) -> None:
        value = getattr(metrics, self.metric)
        self.trial.report(value, metrics.epoch)
        if self.trial.should_prune():
            raise Pruned(metrics.epoch, self.metric, value)


ResumeRun = Callable[[str, list], "TrainResult"]


def continue_trial(run_id: str, trial: optuna.Trial, number: int, metric: str, resume: ResumeRun,
                   callbacks: list[Callback], echo: Callable[[str], None]) -> float | None:
    """A retried trial's value: its run had finished (the worker died before telling Optuna), or it continues from its
    checkpoint; None when the run died before its first checkpoint (it is deleted, and the trial trains anew)."""
    from convzoo.resume import NoCheckpoint

    run = get_run(run_id)
    if run.info.status == "FINISHED":
        echo(f"== trial {trial.number}: run {run_id} of trial {number} had finished; taking its {metric}")
        trial.set_user_attr(RUN_ATTR, run_id)
        return run.data.metrics[metric]
    echo(f"== trial {trial.number}: continuing run {run_id} of trial {number} from its checkpoint")
    try:
        result = resume(run_id, callbacks)
    except NoCheckpoint:
        client = mlflow.MlflowClient()
        client.set_tag(run_id, SUPERSEDED_TAG, "its worker died before the first checkpoint; trained again")
        client.set_terminated(run_id, "KILLED")
        client.delete_run(run_id)  # it kept nothing; its trial's new run takes its place under the parent
        echo(f"run {run_id} died before its first checkpoint; trial {trial.number} trains again from the start")
        return None
    return getattr(result.history[-1], metric)


def _with_context(tags: Mapping[str, str]) -> dict[str, str]:
    """``tags`` plus what ``mlflow.start_run`` would add (user, source, git commit), for runs made by id."""
    from mlflow.tracking.context.registry import resolve_tags

    return resolve_tags(dict(tags))


@contextlib.contextmanager
def trial_run(trial: optuna.Trial, experiment_id: str, placement: RunPlacement):
    """Make the trial's MLflow run (as ``placement`` says) and record its id in the trial before anything trains, so
    a worker that dies at any moment after leaves a trial that points at its run. Yields ``placement`` with the
    run's id; if training fails before it reaches the run (a bad value, a stop while loading data), the run is ended
    here, never left RUNNING."""
    client = mlflow.MlflowClient()
    with refusals_as_errors():
        run = client.create_run(experiment_id, run_name=placement.run_name, tags=_with_context(
            {**placement.tags, PARENT_RUN_TAG: placement.parent_run_id}))
    trial.set_user_attr(RUN_ATTR, run.info.run_id)
    try:
        yield dataclasses.replace(placement, run_id=run.info.run_id)
    except BaseException as error:
        if client.get_run(run.info.run_id).info.status == "RUNNING":
            stopped = isinstance(error, (StopTraining, KeyboardInterrupt))  # a signal or a pruner: on purpose
            client.set_terminated(run.info.run_id, "KILLED" if stopped else "FAILED")
        raise


def create_parent_run(experiment_id: str, name: str, tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
    """A RUNNING parent run that no process holds active (workers nest their trials under it by id)."""
    client = mlflow.MlflowClient()
    with refusals_as_errors():
        run = client.create_run(experiment_id, run_name=name, tags=_with_context(tags))
    client.log_batch(run.info.run_id, params=[mlflow.entities.Param(k, str(v)[:6000]) for k, v in params.items()])
    return run.info.run_id


def experiment_id(name: str | None) -> str:
    """The id of experiment ``name`` (made if missing), else of the one MLflow would use (``MLFLOW_EXPERIMENT_*``)."""
    from convzoo.store import set_experiment

    if name:
        set_experiment(name)
        return mlflow.get_experiment_by_name(name).experiment_id
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    named = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if named:
        return experiment_id(named)
    return "0"
