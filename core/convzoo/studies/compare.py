"""``convzoo compare``: one parent run, one nested child run per architecture, and a comparison of them."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from convzoo.errors import ConvzooError
from convzoo.runs.lifecycle import run_lifecycle
from convzoo.tables import format_table
from convzoo.tracking import run_log
from convzoo.tracking.comparison import COLUMNS, finished_children, log_comparison, summarize_child
from convzoo.vocabulary import COMPARE_TAG, STUDY_TAG


def compare(arch_names: list[str], train_one: Callable[[str], str], echo: Callable[[str], None] = print,
            experiment: str | None = None, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train each architecture as a child of one parent run (resumed under ``mlflow run --run-id``), whose params
    are ``params`` (what the comparison was asked for: architectures, recipe, overrides).

    ``train_one(name)`` trains one architecture in the active parent and returns the child's run id. A failing
    architecture is recorded and the others go on; the parent fails only if every architecture failed.
    """
    if not arch_names:
        raise ConvzooError("no architectures to compare")
    with run_lifecycle(experiment) as parent:
        run_log.log_new_params(params or {})
        done = finished_children(parent.run_id)
        failures: dict[str, str] = {}
        for name in arch_names:
            if name in done:
                echo(f"{name}: finished earlier in this parent run ({done[name].info.run_id}); not trained again")
                continue
            echo(f"== {name}")
            try:
                train_one(name)
            except Exception as error:  # one architecture failing must not stop the others
                failures[name] = f"{type(error).__name__}: {error}"
                echo(f"{name} failed: {failures[name]}")
        done = finished_children(parent.run_id)
        rows = [summarize_child(done[name]) for name in arch_names if name in done]
        log_comparison(rows, failures, parent.run_id)
        echo(format_table(COLUMNS, [[row[c] for c in COLUMNS] for row in rows]))
        if failures and not rows:
            raise ConvzooError(f"every architecture failed: {'; '.join(f'{k}: {v}' for k, v in failures.items())}")
    return {"parent_run_id": parent.run_id, "rows": rows, "failures": failures}


def compare_in_study(arch_names: list[str], storage: Any, storage_url: str, study_name: str, settings: Mapping[str, Any],
                     train_one: Callable[[str, list, Any], Any], resume: Callable[[str, list], Any],
                     experiment: str | None = None, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Be one worker of a comparison spread over processes: the study queues one trial per architecture when it is
    made, each worker trains the next one nobody has taken, and whichever worker finds nothing left logs the
    comparison into the shared parent run. ``storage`` is the study's, opened from ``storage_url``;
    ``train_one(name, callbacks, placement)`` trains one child."""
    import optuna

    from convzoo.studies import optuna_studies as studies
    from convzoo.studies import trial_runs
    from convzoo.tracking import study_runs
    from convzoo.runs.training_run import RunPlacement
    from convzoo.tracking.store import redact

    if not arch_names:
        raise ConvzooError("no architectures to compare")
    experiment_id = study_runs.experiment_id(experiment)
    joined = studies.join_study(
        storage, study_name, {"kind": "compare", "archs": arch_names, **settings}, "maximize",
        optuna.samplers.RandomSampler(), optuna.pruners.NopPruner(), queued=[{"arch": name} for name in arch_names],
        create_parent=lambda: study_runs.create_run(
            experiment_id, f"compare {study_name}", {COMPARE_TAG: "parent", STUDY_TAG: study_name},
            {"archs": ",".join(arch_names), "study": study_name, "storage": redact(storage_url),
             **{key: value for key, value in settings.items() if value is not None}}))
    parent_id = joined.parent_run_id
    echo(f"study {study_name} ({'created' if joined.created else 'joined'}); parent run {parent_id}")

    def run_trial(trial, record) -> float:
        name = trial.suggest_categorical("arch", arch_names)
        report = trial_runs.ReportToTrial(trial, "test_acc")
        previous = record.user_attrs.get(studies.RUN_ATTR)
        if previous:
            value = trial_runs.continue_trial(previous, trial, trial.number, "test_acc", resume, [report], echo)
            if value is not None:
                return value
        echo(f"== {name}")
        with trial_runs.trial_run(trial, experiment_id,
                               RunPlacement(None, parent_id, {STUDY_TAG: study_name})) as placement:
            result = train_one(name, [report], placement)
        return result.history[-1].test_acc

    echo(studies.work(joined.study, studies.Queue(), run_trial, echo).line())
    failures = {trial.params["arch"]: trial.user_attrs[studies.ERROR_ATTR]
                for trial in joined.study.get_trials(deepcopy=False) if studies.failed_by_error(trial)}
    done = finished_children(parent_id)
    rows = [summarize_child(done[name]) for name in arch_names if name in done]
    with run_lifecycle(run_id=parent_id):
        log_comparison(rows, failures, parent_id)
        echo(format_table(COLUMNS, [[row[c] for c in COLUMNS] for row in rows]))
        if not rows:
            raise ConvzooError(f"every architecture failed: {'; '.join(f'{k}: {v}' for k, v in failures.items())}")
    return {"parent_run_id": parent_id, "rows": rows, "failures": failures}
