"""What the ``convzoo`` commands share: printing at once, ``KEY=VALUE`` options, and the options of a training run
(one per ``Recipe`` field, so the recipe is their only list)."""
from __future__ import annotations

import sys
from typing import Any

import click

from convzoo.config import DEFAULT_CHECKPOINT_EVERY, DEVICES, PRECISIONS
from convzoo.errors import ConvzooError

DEFAULT_DATASET = "fashion-mnist"


def echo_now(line: str) -> None:
    """Print a progress line at once, even when stdout is a file or a pipe (CI logs, `mlflow run`)."""
    click.echo(line)
    sys.stdout.flush()


def parse_options(pairs: tuple[str, ...]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConvzooError(f"option {pair!r} is not of the form key=value")
        options[key] = value
    return options


def refuse_experiment_under_mlflow_run(experiment: str | None) -> None:
    from convzoo.vocabulary import inside_mlflow_run

    if experiment and inside_mlflow_run():
        raise ConvzooError("--experiment cannot be used under `mlflow run`; pass --experiment-name to mlflow run")


def dashed(name: str) -> tuple[str, ...]:
    """``--batch-size`` and ``--batch_size``: ``mlflow run`` passes extra ``-P`` values with underscores."""
    dashed = "--" + name.replace("_", "-")
    return (dashed, "--" + name) if "_" in name else (dashed,)


def _hyperparameters() -> list[tuple[str, Any, str]]:
    """(name, click type, help) of every ``Recipe`` field a user may override: the recipe is their only list."""
    from dataclasses import fields

    from convzoo.recipes import Recipe

    kinds = {"int": int, "int | None": int, "float": float, "float | None": float, "str": str, "str | None": str,
             "bool": click.BOOL}
    return [(field.name, kinds[field.type], field.metadata["help"]) for field in fields(Recipe)
            if field.name != "options"]


HYPERPARAMETERS = _hyperparameters()


checkpoint_options = [
    click.option(*dashed("checkpoint_every"), "checkpoint_every", type=int, default=DEFAULT_CHECKPOINT_EVERY,
                 show_default=True, help="Also checkpoint every N training steps within an epoch (0: only after "
                                         "each epoch)."),
    click.option(*dashed("checkpoint_dir"), "checkpoint_dir", default=None,
                 help="Folder for local checkpoints (default: $CONVZOO_CHECKPOINT_DIR or ./checkpoints)."),
]


data_options = [
    click.option(*dashed("test_fraction"), "test_fraction", type=float, default=None,
                 help="folder data set without test/: the stratified share of train/ held out as the test split "
                      "(default 0.2)."),
    click.option("--channels", type=click.IntRange(1, 3), default=None,
                 help="folder data set: 1 (greyscale) or 3 (colour); default: 1 if every image is greyscale."),
    # a flag that also takes a value: `-P skip_bad_images=true` through `mlflow run` passes `--skip_bad_images true`
    click.option(*dashed("skip_bad_images"), "skip_bad_images", type=click.BOOL, is_flag=False, flag_value=True,
                 default=False,
                 help="folder data set: leave unreadable images out (counted and listed in the run) instead of "
                      "stopping."),
]


def training_options(command):
    """The options of one training run, shared by ``train`` and ``compare``."""
    options = [
        click.option("--recipe", default="auto", show_default=True,
                     help="Recipe name; auto = seed on a GPU, quick on a CPU."),
        *[click.option(*dashed(name), name, type=kind, default=None, help=f"{text} Default: the recipe's.")
          for name, kind, text in HYPERPARAMETERS],
        click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Architecture option; repeatable."),
        click.option("--dataset", default=DEFAULT_DATASET, show_default=True, help="Registered data set."),
        click.option("--data-dir", "--data_dir", "data_dir", default=None, help="Folder with the data set's files."),
        *data_options,
        click.option("--device", default="auto", show_default=True, help=f"{', '.join(DEVICES)}."),
        click.option("--precision", default="auto", show_default=True,
                     help=f"{', '.join(PRECISIONS)} (auto: bf16 where the device computes it natively)."),
        click.option(*dashed("channels_last"), "channels_last", type=click.BOOL, default=True, show_default=True,
                     help="Use the channels_last memory format."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed for weights, shuffling and augmentation."),
        click.option(*dashed("limit_train_batches"), "limit_train_batches", type=int, default=0, show_default=True,
                     help="Train on at most this many batches per epoch (0: all)."),
        click.option(*dashed("limit_eval_batches"), "limit_eval_batches", type=int, default=0, show_default=True,
                     help="Evaluate on at most this many test batches (0: all)."),
        click.option("--export", "export", type=click.BOOL, default=True, show_default=True,
                     help="Export to ONNX and check parity with onnxruntime on the whole test set at the end."),
        click.option(*dashed("register_as"), "register_as", default=None,
                     help="Also register the ONNX model in the MLflow model registry under this name."),
        click.option("--experiment", default=None,
                     help="MLflow experiment name (not under `mlflow run`: use its --experiment-name)."),
        *checkpoint_options,
    ]
    for option in reversed(options):
        command = option(command)
    return command


nproc_option = click.option(
    "--nproc", type=click.IntRange(min=1), default=1, show_default=True,
    help="Train with N processes on this machine, started by torchrun (DistributedDataParallel; each takes "
         "batch_size/N of every batch; on a CPU each gets cores/N threads). Several machines: see README.")


def study_options(command):
    """``--storage`` and ``--study``: the same command on several machines makes them workers of one study."""
    command = click.option("--storage", default=None, metavar="URL",
                           help="Optuna storage (default: sqlite optuna.db next to the MLflow store; "
                                "postgresql://USER:PASSWORD@HOST/DB for workers on many machines).")(command)
    return click.option("--study", "study_name", default=None, metavar="NAME",
                        help="Study name; workers with the same name and storage share it, and an existing study "
                             "continues.")(command)
