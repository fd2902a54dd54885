"""Builders that adapt torchvision's models to convzoo's ``build(in_channels, num_classes, *, input_size)``."""
from functools import partial

import torchvision
from torch import nn


def adapted(name: str, in_channels: int, num_classes: int, *, input_size: int) -> nn.Module:
    """torchvision's ``name`` with ``num_classes`` outputs and its first convolution taking ``in_channels``."""
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    path, first = next((path, module) for path, module in model.named_modules() if isinstance(module, nn.Conv2d))
    parent_path, _, attribute = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attribute, nn.Conv2d(in_channels, first.out_channels, first.kernel_size, first.stride,
                                         first.padding, bias=first.bias is not None))
    return model


resnet18 = partial(adapted, "resnet18")
mobilenet_v3_small = partial(adapted, "mobilenet_v3_small")
efficientnet_b0 = partial(adapted, "efficientnet_b0")
