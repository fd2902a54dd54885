"""Calls the trainer hooks through pluggy so that a failing observer plugin is reported and never stops a run."""
from __future__ import annotations

import sys
from typing import Any, Callable

import pluggy

from convzoo.registry.hookspecs import RunContext
from convzoo.registry.plugins import strict_plugins
from convzoo.training.callbacks import Callback


def _raised_in(error: BaseException, impls: list[pluggy.HookImpl]) -> pluggy.HookImpl | None:
    """The implementation whose code raised ``error``, found in its traceback."""
    codes = {getattr(impl.function, "__code__", None): impl for impl in impls}
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code in codes:
            return codes[traceback.tb_frame.f_code]
        traceback = traceback.tb_next
    return None


def notify(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> list[str]:
    """Call ``pm.hook.<hook_name>(**kwargs)``; an implementation that raises is reported on stderr and skipped, and
    the ones after it still run. Returns the failures as ``plugin NAME failed in HOOK: ...`` lines."""
    failures: list[str] = []
    done: list[object] = []
    while True:
        caller = pm.subset_hook_caller(hook_name, done) if done else getattr(pm.hook, hook_name)
        try:
            caller(**kwargs)
            return failures
        except Exception as error:
            if strict_plugins():
                raise
            impls = [impl for impl in reversed(caller.get_hookimpls()) if not (impl.wrapper or impl.hookwrapper)]
            culprit = _raised_in(error, impls)
            name = culprit.plugin_name if culprit else "?"
            failures.append(f"plugin {name} failed in {hook_name}: {type(error).__name__}: {error}")
            print(f"convzoo: {failures[-1]} (the run goes on)", file=sys.stderr, flush=True)
            if culprit is None:  # a wrapper raised: calling again would run the others twice
                return failures
            done += [impl.plugin for impl in impls[: impls.index(culprit) + 1]]


class PluginHooks(Callback):
    """The observer hooks plugins implement, called at the matching training events."""

    def __init__(self, pm: pluggy.PluginManager, run: RunContext,
                 on_failure: Callable[[list[str]], None] = lambda failures: None) -> None:
        self.pm, self.run, self.on_failure = pm, run, on_failure
        self.started = False  # on_run_start was called: the run's end is owed on_run_end

    def call(self, hook_name: str, **kwargs: Any) -> None:
        failures = notify(self.pm, hook_name, run=self.run, **kwargs)
        if failures:
            self.on_failure(failures)

    def on_run_start(self, trainer) -> None:
        self.started = True
        self.call("on_run_start")

    def on_epoch_end(self, trainer, metrics) -> None:
        self.call("on_epoch_end", epoch=metrics.epoch, metrics=metrics.as_dict())
