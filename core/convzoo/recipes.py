"""Named sets of training hyperparameters that an architecture ships with."""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from convzoo.errors import ConvzooError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "onecycle")
EARLY_STOP_METRICS = ("val_acc", "val_loss")
SEED_RECIPE = "seed"  # the notebook's own settings: it trains on all the training images
# every other recipe holds out 5,000 of Fashion-MNIST's 60,000 training images (500 per class) unless it says
DEFAULT_VAL_FRACTION = 1 / 12

# what an architecture's `best` recipe adds to its `fast` one: 45 minutes and a modern recipe's regularizers
BEST_ADDITIONS = {"budget": "45m", "optimizer": "adamw", "weight_decay": 0.05, "flip_shift": True,
                  "random_erasing": 0.25, "label_smoothing": 0.1, "ema_decay": 0.999, "tta_flip": True}

BUDGET_UNITS = {"s": 1, "m": 60, "h": 3600}
BUDGET_FORM = re.compile(r"(\d+(?:\.\d+)?)([smh])")


def budget_seconds(text: str) -> float:
    """``90s``, ``10m``, ``1h`` or ``1.5h`` in seconds; anything else is a one-line error."""
    match = BUDGET_FORM.fullmatch(str(text).strip())
    if not match or not float(match.group(1)) > 0:
        raise ConvzooError(f"bad budget {text!r}; give a positive number of seconds, minutes or hours: 90s, 10m, 1h")
    return float(match.group(1)) * BUDGET_UNITS[match.group(2)]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class Recipe:
    """Training hyperparameters; ``resize=None`` means the architecture's default input size. Each field's ``help``
    is its command-line option's help: the fields are the options, listed nowhere else."""

    epochs: int | None = field(default=None, metadata=_help("Epochs (unset only where a budget sets them)."))
    batch_size: int = field(kw_only=True, metadata=_help("Batch size (the global batch, over every process)."))
    lr: float = field(kw_only=True, metadata=_help("Learning rate."))
    budget: str | None = field(default=None, metadata=_help(
        "Size the run to this wall-clock budget (90s, 10m, 1h): a short probe of this machine sets the number of "
        "epochs, and so the schedule's length, so that training and evaluation end within it (start-up and the "
        "export after are not counted). An explicit --epochs turns a recipe's budget off."))
    resize: int | None = field(default=None, metadata=_help("Input height and width (the seed's Resize)."))
    optimizer: str = field(default="adam", metadata=_help(
        f"{', '.join(OPTIMIZERS)} (adamw: Adam with decoupled weight decay, torch.optim.AdamW)."))
    momentum: float = field(default=0.9, metadata=_help("SGD momentum."))
    weight_decay: float = field(default=0.0, metadata=_help(
        "Weight decay (L2 in the gradient for adam and sgd; decoupled, shrinking the weights, for adamw)."))
    schedule: str = field(default="none", metadata=_help(
        f"Learning-rate schedule: {', '.join(SCHEDULES)} (per step; onecycle warms up to lr over the first 30 %, "
        f"then anneals)."))
    warmup_epochs: float = field(default=0.0, metadata=_help(
        "Linear warm-up from lr/100 to lr over this many epochs (fractions allowed), then the schedule (cosine: "
        "annealed over the rest of the run); 0: none. Not with onecycle, which warms up itself."))
    random_erasing: float = field(default=0.0, metadata=_help(
        "The chance that each training image gets a random box erased to black (torchvision.transforms.v2."
        "RandomErasing, per image), in [0, 1]; 0: none."))
    mixup_alpha: float | None = field(default=None, metadata=_help(
        "Mixup (torchvision.transforms.v2.MixUp): each batch blended with itself shifted by one image, by a ratio "
        "drawn from Beta(alpha, alpha), the labels alike; > 0, unset: no mixup."))
    cutmix_alpha: float | None = field(default=None, metadata=_help(
        "CutMix (torchvision.transforms.v2.CutMix): a box of the shifted batch pasted in, the labels mixed by its "
        "area; > 0, unset: no CutMix. With mixup_alpha too, each batch gets one of the two at random."))
    mix_prob: float = field(default=1.0, metadata=_help(
        "The chance that a batch is mixed (mixup or CutMix), in (0, 1]."))
    ema_decay: float | None = field(default=None, metadata=_help(
        "Keep an exponential moving average of the weights (torch.optim.swa_utils.AveragedModel), updated after each "
        "step with this decay, in (0, 1); evaluation, the best epoch, the logged model and the ONNX export use the "
        "averaged weights. Unset: none."))
    tta_flip: bool = field(default=False, metadata=_help(
        "Test-time augmentation: the logged and exported model (ONNX included) averages the logits of each image "
        "and its mirror image; the run logs tta_val_acc and tta_test_acc (true/false)."))
    clip_grad_norm: float = field(default=0.0, metadata=_help(
        "Clip the gradients' total norm to this before each step (torch.nn.utils.clip_grad_norm_); 0: no clipping."))
    augment: bool = field(default=False, metadata=_help(
        "Random flip, resized crop and brightness/contrast jitter (true/false)."))
    flip_shift: bool = field(default=False, metadata=_help(
        "Random horizontal flip and a shift of up to 1/14 of the image per image, a lighter augmentation (true/false)."))
    label_smoothing: float = field(default=0.0, metadata=_help("Label smoothing of the cross-entropy loss, in [0, 1)."))
    target_acc: float | None = field(default=None, metadata=_help(
        "Validation accuracy to reach: the run logs time_to_target, the seconds of training and evaluation until "
        "val_acc first reached it (needs a validation split)."))
    val_fraction: float | None = field(default=None, metadata=_help(
        "Fraction of the training images held out for validation, stratified by class, in [0, 1); 0: none. Default: "
        "0 for the seed recipe (the notebook trains on all 60,000), 1/12 (5,000 of Fashion-MNIST's) for the others."))
    early_stop: int = field(default=0, metadata=_help(
        "Stop once the validation metric has not improved for this many epochs, and keep the best epoch's model "
        "(best.pt; the one exported and logged); 0: train every epoch."))
    early_stop_metric: str = field(default="val_acc", metadata=_help(
        f"What early stopping and the best epoch watch: {' or '.join(EARLY_STOP_METRICS)}."))
    min_delta: float = field(default=0.0, metadata=_help(
        "The least change of the early-stop metric that counts as an improvement."))
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if name == "epochs" and value is None and self.budget is not None:
                continue  # the budget's probe sets them
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConvzooError(f"{name} must be a positive integer, got {value!r}")
        if self.budget is not None:
            budget_seconds(self.budget)
        if self.resize is not None and (not isinstance(self.resize, int) or self.resize <= 0):
            raise ConvzooError(f"resize must be a positive integer, got {self.resize!r}")
        if not self.lr > 0:
            raise ConvzooError(f"lr must be a positive number, got {self.lr!r}")
        if not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise ConvzooError(f"momentum must be in [0, 1) and weight_decay >= 0, got {self.momentum!r}, {self.weight_decay!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ConvzooError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.target_acc is not None and not 0 < self.target_acc <= 1:
            raise ConvzooError(f"target_acc must be in (0, 1], got {self.target_acc!r}")
        if self.val_fraction is not None and not 0 <= self.val_fraction < 1:
            raise ConvzooError(f"val_fraction must be in [0, 1) (0: no validation split), got {self.val_fraction!r}")
        if not isinstance(self.early_stop, int) or isinstance(self.early_stop, bool) or self.early_stop < 0:
            raise ConvzooError(f"early_stop must be 0 (off) or a positive number of epochs, got {self.early_stop!r}")
        if not 0 <= self.warmup_epochs < (self.epochs or math.inf):
            raise ConvzooError(f"warmup_epochs must be 0 (none) or more, and less than epochs ({self.epochs}), got "
                               f"{self.warmup_epochs!r}")
        if self.warmup_epochs and self.schedule == "onecycle":
            raise ConvzooError("warmup_epochs cannot be used with schedule onecycle, which warms up itself; use "
                               "schedule cosine or none")
        for name in ("mixup_alpha", "cutmix_alpha"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConvzooError(f"{name} must be > 0 (leave it unset for none), got {value!r}")
        if not 0 <= self.random_erasing <= 1:
            raise ConvzooError(f"random_erasing must be in [0, 1] (the chance per image; 0: none), got "
                               f"{self.random_erasing!r}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ConvzooError(f"ema_decay must be in (0, 1) (leave it unset for none), got {self.ema_decay!r}")
        if not 0 < self.mix_prob <= 1:
            raise ConvzooError(f"mix_prob must be in (0, 1], got {self.mix_prob!r}")
        if not self.clip_grad_norm >= 0:
            raise ConvzooError(f"clip_grad_norm must be 0 (no clipping) or positive, got {self.clip_grad_norm!r}")
        if not self.min_delta >= 0:
            raise ConvzooError(f"min_delta must be 0 or positive, got {self.min_delta!r}")
        check_choice("early_stop_metric", self.early_stop_metric, EARLY_STOP_METRICS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str) -> Recipe:
        """Build a recipe from a plain dict, naming ``where`` it came from if a key is unknown."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConvzooError(
                f"{where}: unknown recipe key {unknown[0]!r}; allowed: {', '.join(sorted(known))}"
            )
        return cls(**values)


def default_val_fraction(recipe_name: str) -> float:
    """The validation fraction of a recipe that does not name one."""
    return 0.0 if recipe_name == SEED_RECIPE else DEFAULT_VAL_FRACTION


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """A one-line error unless ``value`` is one of ``allowed`` (``name``: what is being chosen, e.g. device)."""
    if value not in allowed:
        raise ConvzooError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")


def best_recipe(fast: Mapping[str, Any], target_acc: float) -> dict[str, Any]:
    """A `best` recipe: the architecture's `fast` recipe (input, batch, rate, schedule, options) for 45 minutes with
    AdamW, flip-and-shift, random erasing, label smoothing, an EMA of the weights and flip TTA (``BEST_ADDITIONS``),
    aiming at ``target_acc``."""
    return {**fast, **BEST_ADDITIONS, "target_acc": target_acc}
