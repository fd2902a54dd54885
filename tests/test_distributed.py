"""Data-parallel training for real: 2 processes (gloo) on this CPU, started by ``convzoo train --nproc 2`` or by
plain torchrun, against the same run in one process; SIGTERM to the launcher and a crash in rank 1."""
import os
import signal
import subprocess
import sys
import time

import mlflow
import psutil
import pytest
from click.testing import CliRunner
from helpers import COMPARED, convzoo, history, start, status, wait_for_checkpoint

from convzoo.cli.app import cli

TINY_RUN = ("tinynet", "--precision", "fp32", "--epochs", "2", "--batch-size", "32", "--limit-train-batches", "6",
            "--limit-eval-batches", "3", "--export", "false")
SLOW_RUN = ("slownet", "--precision", "fp32", "--epochs", "2", "--limit-train-batches", "8", "--limit-eval-batches",
            "2", "--export", "false", "--checkpoint-every", "3")


@pytest.fixture
def world_store(store, plugin_sites):
    """The ``store`` fixture with the tinynet plugin (no dropout: runs at 1 and 2 processes can be compared) too."""
    store.env["PYTHONPATH"] = os.pathsep.join(str(plugin_sites[name]) for name in ("convzoo-slownet", "convzoo-tinynet"))
    return store


def only_run(uri):
    [run] = mlflow.MlflowClient(uri).search_runs(["0"])
    return run


def metric_history(uri, run_id, name):
    return [m.value for m in sorted(mlflow.MlflowClient(uri).get_metric_history(run_id, name), key=lambda m: m.step)]


def test_two_processes_make_one_run_that_matches_one_process(world_store, tmp_path):
    two = convzoo(world_store, "train", *TINY_RUN, "--nproc", "2")
    assert two.returncode == 0, two.stdout + two.stderr
    assert "2 processes x 1 thread(s) (2 on this machine's" in two.stdout
    assert "backend gloo: each takes 16 of every 32-image batch" in two.stdout
    run = only_run(world_store.uri)  # exactly one run: rank 1 never talked to MLflow
    assert run.info.status == "FINISHED"
    assert (run.data.tags["convzoo.world_size"], run.data.tags["convzoo.backend"]) == ("2", "gloo")
    assert (run.data.params["world_size"], run.data.params["per_rank_batch_size"]) == ("2", "16")
    assert two.stdout.count("epoch 1, loss") == 1  # only rank 0 prints

    one_store = tmp_path / "one"
    one_store.mkdir()
    env = {**world_store.env, "MLFLOW_TRACKING_URI": f"sqlite:///{one_store / 'mlflow.db'}"}
    one = subprocess.run([sys.executable, "-m", "convzoo", "train", *TINY_RUN], cwd=one_store, env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stdout + one.stderr
    single = only_run(env["MLFLOW_TRACKING_URI"])
    assert (single.data.tags["convzoo.world_size"], single.data.params["per_rank_batch_size"]) == ("1", "32")

    examples = metric_history(world_store.uri, run.info.run_id, "train_examples")
    assert examples == metric_history(env["MLFLOW_TRACKING_URI"], single.info.run_id, "train_examples") == [192, 192]
    # Not bit-exact: each rank's gradient is summed over 16 images and the two are averaged by the all-reduce, where
    # one process sums 32 at once (float addition in another order), and oneDNN picks kernels by batch size.
    for name in COMPARED:
        ours = metric_history(world_store.uri, run.info.run_id, name)
        theirs = metric_history(env["MLFLOW_TRACKING_URI"], single.info.run_id, name)
        assert ours == pytest.approx(theirs, abs=1e-4), name


def test_plain_torchrun_and_sigterm_to_the_launcher_then_exact_resume(world_store, tmp_path):
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    env = {**world_store.env, "MLFLOW_TRACKING_URI": f"sqlite:///{reference_dir / 'mlflow.db'}",
           "CONVZOO_CHECKPOINT_DIR": str(reference_dir / "checkpoints")}
    untouched = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                                "-m", "convzoo", "train", *SLOW_RUN], cwd=reference_dir, env=env,
                               capture_output=True, text=True, timeout=300)
    assert untouched.returncode == 0, untouched.stdout + untouched.stderr
    reference = only_run(env["MLFLOW_TRACKING_URI"])
    assert reference.data.tags["convzoo.world_size"] == "2"

    launcher = start(world_store, "train", *SLOW_RUN, "--nproc", "2")
    run_id = wait_for_checkpoint(world_store, launcher, 1, 6)
    launcher.send_signal(signal.SIGTERM)
    output = launcher.communicate(timeout=60)[0]
    assert launcher.returncode == 128 + signal.SIGTERM, output
    assert (f"stopped by SIGTERM: run {run_id} ended KILLED, checkpoint saved; continue it with: "
            f"convzoo resume {run_id} --nproc 2") in output
    assert status(world_store.uri, run_id) == "KILLED"

    resumed = convzoo(world_store, "resume", run_id, "--nproc", "2")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert status(world_store.uri, run_id) == "FINISHED"
    # the same world size resumes bit for bit: every rank's dropout stream and the summed running totals are saved
    assert history(world_store.uri, run_id) == history(env["MLFLOW_TRACKING_URI"], reference.info.run_id)


def test_a_crash_in_rank_1_fails_the_run_within_60_s_and_it_resumes_in_one_process(world_store):
    began = time.monotonic()
    crashed = convzoo(world_store, "train", *SLOW_RUN, "--checkpoint-every", "2", "--option", "crash_on_rank=1",
                      "--nproc", "2", timeout=120)
    took = time.monotonic() - began
    assert crashed.returncode == 1, crashed.stdout + crashed.stderr
    run = only_run(world_store.uri)
    assert run.info.status == "FAILED"
    assert took < 60
    errors = [line for line in (crashed.stdout + crashed.stderr).splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: rank 1 failed: RuntimeError: rank 1 crashed on purpose; run {run.info.run_id} ended "
                      f"FAILED"]

    # its checkpoint (step 2, by rank 0) continues in one process: the global batch stays, the rest is not bit-exact
    resumed = convzoo(world_store, "resume", run.info.run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "its checkpoint was made by 2 process(es), this is 1: the global batch stays 32" in resumed.stdout
    assert status(world_store.uri, run.info.run_id) == "FINISHED"
    assert mlflow.MlflowClient(world_store.uri).get_run(run.info.run_id).data.tags["convzoo.world_size"] == "1"
    assert metric_history(world_store.uri, run.info.run_id, "train_examples") == [256, 256]


def test_a_batch_that_does_not_divide_among_the_processes_is_one_line(tracking_store):
    result = CliRunner().invoke(cli, ["train", "alexnet", "--batch-size", "63", "--nproc", "2"])
    assert result.exit_code == 1
    assert result.output == ("Error: batch_size 63 does not divide among 2 processes; the batch size is the global "
                             "batch (each process takes batch_size/2): use a multiple of 2\n")
    assert mlflow.MlflowClient().search_runs(["0"]) == []


def test_nproc_under_torchrun_is_refused(tracking_store, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(cli, ["train", "alexnet", "--nproc", "2"])
    assert (result.exit_code, result.output) == (1, "Error: --nproc starts torchrun itself; under torchrun, leave "
                                                    "--nproc out\n")


def test_a_rank_killed_outright_fails_the_run_and_the_launcher_names_it(world_store):
    launcher = start(world_store, "train", *SLOW_RUN, "--nproc", "2")
    run_id = wait_for_checkpoint(world_store, launcher, 1, 3)
    [rank_1] = [child for child in psutil.Process(launcher.pid).children(recursive=True)
                if child.environ().get("RANK") == "1"]
    rank_1.kill()  # SIGKILL: the rank can say nothing
    output = launcher.communicate(timeout=60)[0]
    assert launcher.returncode == 1, output
    assert status(world_store.uri, run_id) == "FAILED"
    rank_0, launcher_line = sorted(line for line in output.splitlines() if line.startswith("Error:"))
    assert rank_0.startswith("Error: another rank stopped without saying why (killed?): RuntimeError: ")
    assert rank_0.endswith(f"; run {run_id} ended FAILED")
    assert launcher_line == (f"Error: rank 1 was killed by SIGKILL (pid {rank_1.pid}); `convzoo runs` shows how its "
                             f"run ended")
