"""``convzoo compare``: one parent run, one nested child run per architecture, and a comparison of them."""
from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import mlflow

from convzoo import tracking
from convzoo.errors import ConvzooError
from convzoo.tables import format_table
from convzoo.vocabulary import (ARCH_TAG, COMPARE_FAILED_TAG, COMPARE_FAILURE_TAG, COMPARE_TAG, COMPARISON_DIR,
                                NUM_PARAMS_TAG, PARENT_RUN_TAG, PARITY_TAG, PLUGIN_TAG, PLUGIN_VERSION_TAG, STUDY_TAG)

COLUMNS = ["architecture", "plugin", "params", "input_size", "epochs", "train_acc", "test_acc", "examples_per_sec",
           "wall_time_s", "onnx_parity"]


def finished_children(parent_id: str) -> dict[str, Any]:
    """The parent's children that finished, by architecture (what a re-run does not train again)."""
    children = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                  filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent_id}'")
    return {run.data.tags[ARCH_TAG]: run for run in children
            if run.info.status == "FINISHED" and ARCH_TAG in run.data.tags}


def summarize_child(run) -> dict[str, Any]:
    metrics, tags = run.data.metrics, run.data.tags
    return {
        "architecture": tags[ARCH_TAG], "plugin": f"{tags[PLUGIN_TAG]} {tags[PLUGIN_VERSION_TAG]}",
        "params": int(tags[NUM_PARAMS_TAG]), "input_size": int(run.data.params["resize"]),
        "epochs": int(run.data.params["epochs"]), "train_acc": round(metrics["train_acc"], 4),
        "test_acc": round(metrics["test_acc"], 4), "examples_per_sec": round(metrics["examples_per_sec"], 1),
        "wall_time_s": round((run.info.end_time - run.info.start_time) / 1000, 1),
        "onnx_parity": tags.get(PARITY_TAG, "not run"),
    }


def compare(arch_names: list[str], train_one: Callable[[str], str], echo: Callable[[str], None] = print,
            experiment: str | None = None, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train each architecture as a child of one parent run (resumed under ``mlflow run --run-id``), whose params
    are ``params`` (what the comparison was asked for: architectures, recipe, overrides).

    ``train_one(name)`` trains one architecture in the active parent and returns the child's run id. A failing
    architecture is recorded and the others go on; the parent fails only if every architecture failed.
    """
    if not arch_names:
        raise ConvzooError("no architectures to compare")
    with tracking.mlflow_run(experiment) as parent:
        tracking.log_new_params(params or {})
        done = finished_children(parent.info.run_id)
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
        done = finished_children(parent.info.run_id)
        rows = [summarize_child(done[name]) for name in arch_names if name in done]
        _log_comparison(rows, failures, parent.info.run_id)
        echo(format_table(COLUMNS, [[row[c] for c in COLUMNS] for row in rows]))
        if failures and not rows:
            raise ConvzooError(f"every architecture failed: {'; '.join(f'{k}: {v}' for k, v in failures.items())}")
    return {"parent_run_id": parent.info.run_id, "rows": rows, "failures": failures}


def compare_in_study(arch_names: list[str], storage: Any, storage_url: str, study_name: str, settings: Mapping[str, Any],
                     train_one: Callable[[str, list, Any], Any], resume: Callable[[str, list], Any],
                     experiment: str | None = None, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Be one worker of a comparison spread over processes: the study queues one trial per architecture when it is
    made, each worker trains the next one nobody has taken, and whichever worker finds nothing left logs the
    comparison into the shared parent run. ``storage`` is the study's, opened from ``storage_url``;
    ``train_one(name, callbacks, placement)`` trains one child."""
    import optuna

    from convzoo import studies, trial_runs
    from convzoo.run import RunPlacement
    from convzoo.store import redact

    if not arch_names:
        raise ConvzooError("no architectures to compare")
    experiment_id = trial_runs.experiment_id(experiment)
    joined = studies.join_study(
        storage, study_name, {"kind": "compare", "archs": arch_names, **settings}, "maximize",
        optuna.samplers.RandomSampler(), optuna.pruners.NopPruner(), queued=[{"arch": name} for name in arch_names],
        create_parent=lambda: trial_runs.create_parent_run(
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
    with mlflow.start_run(run_id=parent_id):
        _log_comparison(rows, failures, parent_id)
        mlflow.end_run("FINISHED" if rows else "FAILED")
    echo(format_table(COLUMNS, [[row[c] for c in COLUMNS] for row in rows]))
    if not rows:
        raise ConvzooError(f"every architecture failed: {'; '.join(f'{k}: {v}' for k, v in failures.items())}")
    return {"parent_run_id": parent_id, "rows": rows, "failures": failures}


def _log_comparison(rows: list[dict[str, Any]], failures: Mapping[str, str], parent_id: str) -> None:
    from convzoo import figures

    mlflow.set_tags({COMPARE_TAG: "parent", COMPARE_FAILED_TAG: ",".join(failures) or "none",
                     **{COMPARE_FAILURE_TAG.format(name): reason[:5000] for name, reason in failures.items()}})
    mlflow.log_dict({"failed": dict(failures)}, f"{COMPARISON_DIR}/failures.json")
    with tempfile.TemporaryDirectory() as folder:
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        (Path(folder) / "comparison.csv").write_text(table.getvalue())
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
        lines += ["| " + " | ".join(str(row[c]) for c in COLUMNS) + " |" for row in rows]
        (Path(folder) / "comparison.md").write_text("\n".join(lines) + "\n")
        mlflow.log_artifacts(folder, COMPARISON_DIR)
    client = mlflow.MlflowClient()
    children = finished_children(parent_id)
    curves = {row["architecture"]: [m.value for m in sorted(
        client.get_metric_history(children[row["architecture"]].info.run_id, "test_acc"), key=lambda m: m.step)]
        for row in rows}
    tracking.log_figure(figures.plot_test_accuracy_curves(curves), f"{COMPARISON_DIR}/test_acc_per_epoch.png")
    tracking.log_figure(figures.plot_accuracy_vs_speed(rows), f"{COMPARISON_DIR}/accuracy_vs_speed.png")
