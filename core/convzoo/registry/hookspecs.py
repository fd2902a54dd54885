"""The plugin contract: every hook convzoo calls, one empty function each."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pluggy

hookspec = pluggy.HookspecMarker("convzoo")
hookimpl = pluggy.HookimplMarker("convzoo")


@dataclass
class RunContext:
    """What the trainer hooks are told about a training run."""

    arch: str
    dataset: str
    config: Mapping[str, Any]
    device: str
    run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@hookspec
def register_architectures(register: Callable[..., None]) -> None:
    """Called once at load time; call ``register(name=..., build=..., ...)`` once per architecture."""


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Called once at load time; call ``register(name=..., load=..., ...)`` once per dataset."""


@hookspec
def on_run_start(run: RunContext) -> None:
    """Called once before the first training step, with the run's effective configuration."""


@hookspec
def on_epoch_end(run: RunContext, epoch: int, metrics: dict[str, float]) -> None:
    """Called after each epoch's evaluation with that epoch's metrics (``epoch`` counts from 1)."""


@hookspec
def on_run_end(run: RunContext, status: str) -> None:
    """Called once when the run ends; ``status`` is ``FINISHED``, ``FAILED`` or ``KILLED``."""


@hookspec
def on_exception(run: RunContext, error: BaseException) -> None:
    """Called when the run raises after ``on_run_start`` (in training, or in the plots, model logging, ONNX export
    and parity check that follow it; Ctrl-C and stop signals included), before ``on_run_end``."""

