"""NiN, layer for layer as in the seed notebook: ``nin_block`` and the network."""
from torch import nn

from convzoo.layers import FlattenLayer, GlobalAvgPool2d


def nin_block(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> nn.Sequential:
    blk = nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding),
                        nn.ReLU(),
                        nn.Conv2d(out_channels, out_channels, kernel_size=1),
                        nn.ReLU(),
                        nn.Conv2d(out_channels, out_channels, kernel_size=1),
                        nn.ReLU())
    return blk


def nin(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    return nn.Sequential(
        nin_block(in_channels, 96, kernel_size=11, stride=4, padding=0),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nin_block(96, 256, kernel_size=5, stride=1, padding=2),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nin_block(256, 384, kernel_size=3, stride=1, padding=1),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Dropout(0.5),
        # as many output channels as classes
        nin_block(384, num_classes, kernel_size=3, stride=1, padding=1),
        GlobalAvgPool2d(),
        # (batch, classes, 1, 1) -> (batch, classes)
        FlattenLayer())


def build(in_channels: int, num_classes: int, *, input_size: int) -> nn.Sequential:
    # global average pooling makes the network independent of the input size
    return nin(in_channels, num_classes)
