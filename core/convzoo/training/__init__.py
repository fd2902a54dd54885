"""Training a model, knowing nothing of MLflow: the trainer and its callbacks, checkpoints, stop signals, devices and
precision, several processes (torchrun), the machine's peak FLOP/s and a run's utilization, and console output.

May import: the leaves, ``convzoo.registry`` and ``convzoo.data``. Never mlflow.
"""
