"""What convzoo wrote before the layered core still loads, predicts and resumes: a run made at commit 7b60669 (its
checkpoint, ONNX model and PyTorch model, and what that code answered for them) is in ``tests/data``."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pytest
import torch
from click.testing import CliRunner

from convzoo.cli import cli
from convzoo.data.fashion_mnist import load
from convzoo.data.pipeline import model_input
from convzoo.vocabulary import PARITY_TAG

MADE = Path(__file__).parent / "data" / "made-by-7b60669"
EXPECTED = json.loads((MADE / "expected.json").read_text())


@pytest.fixture(scope="module")
def first_20_test_images() -> torch.Tensor:
    return load().test_images[:20]


def test_an_onnx_model_logged_before_the_move_predicts_as_it_did(first_20_test_images, tmp_path):
    classifier = mlflow.pyfunc.load_model(str(MADE / "onnx-model"))
    answers = classifier.predict(first_20_test_images[:, 0].numpy())
    assert [answer["class"] for answer in answers] == EXPECTED["onnx_classes_first_20_test_images"]


def test_a_pytorch_model_logged_before_the_move_loads_and_predicts_as_it_did(first_20_test_images):
    model = mlflow.pytorch.load_model(str(MADE / "model"), map_location="cpu")  # an exported program, in eval mode
    with torch.no_grad():
        top1 = model(model_input(first_20_test_images, 32)).argmax(1).tolist()
    assert top1 == EXPECTED["pytorch_top1_first_20_test_images"]


@pytest.mark.slow
def test_a_checkpoint_written_before_the_move_resumes_its_run(tracking_store, tmp_path):
    """The old run's checkpoint, put where a killed run of this store keeps its own, continues to epoch 2: epoch 1
    is the one the old code trained (its metrics logged from the checkpoint), epoch 2 is new, ONNX is exported."""
    client = mlflow.MlflowClient()
    run_id = client.create_run("0", run_name="vgg-from-7b60669").info.run_id
    client.set_terminated(run_id, "KILLED")
    folder = tmp_path / "checkpoints"
    (folder / run_id).mkdir(parents=True)
    shutil.copy(MADE / "last.pt", folder / run_id / "last.pt")

    done = CliRunner().invoke(cli, ["resume", run_id, "--epochs", "2", "--checkpoint-dir", str(folder)])

    assert done.exit_code == 0, done.output
    assert f"resuming run {run_id} from {folder / run_id / 'last.pt'}: epoch 2, step 0/300" in done.output
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    test_acc = [metric.value for metric in sorted(client.get_metric_history(run_id, "test_acc"),
                                                  key=lambda metric: metric.step)]
    assert len(test_acc) == 2 and test_acc[0] == pytest.approx(EXPECTED["history"][0]["test_acc"])
    assert run.data.tags[PARITY_TAG] == "passed"
    assert mlflow.pyfunc.load_model(f"runs:/{run_id}/onnx-model") is not None
