"""``convzoo server``: a team tracking server; ``convzoo ui``: MLflow's UI on the local store.

The team server is MLflow's server with a database backend store (PostgreSQL for a team, SQLite when none is given),
artifacts proxied through it, and MLflow's ``basic-auth`` app in front.

MLflow 3.17 ships no admin password and needs a Flask secret key for its auth app: both are taken from the
environment (``MLFLOW_AUTH_ADMIN_PASSWORD``, ``MLFLOW_FLASK_SERVER_SECRET_KEY``) or made once and kept, readable by
the owner only, in the server's folder, so a restarted server keeps its admin and its sessions.
"""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Callable

ADMIN = "admin"
AUTH_INI = """[mlflow]
default_permission = {default_permission}
database_uri = {database_uri}
admin_username = {admin}
admin_password = {password}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""
PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")


def kept_secret(folder: Path, name: str, variable: str) -> str:
    """``$variable`` if set, else the value kept in ``folder/name`` (made on first use, mode 600)."""
    if os.environ.get(variable):
        return os.environ[variable]
    path = folder / name
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(18) + "\n")
    return path.read_text().strip()


def mlflow_server_environment() -> dict[str, str]:
    """This process's environment for MLflow's server or UI, with MLflow's job runner off unless
    ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION`` asks for it: convzoo starts no server-side jobs (MLflow's GenAI features),
    and the runner is about ten more Python processes, each importing MLflow, on every start."""
    env = dict(os.environ)
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def plan(folder: Path, backend_store_uri: str | None, artifacts_destination: str | None, host: str, port: int,
         workers: int, auth: bool, default_permission: str,
         auth_database_uri: str | None = None) -> tuple[list[str], dict[str, str], list[str]]:
    """The ``mlflow server`` command, its environment, and what to tell the user."""
    from convzoo.errors import ConvzooError
    from convzoo.tracking.store import redact

    if default_permission not in PERMISSIONS:
        raise ConvzooError(f"unknown permission {default_permission!r}; choose one of: {', '.join(PERMISSIONS)}")
    folder.mkdir(parents=True, exist_ok=True)
    folder = folder.absolute()
    backend = backend_store_uri or f"sqlite:///{folder / 'mlflow.db'}"
    artifacts = artifacts_destination or str(folder / "artifacts")
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
               "--artifacts-destination", artifacts, "--host", host, "--port", str(port), "--workers", str(workers)]
    env = mlflow_server_environment()
    env.pop("MLFLOW_TRACKING_URI", None)
    uri = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    lines = [f"convzoo tracking server at {uri}", f"  backend store: {redact(backend)}",
             f"  artifacts:     {artifacts} (proxied: clients need no access to it)"]
    if host in ("0.0.0.0", "::"):
        command += ["--allowed-hosts", "*"]
        lines.append(f"  listening on every address: use http://{os.uname().nodename}:{port} from other machines")
    connect = [f"  export MLFLOW_TRACKING_URI={uri}"]
    if auth:
        password = kept_secret(folder, "admin-password", "MLFLOW_AUTH_ADMIN_PASSWORD")
        ini = folder / "basic_auth.ini"
        ini.touch(mode=0o600)
        ini.write_text(AUTH_INI.format(default_permission=default_permission, admin=ADMIN, password=password,
                                       database_uri=auth_database_uri or f"sqlite:///{folder / 'basic_auth.db'}"))
        env.update(MLFLOW_AUTH_CONFIG_PATH=str(ini),
                   MLFLOW_FLASK_SERVER_SECRET_KEY=kept_secret(folder, "secret-key", "MLFLOW_FLASK_SERVER_SECRET_KEY"))
        command += ["--app-name", "basic-auth"]
        lines.append(f"  basic-auth on: admin user {ADMIN!r}, password in {folder / 'admin-password'}; new users get "
                     f"{default_permission} on every experiment")
        connect += ["  export MLFLOW_TRACKING_USERNAME=YOUR_USER", "  export MLFLOW_TRACKING_PASSWORD=YOUR_PASSWORD"]
    return command, env, [*lines, "connect with:", *connect]


def serve(command: list[str], env: dict[str, str], lines: list[str], echo: Callable[[str], None]) -> None:
    """Print how to connect, then become the ``mlflow server`` process (signals reach it directly)."""
    for line in lines:
        echo(line)
    sys.stdout.flush()
    os.execve(command[0], command, env)


UI_START_SECONDS = 120


def run_ui(store: str, host: str, port: int, echo: Callable[[str], None]) -> int:
    """``mlflow ui`` on ``store`` in a process group of its own, its output on stderr; its address printed (stdout)
    once it answers; a signal to this process stops the whole group (uvicorn's workers too). The exit status (128 +
    the signal's number after one)."""
    import subprocess

    from convzoo.errors import ConvzooError
    from convzoo.training.signals import exit_code, passed_on, stop_with_parent

    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--host", host, "--port", str(port)]
    stderr = 2  # MLflow's own lines; stdout carries only the address
    server = subprocess.Popen(command, env=mlflow_server_environment(), stdout=stderr, start_new_session=True,
                              preexec_fn=stop_with_parent)
    try:
        with passed_on(server, group=True) as received:
            if not answering(f"http://{host}:{port}/health", server, UI_START_SECONDS):
                if server.poll() is None and not received:
                    raise ConvzooError(f"the MLflow UI did not answer at http://{host}:{port} within "
                                       f"{UI_START_SECONDS} s")
            else:
                echo(f"MLflow UI for {store} at http://{host}:{port} (Ctrl-C stops it)")
            status = server.wait()
    finally:
        stop_group(server)
    return exit_code(received[0]) if received else status


def answering(url: str, server, seconds: float) -> bool:
    """Whether ``url`` answers 200 within ``seconds`` while ``server`` runs."""
    import time
    import urllib.request

    deadline = time.monotonic() + seconds
    while server.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def stop_group(server, grace: float = 10.0) -> None:
    """End ``server``'s process group: SIGTERM, then SIGKILL for whatever is left after ``grace`` seconds."""
    import signal
    import time

    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(server.pid, 0)
            except ProcessLookupError:
                return
            server.poll()  # the group's leader reaped once it exits
            time.sleep(0.1)
