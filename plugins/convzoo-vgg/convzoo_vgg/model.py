"""VGG, layer for layer as in the seed notebook: ``vgg_block`` and ``vgg``."""
from torch import nn

from convzoo import ConvzooError
from convzoo.layers import FlattenLayer

# VGG-11: (number of convolutions, output channels) per block
VGG11 = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    blk = []
    for i in range(num_convs):
        if i == 0:
            blk.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        else:
            blk.append(nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1))
        blk.append(nn.ReLU())
    blk.append(nn.MaxPool2d(kernel_size=2, stride=2))  # halves height and width
    return nn.Sequential(*blk)


def vgg(conv_arch, fc_features: int, fc_hidden_units: int = 4096, num_classes: int = 10) -> nn.Sequential:
    net = nn.Sequential()
    for i, (num_convs, in_channels, out_channels) in enumerate(conv_arch):
        net.add_module("vgg_block_" + str(i + 1), vgg_block(num_convs, in_channels, out_channels))
    net.add_module("fc", nn.Sequential(FlattenLayer(),
                                       nn.Linear(fc_features, fc_hidden_units),
                                       nn.ReLU(),
                                       nn.Dropout(0.5),
                                       nn.Linear(fc_hidden_units, fc_hidden_units),
                                       nn.ReLU(),
                                       nn.Dropout(0.5),
                                       nn.Linear(fc_hidden_units, num_classes)))
    return net


def build(in_channels: int, num_classes: int, *, input_size: int, ratio: int) -> nn.Sequential:
    if not 1 <= ratio <= 64:
        raise ConvzooError(f"vgg option ratio={ratio!r} is not allowed; use an integer from 1 to 64")
    conv_arch, channels = [], in_channels
    for num_convs, out_channels in VGG11:
        conv_arch.append((num_convs, channels, out_channels // ratio))
        channels = out_channels // ratio
    # five blocks halve height and width five times: 224 / 32 = 7
    fc_features = channels * (input_size // 32) ** 2
    return vgg(conv_arch, fc_features, 4096 // ratio, num_classes)
