"""Runs sized to a time budget: the plan the probe makes, what the run logs, that the probe leaves the run as
``--epochs PLANNED`` would train it, and the bad budgets. (The overrun against the wall clock is measured by
``make bench-budget``, not here.)"""
import re
import time

import mlflow
import pytest
import torch
from click.testing import CliRunner

from convzoo.cli.app import cli
from convzoo.errors import ConvzooError
from convzoo.recipes import budget_seconds
from convzoo.registry.plugins import get_registry
from convzoo.data.fashion_mnist import load
from convzoo.data.pipeline import BatchLoader
from convzoo.recipes import Recipe
from convzoo.runs.budget import FILL, BudgetGuard, BudgetPlan
from convzoo.runs.settings import check_request
from convzoo.training.callbacks import Callback
from convzoo.training.trainer import Trainer

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
    plans = per_epoch(tracking_store, run.info.run_id, "planned_epochs")  # the probe's, then each epoch's re-plan
    epochs, first_steps = int(plans[0]), per_epoch(tracking_store, run.info.run_id, "planned_steps")[0]
    assert params["budget"] == "8s" and float(params["budget_s"]) == 8 and int(params["epochs"]) == epochs >= 3
    # the most steps whose predicted time, with the probe and each epoch's end (evaluation, checkpoint), fills the
    # budget's share
    planned = (metrics["probe_s"] + first_steps * metrics["planned_step_s"]
               + epochs * metrics["planned_epoch_end_s"])
    assert metrics["planned_s"] == pytest.approx(planned) and metrics["planned_s"] <= 8 * FILL
    assert 8 * FILL < metrics["planned_s"] + metrics["planned_step_s"] + metrics["planned_epoch_end_s"]
    assert f"-> {epochs} epoch(s)" in result.output and "budget: trained and evaluated in " in result.output
    assert 0 < metrics["probe_s"] < metrics["budget_wall_s"]
    steps = per_epoch(tracking_store, run.info.run_id, "train_steps")
    assert steps[:-1] == [12] * (len(steps) - 1) and 1 <= steps[-1] <= 12
    last_plan = int(metrics["planned_epochs"])
    assert run.data.tags["convzoo.epochs"] == str(last_plan)
    if "s left, ending epoch" in result.output:  # the guard: this machine ran slower than its last plan said
        assert len(steps) <= last_plan and sum(steps) <= metrics["planned_steps"]
    else:
        assert len(steps) == last_plan and sum(steps) == metrics["planned_steps"]

    fixed = CliRunner().invoke(cli, ["train", *SMALL, "--epochs", str(len(steps) - 1)])
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


def test_the_guard_ends_the_epoch_in_progress_when_the_clock_runs_out():
    """A machine slower than its probe: the plan said 3 epochs, but 2 s after the plan was made only 1.5 s of the
    budget are left, less than an evaluation (1 s) and a step (1 s)."""
    fashion = load()
    train, test = (BatchLoader(images, labels, 16, 28, torch.device("cpu"), shuffle=False, limit_batches=5)
                   for images, labels in ((fashion.train_images, fashion.train_labels),
                                          (fashion.test_images, fashion.test_labels)))
    plan = BudgetPlan(budget_s=3.5, epochs=3, steps=15, last_epoch_steps=0, step_s=1.0, epoch_end_s=1.0, end_s=0.0,
                      probe_s=0.1, started=time.perf_counter() - 2)
    said = []
    trainer = Trainer(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), train, test,
                      Recipe(epochs=3, batch_size=16, lr=0.01), "fp32", callbacks=[BudgetGuard(plan, said.append)])
    trainer.fit()
    [only] = trainer.state.history  # the first epoch, cut after its first step and evaluated; no second
    assert only.train_steps == 1 and 0 < only.test_acc <= 1 and trainer.finished
    [line] = said
    assert re.fullmatch(r"budget: -?\d+\.\d s left, ending epoch 1 after step 1 of 5 \(this machine ran slower than "
                        r"the probe measured\)", line)


def test_each_epoch_plans_the_rest_again_so_the_schedule_ends_with_the_budget():
    """A probe that said steps take 2 ms, where each takes over 20 ms: the first plan is many epochs too long. After
    the first epoch the guard plans again from the steps measured, and the cosine schedule anneals to its end
    within the budget instead of being cut near its start."""
    fashion = load()
    train, test = (BatchLoader(images, labels, 16, 28, torch.device("cpu"), shuffle=False, limit_batches=5)
                   for images, labels in ((fashion.train_images, fashion.train_labels),
                                          (fashion.test_images, fashion.test_labels)))
    plan = BudgetPlan(budget_s=1.5, epochs=60, steps=300, last_epoch_steps=0, step_s=0.002, epoch_end_s=0.02,
                      end_s=0.0, probe_s=0.0, started=time.perf_counter())

    class SlowSteps(Callback):
        def on_step_end(self, trainer):
            time.sleep(0.02)

    plans = []
    trainer = Trainer(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), train, test,
                      Recipe(epochs=60, batch_size=16, lr=0.01, schedule="cosine"), "fp32",
                      callbacks=[BudgetGuard(plan, print, lambda *plan: plans.append(plan)), SlowSteps()])
    trainer.fit()
    history = trainer.state.history
    assert plans and plans[0][0] == 1 and plans[0][1] < 30  # after epoch 1: at most half the epochs first planned
    assert trainer.hyper.epochs == plans[-1][1] and len(history) <= plans[-1][1]
    assert sum(m.train_steps for m in history) <= plans[-1][3]
    # without the re-plan the guard would have cut the 60-epoch cosine near its start, at about lr 0.0095
    assert history[-1].lr < 0.002 and trainer.finished
