"""Test-time augmentation by horizontal flip: a network that averages the logits of each image and its mirror image
(one graph, so the exported ONNX model does it too), and the callback that measures it once training ends."""
from __future__ import annotations

import torch
from torch import nn

from convzoo.training.callbacks import Callback


class FlipAveraged(nn.Module):
    """``network``'s logits averaged over each image and its horizontal mirror (the width axis, last)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (self.network(images) + self.network(images.flip(-1))) / 2


class FlipTTAScore(Callback):
    """After the last epoch (and the best epoch's weights restored), the validation and test accuracy of the
    flip-averaged ``trainer.weights``: ``accuracy`` holds ``tta_val_acc`` (with a validation split) and
    ``tta_test_acc``. Every rank runs it (the evaluation is gathered over them). Validation says whether the flip
    helps; the test figure is reported."""

    def __init__(self) -> None:
        self.accuracy: dict[str, float] = {}

    def on_train_end(self, trainer) -> None:
        model = FlipAveraged(trainer.weights)
        loaders = {"tta_val_acc": trainer.val_loader, "tta_test_acc": trainer.test_loader}
        for key, loader in loaders.items():
            if loader is not None:
                self.accuracy[key] = trainer.evaluate(loader, model).accuracy
