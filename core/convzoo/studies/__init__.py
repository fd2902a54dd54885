"""Many runs: ``convzoo compare`` and Optuna sweeps, with their studies shared by workers on several machines.

May import: every layer below (leaves to ``convzoo.runs``). Never mlflow: MLflow is reached through tracking.
"""

from convzoo._moved import moved_names

__getattr__ = moved_names(__name__)  # the names of the flat 0.x module this package replaced
