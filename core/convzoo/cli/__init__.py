"""The ``convzoo`` command line, click only: parse and validate the options, then call down (``convzoo.runs``,
``convzoo.studies``, ``convzoo.deploy``, ...). No run-starting logic lives here, and no mlflow import.

May import: every layer.
"""
from convzoo._moved import moved_names
from convzoo.cli.app import cli, main

__all__ = ["cli", "main"]
__getattr__ = moved_names(__name__)  # the names of the flat 0.x module this package replaced
