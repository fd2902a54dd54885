"""``convzoo sweep``: an Optuna study over one architecture's hyperparameters; each trial is a convzoo run nested
under the study's parent run, and the parent gets the study's summary when its last worker finishes."""
from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from convzoo.studies import optuna_studies as studies
from convzoo.studies import trial_runs
from convzoo.runs.lifecycle import run_lifecycle
from convzoo.tracking import study_runs
from convzoo.training.callbacks import Callback
from convzoo.errors import ConvzooError
from convzoo.runs.training_run import RunPlacement, TrainResult
from convzoo.studies.space import Param
from convzoo.tracking.store import redact
from convzoo.tables import format_table
from convzoo.training.trainer import EpochMetrics
from convzoo.vocabulary import (ARCH_TAG, BEST_PARAM_TAG, BEST_RUN_TAG, BEST_TAG, BEST_TRIAL_TAG, PRUNED_TAG,
                                RECIPE_TAG, STUDY_TAG, SWEEP_DIR, SWEEP_TAG, TRIAL_TAG)

METRICS = tuple(field.name for field in dataclasses.fields(EpochMetrics) if field.name != "epoch")
CHOOSABLE = tuple(name for name in METRICS if not name.startswith("test_"))
DIRECTIONS = ("maximize", "minimize")


def default_direction(metric: str) -> str:
    """``minimize`` for a loss or a time, ``maximize`` for anything else."""
    return "minimize" if metric.endswith(("_loss", "_time")) else "maximize"
DEFAULT_STARTUP_TRIALS = 5


def make_pruner(spec: str) -> optuna.pruners.BasePruner:
    """``median`` (Optuna's ``MedianPruner``, judging from the 6th trial on), ``median:N`` (from trial N+1 on) or
    ``none``."""
    kind, _, startup = spec.partition(":")
    if kind == "none" and not startup:
        return optuna.pruners.NopPruner()
    if kind == "median" and (not startup or startup.isdigit()):
        return optuna.pruners.MedianPruner(n_startup_trials=int(startup or DEFAULT_STARTUP_TRIALS), n_warmup_steps=0)
    raise ConvzooError(f"unknown pruner {spec!r}; choose median, median:N (N trials before pruning starts) or none")


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep is; ``settings`` are the training settings every trial shares (they identify the study too)."""

    arch: str
    recipe: str
    study: str
    storage: str
    trials: int
    metric: str
    direction: str
    pruner: str
    params: Sequence[Param]
    settings: dict[str, Any]
    experiment: str | None = None
    sampler_seed: int | None = None

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConvzooError(f"--trials must be at least 1, got {self.trials}")
        if self.metric.startswith("test_"):
            raise ConvzooError(f"--metric {self.metric} would choose on the test set, and a figure chosen on it is "
                               f"no longer a test result; a sweep optimises and prunes on validation: use val_acc or "
                               f"val_loss (every trial still logs its test figures)")
        if self.metric not in METRICS:
            raise ConvzooError(f"unknown metric {self.metric!r}; choose one of: {', '.join(CHOOSABLE)}")
        if self.direction not in DIRECTIONS:
            raise ConvzooError(f"unknown direction {self.direction!r}; choose one of: {', '.join(DIRECTIONS)}")
        if not self.params:
            raise ConvzooError("a sweep needs at least one --param, e.g. --param lr=loguniform:1e-4:1e-2")
        make_pruner(self.pruner)

    def identity(self) -> dict[str, Any]:
        """What every worker of one study must agree on (``--trials`` may differ: each stops at its own total)."""
        return {"kind": "sweep", "arch": self.arch, "recipe": self.recipe, "metric": self.metric,
                "direction": self.direction, "pruner": self.pruner,
                "params": {param.name: param.describe() for param in self.params}, **self.settings}

    def parent_params(self) -> dict[str, Any]:
        return {**{key: value for key, value in self.settings.items() if value is not None},
                "sweep.study": self.study, "sweep.storage": redact(self.storage), "sweep.trials": self.trials,
                "sweep.metric": self.metric, "sweep.direction": self.direction, "sweep.pruner": self.pruner,
                "arch": self.arch, "recipe": self.recipe,
                **{f"sweep.param.{param.name}": param.describe() for param in self.params}}


TrainNew = Callable[[dict[str, Any], list[Callback], RunPlacement], TrainResult]


def trial_run_name(arch: str, recipe: str, number: int, values: dict[str, Any]) -> str:
    shown = " ".join(f"{name.removeprefix('option.')}={value:.3g}" if isinstance(value, float)
                     else f"{name.removeprefix('option.')}={value}" for name, value in values.items())
    return f"{arch}-{recipe}-t{number} {shown}".strip()


def run_sweep(spec: SweepSpec, storage: optuna.storages.RDBStorage, train_new: TrainNew, resume: trial_runs.ResumeRun,
              echo: Callable[[str], None] = print,
              checkpoint_folder: Callable[[str], Path] | None = None) -> dict[str, Any]:
    """Be one worker of ``spec``'s study (in ``storage``, opened from ``spec.storage``) until it has ``spec.trials``
    finished trials; summarise it into the parent."""
    experiment = study_runs.experiment_id(spec.experiment)
    sampler = optuna.samplers.TPESampler(seed=spec.sampler_seed)
    joined = studies.join_study(
        storage, spec.study, spec.identity(), spec.direction, sampler, make_pruner(spec.pruner),
        create_parent=lambda: study_runs.create_run(
            experiment, f"{spec.arch}-{spec.recipe}-sweep {spec.study}",
            {SWEEP_TAG: "parent", STUDY_TAG: spec.study, ARCH_TAG: spec.arch, RECIPE_TAG: spec.recipe},
            spec.parent_params()))
    echo(f"study {spec.study} ({'created' if joined.created else 'joined'}) in {redact(spec.storage)}; "
         f"parent run {joined.parent_run_id}")

    def run_trial(trial: optuna.Trial, record: FrozenTrial) -> float:
        number = studies.original_number(record)
        report = trial_runs.ReportToTrial(trial, spec.metric)
        previous = record.user_attrs.get(studies.RUN_ATTR)
        try:
            if previous:
                value = trial_runs.continue_trial(previous, trial, number, spec.metric, resume, [report], echo)
                if value is not None:
                    return value
            values = {param.name: param.suggest(trial) for param in spec.params}
            with trial_runs.trial_run(trial, experiment, RunPlacement(
                    trial_run_name(spec.arch, spec.recipe, number, values), joined.parent_run_id,
                    {STUDY_TAG: spec.study, TRIAL_TAG: str(number)})) as placement:
                echo(f"== trial {trial.number}: {placement.run_name}")
                result = train_new(values, [report], placement)
        except trial_runs.Pruned as pruned:
            run_id = trial.user_attrs[studies.RUN_ATTR]
            study_runs.set_tags(run_id, {PRUNED_TAG: str(pruned)})
            if checkpoint_folder:
                shutil.rmtree(checkpoint_folder(run_id), ignore_errors=True)  # the run has it
            echo(f"trial {trial.number} {pruned}")
            raise optuna.TrialPruned(str(pruned)) from None
        return getattr(result.history[-1], spec.metric)

    echo(studies.work(joined.study, studies.Quota(spec.trials), run_trial, echo).line())
    return summarize(joined.study, joined.parent_run_id, spec, echo)


TRIAL_COLUMNS = ["trial", "state", "value", "run_id", "params", "error"]


def trial_rows(trials: list[FrozenTrial]) -> list[dict[str, Any]]:
    """One row per trial that counts (over-quota trials, which trained nothing, are left out)."""
    return [{"trial": trial.number, "state": trial.state.name,
             "value": "" if trial.value is None else round(trial.value, 4),
             "run_id": trial.user_attrs.get(studies.RUN_ATTR, ""),
             "params": json.dumps(trial.params, sort_keys=True), "error": trial.user_attrs.get(studies.ERROR_ATTR, "")}
            for trial in trials if not trial.user_attrs.get(studies.OVER_QUOTA_ATTR)]


def summarize(study: optuna.Study, parent_run_id: str, spec: SweepSpec, echo: Callable[[str], None]) -> dict[str, Any]:
    """Best value and params, trials table and Optuna's plots into the parent run; tag the best child; end it
    (FAILED when no trial completed)."""
    trials = study.get_trials(deepcopy=False)
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    rows = trial_rows(trials)
    with run_lifecycle(run_id=parent_run_id):
        with tempfile.TemporaryDirectory(prefix="convzoo-sweep-") as folder:
            with open(Path(folder) / "trials.csv", "w", newline="") as table:
                writer = csv.DictWriter(table, fieldnames=TRIAL_COLUMNS)
                writer.writeheader()
                writer.writerows(rows)
            study_runs.log_file(parent_run_id, Path(folder) / "trials.csv", SWEEP_DIR)
        echo(format_table(TRIAL_COLUMNS, [[row[c] for c in TRIAL_COLUMNS] for row in rows]))
        if not complete:
            raise ConvzooError(f"no trial of study {spec.study!r} completed; see the trials' errors above")
        best = study.best_trial
        best_run = _log_best(best, parent_run_id, spec.metric)
        _log_plots(study, parent_run_id, len(complete), spec.metric)
    echo(f"best trial {best.number}: {spec.metric} {best.value:.4f} with {best.params} (run {best_run})")
    return {"parent_run_id": parent_run_id, "best_run_id": best_run, "best_value": best.value,
            "best_params": best.params, "rows": rows}


def _log_best(best: FrozenTrial, parent_run_id: str, metric: str) -> str:
    """Tag the best trial's run (and untag the one that was best before); its value and params into the parent."""
    best_run = best.user_attrs[studies.RUN_ATTR]
    earlier = study_runs.tag_of(parent_run_id, BEST_RUN_TAG)
    if earlier and earlier != best_run:
        study_runs.set_tags(earlier, {BEST_TAG: "false"})
    study_runs.set_tags(best_run, {BEST_TAG: "true"})
    study_runs.log_metric(parent_run_id, f"best_{metric}", best.value)
    test_acc = study_runs.metric_of(best_run, "test_acc")
    if test_acc is not None:  # reported beside the choice, never chosen on
        study_runs.log_metric(parent_run_id, "best_trial_test_acc", test_acc)
    study_runs.set_tags(parent_run_id, {BEST_RUN_TAG: best_run, BEST_TRIAL_TAG: str(best.number),
                                        **{BEST_PARAM_TAG.format(name): str(value) for name, value in best.params.items()}})
    study_runs.log_dict(parent_run_id, {"value": best.value, "params": best.params, "run_id": best_run,
                                        "trial": best.number}, f"{SWEEP_DIR}/best.json")
    return best_run


def _log_plots(study: optuna.Study, parent_run_id: str, complete: int, metric: str) -> None:
    """Optuna's optimisation history and, with two or more complete trials, the parameter importances."""
    import warnings

    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    from optuna.visualization import matplotlib as plots

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        axes = plots.plot_optimization_history(study, target_name=metric)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        plotted = {f"{SWEEP_DIR}/optimization_history.png": axes}
        if complete >= 2:
            try:
                plotted[f"{SWEEP_DIR}/param_importances.png"] = plots.plot_param_importances(study, target_name=metric)
            except (RuntimeError, ValueError):  # importances of trials that all share one value
                pass
    study_runs.log_figures(parent_run_id, {path: axes.figure for path, axes in plotted.items()})
    for axes in plotted.values():
        plt.close(axes.figure)
