"""convzoo: a plugin-based experiment system for convolutional networks on top of MLflow.

The public API is ``__all__`` here, ``convzoo.layers.__all__`` and ``convzoo.testing.__all__`` (see the docs'
Stability page); every other module is internal. Importing this package is cheap: it never imports torch.
Plugins need ``hookimpl`` (and ``best_recipe`` for a `best` recipe); notebooks use ``train`` and ``list_architectures``.
"""
from typing import Any

from convzoo import _moved
from convzoo.api import train
from convzoo.data.splits import ImageSplits
from convzoo.errors import ConvzooError, OptionError
from convzoo.recipes import best_recipe
from convzoo.registry.hookspecs import RunContext, hookimpl
from convzoo.version import __version__

__all__ = ["ConvzooError", "EpochMetrics", "ImageSplits", "OptionError", "RunContext", "TrainResult", "__version__",
           "best_recipe", "get_architecture", "hookimpl", "list_architectures", "train"]

# public names whose modules import torch: imported when first used
LAZY = {"TrainResult": "convzoo.runs.training_run", "EpochMetrics": "convzoo.training.trainer"}

_moved.install()


def __getattr__(name: str) -> Any:
    if name in LAZY:
        import importlib

        return getattr(importlib.import_module(LAZY[name]), name)
    raise AttributeError(f"module 'convzoo' has no attribute {name!r}")


def list_architectures(include=None, exclude=None) -> list[str]:
    """Names of the installed architectures, filtered by shell-style patterns."""
    from convzoo.registry.plugins import get_registry

    return get_registry().list_architectures(include, exclude)


def get_architecture(name: str):
    """The registered architecture called ``name``; unknown names raise ``ConvzooError``."""
    from convzoo.registry.plugins import get_registry

    return get_registry().get_architecture(name)
