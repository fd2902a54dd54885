"""Named sets of training hyperparameters that an architecture ships with."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from convzoo.errors import ConvzooError

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("none", "cosine", "onecycle")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class Recipe:
    """Training hyperparameters; ``resize=None`` means the architecture's default input size. Each field's ``help``
    is its command-line option's help: the fields are the options, listed nowhere else."""

    epochs: int = field(metadata=_help("Epochs."))
    batch_size: int = field(metadata=_help("Batch size (the global batch, over every process)."))
    lr: float = field(metadata=_help("Learning rate."))
    resize: int | None = field(default=None, metadata=_help("Input height and width (the seed's Resize)."))
    optimizer: str = field(default="adam", metadata=_help(f"{' or '.join(OPTIMIZERS)}."))
    momentum: float = field(default=0.9, metadata=_help("SGD momentum."))
    weight_decay: float = field(default=0.0, metadata=_help("Weight decay."))
    schedule: str = field(default="none", metadata=_help(
        f"Learning-rate schedule: {', '.join(SCHEDULES)} (per step; onecycle warms up to lr over the first 30 %, "
        f"then anneals)."))
    augment: bool = field(default=False, metadata=_help(
        "Random flip, resized crop and brightness/contrast jitter (true/false)."))
    flip_shift: bool = field(default=False, metadata=_help(
        "Random horizontal flip and a shift of up to 1/14 of the image per image, a lighter augmentation (true/false)."))
    label_smoothing: float = field(default=0.0, metadata=_help("Label smoothing of the cross-entropy loss, in [0, 1)."))
    target_acc: float | None = field(default=None, metadata=_help(
        "Test accuracy to reach: the run logs time_to_target, the seconds of training and evaluation until test_acc "
        "first reached it."))
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConvzooError(f"{name} must be a positive integer, got {value!r}")
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


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """A one-line error unless ``value`` is one of ``allowed`` (``name``: what is being chosen, e.g. device)."""
    if value not in allowed:
        raise ConvzooError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")
