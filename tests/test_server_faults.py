"""A tracking server that is down, refuses us, or goes away mid-run: real ``mlflow server`` processes, stopped and
started by the tests."""
import time
import types

import mlflow
import mlflow.server
import pytest
from helpers import (ADMIN_PASSWORD, COMPARED, MlflowServer, convzoo, free_port, process_store, start, status,
                     wait_for_checkpoint)

OUTAGE_RUN = ("slownet", "--epochs", "3", "--limit-train-batches", "30", "--limit-eval-batches", "2",
              "--export", "false", "--checkpoint-every", "10")
OUTAGE_SECONDS = 60


@pytest.fixture(scope="module", autouse=True)
def outage(plugin_sites, tmp_path_factory):
    """A run whose tracking server goes away mid-run, for ``OUTAGE_SECONDS``. It starts before this module's first
    test and is checked by its last, so the other tests run while the server is away instead of a minute's sleep."""
    store = process_store(tmp_path_factory.mktemp("outage"), plugin_sites["convzoo-slownet"])
    server = MlflowServer(store.folder / "server")
    server.folder.mkdir()
    server.start()
    store.env["MLFLOW_TRACKING_URI"] = server.uri
    process = start(store, "train", *OUTAGE_RUN)
    try:
        run_id = wait_for_checkpoint(store, process, 1, 10)
        server.stop()
        stopped = time.monotonic()
        wait_for_checkpoint(store, process, 4, 0)  # all three epochs trained while the server was away
        yield types.SimpleNamespace(server=server, process=process, run_id=run_id, stopped=stopped)
    finally:
        process.kill()
        server.stop()


def test_a_tracking_server_that_is_down_is_a_one_line_error_within_seconds(store):
    uri = f"http://127.0.0.1:{free_port()}"
    store.env["MLFLOW_TRACKING_URI"] = uri
    started = time.monotonic()
    result = convzoo(store, "train", "vgg", "--epochs", "1", "--limit-train-batches", "1")
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(f"Error: cannot reach the MLflow tracking store at {uri}: ")
    assert "Traceback" not in result.stderr and "epoch" not in result.stdout


def test_refused_credentials_and_permissions_are_one_line_errors(store, mlflow_server, monkeypatch):
    server = mlflow_server(auth=True)
    store.env.update(MLFLOW_TRACKING_URI=server.uri, MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD="wrong")
    result = convzoo(store, "train", "vgg", "--epochs", "1", "--limit-train-batches", "1")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: the tracking server at {server.uri} refused the credentials (HTTP 401); set them with "
        f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)")

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    mlflow.server.get_app_client("basic-auth", tracking_uri=server.uri).create_user("reader", "reader-password-1")
    store.env.update(MLFLOW_TRACKING_USERNAME="reader", MLFLOW_TRACKING_PASSWORD="reader-password-1")
    result = convzoo(store, "train", "vgg", "--epochs", "1", "--limit-train-batches", "1")  # READ: the default
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: the tracking server at {server.uri} refused this user permission to write runs here (HTTP 403); "
        f"ask its admin for EDIT on the experiment, or log in as another user with MLFLOW_TRACKING_USERNAME and "
        f"MLFLOW_TRACKING_PASSWORD")
    assert mlflow.MlflowClient(server.uri).search_runs(["0"]) == []


def test_a_server_still_down_when_training_ends_says_where_the_checkpoint_is(store, mlflow_server):
    server = mlflow_server()
    store.env.update(MLFLOW_TRACKING_URI=server.uri, CONVZOO_SERVER_WAIT_SECONDS="2")
    process = start(store, "train", *OUTAGE_RUN)
    run_id = wait_for_checkpoint(store, process, 1, 10)
    server.stop()
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 1, output
    path = store.checkpoints / run_id / "last.pt"
    assert output.splitlines()[-1] == (
        f"Error: the tracking server at {server.uri} is still unreachable after 2 s: run {run_id} kept training, and "
        f"its checkpoint is {path}; once the server is back: convzoo resume {run_id}")

    server.start()
    resumed = convzoo(store, "resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert status(server.uri, run_id) == "FINISHED"
    history = mlflow.MlflowClient(server.uri).get_metric_history(run_id, "test_acc")
    assert sorted(m.step for m in history) == [1, 2, 3]


def test_a_server_outage_mid_run_loses_nothing(outage):
    """The module's last test: the server comes back ``OUTAGE_SECONDS`` after it stopped, on the same port and store."""
    server, process, run_id = outage.server, outage.process, outage.run_id
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage.stopped)))
    server.start()
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    assert "warning: the tracking server is unreachable" in output and "the tracking server is back after" in output
    client = mlflow.MlflowClient(server.uri)
    assert status(server.uri, run_id) == "FINISHED"
    for name in COMPARED:
        assert sorted(m.step for m in client.get_metric_history(run_id, name)) == [1, 2, 3]
    assert [a.path for a in client.list_artifacts(run_id, "checkpoints")] == ["checkpoints/last.pt"]
