"""The MLflow side of a comparison: the children a parent has, one row per finished child, the seed repeats of each
architecture summarised (mean, spread, 95 % t interval), and the parent's tables, metrics, plots and significance."""
from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import mlflow

from convzoo.errors import ConvzooError
from convzoo.statistics import Summary, summarize
from convzoo.tables import format_table
from convzoo.tracking.run_log import log_figure
from convzoo.vocabulary import (ARCH_TAG, COMPARE_FAILED_TAG, COMPARE_FAILURE_TAG, COMPARE_TAG, COMPARISON_DIR,
                                NOTE_TAG, NUM_PARAMS_TAG, PARENT_RUN_TAG, PARITY_TAG, PLUGIN_TAG, PLUGIN_VERSION_TAG)

RUN_COLUMNS = ["architecture", "seed", "run_id", "plugin", "params", "input_size", "epochs", "best_epoch",
               "train_acc", "val_acc", "test_acc", "examples_per_sec", "train_time_s", "wall_time_s", "onnx_parity"]
SUMMARIZED = ("test_acc", "val_acc", "train_time_s")  # what a group of seed repeats reports mean, spread and CI of


def group_columns(key: str) -> list[str]:
    return [key, "runs", *SUMMARIZED]


def finished_children(parent_id: str) -> dict[tuple[str, int], Any]:
    """The parent's children that finished, by architecture and seed (what a re-run does not train again)."""
    children = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                  filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent_id}'")
    return {(run.data.tags[ARCH_TAG], int(run.data.params.get("seed", 0))): run for run in children
            if run.info.status == "FINISHED" and ARCH_TAG in run.data.tags}


def kept_figures(run) -> dict[str, float | None]:
    """Train, validation and test accuracy of the model a run kept: the last epoch's, or with early stopping the
    best epoch's."""
    metrics = run.data.metrics
    best = metrics.get("best_epoch")
    if best is None or best == metrics.get("epochs_trained"):
        return {name: metrics.get(name) for name in ("train_acc", "val_acc", "test_acc")}
    client = mlflow.MlflowClient()
    return {name: next((m.value for m in client.get_metric_history(run.info.run_id, name) if m.step == best), None)
            for name in ("train_acc", "val_acc", "test_acc")}


def run_row(run) -> dict[str, Any]:
    """One finished run as a row of ``RUN_COLUMNS``."""
    metrics, tags, params = run.data.metrics, run.data.tags, run.data.params
    figures = kept_figures(run)
    return {
        "architecture": tags[ARCH_TAG], "seed": int(params.get("seed", 0)), "run_id": run.info.run_id,
        "plugin": f"{tags.get(PLUGIN_TAG, '')} {tags.get(PLUGIN_VERSION_TAG, '')}".strip(),
        "params": int(tags.get(NUM_PARAMS_TAG, 0)), "input_size": int(params.get("resize", 0)),
        "epochs": int(params.get("epochs", 0)), "best_epoch": int(metrics.get("best_epoch", 0)) or "",
        **{name: "" if value is None else value for name, value in figures.items()},
        "examples_per_sec": round(metrics.get("examples_per_sec", 0.0), 1),
        "train_time_s": metrics.get("train_time_s", ""),
        "wall_time_s": round((run.info.end_time - run.info.start_time) / 1000, 1),
        "onnx_parity": tags.get(PARITY_TAG, "not run"),
    }


def grouped(rows: Sequence[Mapping[str, Any]], key: str) -> dict[str, list[Mapping[str, Any]]]:
    """The rows per value of ``key``, in order of first appearance."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row[key]), []).append(row)
    return groups


def group_summaries(rows: Sequence[Mapping[str, Any]], key: str) -> dict[str, dict[str, Summary]]:
    """Per value of ``key``, a ``Summary`` of each of ``SUMMARIZED`` the rows have."""
    return {name: {figure: summarize([row[figure] for row in members])
                   for figure in SUMMARIZED if all(row.get(figure) not in (None, "") for row in members)}
            for name, members in grouped(rows, key).items()}


def run_count(figures: Mapping[str, Summary]) -> int:
    """How many runs a group's summaries are over."""
    return max((summary.n for summary in figures.values()), default=0)


def summary_table(summaries: Mapping[str, Mapping[str, Summary]]) -> list[list[str]]:
    """Rows of ``group_columns``: each figure as mean ± half the 95 % interval."""
    return [[name, str(run_count(figures)),
             *[figures[f].shown(1 if f.endswith("_s") else 4) if f in figures else "-" for f in SUMMARIZED]]
            for name, figures in summaries.items()]


def summary_metrics(summaries: Mapping[str, Mapping[str, Summary]]) -> dict[str, float]:
    """``ARCH/test_acc_mean``, ``ARCH/test_acc_ci_low``, ...: what the parent logs per group."""
    return {f"{name}/{key}": value for name, figures in summaries.items()
            for figure, summary in figures.items() for key, value in summary.as_dict(figure).items()}


def csv_text(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows({key: round(value, 6) if isinstance(value, float) else value for key, value in row.items()}
                     for row in rows)
    return table.getvalue()


def markdown(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(str(value) for value in row) + " |" for row in rows]) + "\n"


def statistics_csv(summaries: Mapping[str, Mapping[str, Summary]]) -> str:
    """One row per group: its number of runs and every statistic of every summarised figure."""
    rows = []
    for name, figures in summaries.items():
        row: dict[str, Any] = {"architecture": name, "runs": run_count(figures)}
        for figure, summary in figures.items():
            row.update(summary.as_dict(figure))
        rows.append(row)
    names = ["architecture", "runs", *[f"{figure}_{stat}" for figure in SUMMARIZED
                                      for stat in ("mean", "std", "min", "max", "ci_low", "ci_high")]]
    return csv_text(names, rows)


def speed_points(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per architecture, its mean test accuracy, mean training speed and size (the accuracy-vs-speed plot)."""
    return [{"architecture": name, "params": members[0]["params"],
             "examples_per_sec": sum(m["examples_per_sec"] for m in members) / len(members),
             "test_acc": sum(m["test_acc"] for m in members) / len(members)}
            for name, members in grouped(rows, "architecture").items()]


def log_comparison(rows: list[dict[str, Any]], failures: Mapping[str, str], parent_id: str,
                   significance: Callable[[str], list[str]], description: str) -> list[str]:
    """The comparison into the active parent run: tags, ``failures.json``, every child as CSV, the mean ± CI table
    (CSV of every statistic, and Markdown), the per-architecture metrics, the significance (``significance(folder)``
    writes it there and returns its summary lines) and the plots. Returns the lines to print."""
    from convzoo.tracking import figures

    summaries = group_summaries(rows, "architecture")
    table, columns = summary_table(summaries), group_columns("architecture")
    mlflow.set_tags({COMPARE_TAG: "parent", COMPARE_FAILED_TAG: ",".join(failures) or "none",
                     **{COMPARE_FAILURE_TAG.format(name): reason[:5000] for name, reason in failures.items()}})
    mlflow.log_metrics(summary_metrics(summaries))
    mlflow.log_dict({"failed": dict(failures)}, f"{COMPARISON_DIR}/failures.json")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "runs.csv").write_text(csv_text(RUN_COLUMNS, rows))
        (Path(folder) / "comparison.csv").write_text(statistics_csv(summaries))
        lines = significance(folder)
        (Path(folder) / "comparison.md").write_text(markdown(columns, table) + "".join(
            f"\n{line}\n" for line in lines))
        mlflow.log_artifacts(folder, COMPARISON_DIR)
    mlflow.set_tag(NOTE_TAG, description + "\n\n" + markdown(columns, table) + "\n".join(lines))
    client = mlflow.MlflowClient()
    curves = {name: [[m.value for m in sorted(client.get_metric_history(row["run_id"], "test_acc"),
                                                key=lambda m: m.step)] for row in members]
              for name, members in grouped(rows, "architecture").items()}
    log_figure(figures.plot_test_accuracy_curves(curves), f"{COMPARISON_DIR}/test_acc_per_epoch.png")
    log_figure(figures.plot_accuracy_vs_speed(speed_points(rows)), f"{COMPARISON_DIR}/accuracy_vs_speed.png")
    return [format_table(columns, table), *lines]


def group_value(run, key: str) -> str | None:
    """A run's value of a param or tag ``key`` (``arch``, ``recipe``... also name convzoo's own tags)."""
    data = run.data
    return data.params.get(key, data.tags.get(key, data.tags.get(f"convzoo.{key}")))


def grouped_runs(runs: Sequence[Any], key: str) -> str:
    """The finished ``runs`` grouped by ``key``, each group's figures as mean ± half the 95 % t interval."""
    finished = [run for run in runs if run.info.status == "FINISHED" and group_value(run, key) is not None]
    if not finished:
        raise ConvzooError(f"no finished run has a param or tag {key!r} to group by (try arch, recipe, seed, lr)")
    rows = [{**run_row(run), key: group_value(run, key)} for run in finished]
    return format_table(group_columns(key), summary_table(group_summaries(rows, key)))
