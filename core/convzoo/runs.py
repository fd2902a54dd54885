"""The runs in the tracking store as a terminal table, for comparing without the UI."""
from __future__ import annotations

import mlflow

from convzoo.errors import ConvzooError

COLUMNS = ["RUN ID", "ARCH", "RECIPE", "EPOCHS", "TEST ACC", "TIME", "PARITY", "STATUS"]


def _minutes(run) -> str:
    if not run.info.end_time:
        return "-"
    seconds = (run.info.end_time - run.info.start_time) / 1000
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def run_rows(experiment: str | None = None, sort: str | None = None) -> list[list[str]]:
    """One row per convzoo run, newest first or by ``sort`` (a metric, highest first)."""
    if experiment:
        if mlflow.get_experiment_by_name(experiment) is None:
            raise ConvzooError(f"no experiment {experiment!r} in the tracking store {mlflow.get_tracking_uri()}")
        runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    else:
        runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    runs = [run for run in runs if "convzoo.arch" in run.data.tags]
    if sort:
        known = sorted({key for run in runs for key in run.data.metrics})
        if sort not in known:
            raise ConvzooError(f"unknown metric {sort!r} to sort by; runs have: {', '.join(known) or 'none'}")
        runs.sort(key=lambda run: run.data.metrics.get(sort, float("-inf")), reverse=True)
    rows = []
    for run in runs:
        metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
        test_acc = metrics.get("test_acc")
        rows.append([run.info.run_id, tags["convzoo.arch"], tags.get("convzoo.recipe", "-"), params.get("epochs", "-"),
                     "-" if test_acc is None else f"{test_acc:.4f}", _minutes(run), tags.get("parity", "-"),
                     run.info.status])
    return rows
