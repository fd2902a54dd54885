"""convzoo: a plugin-based experiment system for convolutional networks on top of MLflow.

Importing this package is cheap: it never imports torch. Plugins need only ``hookimpl``; notebooks use ``train`` and
``list_architectures``.
"""
from convzoo.api import train
from convzoo.errors import ConvzooError, OptionError
from convzoo.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["ConvzooError", "OptionError", "__version__", "get_architecture", "hookimpl", "list_architectures", "train"]



def list_architectures(include=None, exclude=None) -> list[str]:
    """Names of the installed architectures, filtered by shell-style patterns."""
    from convzoo.plugins import get_registry

    return get_registry().list_architectures(include, exclude)


def get_architecture(name: str):
    """The registered architecture called ``name``; unknown names raise ``ConvzooError``."""
    from convzoo.plugins import get_registry

    return get_registry().get_architecture(name)
