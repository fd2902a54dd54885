"""convzoo plugin: GoogLeNet as the seed notebook defines it. Importing this module does not import torch."""
from convzoo import best_recipe, hookimpl

# a 10-minute budget on any CPU: the budget sets the epochs (README: accuracy at 10 minutes)
FAST = {"resize": 32, "batch_size": 256, "lr": 0.003, "budget": "10m", "schedule": "onecycle",
        "target_acc": 0.896}


@hookimpl
def register_architectures(register):
    register(
        name="googlenet",
        build="convzoo_googlenet.model:build",
        description="GoogLeNet: nine Inception blocks of four parallel paths, global average pooling",
        paper="Szegedy et al.: Going Deeper with Convolutions (2014)",
        input_size=96,
        recipes={
            "seed": {"resize": 96, "batch_size": 16, "lr": 0.001, "epochs": 5},
            # on a 2-core CPU in about 10 minutes, same network
            "quick": {"resize": 64, "batch_size": 64, "lr": 0.001, "epochs": 3},
            "fast": FAST,
            # the fast recipe for 45 minutes with a modern recipe's regularizers (README: the best recipes)
            "best": best_recipe(FAST, target_acc=0.937),
        },
    )
