"""What plugins plug into: the hook specifications (the plugin contract), loading plugins from entry points, the
registry of architectures and data sets they register, the ``convzoo new-plugin`` scaffold and per-block summaries.

May import: the leaves (errors, vocabulary, config, recipes, tables, layers). Never torch at import time, nor MLflow.
"""

from convzoo._moved import moved_names

__getattr__ = moved_names(__name__)  # the names of the flat 0.x module this package replaced
