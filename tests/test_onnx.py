"""ONNX export, parity with onnxruntime on the whole test set, and deployment of the verified model."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from convzoo import list_architectures
from convzoo.cli import cli
from convzoo.export import ParityError, export_onnx
from convzoo.fashion_mnist import CLASS_NAMES, load
from convzoo.pipeline import model_input
from convzoo.plugins import get_registry
from convzoo.publish import verify_and_log

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def splits():
    return load()


@pytest.mark.parametrize("name", list_architectures())
def test_every_architecture_exports_with_parity_on_the_whole_test_set(name, short_run, splits, tmp_path):
    config, result, lines = short_run(name)
    run = mlflow.MlflowClient().get_run(result.run_id)
    assert run.data.tags["parity"] == "passed"
    metrics = run.data.metrics
    assert metrics["onnx_top1_agreement"] == 1.0 and metrics["onnx_max_abs_diff"] < 1e-3
    assert metrics["onnx_test_acc"] == metrics["torch_fp32_test_acc"]
    for key in ("onnx_max_rel_diff", "torch_latency_ms_b1", "onnx_latency_ms_b1", "torch_images_per_sec_b64",
                "onnx_images_per_sec_b64"):
        assert metrics[key] > 0
    assert any(line.startswith("onnx parity passed on 10000 test images") for line in lines)

    pyfunc = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/onnx-model", dst_path=str(tmp_path))
    images = model_input(splits.test_images[:8], config.hyper.resize).contiguous()
    onnx_classes = np.asarray(pyfunc.predict(images.numpy())["logits"]).argmax(1)
    with torch.no_grad():
        torch_classes = result.model.cpu().float().eval()(images).argmax(1).numpy()
    assert (onnx_classes == torch_classes).all()


def test_an_altered_onnx_graph_fails_parity_and_marks_the_run(trained_vgg, in_session_store, splits, tmp_path):
    path = export_onnx(trained_vgg.model, trained_vgg.size, 1, tmp_path / "model.onnx")
    graph = onnx.load(str(path))
    [last_bias] = [t for t in graph.graph.initializer if list(t.dims) == [10]]  # the output layer's bias
    bias = onnx.numpy_helper.to_array(last_bias).copy()
    bias[0] += 5.0  # every image now leans towards class 0
    last_bias.CopyFrom(onnx.numpy_helper.from_array(bias, last_bias.name))
    onnx.save(graph, str(path))
    dataset = get_registry().get_dataset("fashion-mnist")
    with mlflow.start_run() as run:
        with pytest.raises(ParityError, match="ONNX parity check failed: ONNX outputs differ from PyTorch beyond"):
            verify_and_log(trained_vgg.model, path, splits, dataset, trained_vgg.size)
    client = mlflow.MlflowClient()
    marked = client.get_run(run.info.run_id)
    assert marked.data.tags["parity"] == "failed"
    assert marked.data.metrics["onnx_top1_agreement"] < 1.0
    assert not client.search_logged_models([run.info.experiment_id], f"source_run_id = '{run.info.run_id}'")
    result = CliRunner().invoke(cli, ["predict", "--run-id", run.info.run_id, "x.png"])
    assert result.exit_code == 1
    assert result.output == f"Error: run {run.info.run_id} has no verified ONNX model (parity: failed)\n"


def _write_pngs(splits, folder, count):
    paths = []
    for index in range(count):
        path = folder / f"test-{index}.png"
        Image.fromarray(splits.test_images[index, 0].numpy()).save(path)
        paths.append(str(path))
    return paths


def test_predict_classifies_png_files_of_real_test_images(trained_vgg, in_session_store, splits, tmp_path,
                                                         private_tempdir):
    paths = _write_pngs(splits, tmp_path, 20)
    result = CliRunner().invoke(cli, ["predict", "--run-id", trained_vgg.run_id, "--top", "1", *paths])
    assert result.exit_code == 0, result.output
    assert list(private_tempdir.iterdir()) == []  # the downloaded model is not left behind
    # each line: "PATH: CLASS PROBABILITY"
    predicted = [line.split(": ", 1)[1].rsplit(" ", 1)[0] for line in result.output.splitlines()]
    labels = [CLASS_NAMES[label] for label in splits.test_labels[:20].tolist()]
    images = model_input(splits.test_images[:20], trained_vgg.size)
    with torch.no_grad():
        expected = [CLASS_NAMES[i] for i in trained_vgg.model.cpu().float().eval()(images).argmax(1).tolist()]
    assert predicted == expected
    assert sum(p == label for p, label in zip(predicted, labels)) >= 14


@pytest.mark.parametrize("content, message", [
    (b"not an image", "is not an image this can read (PNG or JPEG)"),
])
def test_predict_rejects_files_that_are_not_images(trained_vgg, in_session_store, tmp_path, content, message):
    path = tmp_path / "notes.png"
    path.write_bytes(content)
    result = CliRunner().invoke(cli, ["predict", "--run-id", trained_vgg.run_id, str(path)])
    assert result.exit_code == 1 and message in result.output and result.output.count("\n") == 1
    missing = CliRunner().invoke(cli, ["predict", "--run-id", trained_vgg.run_id, str(tmp_path / "nope.png")])
    assert missing.exit_code == 1 and missing.output == f"Error: no such file: {tmp_path / 'nope.png'}\n"


def test_export_command_quantizes_to_int8_with_its_own_report(trained_vgg, in_session_store, private_tempdir,
                                                             tmp_path):
    result = CliRunner().invoke(cli, ["export", "--run-id", trained_vgg.run_id, "--quantize", "int8"])
    assert result.exit_code == 0, result.output
    assert list(private_tempdir.iterdir()) == []  # neither the downloaded model nor the ONNX files are left behind
    run = mlflow.MlflowClient().get_run(trained_vgg.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["parity"] == "passed"
    metrics = run.data.metrics
    assert metrics["int8_top1_agreement"] > 0.9 and abs(metrics["int8_test_acc_drop"]) < 0.05
    assert metrics["int8_images_per_sec_b64"] > 0 and metrics["int8_speedup_b64"] > 0
    int8 = mlflow.pyfunc.load_model(f"runs:/{trained_vgg.run_id}/onnx-int8-model", dst_path=str(tmp_path))
    size = trained_vgg.size
    assert np.asarray(int8.predict(np.zeros((2, 1, size, size), np.float32))["logits"]).shape == (2, 10)


def test_export_of_an_unknown_run_is_a_one_line_error(in_session_store):
    result = CliRunner().invoke(cli, ["export", "--run-id", "0123456789abcdef"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]  # a new store logs its set-up
    assert errors == [result.output.splitlines()[-1]]
    assert errors[0].startswith("Error: no run '0123456789abcdef' in the tracking store")


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url, payload):
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_mlflow_models_serve_answers_with_the_right_class(trained_vgg, in_session_store, splits, tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "models", "serve", "-m", f"runs:/{trained_vgg.run_id}/onnx-model", "--env-manager",
         "local", "--host", "127.0.0.1", "--port", str(port)],
        # the server downloads the model into a temp folder that outlives it: keep that in the test's folder
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(tmp_path)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(1)
        images = model_input(splits.test_images[:10], trained_vgg.size).numpy()
        status, body = _post(f"http://127.0.0.1:{port}/invocations", {"inputs": images.tolist()})
        assert status == 200
        served = np.asarray(body["predictions"]["logits"]).argmax(1)
        with torch.no_grad():
            expected = trained_vgg.model.cpu().float().eval()(torch.from_numpy(images)).argmax(1).numpy()
        assert (served == expected).all()
        status, body = _post(f"http://127.0.0.1:{port}/invocations", {"inputs": [[1.0, 2.0, 3.0]]})
        assert status == 400 and "shape" in body["message"].lower()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
