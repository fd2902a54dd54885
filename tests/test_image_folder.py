"""The ``folder`` data set end to end on generated PNGs: trained, exported with its class names, predicted by name;
its data checks before any run; honest re-exports."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from convzoo.cli.app import cli
from convzoo.data.splits import ImageSplits
from convzoo.recipes import Recipe
from convzoo.registry.catalogue import Architecture, Dataset
from convzoo.registry.plugins import get_registry
from convzoo.runs.settings import resolve_config
from convzoo.runs.training_run import train
from convzoo.testing import check_dataset

CLASSES = ("circle", "red", "stripes")
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def picture(label: int, index: int, rng: np.random.Generator) -> Image.Image:
    """One image of class ``label``: a grey disc, a red field or white stripes, in one of two sizes."""
    width, height = (40, 32) if index % 2 else (24, 24)
    pixels = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    if label == 0:
        rows, columns = np.mgrid[:height, :width]
        pixels[(rows - height / 2) ** 2 + (columns - width / 2) ** 2 < (min(width, height) / 3) ** 2] = 220
    elif label == 1:
        pixels[..., 0] = 200
    else:
        pixels[:, ::4] = 250
    image = Image.fromarray(pixels)
    return image.convert("L") if label == 0 else image  # one greyscale class, two colour ones


def write_folder(root, per_class=(12, 4), classes=CLASSES, seed=0, grey=False):
    """``root/train/<class>/*.png`` and ``root/test/<class>/*.png``: ``per_class`` images per class and split (no
    test/ for 0); ``grey``: every image greyscale."""
    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "test"), per_class):
        for label, name in enumerate(classes if count else ()):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for index in range(count):
                image = picture(label, index, rng)
                (image.convert("L") if grey else image).save(root / split / name / f"{index}.png")
    return root


def truncate(path):
    path.write_bytes(path.read_bytes()[:60])


def runs():
    return mlflow.search_runs(search_all_experiments=True, output_format="list")


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A VGG trained on a generated folder with one truncated PNG skipped, through the MLflow Project (`mlflow run .
    -P dataset=folder -P data_dir=...`), in a store of its own."""
    root = write_folder(tmp_path_factory.mktemp("shapes"))
    truncate(root / "train" / "red" / "3.png")
    store = tmp_path_factory.mktemp("folder-store")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(store)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
        patch.setenv("CONVZOO_CACHE_DIR", str(store / "cache"))
        patch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
        settings = {"arch": "vgg", "dataset": "folder", "data_dir": root, "epochs": 1, "limit_train_batches": 2,
                    "skip_bad_images": "true", "register_as": "shapes"}
        command = [str(BIN / "mlflow"), "run", str(ROOT), "--env-manager", "local",
                   *[arg for key, value in settings.items() for arg in ("-P", f"{key}={value}")]]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        [run] = runs()
        yield run, root, store, result.stdout, patch


def test_a_folder_of_pngs_trains_exports_its_class_names_and_predicts_them(folder_run):
    run, root, store, output, _ = folder_run
    params = run.data.params
    assert (params["dataset"], params["num_classes"], params["in_channels"], params["data_source"]) == (
        "folder", "3", "3", str(root))  # a colour class makes the data set colour
    assert run.info.run_name.startswith("vgg-folder-") and run.data.tags["mlflow.project.entryPoint"] == "main"
    client = mlflow.MlflowClient()
    classes = json.loads(open(client.download_artifacts(run.info.run_id, "data/classes.json", str(store))).read())
    assert classes == {"class_names": list(CLASSES)}
    assert run.data.metrics["skipped_images"] == 1
    skipped = open(client.download_artifacts(run.info.run_id, "data/skipped_images.txt", str(store))).read()
    assert skipped == f"{root / 'train' / 'red' / '3.png'}\n"
    model_dir = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/onnx-model", dst_path=str(store / "m"))
    [onnx_file] = [name for name in os.listdir(model_dir) if name.endswith(".onnx")]
    metadata = {prop.key: prop.value for prop in onnx.load(os.path.join(model_dir, onnx_file)).metadata_props}
    assert (json.loads(metadata["class_names"]), metadata["dataset"]) == (list(CLASSES), "folder")
    images = [str(root / "test" / name / "1.png") for name in CLASSES]
    predicted = CliRunner().invoke(cli, ["predict", "--run-id", run.info.run_id, "--top", "3", *images])
    assert predicted.exit_code == 0, predicted.output
    for line, image in zip(predicted.output.splitlines(), images):
        assert line.startswith(f"{image}: ")
        assert sorted(re.findall(r"([a-z]+) [01]\.\d{3}", line)) == sorted(CLASSES)  # the folders' names


def test_the_second_load_reads_the_cache_and_is_the_same_data(folder_run, tmp_path, monkeypatch):
    run, root, store, _, _ = folder_run
    size = int(run.data.params["resize"])
    monkeypatch.setenv("CONVZOO_CACHE_DIR", str(store / "cache"))
    folder = get_registry().get_dataset("folder")
    [cache] = list((store / "cache").glob("folder-*.u8"))
    modified = cache.stat().st_mtime_ns
    splits = folder.load_splits(str(root), image_size=size, skip_bad_images=True)
    assert cache.stat().st_mtime_ns == modified and cache.name == f"folder-{splits.digest}.u8"
    assert (len(splits.train_labels), len(splits.test_labels), splits.train_images.shape[1:]) == (
        35, 12, (3, size, size))
    assert splits.class_names == CLASSES and splits.skipped == (str(root / "train" / "red" / "3.png"),)


def test_a_generated_folder_passes_the_dataset_check_and_greyscale_is_detected(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVZOO_CACHE_DIR", str(tmp_path / "cache"))
    folder = get_registry().get_dataset("folder")
    colour = write_folder(tmp_path / "colour", per_class=(4, 2))
    check_dataset(folder, str(colour))
    grey = write_folder(tmp_path / "grey", per_class=(6, 0), classes=("circle", "red"), grey=True)
    splits = folder.load_splits(str(grey), image_size=16, test_fraction=1 / 3)  # no test/: a third held out
    assert (splits.train_images.shape[1:], len(splits.train_labels), splits.test_labels.tolist()) == (
        (1, 16, 16), 8, [0, 0, 1, 1])
    assert folder.loaded(splits).class_names == ("circle", "red")
    assert folder.load_splits(str(grey), image_size=16, channels=3, test_fraction=1 / 3).train_images.shape[1] == 3


@pytest.mark.parametrize("spoil, message", [
    (lambda root: [path.unlink() for path in (root / "train" / "red").glob("*")],
     "data set folder: class folder {root}/train/red is empty (no .png, .jpg, .jpeg, .bmp, .webp file)"),
    (lambda root: truncate(root / "test" / "stripes" / "1.png"),
     "cannot read image {root}/test/stripes/1.png (OSError: image file is truncated"),
    (lambda root: (root / "test" / "dogs").mkdir(),
     "data set folder: {root}/test/dogs is a class train/ does not have; classes: circle, red, stripes"),
    (lambda root: (root / "train").rename(root / "training"),
     "data set folder: {root} has no train/ folder; the layout is DIR/train/<class>/<image>"),
    (lambda root: root.rename(root.with_name("moved")),
     "data set folder: data dir {root} is not a folder; give --data-dir DIR with DIR/train/<class>/<image>"),
])
def test_bad_folders_are_one_line_errors_and_make_no_run(spoil, message, tmp_path, tracking_store, monkeypatch):
    monkeypatch.setenv("CONVZOO_CACHE_DIR", str(tmp_path / "cache"))
    root = write_folder(tmp_path / "shapes", per_class=(4, 2))
    spoil(root)
    result = CliRunner().invoke(cli, ["train", "vgg", "--dataset", "folder", "--data-dir", str(root), "--epochs", "1"])
    assert result.exit_code == 1
    [line] = [line for line in result.output.splitlines() if " INFO " not in line]
    assert line.startswith(f"Error: {message.format(root=root)}")
    assert runs() == [] and not list((tmp_path / "cache").glob("*.u8"))  # nothing half-written either


def loader(labels=None, error=None):
    def load(data_dir=None):
        if error:
            raise error
        images = torch.arange(16 * 64, dtype=torch.int64).remainder(251).to(torch.uint8).reshape(16, 1, 8, 8)
        return ImageSplits("made-up", images, labels, images[:4], labels[:4], source="generated", digest="0")

    return load


@pytest.mark.parametrize("dataset, arch, message", [
    (Dataset("made-up", loader(torch.tensor([0, 1] * 6 + [0, 7, 1, 0])), "", 1, 2, ("a", "b")), "vgg",
     "data set made-up: train label at index 13 is 7, outside [0, 2) (2 classes; 1 bad label(s))"),
    (Dataset("made-up", loader(error=RuntimeError("disk on fire")), "", 1, 2, ("a", "b"), "convzoo-made-up", "1.0"),
     "vgg", "dataset made-up (convzoo-made-up 1.0) failed to load: RuntimeError: disk on fire"),
    (Dataset("made-up", loader(torch.tensor([0, 1, 2] * 5 + [0])), "", 1, 3, ("a", "b", "c")), "ten-outputs",
     "architecture ten-outputs gives 10 outputs, but data set made-up has 3 classes; build it with num_classes"),
])
def test_bad_data_is_refused_before_a_run_exists(dataset, arch, message, tracking_store):
    registry = get_registry()
    architecture = registry.get_architecture("vgg")
    if arch == "ten-outputs":
        architecture = Architecture("ten-outputs", build=lambda channels, classes, input_size: torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(channels * input_size * input_size, 10)), description="", input_size=8,
            recipes={"quick": Recipe.from_mapping({"epochs": 1, "batch_size": 8, "lr": 0.01}, "ten-outputs")})
        registry.architectures._entries["ten-outputs"] = architecture
    try:
        config, _, _ = resolve_config(registry, architecture.name, recipe="quick",
                                      overrides={"resize": 32, "epochs": 1, "val_fraction": 0},
                                      limit_train_batches=1, export=False)
        with pytest.raises(Exception) as raised:
            train(config, architecture, dataset, echo=lambda line: None)
    finally:
        registry.architectures._entries.pop("ten-outputs", None)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
    assert runs() == []


def test_export_on_other_data_leaves_every_metric_and_time_of_the_run(folder_run, tmp_path):
    run, root, store, _, patch = folder_run
    other = write_folder(tmp_path / "other", per_class=(4, 3), seed=1)
    client = mlflow.MlflowClient()
    before = client.get_run(run.info.run_id)
    refused = CliRunner().invoke(cli, ["export", "--run-id", run.info.run_id, "--data-dir", str(other)])
    assert refused.exit_code == 1 and refused.output.startswith(f"Error: {other} holds other data (digest ")
    checked = CliRunner().invoke(cli, ["export", "--run-id", run.info.run_id, "--data-dir", str(other),
                                       "--other-data"])
    assert checked.exit_code == 0, checked.output
    again = CliRunner().invoke(cli, ["export", "--run-id", run.info.run_id])  # on its own data: nothing overwritten
    assert again.exit_code == 0 and "kept the run's own onnx_max_abs_diff" in again.output
    after = client.get_run(run.info.run_id)
    assert (after.info.status, after.info.start_time, after.info.end_time) == (
        before.info.status, before.info.start_time, before.info.end_time)
    assert {key: after.data.metrics[key] for key in before.data.metrics} == before.data.metrics
    added = sorted(set(after.data.metrics) - set(before.data.metrics))
    digest = added[0].split(".")[1]
    assert added == [f"other_data.{digest}.{name}" for name in sorted(
        ["onnx_max_abs_diff", "onnx_max_rel_diff", "onnx_test_acc", "onnx_top1_agreement", "torch_fp32_test_acc"])]
    assert after.data.metrics[f"other_data.{digest}.onnx_test_acc"] * 9 == pytest.approx(
        round(after.data.metrics[f"other_data.{digest}.onnx_test_acc"] * 9))  # of the other folder's 9 test images


def test_evaluate_logs_a_child_run_and_its_bar_gates_promote(folder_run):
    run, root, store, _, _ = folder_run
    client = mlflow.MlflowClient()
    before = client.get_run(run.info.run_id)
    result = CliRunner().invoke(cli, ["evaluate", "--run-id", run.info.run_id])
    assert result.exit_code == 0, result.output
    [child] = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                 filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    metrics = child.data.metrics
    assert metrics["accuracy"] == pytest.approx(run.data.metrics["onnx_test_acc"])  # the same model, the same images
    assert metrics["accuracy"] == pytest.approx(metrics["accuracy_score"]) and metrics["example_count"] == 12
    assert metrics["top3_accuracy"] == 1.0 and 0 <= metrics["ece"] <= 1 and "f1_score" in metrics
    assert {artifact.path for artifact in client.list_artifacts(child.info.run_id, "evaluation")} == {
        "evaluation/confusion_matrix_normalised.png", "evaluation/reliability_diagram.png",
        "evaluation/confidently_wrong.png"}
    per_class = open(client.download_artifacts(child.info.run_id, "per_class_metrics.csv", str(store))).read()
    assert all(name in per_class for name in CLASSES) and "f1" in per_class.splitlines()[0]
    assert client.get_run(run.info.run_id).data.metrics == before.data.metrics
    refused = CliRunner().invoke(cli, ["promote", "shapes", "1", "--require", "accuracy>=1.01"])
    assert refused.exit_code == 1
    assert refused.output.splitlines()[-1] == (f"Error: version 1 of shapes fails its evaluation (accuracy "
                                               f"{metrics['accuracy']:.4f} is not >= 1.01); champion not moved")
    assert "champion" not in client.get_registered_model("shapes").aliases
    bad = CliRunner().invoke(cli, ["evaluate", "--run-id", run.info.run_id, "--require", "accuracy=>0.5"])
    assert bad.output == ("Error: requirement 'accuracy=>0.5' is not METRIC>=VALUE (or >, <=, <), e.g. "
                          "accuracy>=0.9\n")
    promoted = CliRunner().invoke(cli, ["promote", "shapes", "1", "--require", "accuracy>=0", "--require", "ece<=1"])
    assert promoted.exit_code == 0, promoted.output
    assert client.get_registered_model("shapes").aliases == {"champion": 1}


def test_the_digits_example_writes_a_real_folder_that_loads_with_its_ten_classes(tmp_path, monkeypatch):
    import runpy

    monkeypatch.setenv("CONVZOO_CACHE_DIR", str(tmp_path / "cache"))
    example = runpy.run_path(str(ROOT / "examples" / "digits_folder.py"))
    assert example["write"](tmp_path / "digits") == 1797
    splits = get_registry().get_dataset("folder").load_splits(str(tmp_path / "digits"), image_size=8)
    assert splits.class_names == tuple(sorted(example["NAMES"])) and splits.train_images.shape[1:] == (1, 8, 8)
    per_class = torch.bincount(torch.cat([splits.train_labels, splits.test_labels]))
    assert per_class.sum() == 1797 and len(per_class) == 10
    # the default test fraction, 0.2 of each class
    assert torch.bincount(splits.test_labels).tolist() == [round(0.2 * count) for count in per_class.tolist()]
