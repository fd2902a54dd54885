"""Processes for fault tests: real ``convzoo`` commands, their checkpoints, a real ``mlflow server`` and a real
``convzoo serve``."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import torch

COMPARED = ("train_loss", "train_acc", "test_acc")
# the start of a probe script that reads glibc's malloc statistics: libc.mallinfo2().hblkhd is the mmapped bytes
MALLINFO = '''
import ctypes, ctypes.util, json, sys
import torch

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
'''
ADMIN_PASSWORD = "convzoo-admin-password-1"


def convzoo_in(python: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run ``convzoo ARGS`` with the Python of an environment (the suite's, or a test's private one)."""
    return subprocess.run([str(python), "-m", "convzoo", *args], capture_output=True, text=True, **kwargs)


def plugin_names(python: Path) -> dict[str, dict]:
    """The plugins ``convzoo plugins --json`` lists in the environment of ``python``, by distribution name."""
    return {plugin["name"]: plugin for plugin in json.loads(convzoo_in(python, "plugins", "--json").stdout)["plugins"]}


def benchmark(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``benchmarks/SCRIPT`` with ``args`` in a process of its own."""
    return subprocess.run([sys.executable, str(Path(__file__).parents[1] / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=600)


def process_store(folder: Path, plugin_site: Path):
    """A new SQLite store in ``folder``, a checkpoint folder and fast heartbeats: ``env`` for ``convzoo`` processes
    (with the plugin in ``plugin_site`` on their path), ``settings`` for this process."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    settings = {"MLFLOW_TRACKING_URI": uri, "CONVZOO_CHECKPOINT_DIR": str(folder / "checkpoints"),
                "CONVZOO_HEARTBEAT_SECONDS": "0.5", "CONVZOO_STALE_AFTER_SECONDS": "3"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVZOO_")}
    env.update(settings, PYTHONPATH=str(plugin_site),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return types.SimpleNamespace(uri=uri, env=env, settings=settings, folder=folder, checkpoints=folder / "checkpoints")


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


def history(uri, run_id, names=COMPARED):
    client = mlflow.MlflowClient(uri)
    return {name: [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, name), key=lambda m: m.step)]
            for name in names}


def status(uri, run_id):
    return mlflow.MlflowClient(uri).get_run(run_id).info.status


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answering(url: str, process: subprocess.Popen, output: Path, timeout: float) -> None:
    """Wait until ``url`` answers; fail with the end of the process's ``output`` if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            assert process.poll() is None, f"{process.args} exited: {output.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"{process.args} did not answer at {url}"
            time.sleep(0.3)


class MlflowServer:
    """A real ``convzoo server`` (MLflow's server) on a loopback port, its files in ``folder`` and its runs in
    ``backend`` (SQLite there by default); stop and start it on the same port and store."""

    def __init__(self, folder: Path, auth: bool = False, backend: str | None = None,
                 admin_password: str | None = ADMIN_PASSWORD) -> None:
        self.folder, self.auth, self.backend, self.port = folder, auth, backend, free_port()
        self.admin_password = admin_password  # None: the server makes one and keeps it in its folder
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.output = folder / "server.log"

    def start(self, timeout: float = 120) -> None:
        command = [sys.executable, "-m", "convzoo", "server", "--folder", str(self.folder), "--port", str(self.port),
                   "--workers", "1", "--auth" if self.auth else "--no-auth"]
        if self.backend:
            command += ["--backend-store-uri", self.backend]
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_AUTH_ADMIN_PASSWORD"}
        if self.admin_password:
            env["MLFLOW_AUTH_ADMIN_PASSWORD"] = self.admin_password
        with open(self.output, "a") as log:
            self.process = subprocess.Popen(command, cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        wait_until_answering(f"{self.uri}/health", self.process, self.output, timeout)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)




def postgres_bin(name: str) -> str:
    """A PostgreSQL server program: Debian keeps them in /usr/lib/postgresql/VERSION/bin, off the PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}")) or [Path(p) for p in [shutil.which(name)] if p]
    assert found, f"PostgreSQL's {name} is missing: the set-up (make test) installs Debian's postgresql package"
    return str(found[-1])


class PostgresServer:
    """A throwaway PostgreSQL on a loopback port, its data and socket in a temp folder; as root, it runs as the
    ``postgres`` user (``initdb`` refuses root). Password authentication, so URLs carry a real password."""

    USER, PASSWORD = "convzoo", "pg-secret-7"

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="convzoo-pg-"))
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_user, *command], check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        if self.as_user:
            shutil.chown(self.folder, "postgres")
        password_file = self.folder / "password"
        password_file.write_text(self.PASSWORD + "\n")
        if self.as_user:
            shutil.chown(password_file, "postgres")
        data = self.folder / "data"
        if not data.exists():
            self._run(postgres_bin("initdb"), "-D", str(data), "-U", self.USER, "--auth=scram-sha-256",
                      f"--pwfile={password_file}")
        self._run(postgres_bin("pg_ctl"), "-D", str(data), "-w", "-l", str(self.folder / "log"), "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", "start")

    def stop(self, mode: str = "fast") -> None:
        subprocess.run([*self.as_user, postgres_bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", mode, "-w",
                        "stop"], capture_output=True, timeout=120)

    def create_database(self, name: str) -> str:
        """A new database; its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.USER, password=self.PASSWORD,
                             dbname="postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{self.USER}:{self.PASSWORD}@127.0.0.1:{self.port}/{name}"

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


class ModelServer:
    """A real ``convzoo serve TARGET`` on a loopback port, its temp files in ``folder``; ``post`` sends JSON."""

    def __init__(self, target: str, folder: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = folder / "serve.log"
        (folder / "tmp").mkdir(exist_ok=True)
        with open(self.output, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "convzoo", "serve", target, "--port", str(self.port), "--workers", str(workers)],
                env={**os.environ, "TMPDIR": str(folder / "tmp")}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

    def wait_until_ready(self, timeout: float = 120) -> None:
        wait_until_answering(f"{self.url}/ping", self.process, self.output, timeout)

    def post(self, payload=None, body: bytes | None = None) -> tuple[int, object]:
        data = body if body is not None else json.dumps(payload).encode()
        request = urllib.request.Request(f"{self.url}/invocations", data=data,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def rates(scheduler, optimizer, steps: int) -> list[float]:
    """The learning rate after each of ``steps`` optimizer and scheduler steps."""
    seen = []
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        seen.append(optimizer.param_groups[0]["lr"])
    return seen
