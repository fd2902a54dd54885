"""AlexNet, layer for layer as in the seed notebook."""
import torch
from torch import nn

from convzoo import ConvzooError
from convzoo.layers import flat_features


class AlexNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 224, hidden_layers: int = 1):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 96, 11, 4),  # in_channels, out_channels, kernel_size, stride, padding
            nn.ReLU(),
            nn.MaxPool2d(3, 2),  # kernel_size, stride
            # a smaller window, padding 2 keeps height and width, more output channels
            nn.Conv2d(96, 256, 5, 1, 2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            # three convolutions with smaller windows; no pooling between the first two
            nn.Conv2d(256, 384, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(384, 384, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, 1, 1),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
        )
        # 256*5*5 = 6400 features at 224x224; derived from the input size so other sizes work
        hidden = [nn.Linear(flat_features(self.conv, in_channels, input_size), 4096), nn.ReLU(), nn.Dropout(0.5)]
        if hidden_layers == 2:  # the notebook comments this layer out "for CPU"
            hidden += [nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5)]
        self.fc = nn.Sequential(*hidden, nn.Linear(4096, num_classes))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        feature = self.conv(img)
        return self.fc(torch.flatten(feature, 1))


def build(in_channels: int, num_classes: int, *, input_size: int, hidden_layers: int) -> AlexNet:
    if hidden_layers not in (1, 2):
        raise ConvzooError(f"alexnet option hidden_layers={hidden_layers!r} is not allowed; use 1 or 2")
    return AlexNet(in_channels, num_classes, input_size, hidden_layers)
