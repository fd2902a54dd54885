"""Optuna studies as the work queue of many processes and machines: the storage, joining a study, and the worker loop.

The same command started N times against one storage makes N workers of one study. The first creates the study
(``create_study`` is the election: the others get ``DuplicatedStudyError`` and load it) and the MLflow parent run;
the others find the parent through the study. Each worker heartbeats its running trial; a trial whose worker died is
failed by whichever worker notices and re-queued with its params and its MLflow run id, so the next worker resumes
that run from its checkpoint instead of training it again.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from convzoo.errors import ConvzooError
from convzoo.tracking import study_runs
from convzoo.tracking.store import redact, sqlite_path

STORAGE_FILE = "optuna.db"
SETTINGS_ATTR = "convzoo.settings"
PARENT_ATTR = "convzoo.parent_run_id"
RUN_ATTR = "run_id"
ERROR_ATTR = "error"
OVER_QUOTA_ATTR = "over_quota"
# a worker's trial beats every 10 s; one silent for 60 s is taken to be dead (a long evaluation or export beats too,
# from Optuna's own thread)
DEFAULT_HEARTBEAT_SECONDS = 10
DEFAULT_GRACE_SECONDS = 60
PARENT_WAIT_SECONDS = 30
MAX_RETRIES = 3
ACTIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def _seconds(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def default_storage(tracking_uri: str) -> str:
    """An SQLite file next to the MLflow store (``./optuna.db`` when the store is a server)."""
    database = sqlite_path(tracking_uri)
    folder = database.parent if database else Path(".")
    return f"sqlite:///{(folder / STORAGE_FILE).absolute()}"


def open_storage(url: str) -> RDBStorage:
    """The study database with heartbeats on; a new SQLite file is created under a file lock, and a database that
    cannot be reached is a one-line error."""
    from filelock import FileLock

    database = sqlite_path(url)
    lock = FileLock(f"{database}.lock") if database else contextlib.nullcontext()
    if database:
        database.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        try:
            with lock, warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: since 2.8
                return RDBStorage(url, heartbeat_interval=_seconds("CONVZOO_TRIAL_HEARTBEAT_SECONDS", DEFAULT_HEARTBEAT_SECONDS),
                                  grace_period=_seconds("CONVZOO_TRIAL_GRACE_SECONDS", DEFAULT_GRACE_SECONDS),
                                  heartbeat_stale_trial_callback=retry_callback(),
                                  engine_kwargs={"pool_pre_ping": True} if not database else None)
        except Exception as error:
            if attempt < 2 and _made_by_a_twin(error):
                time.sleep(1 + attempt)
                continue
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            raise ConvzooError(f"cannot open the study storage {redact(url)}: {reason}") from None
    raise AssertionError("unreachable")


def _made_by_a_twin(error: Exception) -> bool:
    """Another worker created the same new schema at the same moment (PostgreSQL says so; opening again works)."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    return isinstance(error, (IntegrityError, ProgrammingError)) and any(
        word in str(error) for word in ("already exists", "duplicate key"))


def retry_callback() -> RetryHeartbeatStaleTrialCallback:
    """Re-queues a trial whose worker died or was stopped, with its params, run id and reported epochs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES, inherit_intermediate_values=True)


def _mismatch(name: str, stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> str | None:
    for key in sorted(set(stored) | set(wanted)):
        if stored.get(key) != wanted.get(key):
            return (f"study {name!r} was started with {key}={stored.get(key)!r}, not {wanted.get(key)!r}; use the "
                    f"same settings to continue it, or another --study")
    return None


@dataclass
class Joined:
    """A worker's view of its study: the study, its MLflow parent run, and whether this worker created them."""

    study: optuna.Study
    parent_run_id: str
    created: bool


def join_study(storage: RDBStorage, name: str, settings: Mapping[str, Any], direction: str,
               sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner,
               create_parent: Callable[[], str], queued: list[dict[str, Any]] = ()) -> Joined:
    """Create study ``name`` (queueing ``queued`` trials and making the parent run) or join the one that exists;
    a study made with other ``settings`` is a one-line error."""
    settings = json.loads(json.dumps(dict(settings)))
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction=direction, sampler=sampler,
                                    pruner=pruner)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner)
        parent = _wait_for_parent(study, name, settings, create_parent)
        study_runs.reopen(parent)
        return Joined(study, parent, created=False)
    try:
        parent = create_parent()  # first: a user who may not write runs leaves no study behind
    except BaseException:
        optuna.delete_study(study_name=name, storage=storage)
        raise
    study.set_user_attr(SETTINGS_ATTR, settings)
    for params in queued:
        study.enqueue_trial(params)
    study.set_user_attr(PARENT_ATTR, parent)
    return Joined(study, parent, created=True)


def _wait_for_parent(study: optuna.Study, name: str, settings: Mapping[str, Any],
                     create_parent: Callable[[], str]) -> str:
    """The parent run the study's creator made; if it died before making one, this worker makes it."""
    deadline = time.monotonic() + PARENT_WAIT_SECONDS
    while True:
        attrs = study.user_attrs
        if SETTINGS_ATTR in attrs:
            problem = _mismatch(name, attrs[SETTINGS_ATTR], settings)
            if problem:
                raise ConvzooError(problem)
        if PARENT_ATTR in attrs:
            return attrs[PARENT_ATTR]
        if time.monotonic() > deadline:
            if SETTINGS_ATTR not in attrs:
                raise ConvzooError(f"study {name!r} exists but was not made by convzoo; choose another --study")
            parent = create_parent()
            study.set_user_attr(PARENT_ATTR, parent)
            return parent
        time.sleep(0.5)


def counts(trials: list[FrozenTrial]) -> dict[TrialState, int]:
    return {state: sum(trial.state == state for trial in trials) for state in TrialState}


def original_number(trial: FrozenTrial) -> int:
    """The number of the trial this one retries (what its run is tagged with), else its own."""
    return trial.system_attrs.get("failed_trial", trial.number)  # RetryHeartbeatStaleTrialCallback's key


def is_retry(trial: FrozenTrial) -> bool:
    return "failed_trial" in trial.system_attrs


def failed_by_error(trial: FrozenTrial) -> bool:
    """A trial whose training raised (not one whose worker died, nor one over the quota)."""
    return trial.state == TrialState.FAIL and ERROR_ATTR in trial.user_attrs


class Quota:
    """How many trials a study wants: ``total`` finished (complete or pruned) ones, whatever the workers."""

    def __init__(self, total: int) -> None:
        self.total = total

    def is_done(self, trials: list[FrozenTrial]) -> bool:
        number = counts(trials)
        errors = sum(map(failed_by_error, trials))
        return number[TrialState.COMPLETE] + number[TrialState.PRUNED] >= self.total or errors >= self.total

    def may_start(self, trials: list[FrozenTrial]) -> bool:
        number = counts(trials)
        return number[TrialState.WAITING] > 0 or sum(number[state] for state in ACTIVE) < self.total

    def admits(self, trial: FrozenTrial, trials: list[FrozenTrial]) -> bool:
        """Whether ``trial`` is within the total: two workers that started a trial at the same moment may have made
        one too many, and the later-numbered one gives way. A retry takes its failed trial's place."""
        if is_retry(trial):
            return True
        ahead = [other for other in trials if other.number != trial.number and other.state in ACTIVE
                 and (other.number < trial.number or is_retry(other))]
        return len(ahead) < self.total


class Queue:
    """A study whose trials were all queued when it was made (a grid): each is trained once, nothing is added."""

    def is_done(self, trials: list[FrozenTrial]) -> bool:
        number = counts(trials)
        return number[TrialState.WAITING] + number[TrialState.RUNNING] == 0

    def may_start(self, trials: list[FrozenTrial]) -> bool:
        return counts(trials)[TrialState.WAITING] > 0

    def admits(self, trial: FrozenTrial, trials: list[FrozenTrial]) -> bool:
        return "fixed_params" in trial.system_attrs


class OverQuota(Exception):
    """This worker's new trial is one more than the study wants; it ends FAIL and trains nothing."""


class TrialError(Exception):
    """The trial's training raised; it ends FAIL with the error in its user attributes."""


def frozen(study: optuna.Study, trial: optuna.Trial) -> tuple[FrozenTrial, list[FrozenTrial]]:
    """``trial`` as the storage has it, and every trial of the study."""
    trials = study.get_trials(deepcopy=False)
    return next(t for t in trials if t.number == trial.number), trials


@dataclass
class WorkerStats:
    """Where one worker's time went: training its trials, talking to the study's storage, waiting for others."""

    trials: int = 0
    training: float = 0.0
    storage: float = 0.0
    waiting: float = 0.0

    def line(self) -> str:
        per_trial = f" ({self.storage / self.trials:.3f} s a trial)" if self.trials else ""
        return (f"this worker: {self.trials} trial(s), {self.training:.1f} s training, {self.storage:.2f} s in the "
                f"study's storage{per_trial}, {self.waiting:.0f} s waiting for other workers' trials")


def work(study: optuna.Study, quota: Quota | Queue, run_trial: Callable[[optuna.Trial, FrozenTrial], float],
         echo: Callable[[str], None], poll: float = 1.0) -> WorkerStats:
    """Take trials until the study has what ``quota`` wants; meanwhile fail (and so re-queue) trials of dead workers.

    ``run_trial`` trains one trial and returns its value; it raises ``optuna.TrialPruned`` to prune. An error in it
    fails that trial only. A stop request (a signal) re-queues the trial for the next worker and propagates.
    """
    current: list[int] = []
    stats = WorkerStats()

    def objective(trial: optuna.Trial) -> float:
        current[:] = [trial.number]
        record, trials = frozen(study, trial)
        if not quota.admits(record, trials):
            trial.set_user_attr(OVER_QUOTA_ATTR, True)
            raise OverQuota()
        started = time.monotonic()
        try:
            return run_trial(trial, record)
        except optuna.TrialPruned:
            raise
        except Exception as error:
            if is_stop(error):
                raise
            reason = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
            trial.set_user_attr(ERROR_ATTR, reason[:2000])
            echo(f"trial {trial.number} failed: {reason}")
            raise TrialError(reason) from error
        finally:
            stats.trials += 1
            stats.training += time.monotonic() - started

    while True:
        started, trained = time.monotonic(), stats.training
        trials = study.get_trials(deepcopy=False)
        if quota.is_done(trials):
            stats.storage += time.monotonic() - started
            return stats
        if not quota.may_start(trials):
            optuna.storages.fail_stale_trials(study)
            stats.storage += time.monotonic() - started
            time.sleep(poll)
            stats.waiting += poll
            continue
        try:
            study.optimize(objective, n_trials=1, catch=(OverQuota, TrialError), gc_after_trial=False)
        except BaseException as error:
            stopped = [t for t in study.get_trials(deepcopy=False) if current and t.number == current[0]]
            if is_stop(error) and stopped and stopped[0].state == TrialState.FAIL:
                retry_callback()(study, stopped[0])  # Optuna failed it; the next worker resumes its run instead
            raise
        finally:
            current.clear()
            stats.storage += time.monotonic() - started - (stats.training - trained)


def is_stop(error: BaseException) -> bool:
    """A signal's stop request or Ctrl-C: the trial goes back to the queue rather than failing."""
    from convzoo.training.trainer import StopRequested

    return isinstance(error, (StopRequested, KeyboardInterrupt))
