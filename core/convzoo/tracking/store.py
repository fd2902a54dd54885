"""The tracking store before a run starts: reachable, credentials accepted, and initialised exactly once.

MLflow's client retries a server that is down for about four minutes and then prints chained tracebacks; several
processes creating a new SQLite store at once crash inside its schema migration. Both are checked here first.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from convzoo.errors import ConvzooError

# a probe of a server that is down answers at once (connection refused) or after this many seconds
PROBE_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
CREDENTIALS = "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"


@contextlib.contextmanager
def environment_defaults(values: dict[str, str]):
    """Set these variables where the user has not, for the duration of the block."""
    added = {name: value for name, value in values.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///relative`` or ``sqlite:////absolute`` tracking URI, else None."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix):].partition("?")[0]) if uri.startswith(prefix) else None


def redact(url: str) -> str:
    """A database URL with its password hidden, for messages and params (anything else as it is)."""
    from sqlalchemy.engine import make_url

    with contextlib.suppress(Exception):
        return make_url(url).render_as_string(hide_password=True)
    return url


def refused(error: MlflowException) -> str | None:
    """``401``/``403`` when the server refused the credentials or the permission, else None."""
    status = error.get_http_status_code()
    return str(status) if status in (401, 403) else None


def credentials_error(uri: str, status: str) -> ConvzooError:
    if status == "401":
        return ConvzooError(f"the tracking server at {uri} refused the credentials (HTTP 401); set them with "
                            f"{CREDENTIALS}")
    return ConvzooError(f"the tracking server at {uri} refused this user permission to write runs here (HTTP 403); "
                        f"ask its admin for EDIT on the experiment, or log in as another user with "
                        f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")


@contextlib.contextmanager
def refusals_as_errors():
    """A 401 or 403 from the tracking server inside the block becomes the one-line error that says what to do."""
    try:
        yield
    except MlflowException as error:
        status = refused(error)
        if status:
            raise credentials_error(mlflow.get_tracking_uri(), status) from None
        raise


def tracking_uri() -> str:
    """Where this process tracks its runs."""
    return mlflow.get_tracking_uri()


def check_tracking_store() -> None:
    """Fail in seconds with one line if the tracking server is down or refuses us; initialise a new SQLite store once.

    The user's own ``MLFLOW_HTTP_REQUEST_*`` settings win over the probe's short ones.
    """
    from filelock import FileLock

    uri = mlflow.get_tracking_uri()
    database = sqlite_path(uri)
    lock = FileLock(f"{database}.lock") if database else contextlib.nullcontext()
    if database:
        database.parent.mkdir(parents=True, exist_ok=True)
    # MLflow resolves a local store's artifact root (./mlruns) against the working folder when it first opens the
    # store: opened from the database's folder, artifacts live beside the database whatever folder a command runs in
    beside = contextlib.chdir(database.parent) if database else contextlib.nullcontext()
    with lock, environment_defaults(PROBE_SETTINGS if uri.startswith("http") else {}), beside:
        try:
            mlflow.MlflowClient().search_experiments(max_results=1)  # creates and migrates a new store
        except MlflowException as error:
            status = refused(error)
            if status:
                raise credentials_error(uri, status) from None
            reason = str(error).splitlines()[0][:300]
            raise ConvzooError(f"cannot reach the MLflow tracking store at {uri}: {reason}") from None


def set_experiment(name: str) -> None:
    """``mlflow.set_experiment`` that tolerates another process creating the same experiment at the same moment."""
    try:
        mlflow.set_experiment(name)
    except MlflowException as error:
        if "already exists" not in str(error):
            raise
        mlflow.set_experiment(name)


def where_tracked(run_id: str) -> str:
    """One line: the store a run is in and the folder (or URI) of its artifacts."""
    artifacts = mlflow.MlflowClient().get_run(run_id).info.artifact_uri
    return f"tracked in {mlflow.get_tracking_uri()}, artifacts in {artifacts.removeprefix('file://')}"
