"""convzoo plugin: VGG-11 as the seed notebook defines it. Importing this module does not import torch."""
from convzoo import best_recipe, hookimpl

# a 10-minute budget on any CPU: the budget sets the epochs (README: accuracy at 10 minutes)
FAST = {"resize": 64, "batch_size": 128, "lr": 0.002, "budget": "10m", "schedule": "onecycle",
        "flip_shift": True, "target_acc": 0.918, "options": {"ratio": 8}}


@hookimpl
def register_architectures(register):
    register(
        name="vgg",
        build="convzoo_vgg.model:build",
        description="VGG-11: five VGG blocks of 3x3 convolutions, channels divided by `ratio` (the seed uses 8)",
        paper="Simonyan, Zisserman: Very Deep Convolutional Networks for Large-Scale Image Recognition (2014)",
        input_size=224,
        min_input_size=32,
        options={"ratio": 1},
        recipes={
            "seed": {"resize": 224, "batch_size": 16, "lr": 0.001, "epochs": 5, "options": {"ratio": 8}},
            # on a 2-core CPU in about 10 minutes, same network
            "quick": {"resize": 112, "batch_size": 64, "lr": 0.001, "epochs": 3, "options": {"ratio": 8}},
            "fast": FAST,
            # the fast recipe for 45 minutes with a modern recipe's regularizers (README: the best recipes)
            "best": best_recipe(FAST, target_acc=0.935),
        },
    )
