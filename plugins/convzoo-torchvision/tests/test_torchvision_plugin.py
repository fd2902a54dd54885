"""torchvision models as convzoo architectures, adapted to one channel. Training, tracking and ONNX parity of every
architecture, these included, are the core's tests (tests/test_training.py, tests/test_onnx.py)."""
from convzoo import get_architecture, list_architectures


def test_registers_three_torchvision_models():
    assert list_architectures(include="tv-*") == ["tv-efficientnet_b0", "tv-mobilenet_v3_small", "tv-resnet18"]
    assert get_architecture("tv-resnet18").plugin == "convzoo-torchvision"


def test_first_convolution_takes_the_data_sets_channels():
    net = get_architecture("tv-resnet18").create(1, 10, input_size=64)
    assert (net.conv1.in_channels, net.conv1.out_channels, net.fc.out_features) == (1, 64, 10)
    mobile = get_architecture("tv-mobilenet_v3_small").create(1, 10, input_size=64)
    assert mobile.features[0][0].in_channels == 1

