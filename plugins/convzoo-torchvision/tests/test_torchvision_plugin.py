"""torchvision models as convzoo architectures: adapted to one channel, trained and exported like any other."""
import mlflow
import pytest

from convzoo import get_architecture, list_architectures
from convzoo.config import resolve_config
from convzoo.plugins import get_registry
from convzoo.run import train


def test_registers_three_torchvision_models():
    assert list_architectures(include="tv-*") == ["tv-efficientnet_b0", "tv-mobilenet_v3_small", "tv-resnet18"]
    assert get_architecture("tv-resnet18").plugin == "convzoo-torchvision"


def test_first_convolution_takes_the_data_sets_channels():
    net = get_architecture("tv-resnet18").create(1, 10, input_size=64)
    assert (net.conv1.in_channels, net.conv1.out_channels, net.fc.out_features) == (1, 64, 10)
    mobile = get_architecture("tv-mobilenet_v3_small").create(1, 10, input_size=64)
    assert mobile.features[0][0].in_channels == 1


@pytest.mark.slow
def test_tv_resnet18_trains_a_few_batches_and_passes_onnx_parity(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    config, arch, dataset = resolve_config(get_registry(), "tv-resnet18", recipe="quick",
                                           overrides={"epochs": 1, "batch_size": 16, "resize": 32}, limit_train_batches=3)
    result = train(config, arch, dataset, echo=lambda line: None)
    run = mlflow.MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["parity"] == "passed"
    assert run.data.metrics["onnx_top1_agreement"] == pytest.approx(1.0)
