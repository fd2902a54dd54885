"""``convzoo lr-find``: the learning-rate range test, a real sweep logged as its own run, and the rule that turns the
curve into a suggestion."""
import math
import os

import mlflow
import pytest
from click.testing import CliRunner

from convzoo.cli.app import cli
from convzoo.studies.lr_find import RangeTest, rate_at


def history(client, run_id, key):
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_lr_find_sweeps_the_rate_exponentially_logs_its_run_and_figure_and_leaves_nothing_behind(tracking_store):
    result = CliRunner().invoke(cli, ["lr-find", "vgg", "--limit-train-batches", "100"])
    assert result.exit_code == 0, result.output
    [run] = mlflow.search_runs(output_format="list")
    client = mlflow.MlflowClient()
    assert run.info.status == "FINISHED" and run.data.tags["convzoo.lr_find"] == "true"
    assert run.data.params["lr_find_steps"] == "200" and run.data.params["recipe_resolved"] == "quick"
    rates = history(client, run.info.run_id, "lr_find_lr")
    losses = history(client, run.info.run_id, "lr_find_loss")
    assert 10 <= len(rates) == len(losses) <= 100  # one epoch's 100 batches at most, fewer if the loss diverged
    assert rates[0] == pytest.approx(1e-7)
    ratios = [later / earlier for earlier, later in zip(rates, rates[1:])]
    assert ratios == pytest.approx([(10 / 1e-7) ** (1 / 99)] * len(ratios))  # exponential over 100 steps
    suggested = run.data.metrics["suggested_lr"]
    assert suggested == pytest.approx(run.data.metrics["lr_turned_up"] / 10)
    assert f"\nsuggested lr {suggested:.3g} (a tenth of the rate where the loss turned up); run " in result.output
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"lr_find.png"}
    # no checkpoint, no model, no recipe change: nothing a later run would pick up
    assert not (os.path.exists("checkpoints") or client.search_logged_models([run.info.experiment_id]))


def test_the_suggestion_is_a_tenth_of_where_the_loss_turned_up():
    rates = [rate_at(step, 9, 1e-4, 1.0) for step in range(9)]
    assert rates[0] == pytest.approx(1e-4) and rates[-1] == pytest.approx(1.0)
    falls_then_rises = RangeTest(rates, [0] * 9, [2.3, 2.2, 1.8, 1.2, 0.9, 0.85, 0.95, 1.6, 3.0], diverged=True)
    assert falls_then_rises.lowest == 5 and falls_then_rises.turned_up == 6
    assert falls_then_rises.suggested_lr == pytest.approx(rates[6] / 10)
    flat_until_it_blows_up = RangeTest(rates, [0] * 9, [2.303, 2.302, 2.3025, 2.302, 2.303, 2.31, 2.5, 4, 9], True)
    assert flat_until_it_blows_up.turned_up == 6  # noise in the flat part is not a turn
    still_falling = RangeTest(rates[:4], [0] * 4, [2.3, 2.0, 1.5, 1.0], diverged=False)
    assert still_falling.suggested_lr == pytest.approx(rates[3] / 10) and math.isfinite(still_falling.suggested_lr)


@pytest.mark.parametrize("args, message", [
    (["--steps", "5"], "Error: --steps must be at least 10 (the sweep's steps), got 5"),
    (["--start-lr", "1", "--end-lr", "0.1"], "Error: the sweep needs 0 < --start-lr < --end-lr, got 1 and 0.1"),
])
def test_a_bad_sweep_is_a_one_line_error_before_a_run_exists(args, message, tracking_store):
    result = CliRunner().invoke(cli, ["lr-find", "vgg", *args])
    assert result.exit_code == 1 and result.output == message + "\n"
    assert not os.path.exists("mlflow.db")
