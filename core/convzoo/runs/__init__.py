"""One run from start to end: turning a user's options into a ``TrainConfig``, starting a run or continuing one from
its checkpoint, and ``run_lifecycle``, the one owner of how a run ends (FINISHED, FAILED or KILLED).

May import: every layer below (leaves to ``convzoo.deploy``). Never mlflow: MLflow is reached through tracking.
"""

from convzoo._moved import moved_names

__getattr__ = moved_names(__name__)  # the names of the flat 0.x module this package replaced
