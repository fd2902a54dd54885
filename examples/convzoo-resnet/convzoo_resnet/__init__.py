"""Example third-party convzoo plugin: d2l's ResNet-18. Importing this module does not import torch."""
from convzoo import hookimpl


@hookimpl
def register_architectures(register):
    register(
        name="resnet",
        build="convzoo_resnet.model:build",
        description="ResNet-18 as in d2l: residual blocks with batch norm, global average pooling",
        paper="He, Zhang, Ren, Sun: Deep Residual Learning for Image Recognition (2015)",
        input_size=96,
        recipes={
            "seed": {"resize": 96, "batch_size": 256, "lr": 0.001, "epochs": 5},
            "quick": {"resize": 48, "batch_size": 64, "lr": 0.001, "epochs": 2},
        },
    )
