"""What a modern recipe adds around each training step, each from its well-kept implementation: random erasing and
mixup / CutMix on the batch (torchvision's transforms v2), and the moving average of the weights (torch's
``AveragedModel``)."""
from __future__ import annotations

from torch import nn

from convzoo.recipes import Recipe


def make_mixing(hyper: Recipe, num_classes: int):
    """torchvision's batch mixing the recipe asks for (``v2.MixUp``, ``v2.CutMix``, or one of them at random per
    batch), or None. It draws from torch's global generator, which every checkpoint saves."""
    if hyper.mixup_alpha is None and hyper.cutmix_alpha is None:
        return None
    from torchvision.transforms import v2

    mixes = [mix(alpha=alpha, num_classes=num_classes)
             for mix, alpha in ((v2.MixUp, hyper.mixup_alpha), (v2.CutMix, hyper.cutmix_alpha)) if alpha is not None]
    return mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)


def make_erasing(hyper: Recipe):
    """torchvision's random erasing for one image, with the recipe's chance, or None."""
    if not hyper.random_erasing:
        return None
    from torchvision.transforms import v2

    return v2.RandomErasing(p=hyper.random_erasing, value=0)


def make_ema(model: nn.Module, hyper: Recipe):
    """An exponential moving average of ``model``'s weights and buffers (``AveragedModel`` with torch's EMA
    function, as torchvision's reference recipes keep one), or None when the recipe has no ``ema_decay``."""
    if hyper.ema_decay is None:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(hyper.ema_decay), use_buffers=True)
