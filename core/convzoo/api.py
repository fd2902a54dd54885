"""The Python API, for notebooks: the same validation and MLflow tracking as ``convzoo train``, and nothing changed
in the process that a notebook would not expect (no signal handlers, no plotting backend, malloc left alone unless
asked).

    import convzoo
    result = convzoo.train("alexnet", recipe="quick", epochs=1)
    result.run_id, result.history[-1].test_acc, result.model
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from convzoo.errors import ConvzooError

# TrainConfig's fields that are the run's settings rather than what the recipe or the architecture decides
SETTINGS = ("device", "precision", "channels_last", "seed", "limit_train_batches", "limit_eval_batches", "data_dir",
            "export", "register_as", "checkpoint_every", "checkpoint_dir")


def train(arch: str, *, recipe: str = "auto", dataset: str = "fashion-mnist", options: Mapping[str, Any] | None = None,
          experiment: str | None = None, echo: Callable[[str], None] = print, keep_freed_memory: bool = False,
          **values: Any):
    """Train ``arch`` in one MLflow run, as ``convzoo train`` does, and return its ``convzoo.run.TrainResult``
    (``run_id``, ``history`` of per-epoch ``EpochMetrics``, the trained ``model``, ``device``, ``precision``).

    ``values`` are the recipe's hyperparameters to override (``epochs``, ``batch_size``, ``lr``, ``resize``, ...) and
    the run's settings (``device``, ``precision``, ``seed``, ``limit_train_batches``, ``export``, ...), under the
    names ``convzoo train --help`` gives them, with underscores. ``keep_freed_memory=True`` makes this process's
    malloc keep freed memory for the next step, as the command line does: CPU steps of AlexNet and NiN get about a
    third faster, and the process keeps its peak memory until it exits.
    """
    from convzoo.config import resolve_config
    from convzoo.devices import resolve_device
    from convzoo.plugins import get_registry
    from convzoo.recipes import Recipe
    from convzoo.run import train as train_run

    hyperparameters = [field.name for field in dataclasses.fields(Recipe) if field.name != "options"]
    unknown = sorted(set(values) - set(hyperparameters) - set(SETTINGS))
    if unknown:
        raise ConvzooError(f"unknown setting {unknown[0]!r}; allowed: {', '.join([*hyperparameters, *SETTINGS])}")
    on_gpu = resolve_device(values.get("device", "auto")).type == "cuda"
    config, architecture, data = resolve_config(
        get_registry(), arch, recipe=recipe, dataset=dataset, on_gpu=on_gpu, options=options,
        overrides={name: values[name] for name in hyperparameters if name in values},
        **{name: values[name] for name in SETTINGS if name in values})
    return train_run(config, architecture, data, experiment=experiment, echo=echo, keep_memory=keep_freed_memory)
