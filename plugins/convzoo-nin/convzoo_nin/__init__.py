"""convzoo plugin: Network in Network as the seed notebook defines it. Importing this module does not import torch."""
from convzoo import hookimpl


@hookimpl
def register_architectures(register):
    register(
        name="nin",
        build="convzoo_nin.model:build",
        description="NiN: blocks of a convolution and two 1x1 convolutions, global average pooling, no FC layer",
        paper="Lin, Chen, Yan: Network In Network (2013)",
        input_size=224,
        min_input_size=67,
        recipes={
            "seed": {"resize": 224, "batch_size": 128, "lr": 0.002, "epochs": 5},
            # on a 2-core CPU in about 10 minutes, same network
            "quick": {"resize": 96, "batch_size": 64, "lr": 0.0005, "epochs": 5, "schedule": "cosine"},
            # a 10-minute budget on any CPU: the budget sets the epochs (README: accuracy at 10 minutes); 99 px is
            # the smallest input whose last block still sees 2x2 positions (at 1x1 two classes' ReLU channels died);
            # lr chosen on validation (seed 0, val acc): 0.0005 0.843, 0.001 0.771, 0.002 0.735
            "fast": {"resize": 99, "batch_size": 128, "lr": 0.0005, "budget": "10m", "schedule": "onecycle",
                     "target_acc": 0.831},
            # no best recipe: some of the seed network's class outputs die at initialization (docs/benchmarks.md#nin)
        },
    )
