"""The comparison project end to end: real `mlflow run projects/compare`, a forced failure, and a continued parent."""
import csv
import io
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# resize 50 is too small for alexnet (it needs 67) and fine for vgg: one child fails, the other trains, as many
# epochs as an 8-second budget fits (the same wall-clock for every architecture; the probe alone took 4 s on a busy
# 2-core machine, so 4 s was too short)
SHORT = ["recipe=quick", "budget=8s", "batch_size=16", "limit_train_batches=2", "limit_eval_batches=2", "resize=50"]


def mlflow_run(tmp_path, *extra):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    command = [str(BIN / "mlflow"), "run", str(ROOT / "projects" / "compare"), "--env-manager", "local",
               "--experiment-name", "compare", "-P", "archs=vgg,alexnet",
               *[arg for value in SHORT for arg in ("-P", value)], *extra]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)


def test_compare_project_nests_children_records_failures_and_continues(tmp_path):
    first = mlflow_run(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("compare").experiment_id
    [parent] = client.search_runs([experiment], "tags.`convzoo.compare` = 'parent'")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["convzoo.compare.failed"] == "alexnet"
    assert "resize 50 is too small for alexnet" in parent.data.tags["convzoo.compare.failure.alexnet"]
    [child] = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert child.data.tags["convzoo.arch"] == "vgg" and child.info.status == "FINISHED"
    assert child.data.params["budget"] == "8s"
    # the epochs param is the probe's plan; each epoch may plan the rest again, the tag holds the last plan
    assert int(child.data.params["epochs"]) >= 1
    assert int(child.data.tags["convzoo.epochs"]) == child.data.metrics["planned_epochs"] >= 1
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "comparison")}
    assert artifacts == {"comparison/runs.csv", "comparison/comparison.csv", "comparison/comparison.md",
                         "comparison/failures.json", "comparison/test_acc_per_epoch.png",
                         "comparison/accuracy_vs_speed.png"}  # one architecture left: no pair to test
    runs = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/comparison/runs.csv").splitlines()
    assert runs[0] == ("architecture,seed,run_id,plugin,params,input_size,epochs,best_epoch,train_acc,val_acc,"
                       "test_acc,examples_per_sec,train_time_s,wall_time_s,onnx_parity")
    assert runs[1].startswith(f"vgg,0,{child.info.run_id},convzoo-vgg 0.1.0,") and runs[1].endswith(",passed")
    table = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/comparison/comparison.csv").splitlines()
    assert table[0].startswith("architecture,runs,test_acc_mean,test_acc_std,") and len(table) == 2
    assert child.data.tags["convzoo.compare.group"] == "vgg"

    again = mlflow_run(tmp_path, "--run-id", parent.info.run_id)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "vgg: finished earlier in this parent run" in again.stdout
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert [c.info.run_id for c in children] == [child.info.run_id]
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


def test_compare_fails_the_parent_only_when_every_architecture_fails(tmp_path):
    result = subprocess.run([sys.executable, "-m", "convzoo", "compare", "--archs", "alexnet,nin", "--resize", "50",
                             "--epochs", "1", "--limit-train-batches", "1", "--export", "false"],
                            cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: every architecture failed: alexnet: ")
    [parent] = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_runs(
        ["0"], "tags.`convzoo.compare` = 'parent'")
    assert parent.info.status == "FAILED"
    # what the comparison was asked for, so the UI can tell one comparison from another
    assert parent.data.params == {"archs": "alexnet,nin", "recipe": "auto", "resize": "50", "epochs": "1",
                                  "seeds": "1"}


def test_seed_repeats_give_intervals_and_a_significance_that_the_saved_predictions_reproduce(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run([sys.executable, "-m", "convzoo", "compare", "vgg", "nin", "--seeds", "2", "--resize", "67",
                           "--epochs", "1", "--batch-size", "16", "--limit-train-batches", "3",
                           "--limit-eval-batches", "4", "--export", "false"],
                          cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow.MlflowClient(uri)
    [parent] = client.search_runs(["0"], "tags.`convzoo.compare` = 'parent'")
    children = client.search_runs(["0"], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by = {(c.data.tags["convzoo.compare.group"], c.data.params["seed"]): c for c in children}
    assert sorted(by) == [("nin", "0"), ("nin", "1"), ("vgg", "0"), ("vgg", "1")]
    # the same split per seed for every architecture, another one for the other seed
    assert by["vgg", "0"].data.params["val_digest"] == by["nin", "0"].data.params["val_digest"]
    assert by["vgg", "0"].data.params["val_digest"] != by["vgg", "1"].data.params["val_digest"]
    metrics = parent.data.metrics
    for name in ("vgg", "nin"):
        values = [by[name, seed].data.metrics["test_acc"] for seed in ("0", "1")]
        mean, std = statistics.mean(values), statistics.stdev(values)
        assert metrics[f"{name}/test_acc_mean"] == pytest.approx(mean)
        assert metrics[f"{name}/test_acc_std"] == pytest.approx(std)
        assert metrics[f"{name}/test_acc_ci_high"] - mean == pytest.approx(12.7062 * std / math.sqrt(2), abs=1e-6)
        assert {f"{name}/val_acc_mean", f"{name}/train_time_s_mean"} <= set(metrics)
    [row] = csv.DictReader(io.StringIO(mlflow.artifacts.load_text(
        f"{parent.info.artifact_uri}/comparison/significance.csv")))
    # McNemar's exact p-value again, from the predictions the children saved, with a binomial sum of our own
    right = {name: [line.split(",")[1] == line.split(",")[2] for seed in ("0", "1") for line in mlflow.artifacts.load_text(
        f"{by[name, seed].info.artifact_uri}/predictions/test_predictions.csv").splitlines()[1:]] for name in ("vgg", "nin")}
    only_vgg = sum(a and not b for a, b in zip(right["vgg"], right["nin"]))
    only_nin = sum(b and not a for a, b in zip(right["vgg"], right["nin"]))
    discordant = only_vgg + only_nin
    tail = sum(math.comb(discordant, k) for k in range(min(only_vgg, only_nin) + 1)) / 2 ** discordant
    assert (row["a"], row["b"], row["seeds"], row["images"]) == ("vgg", "nin", "2", "64")
    assert (int(row["a_only_right"]), int(row["b_only_right"])) == (only_vgg, only_nin)
    assert float(row["mcnemar_p"]) == pytest.approx(min(1.0, 2 * tail) if discordant else 1.0)
    assert row["test"] == "paired-bootstrap" and float(row["p_holm"]) == float(row["p"])  # one pair: Holm keeps it
    assert f"vgg − nin: {float(row['difference_pts']):+.2f} pts [" in done.stdout
    grouped = subprocess.run([sys.executable, "-m", "convzoo", "runs", "--group-by", "arch"], cwd=tmp_path,
                             capture_output=True, text=True, env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    lines = grouped.stdout.splitlines()
    assert lines[0].split() == ["arch", "runs", "test_acc", "val_acc", "train_time_s"]
    vgg = by["vgg", "0"].data.metrics["test_acc"], by["vgg", "1"].data.metrics["test_acc"]
    assert f"vgg   2     {statistics.mean(vgg):.4f} ± " in grouped.stdout
