"""The runs in the tracking store as a terminal table, for comparing without the UI."""
from __future__ import annotations

import os
import time
from typing import Mapping

import mlflow

from convzoo.errors import ConvzooError
from convzoo.vocabulary import (ARCH_TAG, EPOCHS_TAG, HEARTBEAT_TAG, MARKED_STALE_TAG, PARITY_TAG, RECIPE_TAG,
                                SWEEP_TAG)

DEFAULT_STALE_AFTER_SECONDS = 300  # ten missed heartbeats of 30 s


def stale_after_seconds() -> float:
    """A RUNNING run whose heartbeat is older than this is STALE (``CONVZOO_STALE_AFTER_SECONDS``, default 300)."""
    return float(os.environ.get("CONVZOO_STALE_AFTER_SECONDS", DEFAULT_STALE_AFTER_SECONDS))


def heartbeat_age(run) -> float:
    """Seconds since the run's last heartbeat (since it started, for a run that never beat)."""
    beat = run.data.tags.get(HEARTBEAT_TAG)
    last = float(beat) if beat else run.info.start_time / 1000
    return time.time() - last


def is_stale(run, limit: float) -> bool:
    return run.info.status == "RUNNING" and heartbeat_age(run) > limit


def mark_stale(runs, limit: float) -> list[str]:
    """End every stale run ``KILLED``; their ids."""
    client = mlflow.MlflowClient()
    stale = [run for run in runs if is_stale(run, limit)]
    for run in stale:
        client.set_tag(run.info.run_id, MARKED_STALE_TAG, f"no heartbeat for {heartbeat_age(run):.0f} s")
        client.set_terminated(run.info.run_id, "KILLED")
    return [run.info.run_id for run in stale]

COLUMNS = ["RUN ID", "ARCH", "RECIPE", "EPOCHS", "TEST ACC", "TIME", "PARITY", "STATUS", "ALIASES"]


def _minutes(run) -> str:
    if not run.info.end_time:
        return "-"
    seconds = (run.info.end_time - run.info.start_time) / 1000
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def convzoo_runs(experiment: str | None = None) -> list:
    """Every run convzoo trained, newest first, in one experiment or all."""
    if experiment:
        if mlflow.get_experiment_by_name(experiment) is None:
            raise ConvzooError(f"no experiment {experiment!r} in the tracking store {mlflow.get_tracking_uri()}")
        runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    else:
        runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return [run for run in runs if ARCH_TAG in run.data.tags]


def run_rows(runs: list, sort: str | None = None, stale_after: float | None = None,
             aliases: Mapping[str, list[str]] | None = None) -> list[list[str]]:
    """One row per run, in the given order or by ``sort`` (a metric, highest first); a RUNNING run without a
    heartbeat for ``stale_after`` seconds shows as STALE; ALIASES are ``aliases[run_id]``, the registered
    ``NAME@ALIAS`` its model backs (``convzoo.deploy.model_registry.aliases_by_run``)."""
    limit = stale_after_seconds() if stale_after is None else stale_after
    if sort:
        known = sorted({key for run in runs for key in run.data.metrics})
        if sort not in known:
            raise ConvzooError(f"unknown metric {sort!r} to sort by; runs have: {', '.join(known) or 'none'}")
        runs.sort(key=lambda run: run.data.metrics.get(sort, float("-inf")), reverse=True)
    rows, aliases = [], aliases or {}
    for run in runs:
        metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
        sweep = tags.get(SWEEP_TAG) == "parent"
        test_acc = metrics.get("best_trial_test_acc" if sweep else "test_acc")  # a sweep's best trial's
        epochs = tags.get(EPOCHS_TAG, params.get("epochs", "-"))  # a resumed run may have been given more
        rows.append([run.info.run_id, tags[ARCH_TAG] + (" sweep (best)" if sweep else ""), tags.get(RECIPE_TAG, "-"),
                     epochs,
                     "-" if test_acc is None else f"{test_acc:.4f}", _minutes(run), tags.get(PARITY_TAG, "-"),
                     "STALE" if is_stale(run, limit) else run.info.status,
                     ", ".join(aliases.get(run.info.run_id, [])) or "-"])
    return rows
