"""One training run's effective configuration: a recipe, the user's overrides, and the run's settings."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from convzoo.errors import ConvzooError
from convzoo.recipes import Recipe
from convzoo.registry import Architecture, Dataset, Registry

AUTO_RECIPE = "auto"
# the choices of --device and --precision, here (no torch) so that the command line can show them without importing it
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
# The costliest seed case, AlexNet's seed recipe, writes 343 MB in 0.8-1.0 s against 200 steps of 0.3 s: 1.4-1.7 %
# of step time on a 2-core CPU (`make bench-checkpoint`); every other recipe is under 0.7 %. 500 steps would leave
# NiN's seed recipe (469 steps an epoch) without a mid-epoch checkpoint.
DEFAULT_CHECKPOINT_EVERY = 200


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
        params.update({f"option.{k}": v for k, v in self.hyper.options.items()})
        return params


def choose_recipe(arch: Architecture, requested: str, on_gpu: bool) -> str:
    """``auto`` is ``seed`` on a GPU and ``quick`` on a CPU (falling back to ``seed`` if there is no ``quick``)."""
    if not arch.recipes:
        raise ConvzooError(f"architecture {arch.name} has no recipe to train with; its plugin registers recipes="
                           f"{{'seed': {{'epochs': ..., 'batch_size': ..., 'lr': ...}}}} with it")
    if requested == AUTO_RECIPE:
        wanted = "seed" if on_gpu else "quick"
        return wanted if wanted in arch.recipes else "seed"
    if requested not in arch.recipes:
        allowed = ", ".join([AUTO_RECIPE, *arch.recipes])
        raise ConvzooError(f"unknown recipe {requested!r} for {arch.name}; choose one of: {allowed}")
    return requested


def resolve_config(
    registry: Registry,
    arch_name: str,
    *,
    recipe: str = AUTO_RECIPE,
    dataset: str = "fashion-mnist",
    on_gpu: bool = False,
    overrides: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    **settings: Any,
) -> tuple[TrainConfig, Architecture, Dataset]:
    """Validate everything a run needs and return its effective config; every error is one line."""
    arch, data = registry.get_architecture(arch_name), registry.get_dataset(dataset)
    chosen = choose_recipe(arch, recipe, on_gpu)
    base = arch.recipes[chosen]
    hyper = dataclasses.replace(base, **{k: v for k, v in (overrides or {}).items() if v is not None})
    hyper = dataclasses.replace(hyper, resize=hyper.resize or arch.input_size,
                                options=arch.resolve_options({**base.options, **(options or {})}))
    arch.check_input_size(hyper.resize)
    zero_means = {"limit_train_batches": "all batches", "limit_eval_batches": "all batches",
                  "checkpoint_every": "no mid-epoch checkpoints"}
    for name, meaning in zero_means.items():
        if settings.get(name, 0) < 0:
            raise ConvzooError(f"{name} must be 0 ({meaning}) or positive, got {settings[name]!r}")
    config = TrainConfig(arch=arch.name, dataset=data.name, recipe=recipe, recipe_resolved=chosen, hyper=hyper,
                         **settings)
    return config, arch, data
