"""The plugin contract: every hook convzoo calls, one empty function each."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:
    from convzoo.observers import RunContext

hookspec = pluggy.HookspecMarker("convzoo")
hookimpl = pluggy.HookimplMarker("convzoo")


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
    """Called when training raises (including Ctrl-C), before ``on_run_end``."""

