"""Where the modules and names of convzoo 0.x's flat layout went. Old import paths keep working for a deprecation
period: importing one raises a ``DeprecationWarning`` that names the new path. Nothing in convzoo imports an old
path; this table is the only place that knows them."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings
from typing import Any, Callable

# old module -> the module it became
MODULES = {
    "convzoo.hookspecs": "convzoo.registry.hookspecs",
    "convzoo.plugins": "convzoo.registry.plugins",
    "convzoo.scaffold": "convzoo.registry.scaffold",
    "convzoo.summary": "convzoo.registry.summary",
    "convzoo.fashion_mnist": "convzoo.data.fashion_mnist",
    "convzoo.idx": "convzoo.data.idx",
    "convzoo.pipeline": "convzoo.data.pipeline",
    "convzoo.trainer": "convzoo.training.trainer",
    "convzoo.callbacks": "convzoo.training.callbacks",
    "convzoo.checkpoint": "convzoo.training.checkpoint",
    "convzoo.signals": "convzoo.training.signals",
    "convzoo.devices": "convzoo.training.devices",
    "convzoo.distributed": "convzoo.training.distributed",
    "convzoo.peak": "convzoo.training.peak",
    "convzoo.utilization": "convzoo.training.utilization",
    "convzoo.memory": "convzoo.training.memory",
    "convzoo.launch": "convzoo.training.launch",
    "convzoo.observers": "convzoo.training.observers",
    "convzoo.console": "convzoo.training.console",
    "convzoo.store": "convzoo.tracking.store",
    "convzoo.outbox": "convzoo.tracking.outbox",
    "convzoo.artifacts": "convzoo.tracking.artifacts",
    "convzoo.figures": "convzoo.tracking.figures",
    "convzoo.server": "convzoo.tracking.server",
    "convzoo.export": "convzoo.deploy.export",
    "convzoo.quantize": "convzoo.deploy.quantize",
    "convzoo.publish": "convzoo.deploy.publish",
    "convzoo.image_classifier": "convzoo.deploy.image_classifier",
    "convzoo.predict": "convzoo.deploy.predict",
    "convzoo.serving": "convzoo.deploy.serving",
    "convzoo.model_registry": "convzoo.deploy.model_registry",
    "convzoo.run": "convzoo.runs.training_run",
    "convzoo.resume": "convzoo.runs.resume",
    "convzoo.compare": "convzoo.studies.compare",
    "convzoo.sweep": "convzoo.studies.sweep",
    "convzoo.trial_runs": "convzoo.studies.trial_runs",
    "convzoo.space": "convzoo.studies.space",
    "convzoo.cli_options": "convzoo.cli.options",
    "convzoo.cli_training": "convzoo.cli.training",
    "convzoo.cli_studies": "convzoo.cli.studies",
    "convzoo.reference": "convzoo.cli.reference",
}

# a module (or package) whose old names went elsewhere -> where to look for them, in order
NAMES = {
    "convzoo.registry": ("convzoo.registry.catalogue",),
    "convzoo.data": ("convzoo.data.splits",),
    "convzoo.tracking": ("convzoo.tracking.run_log", "convzoo.tracking.active_run", "convzoo.training.epoch_log"),
    "convzoo.runs": ("convzoo.tracking.listing",),
    "convzoo.studies": ("convzoo.studies.optuna_studies",),
    "convzoo.cli": ("convzoo.cli.app",),
    "convzoo.config": ("convzoo.runs.settings",),
    "convzoo.api": ("convzoo.runs.settings",),
    "convzoo.vocabulary": ("convzoo.tracking.lookup",),
    "convzoo.runs.training_run": ("convzoo.runs.resume", "convzoo.training.setup", "convzoo.training.checkpoint"),
    "convzoo.studies.trial_runs": ("convzoo.tracking.study_runs",),
}


def warn_moved(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; import it from there (the old path goes in a later release)",
                  DeprecationWarning, stacklevel=3)


def moved_names(module: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` that finds the names ``module`` used to hold where they went, with a warning."""
    def __getattr__(name: str) -> Any:
        for home in () if name.startswith("_") else NAMES[module]:  # import machinery asks for __path__ and such
            target = importlib.import_module(home)
            if name in vars(target):
                value = vars(target)[name]
                defined_in = value.__module__ if isinstance(value, (type, types.FunctionType)) else home
                warn_moved(f"{module}.{name}", f"{defined_in}.{name}")
                return value
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return __getattr__


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module path as the module it became (the same object, so classes and state are shared)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname in MODULES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        new = MODULES[module.__name__]
        warn_moved(module.__name__, new)  # the import machinery's own frames are skipped: it names the importer
        sys.modules[module.__name__] = importlib.import_module(new)  # what the import statement then returns


def install() -> None:
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
