"""Turning what a user asked for (a recipe, overrides, architecture options, settings) into a run's ``TrainConfig``:
the one place the command line and the notebook API both go through."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from convzoo.config import AUTO_RECIPE, DATA_OPTIONS, DEVICES, PRECISIONS, TrainConfig
from convzoo.errors import ConvzooError
from convzoo.recipes import SEED_RECIPE, Recipe, check_choice, default_val_fraction
from convzoo.registry.catalogue import Architecture, Dataset, Registry

HYPERPARAMETERS = tuple(field.name for field in dataclasses.fields(Recipe) if field.name != "options")
# TrainConfig's fields that are the run's settings rather than what the recipe or the architecture decides
SETTINGS = ("device", "precision", "channels_last", "seed", "limit_train_batches", "limit_eval_batches", "data_dir",
            "export", "register_as", "checkpoint_every", "checkpoint_dir", *DATA_OPTIONS)


def run_config(registry: Registry, arch: str, *, recipe: str = AUTO_RECIPE, dataset: str = "fashion-mnist",
               options: Mapping[str, Any] | None = None,
               **values: Any) -> tuple[TrainConfig, Architecture, Dataset]:
    """The config of a run of ``arch``: ``values`` are the recipe's hyperparameters to override (None: the recipe's)
    and the run's ``SETTINGS``; the device is resolved first, since ``auto`` picks the recipe by it. Every error is
    one line naming the bad value and what is allowed."""
    from convzoo.training.devices import resolve_device, resolve_precision

    _check_settings(values)
    device = resolve_device(values.get("device", "auto"))
    resolve_precision(values.get("precision", "auto"), device)
    return _config(registry, arch, recipe, dataset, options, values, on_gpu=device.type == "cuda")


def check_request(registry: Registry, arch: str, *, recipe: str = AUTO_RECIPE, dataset: str = "fashion-mnist",
                  options: Mapping[str, Any] | None = None, **values: Any) -> TrainConfig:
    """Every check of ``run_config`` that needs no torch: the names of the settings, architecture, data set, recipe,
    device and precision, the options, the input size and the limits. The command line calls it before anything
    imports torch, so bad input is refused in a fraction of a second. Returns the config as a CPU would resolve
    it."""
    _check_settings(values)
    check_choice("device", values.get("device", "auto"), DEVICES)
    check_choice("precision", values.get("precision", "auto"), PRECISIONS)
    return _config(registry, arch, recipe, dataset, options, values, on_gpu=False)[0]


def _check_settings(values: Mapping[str, Any]) -> None:
    unknown = sorted(set(values) - set(HYPERPARAMETERS) - set(SETTINGS))
    if unknown:
        raise ConvzooError(f"unknown setting {unknown[0]!r}; allowed: {', '.join([*HYPERPARAMETERS, *SETTINGS])}")


def _config(registry: Registry, arch: str, recipe: str, dataset: str, options: Mapping[str, Any] | None,
            values: Mapping[str, Any], on_gpu: bool) -> tuple[TrainConfig, Architecture, Dataset]:
    return resolve_config(registry, arch, recipe=recipe, dataset=dataset, on_gpu=on_gpu, options=options,
                          overrides={name: values[name] for name in HYPERPARAMETERS if name in values},
                          **{name: values[name] for name in SETTINGS if name in values})


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


def check_validation_needs(hyper: Recipe, recipe: str) -> None:
    """What reads the validation split (early stopping, a target accuracy) is refused where there is none."""
    if hyper.val_fraction:
        return
    why = f"the {recipe} recipe holds out none" if recipe == SEED_RECIPE else "val_fraction is 0"
    if hyper.early_stop:
        raise ConvzooError(f"early_stop {hyper.early_stop} needs a validation split ({why}); give --val-fraction "
                           f"in (0, 1), e.g. 0.0833 (5,000 of 60,000 images)")
    if hyper.target_acc is not None:
        raise ConvzooError(f"target_acc {hyper.target_acc:g} needs a validation split ({why}): time_to_target is "
                           f"measured on val_acc; give --val-fraction in (0, 1), e.g. 0.0833")


def length(base: Recipe, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` with the run's length settled: an explicit ``epochs`` turns the recipe's budget off; a budget
    and epochs both given is a one-line error."""
    if "epochs" not in overrides:
        return dict(overrides)
    if overrides.get("budget"):
        raise ConvzooError(f"give budget or epochs, not both: the budget ({overrides['budget']}) sets the number "
                           f"of epochs")
    return {**overrides, "budget": None} if base.budget else dict(overrides)


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
    hyper = dataclasses.replace(base, **length(base, {k: v for k, v in (overrides or {}).items() if v is not None}))
    hyper = dataclasses.replace(hyper, resize=hyper.resize or arch.input_size,
                                options=arch.resolve_options({**base.options, **(options or {})}),
                                val_fraction=default_val_fraction(chosen) if hyper.val_fraction is None
                                else hyper.val_fraction)
    arch.check_input_size(hyper.resize)
    check_validation_needs(hyper, chosen)
    zero_means = {"limit_train_batches": "all batches", "limit_eval_batches": "all batches",
                  "checkpoint_every": "no mid-epoch checkpoints"}
    for name, meaning in zero_means.items():
        if settings.get(name, 0) < 0:
            raise ConvzooError(f"{name} must be 0 ({meaning}) or positive, got {settings[name]!r}")
    config = TrainConfig(arch=arch.name, dataset=data.name, recipe=recipe, recipe_resolved=chosen, hyper=hyper,
                         **settings)
    return config, arch, data
