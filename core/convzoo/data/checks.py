"""What a data set must satisfy before a run is created: labels within its classes, and a network built for as
many classes as the data has. Each failure is one line naming the data set, the split and the first culprit."""
from __future__ import annotations

import torch

from convzoo.data.splits import ImageSplits
from convzoo.errors import ConvzooError


def check_labels(splits: ImageSplits, num_classes: int) -> None:
    """Every label of every split in ``[0, num_classes)``."""
    for split, (images, labels) in splits.parts().items():
        if len(labels) != len(images):
            raise ConvzooError(f"data set {splits.name}: {split} split has {len(images)} images but {len(labels)} "
                               f"labels")
        bad = torch.nonzero((labels < 0) | (labels >= num_classes)).flatten()
        if len(bad):
            index = bad[0].item()
            raise ConvzooError(f"data set {splits.name}: {split} label at index {index} is {labels[index].item()}, "
                               f"outside [0, {num_classes}) ({num_classes} classes; {len(bad)} bad label(s))")
    if not len(splits.train_labels) or not len(splits.test_labels):
        empty = "train" if not len(splits.train_labels) else "test"
        raise ConvzooError(f"data set {splits.name}: the {empty} split has no image")


def check_outputs(model: torch.nn.Module, arch: str, splits: ImageSplits, num_classes: int, size: int,
                  device: torch.device) -> None:
    """The network gives one logit per class of the data (one image through it, in eval mode, nothing changed). A
    network that cannot take the image fails in its run, as it would without this check."""
    from convzoo.data.pipeline import model_input

    was_training = model.training
    try:
        with torch.no_grad():
            outputs = model.eval()(model_input(splits.test_images[:1], size).to(device)).shape[-1]
    except Exception:
        return
    finally:
        model.train(was_training)
    if outputs != num_classes:
        raise ConvzooError(f"architecture {arch} gives {outputs} outputs, but data set {splits.name} has "
                           f"{num_classes} classes; build it with num_classes (the builder's second argument)")
