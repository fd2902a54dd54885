"""Named sets of training hyperparameters that an architecture ships with."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from convzoo.errors import ConvzooError

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class Recipe:
    """Training hyperparameters; ``resize=None`` means the architecture's default input size."""

    epochs: int
    batch_size: int
    lr: float
    resize: int | None = None
    optimizer: str = "adam"
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
        if self.optimizer not in OPTIMIZERS:
            raise ConvzooError(f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")

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
