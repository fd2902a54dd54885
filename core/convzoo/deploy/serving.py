"""``convzoo serve``: a model's image classifier behind ``mlflow models serve``, with workers from the core count and
its download removed when the server stops."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Callable

from convzoo.deploy.image_classifier import THREADS_VARIABLE


def default_workers() -> int:
    """One worker per two cores, each with two onnxruntime threads: on 2 cores (AlexNet at 112 px, one image a
    request) 1 worker x 2 threads answered 167/247/228 requests/s at concurrency 1/8/32, 2 workers x 1 thread
    110/224/233, 2 workers x 2 threads 164/199/207."""
    from convzoo.training.distributed import cores

    return max(1, cores() // 2)


def serve(target: str, host: str, port: int, workers: int, echo: Callable[[str], None]) -> int:
    """Serve what ``target`` names (a run id, ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``) until a signal
    stops it; the exit status (128 + the signal's number after one)."""
    import mlflow

    from convzoo.tracking.artifacts import QUIET
    from convzoo.training.distributed import cores
    from convzoo.deploy.model_registry import served_uri
    from convzoo.training.signals import exit_code, passed_on, stop_with_parent
    from convzoo.tracking.store import environment_defaults

    uri = served_uri(target)
    threads = max(1, cores() // workers)
    with tempfile.TemporaryDirectory(prefix="convzoo-serve-") as folder:
        with environment_defaults(QUIET):
            path = mlflow.artifacts.download_artifacts(uri, dst_path=folder)
        echo(f"serving {uri} at http://{host}:{port}/invocations: {workers} worker(s) x {threads} onnxruntime "
             f"thread(s); POST {{\"inputs\": [uint8 images, or base64 PNG/JPEG]}}")
        command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", path, "--env-manager", "local",
                   "--host", host, "--port", str(port), "--workers", str(workers)]
        environment = {**QUIET, **server_environment(folder), THREADS_VARIABLE: str(threads)}
        server = subprocess.Popen(command, env=environment, preexec_fn=stop_with_parent)
        with passed_on(server) as received:
            status = server.wait()
    return exit_code(received[0]) if received else status


def server_environment(folder: str) -> dict[str, str]:
    """This process's environment for ``mlflow models serve``: uvicorn from this Python's environment, and temp files
    (MLflow's own copy of the model) in ``folder``."""
    return {**os.environ, "TMPDIR": str(folder),
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
