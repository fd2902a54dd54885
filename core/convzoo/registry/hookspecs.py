"""The plugin contract: every hook convzoo calls, one empty function each. docs/plugin-hooks.md shows these
docstrings as the hook reference."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pluggy

hookspec = pluggy.HookspecMarker("convzoo")
hookimpl = pluggy.HookimplMarker("convzoo")


@dataclass
class RunContext:
    """What the trainer hooks are told about a training run: ``arch``, ``dataset``, ``config`` (the effective
    hyperparameters and settings, as the run's params), ``device`` and ``run_id`` (the MLflow run)."""

    arch: str
    dataset: str
    config: Mapping[str, Any]
    device: str
    run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@hookspec
def register_architectures(register: Callable[..., None]) -> None:
    """Called once, when convzoo loads its plugins: call ``register(name=..., build=..., ...)`` once per architecture,
    with the keyword arguments in the table above."""


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Called once, when convzoo loads its plugins: call ``register(name=..., load=..., ...)`` once per data set."""


@hookspec
def on_run_start(run: RunContext) -> None:
    """Called once before the first training step, with the run's effective configuration; a resumed run calls it
    again. In a data-parallel run, on rank 0 only."""


@hookspec
def on_epoch_end(run: RunContext, epoch: int, metrics: dict[str, float]) -> None:
    """Called after each epoch's evaluation; ``epoch`` counts from 1, ``metrics`` holds ``train_loss``,
    ``train_acc``, ``test_acc``, ``epoch_time``, ``examples_per_sec``, ``lr``, ``train_steps`` and
    ``train_examples``, and with a validation split ``val_loss`` and ``val_acc``."""


@hookspec
def on_run_end(run: RunContext, status: str) -> None:
    """Called once when a run that called ``on_run_start`` ends; ``status`` is ``FINISHED``, ``FAILED`` or
    ``KILLED``, as the run ends in MLflow."""


@hookspec
def on_exception(run: RunContext, error: BaseException) -> None:
    """Called when the run raises after ``on_run_start`` (in training, or in the plots, model logging, ONNX export
    and parity check that follow it; Ctrl-C and stop signals included), before ``on_run_end``."""
