"""ONNX export, parity with onnxruntime on the whole test set, and deployment of the verified model."""
import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import mlflow
import mlflow.onnx
import mlflow.pyfunc
import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from convzoo import list_architectures
from convzoo.cli.app import cli
from convzoo.deploy.export import (ATOL, RTOL, ParityError, check_parity, export_onnx, onnx_runner,
                                   reference_model, torch_runner)
from convzoo.data.fashion_mnist import CLASS_NAMES, load
from convzoo.deploy.image_classifier import ImageClassifier
from convzoo.data.pipeline import model_input
from convzoo.deploy.publish import verify_and_log

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
    assert any(line.startswith("onnx parity passed on 10000 raw test images") for line in lines)

    # the logged model classifies raw uint8 test images (28 x 28, as stored) into class names
    classifier = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/onnx-model", dst_path=str(tmp_path))
    answers = classifier.predict(splits.test_images[:8, 0].numpy())
    with torch.no_grad():
        logits = result.model.cpu().float().eval()(model_input(splits.test_images[:8], config.hyper.resize))
    assert [answer["class"] for answer in answers] == [CLASS_NAMES[i] for i in logits.argmax(1).tolist()]
    probabilities = logits.softmax(1).max(1).values.numpy()
    assert np.allclose([answer["probability"] for answer in answers], probabilities, rtol=1e-3, atol=1e-5)


def test_the_onnx_model_takes_raw_images_and_describes_itself(trained_vgg, in_session_store, splits):
    """One self-contained file: uint8 [N, 28, 28] in, logits and probabilities out, class names in its metadata."""
    model = mlflow.onnx.load_model(f"runs:/{trained_vgg.run_id}/onnx-model")
    [image] = model.graph.input
    assert image.name == "image" and image.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim] == ["batch", 28, 28]
    assert [output.name for output in model.graph.output] == ["logits", "probabilities"]
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert json.loads(metadata["class_names"]) == list(CLASS_NAMES)
    assert (metadata["run_id"], metadata["arch"], metadata["dataset"]) == (trained_vgg.run_id, "vgg", "fashion-mnist")
    assert metadata["input_size"] == str(trained_vgg.size)
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits, probabilities = session.run(None, {"image": splits.test_images[:5, 0].numpy()})
    assert logits.shape == probabilities.shape == (5, 10)
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert (probabilities.argmax(1) == logits.argmax(1)).all()


def edit_output_bias(path, added, out):
    """The ONNX graph at ``path`` with ``added`` (one value per class, or one for all) added to its output layer's
    bias, saved to ``out``."""
    graph = onnx.load(str(path))
    [last_bias] = [t for t in graph.graph.initializer if list(t.dims) == [10]]
    bias = onnx.numpy_helper.to_array(last_bias) + np.float32(added)
    last_bias.CopyFrom(onnx.numpy_helper.from_array(bias, last_bias.name))
    onnx.save(graph, str(out))
    return out


def test_an_altered_onnx_graph_fails_parity_and_marks_the_run(trained_vgg, in_session_store, splits, tmp_path):
    path = export_onnx(trained_vgg.model, trained_vgg.size, (1, 28, 28), tmp_path / "model.onnx")
    edit_output_bias(path, np.eye(10, dtype=np.float32)[0] * 5.0, path)  # every image now leans towards class 0
    with mlflow.start_run() as run:
        with pytest.raises(ParityError, match="ONNX parity check failed: ONNX outputs differ from PyTorch beyond"):
            verify_and_log(trained_vgg.model, path, splits, trained_vgg.size, run.info.run_id)
    client = mlflow.MlflowClient()
    marked = client.get_run(run.info.run_id)
    assert marked.data.tags["parity"] == "failed"
    assert marked.data.metrics["onnx_top1_agreement"] < 1.0
    assert not client.search_logged_models([run.info.experiment_id], f"source_run_id = '{run.info.run_id}'")
    result = CliRunner().invoke(cli, ["predict", "--run-id", run.info.run_id, "x.png"])
    assert result.exit_code == 1
    assert result.output == f"Error: run {run.info.run_id} has no verified ONNX model (parity: failed)\n"




def test_parity_tolerance_is_on_the_scale_of_each_images_largest_logit(trained_vgg, splits, tmp_path):
    # every logit moved by the same amount: the same probabilities and predictions, other logits
    images, labels = splits.test_images[:1000], splits.test_labels[:1000]
    path = export_onnx(trained_vgg.model, trained_vgg.size, (1, 28, 28), tmp_path / "model.onnx")
    with torch.no_grad():
        logits = reference_model(trained_vgg.model)(model_input(images, trained_vgg.size)).abs()
    largest = logits.max(1).values
    small = 0.5 * RTOL * largest.min().item()
    assert (logits < (small - ATOL) / RTOL).any()  # some logit is near enough zero to miss its own rtol by far
    report = check_parity(trained_vgg.model, edit_output_bias(path, small, tmp_path / "small.onnx"), images, labels,
                          trained_vgg.size)
    assert report.passed and report.max_abs_diff == pytest.approx(small, rel=0.05)
    large = 2 * RTOL * largest.max().item()
    report = check_parity(trained_vgg.model, edit_output_bias(path, large, tmp_path / "large.onnx"), images, labels,
                          trained_vgg.size)
    assert not report.passed and report.top1_agreement == 1.0  # the predictions agree, the logits do not


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


@pytest.mark.parametrize("name, content, message", [
    ("notes.png", b"not an image", "Error: {path} is not a PNG or JPEG image\n"),
    ("cut.png", "truncated", "Error: {path} is not a PNG or JPEG image this can read ("),
    ("bomb.png", "bomb", "Error: {path} claims more than 178,956,970 pixels (a decompression bomb); images of at most "
                         "16,777,216 pixels are accepted\n"),
])
def test_predict_refuses_what_is_not_an_image_in_one_line(trained_vgg, in_session_store, splits, decompression_bomb,
                                                          tmp_path, name, content, message):
    path = tmp_path / name
    if content == "bomb":
        path.write_bytes(decompression_bomb.read_bytes())
    elif content == "truncated":
        [whole] = _write_pngs(splits, tmp_path, 1)
        path.write_bytes(Path(whole).read_bytes()[:200])
    else:
        path.write_bytes(content)
    result = CliRunner().invoke(cli, ["predict", "--run-id", trained_vgg.run_id, str(path)])
    assert result.exit_code == 1 and result.output.startswith(message.format(path=path))
    assert result.output.count("\n") == 1
    missing = CliRunner().invoke(cli, ["predict", "--run-id", trained_vgg.run_id, str(tmp_path / "nope.png")])
    assert missing.exit_code == 1 and missing.output == f"Error: no such file: {tmp_path / 'nope.png'}\n"


def docs_example() -> str:
    """The deploying page's onnxruntime-only example: the python block after its marker."""
    page = (Path(__file__).parents[1] / "docs" / "deploying.md").read_text()
    after = page.split("<!-- onnxruntime-only example: tests/test_onnx.py runs it -->", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_documented_onnxruntime_example_predicts_convzoos_classes(trained_vgg, in_session_store, splits, tmp_path):
    """The downloaded .onnx file alone, with onnxruntime, numpy and Pillow, classifies images as convzoo does."""
    download = subprocess.run([str(BIN / "mlflow"), "artifacts", "download", "-u",
                               f"runs:/{trained_vgg.run_id}/onnx-model", "-d", str(tmp_path)],
                              capture_output=True, text=True)
    assert download.returncode == 0, download.stderr[-2000:]
    model = tmp_path / "onnx-model" / "model.onnx"
    paths = _write_pngs(splits, tmp_path, 20)
    example = tmp_path / "classify.py"
    # run the example as written, then list what it imported
    example.write_text(docs_example() + "\nprint(sorted({m.split('.')[0] for m in sys.modules}), file=sys.stderr)\n")
    ran = subprocess.run([sys.executable, str(example), str(model), *paths], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr[-2000:]
    imported = set(eval(ran.stderr.strip().splitlines()[-1]))
    assert {"onnxruntime", "numpy", "PIL"} <= imported and not {"torch", "mlflow", "convzoo"} & imported
    predicted = CliRunner().invoke(cli, ["predict", "--run-id", trained_vgg.run_id, "--top", "1", *paths])
    assert predicted.exit_code == 0, predicted.output
    classes = [line.split(": ", 1)[1].rsplit(" ", 1)[0] for line in predicted.output.splitlines()]
    assert [line.split(": ", 1)[1].rsplit(" ", 1)[0] for line in ran.stdout.splitlines()] == classes
    assert len(set(classes)) > 3  # real answers, not one class for everything


def test_export_command_quantizes_to_int8_with_its_own_report(trained_vgg, in_session_store, private_tempdir,
                                                             splits, tmp_path):
    result = CliRunner().invoke(cli, ["export", "--run-id", trained_vgg.run_id, "--quantize", "int8"])
    assert result.exit_code == 0, result.output
    assert list(private_tempdir.iterdir()) == []  # neither the downloaded model nor the ONNX files are left behind
    run = mlflow.MlflowClient().get_run(trained_vgg.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["parity"] == "passed"
    metrics = run.data.metrics
    assert metrics["int8_top1_agreement"] > 0.9 and abs(metrics["int8_test_acc_drop"]) < 0.05
    assert metrics["int8_images_per_sec_b64"] > 0 and metrics["int8_speedup_b64"] > 0
    int8 = mlflow.pyfunc.load_model(f"runs:/{trained_vgg.run_id}/onnx-int8-model", dst_path=str(tmp_path))
    answers = int8.predict(splits.test_images[:2, 0].numpy())  # raw images in, class names out, like the fp32 model
    assert len(answers) == 2 and {answer["class"] for answer in answers} <= set(CLASS_NAMES)


def test_export_of_an_unknown_run_is_a_one_line_error(in_session_store):
    result = CliRunner().invoke(cli, ["export", "--run-id", "0123456789abcdef"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]  # a new store logs its set-up
    assert errors == [result.output.splitlines()[-1]]
    assert errors[0].startswith("Error: no run '0123456789abcdef' in the tracking store")


@pytest.mark.slow
def test_predict_with_a_model_from_before_models_took_images_says_to_export_again(tracking_store, splits, tmp_path):
    """Runs made by older convzoo logged an ONNX model of the network alone, taking float tensors."""
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10)).eval()
    program = torch.onnx.export(network, (torch.rand(2, 1, 28, 28),), dynamic_shapes=({0: "batch"},),
                                input_names=["images"], output_names=["logits"], verbose=False)
    program.save(str(tmp_path / "old.onnx"), external_data=False)
    with mlflow.start_run() as run:
        mlflow.set_tag("parity", "passed")
        mlflow.onnx.log_model(onnx.load(str(tmp_path / "old.onnx")), name="onnx-model")
    [path] = _write_pngs(splits, tmp_path, 1)
    result = CliRunner().invoke(cli, ["predict", "--run-id", run.info.run_id, path])
    assert result.exit_code == 1
    assert result.output == (f"Error: run {run.info.run_id}: this ONNX model takes tensor(float) network inputs, not "
                             f"images: it was exported before convzoo exported models that take images; export it "
                             f"again: convzoo export --run-id {run.info.run_id}\n")


def test_a_colour_data_sets_model_takes_n_h_w_c_images_and_encoded_ones(tmp_path):
    """Three channels: the exported model takes [N, H, W, 3] uint8, as colour images are stored, resizes them as
    training does, and the image classifier feeds it arrays and PNGs alike."""
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                  torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    images = torch.randint(0, 256, (5, 3, 20, 24), dtype=torch.uint8)  # not square, and not the network's size
    path = export_onnx(network, 32, (3, 20, 24), tmp_path / "colour.onnx", {"class_names": '["r", "g", "b"]'})
    [actual] = onnx_runner(path)(images)
    torch.testing.assert_close(torch.from_numpy(actual), torch_runner(network, 32)(images), rtol=1e-3, atol=1e-5)
    classifier = ImageClassifier(path)
    assert (classifier.shape, classifier.channels, classifier.layout) == ((20, 24, 3), 3, "[N, 20, 24, 3]")
    stored = images.permute(0, 2, 3, 1).numpy()
    from_arrays = classifier.predict(stored)
    assert [answer["class"] for answer in from_arrays] == [["r", "g", "b"][i] for i in actual.argmax(1)]
    encoded = []
    for pixels in stored:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    assert classifier.predict(encoded) == from_arrays  # PNG is lossless: the same pixels, the same answers


def test_only_a_top1_flip_between_tied_logits_is_forgiven():
    import numpy as np

    from convzoo.deploy.export import decisive_flips

    expected = np.array([[2.0, 2.0 + 1e-6, 0.0], [3.0, 1.0, 0.0], [0.0, 1.0, 5.0]], dtype=np.float32)
    tied_flip = expected.copy()
    tied_flip[0, 0] += 2e-6  # within rtol 1e-3 of 2.0: ONNX picks class 0 where PyTorch picked 1
    assert decisive_flips(expected, tied_flip) == 0
    clear_flip = expected.copy()
    clear_flip[1, 1] = 4.0  # PyTorch's 3.0 against 1.0 is no tie
    assert decisive_flips(expected, clear_flip) == 1
