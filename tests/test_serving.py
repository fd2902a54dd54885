"""The served model end to end over HTTP: ``convzoo serve`` of a run and of a registry alias, raw and encoded image
payloads, bad payloads refused with HTTP 400 and one line, ``convzoo promote`` and the aliases ``convzoo runs`` shows."""
import base64
import io
import json
import os
import signal

import mlflow
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import ModelServer, benchmark
from PIL import Image

from convzoo.cli.app import cli
from convzoo.data.fashion_mnist import CLASS_NAMES, load
from convzoo.deploy.image_classifier import MAX_IMAGES, MAX_PIXELS
from convzoo.data.pipeline import model_input

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def splits():
    return load()


def encoded(pixels: np.ndarray, kind: str = "PNG", size: tuple[int, int] | None = None) -> str:
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    (image.resize(size) if size else image).save(buffer, kind)
    return base64.b64encode(buffer.getvalue()).decode()


def expected_classes(trained_vgg, images):
    with torch.no_grad():
        logits = trained_vgg.model.cpu().float().eval()(model_input(images, trained_vgg.size))
    return [CLASS_NAMES[i] for i in logits.argmax(1).tolist()]


def test_a_served_run_classifies_images_and_refuses_bad_payloads_with_400(trained_vgg, in_session_store, splits,
                                                                         decompression_bomb, tmp_path):
    server = ModelServer(trained_vgg.run_id, tmp_path)
    try:
        server.wait_until_ready()
        raw = splits.test_images[:10]
        status, body = server.post({"inputs": raw[:, 0].tolist()})
        assert status == 200
        answers = body["predictions"]
        assert [answer["class"] for answer in answers] == expected_classes(trained_vgg, raw)
        for answer in answers:
            assert [top["class"] for top in answer["top3"]][0] == answer["class"]
            assert answer["probability"] == answer["top3"][0]["probability"] >= answer["top3"][1]["probability"]
            assert len({top["class"] for top in answer["top3"]}) == 3

        # base64 PNG at the data set's size gives the same answers; a JPEG of another size is resized first
        status, body = server.post({"inputs": [encoded(image[0].numpy()) for image in raw[:3]]})
        assert status == 200 and body["predictions"] == answers[:3]
        status, body = server.post({"inputs": [encoded(raw[0, 0].numpy(), "JPEG", (100, 90))]})
        assert status == 200 and body["predictions"][0]["class"] in CLASS_NAMES
        status, body = server.post({"dataframe_split": {"columns": ["image"], "data": [[encoded(raw[1, 0].numpy())]]}})
        assert status == 200 and body["predictions"] == answers[1:2]

        bomb = base64.b64encode(decompression_bomb.read_bytes()).decode()
        refused = {
            "images must be integers from 0 to 255 (uint8); got float64": {"inputs": [[[0.5] * 28] * 28]},
            "images must be an array of shape [N, 28, 28]; got [2, 3]": {"inputs": [[1, 2, 3], [4, 5, 6]]},
            "pixel values must be from 0 to 255; got -1 to 300": {"inputs": [[[-1] * 28] * 27 + [[300] * 28]]},
            "image 1 is not base64-encoded PNG or JPEG bytes": {"inputs": [encoded(raw[0, 0].numpy()), "%%%"]},
            "image 0 is not a PNG or JPEG image": {"inputs": [base64.b64encode(b"GIF89a not really").decode()]},
            (f"image 0 claims more than 178,956,970 pixels (a decompression bomb); images of at most "
             f"{MAX_PIXELS:,} pixels are accepted"): {"inputs": [bomb]},
            f"a request must hold from 1 to {MAX_IMAGES} images; got {MAX_IMAGES + 1}":
                {"inputs": np.zeros((MAX_IMAGES + 1, 28, 28), int).tolist()},
        }
        for reason, payload in refused.items():
            status, body = server.post(payload)
            assert (status, body["message"]) == (400, reason)
        status, body = server.post(body=b"{not json")
        assert status == 400 and "valid JSON" in body["message"]
        status, body = server.post({"inputs": raw[:1, 0].tolist()})  # still answering
        assert status == 200 and body["predictions"] == answers[:1]

        os.killpg(server.process.pid, signal.SIGTERM)
        assert server.process.wait(timeout=60) == 143
        assert list((tmp_path / "tmp").iterdir()) == []  # the model's downloads are removed
    finally:
        server.kill()


def test_promote_points_an_alias_that_serve_and_runs_follow(trained_vgg, in_session_store, splits, tmp_path):
    name = "fashion-vgg"
    version = str(mlflow.register_model(f"runs:/{trained_vgg.run_id}/onnx-model", name).version)
    runner = CliRunner()
    promoted = runner.invoke(cli, ["promote", name, version, "--alias", "champion"])
    assert promoted.exit_code == 0, promoted.output
    assert promoted.output == (f"models:/{name}@champion is version {version} (run {trained_vgg.run_id}); serve it "
                               f"with: convzoo serve models:/{name}@champion\n")
    rows = [line.split() for line in runner.invoke(cli, ["runs"]).output.splitlines()]
    assert rows[0][-1] == "ALIASES"
    assert [row[-1] for row in rows if row[0] == trained_vgg.run_id] == [f"{name}@champion"]

    missing = runner.invoke(cli, ["promote", name, "99"])
    assert missing.exit_code == 1
    assert missing.output.startswith(f"Error: no registered model version models:/{name}/99 in the tracking store")
    reserved = runner.invoke(cli, ["promote", name, version, "--alias", "v1"])
    assert (reserved.exit_code, reserved.output) == (1, "Error: alias 'v1' is not allowed: Version alias name 'v1' "
                                                        "is reserved.\n")
    unknown = runner.invoke(cli, ["serve", f"models:/{name}@nobody"])
    assert unknown.exit_code == 1 and unknown.output.startswith(
        f"Error: no registered model version models:/{name}@nobody in the tracking store")

    server = ModelServer(f"models:/{name}@champion", tmp_path)
    try:
        server.wait_until_ready()
        status, body = server.post({"inputs": splits.test_images[:4, 0].tolist()})
        assert status == 200
        assert [answer["class"] for answer in body["predictions"]] == expected_classes(trained_vgg,
                                                                                      splits.test_images[:4])
    finally:
        server.kill()


def test_serve_refuses_a_run_without_a_verified_model(tracking_store):
    with mlflow.start_run() as run:
        pass
    result = CliRunner().invoke(cli, ["serve", run.info.run_id])
    assert (result.exit_code, result.output) == (1, f"Error: run {run.info.run_id} has no verified ONNX model "
                                                    f"(parity: not run); export it first: convzoo export "
                                                    f"--run-id {run.info.run_id}\n")


def test_serving_loads_both_servers_with_every_payload(trained_vgg, in_session_store, tmp_path):
    """benchmarks/serving.py: a real run's model behind the old float payload and the new raw and PNG ones, at two
    concurrencies."""
    out = tmp_path / "serving.json"
    done = benchmark("serving.py", "--run-id", trained_vgg.run_id, "--requests", "4", "--warmup", "1",
                     "--concurrency", "1", "--concurrency", "2", "--workers", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [(row["payload"], row["concurrency"]) for row in report["results"]] == [
        (payload, concurrency) for payload in ("float", "raw", "png") for concurrency in (1, 2)]
    for row in report["results"]:
        assert row["errors"] == 0 and row["requests"] == 4 and row["requests_per_sec"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert report["input_size"] == trained_vgg.size and report["workers"] == 1
    assert report["request_bytes"]["float"] > 10 * report["request_bytes"]["raw"]
    assert len(report["onnxruntime_b1_per_sec"]) == 3 and min(report["onnxruntime_b1_per_sec"].values()) > 0
    assert "of onnxruntime's in-process batch-1 rate" in done.stdout
