"""Calls the trainer hooks so that a failing observer plugin is reported and never stops a run."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

import pluggy

logger = logging.getLogger("convzoo")


@dataclass
class RunContext:
    """What observers are told about a training run."""

    arch: str
    dataset: str
    config: Mapping[str, Any]
    device: str
    run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def notify(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> None:
    """Call every implementation of ``hook_name``; one that raises is logged as a warning and skipped."""
    for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls()):
        try:
            impl.function(*(kwargs[name] for name in impl.argnames))
        except Exception as error:
            logger.warning(
                "plugin %s failed in %s: %s: %s (the run goes on)",
                impl.plugin_name, hook_name, type(error).__name__, error,
            )
