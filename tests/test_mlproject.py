"""The MLflow Project end to end: real ``mlflow run`` of the repository's MLproject."""
import os
import subprocess
import sys
from pathlib import Path

import mlflow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_mlflow_run_main_entry_point_trains_and_tracks(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    # two processes (torchrun, gloo): one run, written by rank 0, with the model, the ONNX export and its parity check
    # VGG/8 at 32 px, its smallest input: parity still covers all 10,000 test images, in seconds
    overrides = ["epochs=1", "batch_size=8", "limit_train_batches=2", "limit_eval_batches=2", "lr=5e-4", "resize=32",
                 "nproc=2"]
    command = [str(BIN / "mlflow"), "run", str(ROOT), "-P", "arch=vgg", "--env-manager", "local",
               "--experiment-name", "e2e", *[arg for value in overrides for arg in ("-P", value)]]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("e2e").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.entryPoint"] == "main"
    assert run.data.tags["mlflow.project.backend"] == "local"
    assert run.data.tags["convzoo.recipe"] == "quick"
    assert run.info.run_name == "vgg-fashion-mnist-quick"  # MLflow's random name replaced
    assert (run.data.tags["convzoo.world_size"], run.data.params["per_rank_batch_size"]) == ("2", "4")
    params = run.data.params
    # what `mlflow run` logged, in the user's spelling, and what convzoo added from the recipe
    assert (params["arch"], params["recipe"], params["lr"], params["epochs"]) == ("vgg", "auto", "5e-4", "1")
    assert (params["resize"], params["recipe_resolved"], params["optimizer"]) == ("32", "quick", "adam")
    assert len(client.get_metric_history(run.info.run_id, "test_acc")) == 1
    logged = client.search_logged_models([run.info.experiment_id], f"source_run_id = '{run.info.run_id}'")
    assert {model.name for model in logged} == {"model", "onnx-model"}
    assert run.data.tags["parity"] == "passed"
