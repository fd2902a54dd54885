"""Early stopping on a real run: it stops when validation stops improving, and what is exported, logged and saved
as predictions is the best epoch's model, not the last one."""
import mlflow
import pytest
from click.testing import CliRunner

from convzoo.cli.app import cli


@pytest.mark.slow
def test_early_stopping_stops_and_the_exported_model_is_the_best_epochs(tracking_store, tmp_path):
    # min-delta 0.9: no epoch can beat the first by that much (its val acc is about 0.2), so patience 1 stops after
    # epoch 2, keeping epoch 1 (VGG/8 at 32 px learns in 60 batches: epoch 2's model is another one); exported later,
    # on resume
    result = CliRunner().invoke(cli, ["train", "vgg", "--resize", "32", "--batch-size", "64",
                                      "--epochs", "6", "--limit-train-batches", "60", "--early-stop", "1",
                                      "--min-delta", "0.9", "--precision", "fp32", "--export", "false"])
    assert result.exit_code == 0, result.output
    assert "early stop after epoch 2: val_acc has not improved for 1 epoch(s); the best was epoch 1" in result.output
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    client = mlflow.MlflowClient()
    test_acc = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "test_acc")}
    assert sorted(test_acc) == [1, 2] and abs(test_acc[1] - test_acc[2]) > 0.002  # the two models differ
    metrics = run.data.metrics
    assert (metrics["best_epoch"], metrics["epochs_trained"]) == (1, 2)
    assert metrics["best_val_acc"] == client.get_metric_history(run.info.run_id, "val_acc")[0].value
    saved = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/predictions/test_predictions.csv").splitlines()[1:]
    assert sum(line.split(",")[1] == line.split(",")[2] for line in saved) / len(saved) == pytest.approx(test_acc[1])
    assert {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")} == {
        "checkpoints/best.pt", "checkpoints/last.pt"}
    assert not (tmp_path / "checkpoints" / run.info.run_id).exists()

    # more epochs for the finished run, from the checkpoints it logged (the local ones are gone): it trains on,
    # stops again, and still ends with epoch 1's weights, read back from the logged best.pt
    resumed = CliRunner().invoke(cli, ["resume", run.info.run_id, "--epochs", "8", "--export", "true"])
    assert resumed.exit_code == 0, resumed.output
    assert "early stop after epoch 3: val_acc has not improved for 2 epoch(s); the best was epoch 1" in resumed.output
    again = client.get_run(run.info.run_id)
    assert (again.data.metrics["best_epoch"], again.data.metrics["epochs_trained"]) == (1, 3)
    # the ONNX model, checked by onnxruntime on all 10,000 test images, is epoch 1's
    assert again.data.metrics["onnx_test_acc"] == pytest.approx(test_acc[1], abs=2e-4)
