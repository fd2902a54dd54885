"""``convzoo server``: a real team tracking server with basic-auth; users with READ and EDIT on one experiment."""
import stat

import mlflow
import mlflow.server
import optuna
import psutil
from helpers import ADMIN_PASSWORD, convzoo

TRAIN = ("train", "vgg", "--experiment", "team", "--epochs", "1", "--limit-train-batches", "2",
         "--limit-eval-batches", "1", "--resize", "32", "--export", "false")


def test_read_users_cannot_write_runs_edit_users_can(store, mlflow_server, monkeypatch):
    server = mlflow_server(auth=True)
    log = server.output.read_text()
    assert f"convzoo tracking server at {server.uri}" in log and f"export MLFLOW_TRACKING_URI={server.uri}" in log
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    experiment = mlflow.MlflowClient(server.uri).create_experiment("team")
    users = mlflow.server.get_app_client("basic-auth", tracking_uri=server.uri)
    for user, permission in (("reader", "READ"), ("editor", "EDIT")):
        users.create_user(user, f"{user}-password-1")
        users.grant_user_permission(user, "experiment", experiment, permission)
    store.env["MLFLOW_TRACKING_URI"] = server.uri

    # a train refused READ and a wrong password are test_server_faults' (exact messages); here READ on one experiment
    store.env.update(MLFLOW_TRACKING_USERNAME="reader", MLFLOW_TRACKING_PASSWORD="reader-password-1")
    sweep = convzoo(store, "sweep", "vgg", "--param", "lr=uniform:0.001:0.01", "--trials", "1", *TRAIN[2:])
    assert sweep.returncode == 1
    assert sweep.stderr.splitlines()[-1].startswith(
        f"Error: the tracking server at {server.uri} refused this user permission to write runs here (HTTP 403)")
    assert optuna.get_all_study_names(f"sqlite:///{store.folder / 'optuna.db'}") == []  # no study left half made
    assert mlflow.MlflowClient(server.uri).search_runs([experiment]) == []

    store.env.update(MLFLOW_TRACKING_USERNAME="editor", MLFLOW_TRACKING_PASSWORD="editor-password-1")
    trained = convzoo(store, *TRAIN)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    [run] = mlflow.MlflowClient(server.uri).search_runs([experiment])
    assert run.info.status == "FINISHED" and run.data.metrics["test_acc"] >= 0
    assert [a.path for a in mlflow.MlflowClient(server.uri).list_artifacts(run.info.run_id, "plots")]


def test_a_server_without_an_admin_password_makes_one_and_keeps_it_across_restarts(mlflow_server, monkeypatch):
    server = mlflow_server(auth=True, admin_password=None)
    # MLflow's server and its worker, without MLflow's job runner (about ten processes of its own; convzoo runs no jobs)
    started = [" ".join(child.cmdline()) for child in psutil.Process(server.process.pid).children(recursive=True)]
    assert started and not [command for command in started if "huey" in command or "job_runner" in command]
    kept = server.folder / "admin-password"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert f"password in {kept}" in server.output.read_text()
    server.stop()
    server.start()
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", kept.read_text().strip())
    assert mlflow.MlflowClient(server.uri).search_experiments()[0].name == "Default"
