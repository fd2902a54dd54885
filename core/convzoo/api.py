"""The Python API, for notebooks: the same validation and MLflow tracking as ``convzoo train``, and nothing changed
in the process that a notebook would not expect (no signal handlers, no plotting backend, malloc and the float mode
left alone unless asked).

    import convzoo
    result = convzoo.train("alexnet", recipe="quick", epochs=1)
    result.run_id, result.history[-1].test_acc, result.model
"""
from __future__ import annotations

from convzoo._moved import moved_names

from typing import Any, Callable, Mapping


def train(arch: str, *, recipe: str = "auto", dataset: str = "fashion-mnist", options: Mapping[str, Any] | None = None,
          experiment: str | None = None, echo: Callable[[str], None] = print, keep_freed_memory: bool = False,
          **values: Any):
    """Train ``arch`` in one MLflow run, as ``convzoo train`` does, and return its ``convzoo.TrainResult``
    (``run_id``, ``history`` of per-epoch ``EpochMetrics``, the trained ``model``, ``device``, ``precision``).

    ``values`` are the recipe's hyperparameters to override (``epochs``, ``batch_size``, ``lr``, ``resize``, ...) and
    the run's settings (``device``, ``precision``, ``seed``, ``limit_train_batches``, ``export``, ...), under the
    names ``convzoo train --help`` gives them, with underscores. ``keep_freed_memory=True`` tunes this process for
    training as the command line does: malloc keeps freed memory for the next step (CPU steps of AlexNet and NiN get
    about a third faster; the process keeps its peak memory until it exits), and subnormal floats flush to zero.
    """
    from convzoo.registry.plugins import get_registry
    from convzoo.runs.settings import run_config
    from convzoo.runs.training_run import train as train_run

    config, architecture, data = run_config(get_registry(), arch, recipe=recipe, dataset=dataset, options=options,
                                            **values)
    return train_run(config, architecture, data, experiment=experiment, echo=echo, tune_process=keep_freed_memory)


__getattr__ = moved_names(__name__)  # names this module held before the layered core
