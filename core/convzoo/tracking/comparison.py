"""The MLflow side of a comparison: the children a parent has, one row per finished child, and the parent's
table, failures and plots."""
from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path
from typing import Any, Mapping

import mlflow

from convzoo.tracking.run_log import log_figure
from convzoo.vocabulary import (ARCH_TAG, COMPARE_FAILED_TAG, COMPARE_FAILURE_TAG, COMPARE_TAG, COMPARISON_DIR,
                                NUM_PARAMS_TAG, PARENT_RUN_TAG, PARITY_TAG, PLUGIN_TAG, PLUGIN_VERSION_TAG)

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


def log_comparison(rows: list[dict[str, Any]], failures: Mapping[str, str], parent_id: str) -> None:
    from convzoo.tracking import figures

    """The comparison into the active parent run: tags, ``failures.json``, the table as CSV and Markdown, plots."""
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
    log_figure(figures.plot_test_accuracy_curves(curves), f"{COMPARISON_DIR}/test_acc_per_epoch.png")
    log_figure(figures.plot_accuracy_vs_speed(rows), f"{COMPARISON_DIR}/accuracy_vs_speed.png")
