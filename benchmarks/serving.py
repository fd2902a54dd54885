"""Serving under load: requests/s, p50/p99 latency and errors of a served model at concurrency 1, 8 and 32 on loopback,
for the old float payload and the new raw-image payload, next to onnxruntime's in-process batch-1 rate.

    python benchmarks/serving.py                   # AlexNet's quick recipe, trained for a few batches first
    python benchmarks/serving.py --run-id RUN      # a run of yours, from MLFLOW_TRACKING_URI
    python benchmarks/serving.py --requests 1000 --concurrency 1 --concurrency 64

float:  before: the network alone, exported as convzoo did before models took images (float input at the run's input
        size), served as the README said then, ``mlflow models serve`` with its defaults (one worker, onnxruntime's
        default threads); each request one image the client has resized (about 150 KB of JSON at 112 px).
raw:    after: the run's model served by ``convzoo serve`` (its default workers and threads, or --workers); each
        request one 28 x 28 uint8 test image (about 3 KB of JSON).
png:    the same server; each request one test image as base64 PNG.
The servers run one after the other, never side by side. Each request is one image, sent over a kept-alive
connection; a response other than 200 is an error. The client shares the machine with the server.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from pathlib import Path

import torch
from PIL import Image

import report
from convzoo.tracking.artifacts import QUIET
from convzoo.training.distributed import cores
from convzoo.deploy.export import cpu_eval_copy
from convzoo.data.fashion_mnist import load
from convzoo.data.pipeline import model_input
from convzoo.deploy.serving import default_workers, server_environment
from convzoo.tables import format_table

PAYLOADS = ("float", "raw", "png")


def trained_run(args: argparse.Namespace, folder: Path) -> str:
    """A short real run of ``args.arch`` at ``args.recipe`` into a store in ``folder`` (the network's size, not its
    accuracy, decides serving speed)."""
    import convzoo

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    os.environ["CONVZOO_CHECKPOINT_DIR"] = str(folder / "checkpoints")
    result = convzoo.train(args.arch, recipe=args.recipe, epochs=1, limit_train_batches=args.train_batches,
                           limit_eval_batches=2, echo=lambda line: None)
    return result.run_id


def float_model(run_id: str, folder: Path) -> tuple[Path, int]:
    """The run's network exported the old way (float images at the input size in, logits out) as an MLflow onnx
    model; its folder and input size."""
    import mlflow.onnx
    import mlflow.pytorch

    from convzoo.vocabulary import PYTORCH_MODEL
    from convzoo.tracking.lookup import trained_run as find_run

    trained = find_run(run_id)
    network = cpu_eval_copy(mlflow.pytorch.load_model(trained.model_uri(PYTORCH_MODEL), dst_path=str(folder)))
    size = trained.input_size
    path = folder / "float.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(network, (torch.rand(2, 1, size, size),), dynamic_shapes=({0: "batch"},),
                          input_names=["images"], output_names=["logits"], verbose=False).save(str(path),
                                                                                               external_data=False)
    import onnx

    mlflow.onnx.save_model(onnx.load(str(path)), folder / "float-model", save_as_external_data=False,
                           pip_requirements=mlflow.onnx.get_default_pip_requirements())
    return folder / "float-model", size


def payloads(size: int) -> dict[str, bytes]:
    """One request body per payload kind, each one test image (the first, an ankle boot)."""
    image = load().test_images[:1]
    png = io.BytesIO()
    Image.fromarray(image[0, 0].numpy()).save(png, "PNG")
    return {"float": json.dumps({"inputs": model_input(image, size).numpy().tolist()}).encode(),
            "raw": json.dumps({"inputs": image[:, 0].tolist()}).encode(),
            "png": json.dumps({"inputs": [base64.b64encode(png.getvalue()).decode()]}).encode()}


def start_server(command: list[str], port: int, folder: Path) -> subprocess.Popen:
    """A server process (its own session), ready to answer; its log in ``folder``."""
    log = open(folder / f"server-{port}.log", "w")
    server = subprocess.Popen(command, env=server_environment(folder), stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start:\n{(folder / f'server-{port}.log').read_text()[-3000:]}")
            time.sleep(0.3)


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, 15)
    server.wait(timeout=60)


def load_test(port: int, body: bytes, concurrency: int, requests: int) -> dict:
    """``requests`` POSTs of ``body`` from ``concurrency`` threads, each on its own kept-alive connection."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    share = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]

    def client(count: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        mine, failed = [], 0
        for _ in range(count):
            start = time.perf_counter()
            try:
                connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                failed += response.status != 200
            except (OSError, http.client.HTTPException):
                failed += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            mine.append(time.perf_counter() - start)
        connection.close()
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=client, args=(count,)) for count in share if count]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    latencies.sort()
    return {"concurrency": concurrency, "requests": requests, "requests_per_sec": requests / wall,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], "errors": errors[0]}


def measure(port: int, body: bytes, args: argparse.Namespace) -> list[dict]:
    load_test(port, body, 1, args.warmup)
    return [load_test(port, body, concurrency, args.requests) for concurrency in args.concurrency]


def in_process_rate(model: Path | bytes, feed: dict, threads: int = 0, spinning: bool = True,
                    calls: int = 200) -> float:
    """Batch-1 calls per second of an onnxruntime session in this process (``threads`` 0: one per core)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(model) if isinstance(model, Path) else model, options,
                                           providers=["CPUExecutionProvider"])
    for _ in range(10):
        session.run(None, feed)
    timings = []
    for _ in range(calls):
        start = time.perf_counter()
        session.run(None, feed)
        timings.append(time.perf_counter() - start)
    return 1 / statistics.median(timings)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-id", help="serve this run's model (default: train --arch at --recipe briefly first)")
    parser.add_argument("--arch", default="alexnet", help="architecture to train when no --run-id (default alexnet)")
    parser.add_argument("--recipe", default="quick", help="its recipe, which sets the input size (default quick)")
    parser.add_argument("--train-batches", type=int, default=5, help="batches of that short run (default 5)")
    parser.add_argument("--requests", type=int, default=300, help="requests per concurrency level (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests first (default 20)")
    parser.add_argument("--concurrency", type=int, action="append",
                        help="clients at once (repeatable; default 1, 8 and 32)")
    parser.add_argument("--workers", type=int, default=None, help="server workers (default: convzoo serve's)")
    parser.add_argument("--payload", action="append", choices=PAYLOADS, help="payloads (default: all three)")
    parser.add_argument("--json", type=Path, default=report.RESULTS_DIR / "serving.json")
    args = parser.parse_args()
    args.concurrency = args.concurrency or [1, 8, 32]
    args.payload = args.payload or list(PAYLOADS)
    args.workers = args.workers or default_workers()
    report.require_at_least_one(parser, args, "train_batches", "requests", "warmup", "workers")
    for concurrency in args.concurrency:
        if concurrency < 1:
            parser.error(f"--concurrency must be at least 1, got {concurrency}")
    return args


def main() -> None:
    args = parse_args()
    os.environ.update({**QUIET, **os.environ})
    info = report.machine()
    threads = max(1, cores() // args.workers)
    with tempfile.TemporaryDirectory(prefix="convzoo-bench-serving-") as name:
        folder = Path(name)
        run_id = args.run_id or trained_run(args, folder)
        float_folder, size = float_model(run_id, folder)
        bodies = payloads(size)
        image = load().test_images[:1]
        rows = []
        if "float" in args.payload:
            port = report.free_port()
            server = start_server([sys.executable, "-m", "mlflow", "models", "serve", "-m", str(float_folder),
                                   "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)], port, folder)
            try:
                rows += [{"payload": "float", **row} for row in measure(port, bodies["float"], args)]
            finally:
                stop_server(server)
        served = [kind for kind in ("raw", "png") if kind in args.payload]
        if served:
            port = report.free_port()
            server = start_server([sys.executable, "-m", "convzoo", "serve", run_id, "--port", str(port),
                                   "--workers", str(args.workers)], port, folder)
            try:
                for kind in served:
                    rows += [{"payload": kind, **row} for row in measure(port, bodies[kind], args)]
            finally:
                stop_server(server)
        import mlflow.onnx

        raw_model = mlflow.onnx.load_model(f"runs:/{run_id}/onnx-model", dst_path=str(folder)).SerializeToString()
        raw_feed, float_feed = {"image": image[:, 0].numpy()}, {"images": model_input(image, size).numpy()}
        in_process = {"raw, onnxruntime's defaults": in_process_rate(raw_model, raw_feed),
                      f"raw, as served ({threads} threads, no spinning)": in_process_rate(raw_model, raw_feed, threads,
                                                                                           spinning=False),
                      "float, onnxruntime's defaults": in_process_rate(folder / "float.onnx", float_feed)}
        sizes = {kind: len(body) for kind, body in bodies.items()}
    table = [[row["payload"], f"{sizes[row['payload']]:,}", row["concurrency"], row["requests"],
              f"{row['requests_per_sec']:.0f}", f"{row['p50_ms']:.1f}", f"{row['p99_ms']:.1f}", row["errors"]]
             for row in rows]
    report.show(f"Serving one image per request on loopback, input size {size}; float: mlflow models serve's "
                f"defaults; raw and png: convzoo serve, {args.workers} worker(s) x {threads} onnxruntime thread(s)",
                ["payload", "request bytes", "concurrency", "requests", "req/s", "p50 ms", "p99 ms", "errors"],
                table, info)
    print("\n" + format_table(["onnxruntime in this process, batch 1", "calls/s"],
                              [[name, f"{rate:.0f}"] for name, rate in in_process.items()]))
    raw_one = next((row for row in rows if row["payload"] == "raw" and row["concurrency"] == 1), None)
    if raw_one:
        ratios = ", ".join(f"{raw_one['requests_per_sec'] / rate:.2f} of {name} ({rate:.0f}/s)"
                           for name, rate in list(in_process.items())[:2])
        print(f"\nraw requests at concurrency 1: {raw_one['requests_per_sec']:.0f}/s: {ratios}; goal >= 0.5 of "
              f"onnxruntime's in-process batch-1 rate")
    payload = {"benchmark": "serving", "machine": info, "run_id": run_id if args.run_id else None,
               "arch": None if args.run_id else args.arch, "input_size": size, "workers": args.workers,
               "threads_per_worker": threads, "request_bytes": sizes, "results": rows,
               "onnxruntime_b1_per_sec": in_process}
    print(f"wrote {report.save(args.json, payload)}")


if __name__ == "__main__":
    main()
