"""Everything that talks to MLflow's tracking API: the store and its faults, starting and ending the active run,
the outbox that outlives a server restart, what a training run logs, artifacts, figures, listing runs, the team
server, study and comparison runs. How a run ends is decided in ``convzoo.runs.lifecycle``, not here.

May import: the leaves, ``convzoo.registry``, ``convzoo.data`` and ``convzoo.training``; and mlflow.
"""

from convzoo._moved import moved_names

__getattr__ = moved_names(__name__)  # the names of the flat 0.x module this package replaced
