"""Comparing from the terminal: `convzoo runs` and `convzoo ui` on a real store."""
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest
from click.testing import CliRunner

from convzoo.cli.app import cli
from convzoo.runs.settings import resolve_config
from convzoo.registry.plugins import get_registry
from convzoo.runs.training_run import train


@pytest.fixture(scope="module")
def module_store(tmp_path_factory):
    """One store for this module's runs, the default store and cwd while the module runs: the tests only read."""
    folder = tmp_path_factory.mktemp("runs-ui")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        yield folder, f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture(scope="module")
def two_runs(module_store):
    results = []
    for name, batches in (("vgg", 1), ("nin", 1)):
        config, arch, dataset = resolve_config(get_registry(), name, overrides={"epochs": 1, "batch_size": 16},
                                               limit_train_batches=batches, limit_eval_batches=batches, export=False)
        results.append(train(config, arch, dataset, echo=lambda line: None))
    return results


@pytest.fixture
def tracking_store(module_store):
    """This module's store: ``module_store`` keeps it the default store (and cwd) while the module runs."""
    return module_store[1]


def test_runs_lists_convzoo_runs_sorted_by_a_metric(two_runs, tracking_store):
    result = CliRunner().invoke(cli, ["runs", "--sort", "test_acc"])
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split()[:3] == ["RUN", "ID", "ARCH"]
    by_id = {row.split()[0]: row.split() for row in rows}
    assert set(by_id) == {r.run_id for r in two_runs}
    accuracies = [float(row.split()[4]) for row in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    for run, arch in zip(two_runs, ("vgg", "nin")):
        assert by_id[run.run_id][1:4] == [arch, "quick", "1"]
        assert by_id[run.run_id][-3:] == ["-", "FINISHED", "-"]  # parity (export off), status, no alias


def test_runs_rejects_unknown_experiments_and_metrics(two_runs, tracking_store):
    assert CliRunner().invoke(cli, ["runs", "--experiment", "nope"]).output.startswith("Error: no experiment 'nope'")
    result = CliRunner().invoke(cli, ["runs", "--sort", "accuracy"])
    assert result.exit_code == 1 and "unknown metric 'accuracy' to sort by; runs have: " in result.output


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def chromium(url: str, *args: str) -> str:
    """What headless Chromium (Debian's package, never a download) renders at ``url`` once its scripts have run."""
    done = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
                           "--window-size=1400,900", *args, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.browser
def test_ui_serves_the_store_the_runs_went_to(two_runs, tracking_store, tmp_path):
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "convzoo", "ui", "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert server.stdout.readline().strip() == f"MLflow UI for {tracking_store} at http://127.0.0.1:{port} (Ctrl-C stops it)"
        experiments = _get(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=100")  # at once
        ids = [experiment["experiment_id"] for experiment in experiments["experiments"]]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
                                         data=json.dumps({"experiment_ids": ids}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            found = {run["info"]["run_id"] for run in json.loads(response.read())["runs"]}
        assert found == {run.run_id for run in two_runs}

        # in a real browser: the run list shows the runs by name, the run page its name and description
        vgg = two_runs[0].run_id
        listed = chromium(f"http://127.0.0.1:{port}/#/experiments/0/runs", "--dump-dom")
        assert "vgg-fashion-mnist-quick" in listed and "nin-fashion-mnist-quick" in listed
        page = chromium(f"http://127.0.0.1:{port}/#/experiments/0/runs/{vgg}", "--dump-dom")
        assert "vgg-fashion-mnist-quick" in page
        assert f"Final test accuracy <strong>{two_runs[0].history[-1].test_acc:.4f}</strong>" in page
        chromium(f"http://127.0.0.1:{port}/#/experiments/0/runs/{vgg}", f"--screenshot={tmp_path / 'run.png'}")
        assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / "run.png").stat().st_size > 20_000  # a rendered page, not a blank one

        # SIGTERM to convzoo ui alone stops the UI's every process and frees the port
        children = psutil.Process(server.pid).children(recursive=True)
        assert children  # mlflow ui and its uvicorn workers
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 128 + signal.SIGTERM
        gone, alive = psutil.wait_procs(children, timeout=15)
        assert alive == []
        with socket.socket() as probe:
            # as a restarted server binds: the browser's closed connections may linger in TIME_WAIT, a listener not
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))  # free again
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
