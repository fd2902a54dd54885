"""One training run's effective configuration: a recipe, the user's overrides, and the run's settings."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from convzoo._moved import moved_names
from convzoo.recipes import Recipe, budget_seconds

AUTO_RECIPE = "auto"
# the choices of --device and --precision, here (no torch) so that the command line can show them without importing it
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
# The costliest seed case, AlexNet's seed recipe, writes 343 MB in 0.8-1.0 s against 200 steps of 0.3 s: 1.4-1.7 %
# of step time on a 2-core CPU (`make bench-checkpoint`); every other recipe is under 0.7 %. 500 steps would leave
# NiN's seed recipe (469 steps an epoch) without a mid-epoch checkpoint.
DEFAULT_CHECKPOINT_EVERY = 200
# settings handed to a data set's loader, where it takes them (the folder data set does)
DATA_OPTIONS = ("test_fraction", "channels", "skip_bad_images")
@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a run does; ``to_params`` is what MLflow records. ``hyper`` is the recipe as
    resolved: its ``resize`` and ``options`` are the values the run uses, never None or partial."""

    arch: str
    dataset: str
    recipe: str
    recipe_resolved: str
    hyper: Recipe
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    seed: int = 0
    limit_train_batches: int = 0
    limit_eval_batches: int = 0
    data_dir: str | None = None
    export: bool = True
    register_as: str | None = None
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    checkpoint_dir: str | None = None
    test_fraction: float | None = None
    channels: int | None = None
    skip_bad_images: bool = False
    last_epoch_steps: int = 0  # a budget's plan: the last epoch ends after this many steps (0: it is whole)

    def data_options(self) -> dict[str, Any]:
        """What the user asked of the data set's loader (``DATA_OPTIONS`` given a value)."""
        return {name: getattr(self, name) for name in DATA_OPTIONS if getattr(self, name) not in (None, False)}

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain values (what a checkpoint stores); ``from_dict`` is the inverse."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        values = dict(values)
        # older checkpoints keep the resolved resize and options beside the recipe, not in it
        hyper = {**values.pop("hyper"), **{name: values.pop(name) for name in ("resize", "options") if name in values}}
        return cls(**values, hyper=Recipe(**hyper))

    def to_params(self) -> dict[str, Any]:
        """Flat, string-friendly hyperparameters (architecture options as ``option.NAME``)."""
        hyper = {k: v for k, v in dataclasses.asdict(self.hyper).items() if k != "options"}
        params = {
            "arch": self.arch, "dataset": self.dataset, "recipe": self.recipe, "recipe_resolved": self.recipe_resolved,
            **hyper, "device": self.device, "precision": self.precision,
            "channels_last": self.channels_last, "seed": self.seed,
            "limit_train_batches": self.limit_train_batches, "limit_eval_batches": self.limit_eval_batches,
            "export": self.export,
        }
        if self.hyper.budget:
            params["budget_s"] = budget_seconds(self.hyper.budget)
        params.update({f"option.{k}": v for k, v in self.hyper.options.items()})
        params.update(self.data_options())
        return params


__getattr__ = moved_names(__name__)  # names this module held before the layered core
