"""A study's trials as convzoo runs: each trial's run made before it trains, the epochs a trial reports, and
continuing the run of a trial whose worker died."""
from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Callable

import optuna

from convzoo._moved import moved_names
from convzoo.runs.lifecycle import end_status
from convzoo.studies.optuna_studies import RUN_ATTR
from convzoo.tracking import study_runs
from convzoo.tracking.lookup import get_run
from convzoo.training.callbacks import Callback
from convzoo.training.trainer import EpochMetrics, StopTraining
from convzoo.vocabulary import PARENT_RUN_TAG

if TYPE_CHECKING:
    from convzoo.runs.training_run import RunPlacement, TrainResult


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
    from convzoo.runs.resume import NoCheckpoint

    run = get_run(run_id)
    if run.info.status == "FINISHED":
        echo(f"== trial {trial.number}: run {run_id} of trial {number} had finished; taking its {metric}")
        trial.set_user_attr(RUN_ATTR, run_id)
        return run.data.metrics[metric]
    echo(f"== trial {trial.number}: continuing run {run_id} of trial {number} from its checkpoint")
    try:
        result = resume(run_id, callbacks)
    except NoCheckpoint:
        study_runs.supersede(run_id, "its worker died before the first checkpoint; trained again")
        echo(f"run {run_id} died before its first checkpoint; trial {trial.number} trains again from the start")
        return None
    return getattr(result.history[-1], metric)


@contextlib.contextmanager
def trial_run(trial: optuna.Trial, experiment_id: str, placement: RunPlacement):
    """Make the trial's MLflow run (as ``placement`` says) and record its id in the trial before anything trains, so
    a worker that dies at any moment after leaves a trial that points at its run. Yields ``placement`` with the
    run's id; if training fails before it reaches the run (a bad value, a stop while loading data), the run is ended
    here, never left RUNNING."""
    run_id = study_runs.create_run(experiment_id, placement.run_name,
                                   {**placement.tags, PARENT_RUN_TAG: placement.parent_run_id})
    trial.set_user_attr(RUN_ATTR, run_id)
    try:
        yield dataclasses.replace(placement, run_id=run_id)
    except BaseException as error:
        study_runs.end_if_running(run_id, end_status(error))
        raise


__getattr__ = moved_names(__name__)  # names this module held before the layered core
