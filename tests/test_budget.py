"""Runs sized to a time budget: the plan the probe makes, what the run logs, that the probe leaves the run as
``--epochs PLANNED`` would train it, and the bad budgets. (The overrun against the wall clock is measured by
``make bench-budget``, not here.)"""
import math

import mlflow
import pytest
from click.testing import CliRunner

from convzoo.cli.app import cli
from convzoo.errors import ConvzooError
from convzoo.recipes import budget_seconds
from convzoo.registry.plugins import get_registry
from convzoo.runs.budget import FILL
from convzoo.runs.settings import check_request

# a few batches an epoch: a budget of seconds fits several epochs
SMALL = ["vgg", "--recipe", "quick", "--resize", "32", "--batch-size", "32", "--limit-train-batches", "12",
         "--limit-eval-batches", "3", "--export", "false"]


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1h", 3600), ("1.5h", 5400), (" 2m ", 120)])
def test_a_budget_reads_seconds_minutes_or_hours(text, seconds):
    assert budget_seconds(text) == seconds


def per_epoch(uri, run_id, key):
    return [m.value for m in sorted(mlflow.MlflowClient(uri).get_metric_history(run_id, key), key=lambda m: m.step)]


def test_a_budget_run_logs_its_plan_and_trains_as_the_planned_epochs_would(tracking_store):
    """The quick recipe has no schedule: its whole epochs train alike however long the run."""
    result = CliRunner().invoke(cli, ["train", *SMALL, "--budget", "8s"])
    assert result.exit_code == 0, result.output
    [run] = mlflow.search_runs(output_format="list")
    params, metrics = run.data.params, run.data.metrics
    epochs = int(metrics["planned_epochs"])
    assert params["budget"] == "8s" and float(params["budget_s"]) == 8 and int(params["epochs"]) == epochs
    assert len(per_epoch(tracking_store, run.info.run_id, "test_acc")) == epochs >= 2
    # the most steps whose predicted time, with the probe and an evaluation after each epoch, fills the budget's share
    planned = (metrics["probe_s"] + metrics["planned_steps"] * metrics["planned_step_s"]
               + epochs * metrics["planned_eval_s"])
    assert metrics["planned_s"] == pytest.approx(planned) and metrics["planned_s"] <= 8 * FILL
    assert 8 * FILL < metrics["planned_s"] + metrics["planned_step_s"] + metrics["planned_eval_s"]
    steps = per_epoch(tracking_store, run.info.run_id, "train_steps")
    assert sum(steps) == metrics["planned_steps"] and steps[:-1] == [12] * (epochs - 1) and 1 <= steps[-1] <= 12
    assert 0 < metrics["probe_s"] < metrics["budget_wall_s"]
    assert f"-> {epochs} epoch(s)" in result.output and "budget: trained and evaluated in " in result.output

    fixed = CliRunner().invoke(cli, ["train", *SMALL, "--epochs", str(epochs - 1)])
    assert fixed.exit_code == 0, fixed.output
    other = next(r for r in mlflow.search_runs(output_format="list") if r.info.run_id != run.info.run_id)
    assert other.data.params["budget"] == "None" and "budget_s" not in other.data.params
    # the probe trained a copy and restored every random generator: the whole epochs are the same, step for step
    for key in ("train_loss", "train_acc", "val_acc"):
        assert per_epoch(tracking_store, other.info.run_id, key) == per_epoch(tracking_store, run.info.run_id, key)[:-1]


def test_a_budget_too_short_for_one_epoch_is_refused_before_a_run_exists(tracking_store):
    result = CliRunner().invoke(cli, ["train", "vgg", "--recipe", "quick", "--resize", "32", "--budget", "1s"])
    assert result.exit_code == 1
    line = result.output.splitlines()[-1]  # after MLflow creating the new store's tables
    assert line.startswith("Error: budget 1s (1 s) is too short for one epoch of vgg on this machine: one epoch "
                           "with its evaluation takes about ")
    assert ", and the probe took " in line and "; give at least " in line
    assert not mlflow.search_runs(output_format="list", search_all_experiments=True)


@pytest.mark.parametrize("args, message", [
    (["--budget", "10"], "Error: bad budget '10'; give a positive number of seconds, minutes or hours: 90s, 10m, 1h"),
    (["--budget", "0s"], "Error: bad budget '0s'; give a positive number of seconds, minutes or hours: 90s, 10m, 1h"),
    (["--budget", "5m", "--epochs", "3"],
     "Error: give budget or epochs, not both: the budget (5m) sets the number of epochs"),
])
def test_bad_budgets_are_one_line_errors(args, message, tracking_store):
    result = CliRunner().invoke(cli, ["train", "vgg", *args])
    assert result.exit_code == 1 and result.output == message + "\n"


def test_an_explicit_epochs_turns_a_recipes_budget_off():
    registry = get_registry()
    assert check_request(registry, "vgg", recipe="fast").hyper.budget == "10m"
    assert check_request(registry, "vgg", recipe="fast", epochs=2).hyper.budget is None
    with pytest.raises(ConvzooError, match="give budget or epochs, not both"):
        check_request(registry, "vgg", recipe="fast", epochs=2, budget="1m")
