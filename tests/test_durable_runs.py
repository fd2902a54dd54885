"""Runs that survive: checkpoints, exact resume, signals, stale runs and store faults, each produced for real.

Every test runs the real ``convzoo`` (or ``mlflow run``) in its own process and hits it with the real fault: SIGKILL,
SIGTERM, SIGINT, SIGHUP, a truncated checkpoint, a tracking server that is not there, eight processes on a new store.
``slownet`` (a test plugin) pauses 50 ms per training step, so a kill lands mid-epoch at a known pace.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import psutil
import pytest
import torch
from click.testing import CliRunner
from helpers import COMPARED, convzoo, history, start, status, wait_for_checkpoint

from convzoo.cli.app import cli

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# a validation split and early stopping (whose patience outlasts the run): the resumed run must hold out the same
# images and carry the best epoch and its weights (best.pt) over the kill; AdamW, half an epoch of warm-up into
# cosine (a kill at step 3 lands inside it), gradient clipping, random erasing and mixup / CutMix must carry over
SLOW_RUN = ("--epochs", "2", "--limit-train-batches", "8", "--limit-eval-batches", "2", "--export", "false",
            "--val-fraction", "0.1", "--early-stop", "5", "--optimizer", "adamw", "--weight-decay", "0.05",
            "--schedule", "cosine", "--warmup-epochs", "0.5", "--clip-grad-norm", "0.5", "--mixup-alpha", "0.4",
            "--cutmix-alpha", "1.0", "--mix-prob", "0.7", "--random-erasing", "0.5", "--ema-decay", "0.9",
            "--tta-flip", "true")
EXACT = (*COMPARED, "val_loss", "val_acc", "best_epoch")


@pytest.fixture(scope="module")
def reference(plugin_sites, tmp_path_factory):
    """``reference(precision, *more)``: per-epoch metrics of the same run (``more``: options over SLOW_RUN's) left
    alone, trained once per module."""
    made = {}

    def get(precision, *more):
        if (precision, *more) not in made:
            folder = tmp_path_factory.mktemp(f"reference-{precision}")
            uri = f"sqlite:///{folder / 'mlflow.db'}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("CONVZOO_")}
            env.update(MLFLOW_TRACKING_URI=uri, PYTHONPATH=str(plugin_sites["convzoo-slownet"]))
            done = subprocess.run([sys.executable, "-m", "convzoo", "train", "slownet", *SLOW_RUN, "--precision",
                                   precision, *more], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stdout + done.stderr
            [run] = mlflow.MlflowClient(uri).search_runs(["0"])
            made[precision, *more] = history(uri, run.info.run_id, EXACT)
            assert [step for step, _ in made[precision, *more]["test_acc"]] == [1, 2]
        return made[precision, *more]

    return get


def test_sigkill_mid_epoch_then_resume_is_exact(store, reference):
    """fp32 here; bf16 in the between-epochs and SIGTERM tests."""
    process = start(store, "train", "slownet", *SLOW_RUN, "--precision", "fp32", "--checkpoint-every", "3")
    run_id = wait_for_checkpoint(store, process, 1, 3)
    time.sleep(0.1)  # a couple more steps, lost with the process and trained again after resuming
    process.kill()
    process.wait(timeout=30)
    assert status(store.uri, run_id) == "RUNNING"  # MLflow itself never notices

    time.sleep(3.5)  # the heartbeat (every 0.5 s here) is now older than the 3 s stale limit
    listed = CliRunner().invoke(cli, ["runs"])
    assert [row.split()[-2] for row in listed.output.splitlines() if row.startswith(run_id)] == ["STALE"]
    marked = CliRunner().invoke(cli, ["runs", "--mark-stale"])
    assert f"marked stale run {run_id} KILLED; continue it with: convzoo resume {run_id}" in marked.output
    assert status(store.uri, run_id) == "KILLED"

    resumed = convzoo(store, "resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming run {run_id} from {store.checkpoints / run_id / 'last.pt'}: epoch 1, step " in resumed.stdout
    assert status(store.uri, run_id) == "FINISHED"
    assert history(store.uri, run_id, EXACT) == reference("fp32")
    assert len(mlflow.MlflowClient(store.uri).search_runs(["0"])) == 1  # the same run, no new one
    assert not (store.checkpoints / run_id).exists()  # a finished run's checkpoint lives in the run


def test_sigkill_between_epochs_then_resume_is_exact(store, reference):
    # after its warm-up a constant learning rate: epochs added on resume do not change epoch 2's (a cosine would
    # anneal over the longer run)
    constant = ("--schedule", "none")
    process = start(store, "train", "slownet", *SLOW_RUN, "--precision", "bf16", "--checkpoint-every", "0", *constant)
    run_id = wait_for_checkpoint(store, process, 2, 0)
    process.kill()
    process.wait(timeout=30)
    assert status(store.uri, run_id) == "RUNNING"
    resumed = convzoo(store, "resume", run_id, "--epochs", "3")  # its process is gone: no need to wait for STALE
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "epoch 2, step 0/8" in resumed.stdout
    trained = history(store.uri, run_id, EXACT[:-1])  # a third epoch may be the best one
    assert {name: values[:2] for name, values in trained.items()} == {
        name: reference("bf16", *constant)[name] for name in EXACT[:-1]}
    assert [step for step, _ in trained["test_acc"]] == [1, 2, 3]
    [row] = [line.split() for line in CliRunner().invoke(cli, ["runs"]).output.splitlines() if line.startswith(run_id)]
    assert (row[3], row[-2]) == ("3", "FINISHED")


def test_sigterm_stops_with_a_checkpoint_and_mlflow_run_resumes_it_exactly(store, reference):
    process = start(store, "train", "slownet", *SLOW_RUN, "--precision", "bf16", "--checkpoint-every", "3")
    run_id = wait_for_checkpoint(store, process, 1, 3)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 143, output
    assert output.splitlines()[-1] == (f"stopped by SIGTERM: run {run_id} ended KILLED, checkpoint saved; continue "
                                       f"it with: convzoo resume {run_id}")
    assert status(store.uri, run_id) == "KILLED"
    logged = mlflow.MlflowClient(store.uri).list_artifacts(run_id, "checkpoints")
    assert [artifact.path for artifact in logged] == ["checkpoints/last.pt"]

    refused = convzoo(store, "train", "--resume", run_id, "--lr", "0.5")
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == ("Error: cannot change lr on resume (the run has 0.01, got 0.5); only "
                                               "epochs, data_dir, export, register_as, checkpoint_every, "
                                               "checkpoint_dir may change")
    assert status(store.uri, run_id) == "KILLED"

    command = ["run", str(ROOT), "-P", "arch=slownet", "-P", "precision=bf16", "-P", f"resume={run_id}",
               "--env-manager", "local"]
    resumed = subprocess.run([str(BIN / "mlflow"), *command], cwd=store.folder, env=store.env, text=True,
                             capture_output=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert status(store.uri, run_id) == "FINISHED"
    assert history(store.uri, run_id, EXACT) == reference("bf16")
    # `mlflow run` makes a run of its own before convzoo starts: it only points at the resumed one
    [shell] = [run for run in mlflow.MlflowClient(store.uri).search_runs(["0"]) if run.info.run_id != run_id]
    assert shell.data.tags["convzoo.resumed_run"] == run_id and "convzoo.arch" not in shell.data.tags


def test_sighup_checkpoints_and_a_truncated_checkpoint_is_a_one_line_error(store):
    process = start(store, "train", "slownet", *SLOW_RUN, "--checkpoint-every", "3")
    run_id = wait_for_checkpoint(store, process, 1, 3)
    process.send_signal(signal.SIGHUP)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 129, output
    assert status(store.uri, run_id) == "KILLED"

    path = store.checkpoints / run_id / "last.pt"
    path.write_bytes(path.read_bytes()[:1000])
    broken = convzoo(store, "resume", run_id)
    assert broken.returncode == 1
    last = broken.stderr.splitlines()[-1]
    assert last.startswith(f"Error: checkpoint {path} is corrupt or truncated (") and broken.stdout == ""
    assert status(store.uri, run_id) == "KILLED"


def test_a_second_ctrl_c_stops_at_once_and_the_run_ends_killed(store):
    process = start(store, "train", "slownet", *SLOW_RUN, "--checkpoint-every", "3", "--option", "delay=0.5")
    run_id = wait_for_checkpoint(store, process, 1, 3)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)  # inside the next 0.5 s step
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "SIGINT received: stopping after this step" in output
    assert output.splitlines()[-1] == "interrupted at once: the run ended KILLED at its last checkpoint"
    assert status(store.uri, run_id) == "KILLED"
    loop = torch.load(store.checkpoints / run_id / "last.pt", weights_only=True)["trainer"]["loop"]
    assert (loop["epoch"], loop["step"]) == (1, 3)  # no checkpoint of a step cut in half


def test_sigterm_to_mlflow_run_reaches_the_training_and_leaves_no_process(store):
    command = ["run", str(ROOT), "-P", "arch=slownet", "-P", "epochs=2", "-P", "limit_train_batches=40",
               "-P", "export=false", "-P", "checkpoint_every=3", "--env-manager", "local"]
    launcher = start(store, *command, command=(str(BIN / "mlflow"),))
    run_id = wait_for_checkpoint(store, launcher, 1, 3)
    children = psutil.Process(launcher.pid).children(recursive=True)
    assert children
    launcher.send_signal(signal.SIGTERM)
    launcher.wait(timeout=30)
    gone, alive = psutil.wait_procs(children, timeout=60)
    assert alive == []
    assert status(store.uri, run_id) == "KILLED"
    assert (store.checkpoints / run_id / "last.pt").exists()


@pytest.mark.parametrize("where", ["sqlite", "server"])
def test_processes_started_at_once_on_a_new_store_all_finish(store, mlflow_server, where, count=4):
    """Four on a new SQLite file, where the schema's creation races (without convzoo's lock three of four crashed in
    MLflow's migration); a server creates its store alone, so four concurrent clients show it serves them all."""
    if where == "server":
        store.uri = store.env["MLFLOW_TRACKING_URI"] = mlflow_server().uri
    processes = [start(store, "train", "slownet", "--epochs", "1", "--limit-train-batches", "2",
                       "--limit-eval-batches", "1", "--export", "false", "--option", "delay=0", "--seed", str(seed))
                 for seed in range(count)]
    for process in processes:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output
    runs = mlflow.MlflowClient(store.uri).search_runs(["0"])
    assert len(runs) == count and {run.info.status for run in runs} == {"FINISHED"}
    assert sorted(run.data.params["seed"] for run in runs) == [str(seed) for seed in range(count)]
    assert all(set(COMPARED) <= set(run.data.metrics) for run in runs)
