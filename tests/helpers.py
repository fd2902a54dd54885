"""Processes for fault tests: real ``convzoo`` commands, their checkpoints, and a real ``mlflow server``."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import torch

COMPARED = ("train_loss", "train_acc", "test_acc")
ADMIN_PASSWORD = "convzoo-admin-password-1"


def start(store, *args, command=("-m", "convzoo")):
    return subprocess.Popen([sys.executable, *command, *args], cwd=store.folder, env=store.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def convzoo(store, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "convzoo", *args], cwd=store.folder, env=store.env, text=True,
                          capture_output=True, timeout=timeout)


def wait_for_checkpoint(store, process, epoch, step):
    """The run id once a checkpoint at (``epoch``, ``step``) or later exists."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for path in store.checkpoints.glob("*/last.pt"):
            loop = torch.load(path, weights_only=True)["trainer"]["loop"]
            if (loop["epoch"], loop["step"]) >= (epoch, step):
                return path.parent.name
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint at epoch {epoch} step {step} within 180 s")


def history(uri, run_id):
    client = mlflow.MlflowClient(uri)
    return {name: [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, name), key=lambda m: m.step)]
            for name in COMPARED}


def status(uri, run_id):
    return mlflow.MlflowClient(uri).get_run(run_id).info.status


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MlflowServer:
    """A real ``mlflow server`` on a loopback port, with its store and artifacts in ``folder``; stop and start it."""

    def __init__(self, folder: Path, auth: bool = False) -> None:
        self.folder, self.auth, self.port = folder, auth, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> None:
        command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port",
                   str(self.port), "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
                   "--artifacts-destination", str(self.folder / "artifacts"), "--workers", "1"]
        env = {**os.environ, "MLFLOW_FLASK_SERVER_SECRET_KEY": "convzoo-tests", "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD}
        env.pop("MLFLOW_TRACKING_URI", None)
        self.process = subprocess.Popen(command + (["--app-name", "basic-auth"] if self.auth else []), cwd=self.folder,
                                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except OSError:
                assert self.process.poll() is None, "mlflow server exited"
                assert time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(0.3)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


