"""convzoo plugin: torchvision classification models adapted to the data set. Importing it does not import torch."""
from convzoo import hookimpl

# torchvision name -> (description, paper)
MODELS = {
    "resnet18": ("ResNet-18 from torchvision", "He et al.: Deep Residual Learning for Image Recognition (2015)"),
    "mobilenet_v3_small": ("MobileNetV3-Small from torchvision", "Howard et al.: Searching for MobileNetV3 (2019)"),
    "efficientnet_b0": ("EfficientNet-B0 from torchvision",
                        "Tan, Le: EfficientNet: Rethinking Model Scaling for CNNs (2019)"),
}


@hookimpl
def register_architectures(register):
    for name, (description, paper) in MODELS.items():
        register(
            name=f"tv-{name}",
            build="convzoo_torchvision.model:" + name,
            description=f"{description}, first convolution adapted to the data set's channels, random weights",
            paper=paper,
            input_size=224,
            recipes={
                "seed": {"resize": 224, "batch_size": 64, "lr": 0.001, "epochs": 5},
                "quick": {"resize": 64, "batch_size": 64, "lr": 0.001, "epochs": 2},
            },
        )
