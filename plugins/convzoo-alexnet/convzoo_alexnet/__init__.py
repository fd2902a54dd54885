"""convzoo plugin: AlexNet as the seed notebook defines it. Importing this module does not import torch."""
from convzoo import best_recipe, hookimpl

# a 10-minute budget on any CPU: the budget sets the epochs (README: accuracy at 10 minutes)
FAST = {"resize": 67, "batch_size": 128, "lr": 0.001, "budget": "10m", "schedule": "onecycle",
        "target_acc": 0.902}


@hookimpl
def register_architectures(register):
    register(
        name="alexnet",
        build="convzoo_alexnet.model:build",
        description="AlexNet: 5 conv layers, one 4096-unit hidden layer (two with hidden_layers=2), dropout",
        paper="Krizhevsky, Sutskever, Hinton: ImageNet Classification with Deep Convolutional Neural Networks (2012)",
        input_size=224,
        min_input_size=67,
        options={"hidden_layers": 1},
        recipes={
            "seed": {"resize": 224, "batch_size": 16, "lr": 0.001, "epochs": 3},
            # on a 2-core CPU in about 10 minutes, same network
            "quick": {"resize": 112, "batch_size": 64, "lr": 0.001, "epochs": 2},
            "fast": FAST,
            # the fast recipe for 45 minutes with a modern recipe's regularizers (README: the best recipes)
            "best": best_recipe(FAST, target_acc=0.930),
        },
    )
