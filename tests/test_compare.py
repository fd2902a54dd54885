"""The comparison project end to end: real `mlflow run projects/compare`, a forced failure, and a continued parent."""
import os
import subprocess
import sys
from pathlib import Path

import mlflow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# resize 50 is too small for alexnet (it needs 67) and fine for vgg: one child fails, the other trains
SHORT = ["recipe=quick", "epochs=1", "batch_size=16", "limit_train_batches=2", "limit_eval_batches=2", "resize=50"]


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
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "comparison")}
    assert artifacts == {"comparison/comparison.csv", "comparison/comparison.md", "comparison/failures.json",
                         "comparison/test_acc_per_epoch.png", "comparison/accuracy_vs_speed.png"}
    table = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/comparison/comparison.csv").splitlines()
    assert table[0] == ("architecture,plugin,params,input_size,epochs,train_acc,test_acc,examples_per_sec,"
                        "wall_time_s,onnx_parity")
    assert table[1].startswith("vgg,convzoo-vgg 0.1.0,") and table[1].endswith(",passed") and len(table) == 2

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
    assert parent.data.params == {"archs": "alexnet,nin", "recipe": "auto", "resize": "50", "epochs": "1"}
