"""``convzoo sweep`` and ``convzoo compare --study``: real Optuna studies in SQLite and PostgreSQL, real worker
processes (one SIGKILLed, one sent SIGTERM), real MLflow stores and a real PostgreSQL-backed ``convzoo server``."""
import contextlib
import csv
import io
import json
import os
import signal
import time

import mlflow
import optuna
import pytest
import torch
from click.testing import CliRunner
from helpers import convzoo, start

from convzoo.cli.app import cli
from convzoo.studies.space import parse_param

TINY = ("--epochs", "2", "--limit-train-batches", "3", "--limit-eval-batches", "2", "--resize", "32",
        "--batch-size", "16")
# slownet pauses 0.05 s a step: 20 steps an epoch, a checkpoint every 5, so a kill lands mid-trial at a known pace
SLOW = ("--epochs", "2", "--limit-train-batches", "20", "--limit-eval-batches", "2", "--checkpoint-every", "5")
FAST_HEARTBEATS = {"CONVZOO_TRIAL_HEARTBEAT_SECONDS": "1", "CONVZOO_TRIAL_GRACE_SECONDS": "3", "OMP_NUM_THREADS": "1"}


def refused(monkeypatch, tmp_path, *args, **env):
    """``convzoo ARGS`` in this process, on a store in ``tmp_path``: for errors that come before any study or run."""
    for name, value in {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db", **env}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 1, result.output
    return result.stderr.strip().splitlines()


def children(client, parent_id):
    return client.search_runs(["0"], f"tags.mlflow.parentRunId = '{parent_id}'")


def the_parent(client):
    [parent] = client.search_runs(["0"], "tags.`convzoo.sweep` = 'parent'")
    return parent


def wait_for_trial_checkpoint(store, pid, step, timeout=180):
    """The run id of the first checkpoint that process ``pid`` wrote at ``step`` or later of an epoch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in store.checkpoints.glob("*/last.pt"):
            try:
                state = torch.load(path, weights_only=True)
            except Exception:  # being replaced at this moment
                continue
            if state["pid"] == pid and state["trainer"]["loop"]["step"] >= step:
                return path.parent.name
        time.sleep(0.05)
    raise AssertionError(f"process {pid} wrote no checkpoint at step {step}")


@pytest.mark.parametrize("spec, message", [
    ("lr=loguniform:1e-4", "unknown KIND 'loguniform' or wrong number of values"),
    ("learning_rate=uniform:0:1", "unknown NAME 'learning_rate'"),
    ("batch_size=choice:32,big", "'big' is not of type int"),
    ("lr=loguniform:0:1e-2", "needs LOW < HIGH, LOW > 0"),
    ("lr=int:1:3", "lr takes float values, not integers"),
])
def test_a_bad_param_spec_is_a_one_line_error_naming_the_forms(monkeypatch, tmp_path, spec, message):
    [line] = refused(monkeypatch, tmp_path, "sweep", "vgg", "--param", spec)
    assert line == (f"Error: bad --param {spec!r} ({message}); use NAME=loguniform:LOW:HIGH or NAME=uniform:LOW:HIGH "
                    f"or NAME=int:LOW:HIGH[:STEP] or NAME=choice:A,B,..., with NAME one of: epochs, batch_size, lr, "
                    f"budget, resize, optimizer, momentum, weight_decay, schedule, warmup_epochs, random_erasing, "
                    f"mixup_alpha, cutmix_alpha, mix_prob, ema_decay, tta_flip, clip_grad_norm, augment, flip_shift, label_smoothing, "
                    f"target_acc, val_fraction, early_stop, early_stop_metric, min_delta, seed, option=KEY")
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "optuna.db").exists()


@pytest.mark.parametrize("command", [("sweep", "vgg", "--param", "lr=uniform:0.001:0.01"),
                                     ("compare", "--archs", "vgg", "--study", "grid")])
def test_a_study_under_mlflow_run_is_refused(monkeypatch, tmp_path, command):
    assert refused(monkeypatch, tmp_path, *command, MLFLOW_RUN_ID="0" * 32)[-1] == (
        f"Error: convzoo {command[0]} with a study makes its own parent run; run it outside `mlflow run`")


def test_a_study_storage_that_is_down_is_a_one_line_error_without_a_password(run_convzoo, tmp_path):
    from helpers import free_port

    url = f"postgresql://optuna:hidden-secret@127.0.0.1:{free_port()}/optuna"
    result = run_convzoo("sweep", "vgg", "--param", "lr=uniform:0.001:0.01", "--storage", url,
                         env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"})
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: cannot open the study storage {url.replace('hidden-secret', '***')}: ")
    assert "hidden-secret" not in result.stdout + result.stderr
    assert mlflow.MlflowClient(f"sqlite:///{tmp_path}/m.db").search_runs(["0"]) == []


def test_params_suggest_typed_values_from_a_real_trial():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    lr, batch, resize, ratio = (parse_param(spec).suggest(trial) for spec in (
        "lr=loguniform:1e-4:1e-2", "batch_size=choice:32,64,128", "resize=int:64:128:16", "option=ratio=choice:4,8"))
    assert 1e-4 <= lr <= 1e-2 and batch in (32, 64, 128) and resize in range(64, 129, 16) and ratio in (4, 8)
    assert set(trial.params) == {"lr", "batch_size", "resize", "option.ratio"}


@pytest.mark.parametrize("args, message", [
    (("--param", "option=width=choice:4,8"), "unknown option 'width' for vgg; allowed: ratio"),
    (("--param", "lr=uniform:0.1:0.2", "--metric", "accuracy"),
     "unknown metric 'accuracy'; choose one of: train_loss, train_acc, epoch_time, examples_per_sec, lr, "
     "train_steps, train_examples, val_loss, val_acc"),
    (("--param", "lr=uniform:0.1:0.2", "--metric", "test_acc"),
     "--metric test_acc would choose on the test set, and a figure chosen on it is no longer a test result; a sweep "
     "optimises and prunes on validation: use val_acc or val_loss (every trial still logs its test figures)"),
    (("--param", "lr=uniform:0.1:0.2", "--recipe", "seed"),
     "--metric val_acc needs a validation split, and recipe seed with val_fraction 0 holds out none; give "
     "--val-fraction in (0, 1), e.g. 0.0833"),
    (("--param", "lr=uniform:0.1:0.2", "--pruner", "hyperband"),
     "unknown pruner 'hyperband'; choose median, median:N (N trials before pruning starts) or none"),
    (("--param", "lr=uniform:0.1:0.2", "--trials", "0"), "--trials must be at least 1, got 0"),
    ((), "a sweep needs at least one --param, e.g. --param lr=loguniform:1e-4:1e-2"),
])
def test_bad_sweep_settings_are_one_line_errors_before_any_study(monkeypatch, tmp_path, args, message):
    assert refused(monkeypatch, tmp_path, "sweep", "vgg", *args) == [f"Error: {message}"]
    assert not (tmp_path / "optuna.db").exists()


def test_a_sweep_nests_its_trials_prunes_summarises_and_continues(store):
    sweep = ("sweep", "vgg", "--param", "lr=loguniform:1e-4:3e-1", "--param", "batch_size=choice:8,16",
             "--pruner", "median:1", "--sampler-seed", "3", *TINY)
    first = convzoo(store, *sweep, "--trials", "4")
    assert first.returncode == 0, first.stdout + first.stderr
    client = mlflow.MlflowClient(store.uri)
    parent = the_parent(client)
    study = optuna.load_study(study_name="sweep-vgg", storage=f"sqlite:///{store.folder / 'optuna.db'}")
    states = [trial.state for trial in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) + states.count(optuna.trial.TrialState.PRUNED) == 4
    assert optuna.trial.TrialState.PRUNED in states  # lr up to 0.3 sinks some trials below the median
    runs = children(client, parent.info.run_id)
    assert len(runs) == 4 and {run.data.tags["convzoo.sweep.trial"] for run in runs} == {"0", "1", "2", "3"}
    for run, trial in ((run, study.trials[int(run.data.tags["convzoo.sweep.trial"])]) for run in runs):
        assert run.data.tags["convzoo.sweep.study"] == "sweep-vgg" and trial.user_attrs["run_id"] == run.info.run_id
        assert run.data.params["lr"] == str(trial.params["lr"]) and run.info.run_name.startswith(
            f"vgg-quick-t{trial.number} lr=")
        if trial.state == optuna.trial.TrialState.PRUNED:
            assert run.info.status == "KILLED" and run.data.tags["convzoo.sweep.pruned"].startswith("pruned after")
            assert not (store.checkpoints / run.info.run_id).exists()
        else:
            assert run.info.status == "FINISHED" and "convzoo.sweep.pruned" not in run.data.tags
    assert parent.info.status == "FINISHED"
    assert parent.data.params["sweep.param.lr"] == "loguniform:0.0001:0.3" and parent.data.params["sweep.trials"] == "4"
    # chosen on validation (the default metric); the best trial's test accuracy is reported beside it
    assert parent.data.params["sweep.metric"] == "val_acc" and parent.data.metrics["best_val_acc"] == study.best_value
    best = client.get_run(parent.data.tags["convzoo.sweep.best_run"])
    assert best.data.tags["convzoo.sweep.best"] == "true" and best.data.metrics["val_acc"] == study.best_value
    assert parent.data.metrics["best_trial_test_acc"] == best.data.metrics["test_acc"]
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")} >= {
        "sweep/trials.csv", "sweep/best.json", "sweep/optimization_history.png"}
    table = list(csv.DictReader(io.StringIO(mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/sweep/trials.csv"))))
    assert [row["trial"] for row in table] == ["0", "1", "2", "3"]
    for row, trial in zip(table, study.trials):
        assert row["state"] == trial.state.name and row["run_id"] == trial.user_attrs["run_id"]
        assert json.loads(row["params"]) == trial.params and row["error"] == ""
    listed = convzoo(store, "runs")
    # chosen on val_acc, listed with the best trial's test accuracy
    assert f"{parent.info.run_id}  vgg sweep (best)  quick   2       {best.data.metrics['test_acc']:.4f}" in listed.stdout

    more = convzoo(store, *sweep, "--trials", "6")
    assert more.returncode == 0, more.stdout + more.stderr
    assert "study sweep-vgg (joined)" in more.stdout and the_parent(client).info.run_id == parent.info.run_id
    assert len(children(client, parent.info.run_id)) == 6

    changed = convzoo(store, *sweep, "--trials", "6", "--seed", "1")
    assert changed.returncode == 1
    assert changed.stderr.strip().splitlines()[-1] == (
        "Error: study 'sweep-vgg' was started with seed=0, not 1; use the same settings to continue it, or another "
        "--study")


@pytest.mark.postgres
def test_two_workers_on_postgres_share_one_study_and_survive_a_sigkill(store, postgres, mlflow_server):
    server = mlflow_server(backend=postgres.create_database("tracking_two_workers"))
    storage = postgres.create_database("optuna_two_workers")
    store.env.update(FAST_HEARTBEATS, MLFLOW_TRACKING_URI=server.uri)
    command = ("sweep", "slownet", "--param", "lr=loguniform:1e-3:1e-1", "--trials", "6", "--pruner", "none",
               "--study", "team", "--storage", storage, *SLOW, "--val-fraction", "0.1")  # its seed recipe has none
    first, second = start(store, *command), start(store, *command)
    killed_run = wait_for_trial_checkpoint(store, first.pid, 5)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    assert "redacted" not in output and postgres.PASSWORD not in output and "convzoo:***@" in output

    study = optuna.load_study(study_name="team", storage=storage)
    finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(finished) == 6
    client = mlflow.MlflowClient(server.uri)
    parent = the_parent(client)
    runs = children(client, parent.info.run_id)
    assert len(runs) == 6 and {run.info.run_id for run in runs} == {t.user_attrs["run_id"] for t in finished}
    for run in runs:  # every trial trained once: each epoch logged once, none missing
        assert run.info.status == "FINISHED"
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "test_acc")) == [1, 2]
    [retried] = [t for t in finished if "failed_trial" in t.system_attrs]
    assert retried.user_attrs["run_id"] == killed_run
    assert f"continuing run {killed_run} of trial {retried.system_attrs['failed_trial']} from its checkpoint" in output
    assert parent.info.status == "FINISHED" and parent.data.tags["convzoo.sweep.best_run"] in {r.info.run_id for r in runs}
    assert client.get_run(parent.data.tags["convzoo.sweep.best_run"]).data.tags["convzoo.sweep.best"] == "true"


def test_compare_workers_share_the_architectures_and_a_sigterm_requeues_one(store):
    command = ("compare", "--archs", "slownet,vgg", "--study", "grid", "--export", "false", *SLOW, "--resize", "32")
    store.env.update(FAST_HEARTBEATS)
    stopped = start(store, *command)
    wait_for_trial_checkpoint(store, stopped.pid, 5)
    stopped.send_signal(signal.SIGTERM)
    output, _ = stopped.communicate(timeout=120)
    assert stopped.returncode == 143, output
    assert output.splitlines()[-1] == ("stopped by SIGTERM: a trial in progress went back to study 'grid' (its run "
                                       "KILLED, with a checkpoint); the same command continues the study")

    first, second = start(store, *command), start(store, *command)
    outputs = [process.communicate(timeout=600)[0] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    client = mlflow.MlflowClient(store.uri)
    [parent] = client.search_runs(["0"], "tags.`convzoo.compare` = 'parent'")
    runs = children(client, parent.info.run_id)
    assert sorted(run.data.tags["convzoo.arch"] for run in runs) == ["slownet", "vgg"]
    assert all(run.info.status == "FINISHED" for run in runs)
    assert any("continuing run" in text for text in outputs)
    table = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/comparison/comparison.csv").splitlines()
    assert len(table) == 3 and parent.info.status == "FINISHED"


def test_a_worker_killed_before_its_first_checkpoint_has_its_trial_trained_again(store):
    store.env.update(FAST_HEARTBEATS)
    command = ("compare", "--archs", "slownet", "--study", "early", "--export", "false", "--epochs", "1",
               "--limit-train-batches", "40", "--limit-eval-batches", "1", "--checkpoint-every", "0")
    killed = start(store, *command)
    storage = f"sqlite:///{store.folder / 'optuna.db'}"
    deadline = time.monotonic() + 120
    while True:  # the trial has its run: the worker is loading data or training, 2 s from its first checkpoint
        assert time.monotonic() < deadline and killed.poll() is None
        with contextlib.suppress(KeyError):
            trials = optuna.load_study(study_name="early", storage=storage).trials
            if trials and "run_id" in trials[0].user_attrs:
                break
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    assert not list(store.checkpoints.glob("*/last.pt"))
    dead = mlflow.MlflowClient(store.uri).get_run(trials[0].user_attrs["run_id"])
    assert dead.info.status == "RUNNING"

    again = convzoo(store, *command)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"run {dead.info.run_id} died before its first checkpoint; trial 1 trains again from the start" in again.stdout
    client = mlflow.MlflowClient(store.uri)
    [parent] = client.search_runs(["0"], "tags.`convzoo.compare` = 'parent'")
    [child] = children(client, parent.info.run_id)
    assert child.info.run_id != dead.info.run_id and child.info.status == "FINISHED"
    gone = client.get_run(dead.info.run_id)
    assert gone.info.lifecycle_stage == "deleted" and gone.info.status == "KILLED"


def test_trials_whose_training_raises_fail_alone_and_a_study_of_only_failures_ends_failed(store):
    result = convzoo(store, "sweep", "alexnet", "--param", "resize=choice:40,50", "--trials", "2", *TINY[:6])
    assert result.returncode == 1
    assert "trial 0 failed: ConvzooError: resize " in result.stdout and "is too small for alexnet" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: no trial of study 'sweep-alexnet' completed; see the trials' errors above")
    client = mlflow.MlflowClient(store.uri)
    parent = the_parent(client)
    assert parent.info.status == "FAILED"
    table = list(csv.DictReader(io.StringIO(mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/sweep/trials.csv"))))
    assert [row["state"] for row in table] == ["FAIL", "FAIL"]
    assert all("it needs at least 67" in row["error"] for row in table)
    assert [run.info.status for run in children(client, parent.info.run_id)] == ["FAILED", "FAILED"]
