"""The ``convzoo`` command. Only the commands that build networks import torch, and only when they run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from typing import Any

import click

from convzoo import __version__
from convzoo.config import DEFAULT_CHECKPOINT_EVERY, DEVICES, PRECISIONS
from convzoo.errors import ConvzooError
from convzoo.plugins import get_registry
from convzoo.tables import format_table

DEFAULT_DATASET = "fashion-mnist"


class ConvzooGroup(click.Group):
    """Turns ``ConvzooError`` into a one-line ``Error: ...`` and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ConvzooError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=ConvzooGroup)
@click.version_option(__version__, prog_name="convzoo")
def cli() -> None:
    """Train, track and export the d2l modern CNNs (and any plugin's) on Fashion-MNIST with MLflow."""


def _parse_options(pairs: tuple[str, ...]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConvzooError(f"option {pair!r} is not of the form key=value")
        options[key] = value
    return options


@cli.command()
@click.argument("pattern", required=False)
@click.option("--dataset", default=DEFAULT_DATASET, show_default=True, help="Data set whose shape the networks take.")
def archs(pattern: str | None, dataset: str) -> None:
    """List installed architectures (optionally those matching a shell-style PATTERN)."""
    import torch

    from convzoo.summary import count_params

    registry = get_registry()
    data = registry.get_dataset(dataset)
    rows, broken = [], []
    for name in registry.list_architectures(include=pattern):
        arch = registry.get_architecture(name)
        try:
            with torch.device("meta"):
                params = f"{count_params(arch.create(data.in_channels, data.num_classes)):,}"
        except ConvzooError as error:  # one plugin's broken builder must not hide the others
            params = "broken"
            broken.append(f"BROKEN {name}: {error}")
        options = ", ".join(f"{k}={v}" for k, v in arch.options.items())
        rows.append([name, f"{arch.plugin} {arch.plugin_version}", params, arch.input_size, arch.min_input_size,
                     ", ".join(arch.recipes), options])
    click.echo(format_table(["NAME", "PLUGIN", "PARAMS", "INPUT", "MIN", "RECIPES", "OPTIONS"], rows))
    for line in broken:
        click.echo(line)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def plugins(as_json: bool) -> None:
    """List loaded plugins, what each registered, and plugins that failed to load."""
    registry = get_registry()
    if as_json:
        click.echo(json.dumps({
            "plugins": [asdict(info) for info in registry.plugins],
            "failed": [asdict(failure) for failure in registry.failures],
            "warnings": registry.warnings,
        }, indent=2))
        return
    rows = [[info.name, info.version, ", ".join(info.hooks), ", ".join(info.architectures + info.datasets)]
            for info in registry.plugins]
    click.echo(format_table(["PLUGIN", "VERSION", "HOOKS", "REGISTERED"], rows))
    for failure in registry.failures:
        click.echo(f"FAILED {failure.name} {failure.version}: {failure.error}")
    for warning in registry.warnings:
        click.echo(f"WARNING {warning}")


@cli.command()
@click.argument("arch")
@click.option("--resize", type=int, help="Input height and width (default: the architecture's).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Architecture option; repeatable.")
@click.option("--dataset", default=DEFAULT_DATASET, show_default=True, help="Data set whose shape the network takes.")
@click.option("--min-size", "min_size", is_flag=True,
              help="Also find the smallest input size that builds and runs (what min_input_size should be).")
def summary(arch: str, resize: int | None, options: tuple[str, ...], dataset: str, min_size: bool) -> None:
    """Output shape and parameters of each top-level block of ARCH for one input image."""
    from convzoo.summary import count_params, smallest_input_size, summarize

    registry = get_registry()
    architecture, data = registry.get_architecture(arch), registry.get_dataset(dataset)
    if min_size:
        smallest = smallest_input_size(architecture, data.in_channels, data.num_classes, **_parse_options(options))
        click.echo(f"smallest input size that works: {smallest} (registered min_input_size: "
                   f"{architecture.min_input_size})")
    size = resize or architecture.input_size
    model = architecture.create(data.in_channels, data.num_classes, input_size=size, **_parse_options(options))
    blocks = summarize(model, data.in_channels, size)
    chosen = ", ".join(f"{k}={v}" for k, v in architecture.resolve_options(_parse_options(options)).items())
    click.echo(f"{arch} ({architecture.plugin} {architecture.plugin_version}) input 1x{data.in_channels}x{size}x{size}"
               + (f" options: {chosen}" if chosen else ""))
    rows = [[block.name, "(" + ", ".join(map(str, block.output_shape)) + ")", f"{block.params:,}"] for block in blocks]
    click.echo(format_table(["BLOCK", "OUTPUT SHAPE", "PARAMS"], rows))
    click.echo(f"total params: {count_params(model):,}")


def _dashed(name: str) -> tuple[str, ...]:
    """``--batch-size`` and ``--batch_size``: ``mlflow run`` passes extra ``-P`` values with underscores."""
    dashed = "--" + name.replace("_", "-")
    return (dashed, "--" + name) if "_" in name else (dashed,)


def _hyperparameters() -> list[tuple[str, Any, str]]:
    """(name, click type, help) of every ``Recipe`` field a user may override: the recipe is their only list."""
    from dataclasses import fields

    from convzoo.recipes import Recipe

    kinds = {"int": int, "int | None": int, "float": float, "str": str, "bool": click.BOOL}
    return [(field.name, kinds[field.type], field.metadata["help"]) for field in fields(Recipe)
            if field.name != "options"]


HYPERPARAMETERS = _hyperparameters()


checkpoint_options = [
    click.option(*_dashed("checkpoint_every"), "checkpoint_every", type=int, default=DEFAULT_CHECKPOINT_EVERY,
                 show_default=True, help="Also checkpoint every N training steps within an epoch (0: only after "
                                         "each epoch)."),
    click.option(*_dashed("checkpoint_dir"), "checkpoint_dir", default=None,
                 help="Folder for local checkpoints (default: $CONVZOO_CHECKPOINT_DIR or ./checkpoints)."),
]


def training_options(command):
    """The options of one training run, shared by ``train`` and ``compare``."""
    options = [
        click.option("--recipe", default="auto", show_default=True,
                     help="Recipe name; auto = seed on a GPU, quick on a CPU."),
        *[click.option(*_dashed(name), name, type=kind, default=None, help=f"{text} Default: the recipe's.")
          for name, kind, text in HYPERPARAMETERS],
        click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Architecture option; repeatable."),
        click.option("--dataset", default=DEFAULT_DATASET, show_default=True, help="Registered data set."),
        click.option("--data-dir", "--data_dir", "data_dir", default=None, help="Folder with the data set's files."),
        click.option("--device", default="auto", show_default=True, help=f"{', '.join(DEVICES)}."),
        click.option("--precision", default="auto", show_default=True,
                     help=f"{', '.join(PRECISIONS)} (auto: bf16 where the device computes it natively)."),
        click.option(*_dashed("channels_last"), "channels_last", type=click.BOOL, default=True, show_default=True,
                     help="Use the channels_last memory format."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed for weights, shuffling and augmentation."),
        click.option(*_dashed("limit_train_batches"), "limit_train_batches", type=int, default=0, show_default=True,
                     help="Train on at most this many batches per epoch (0: all)."),
        click.option(*_dashed("limit_eval_batches"), "limit_eval_batches", type=int, default=0, show_default=True,
                     help="Evaluate on at most this many test batches (0: all)."),
        click.option("--export", "export", type=click.BOOL, default=True, show_default=True,
                     help="Export to ONNX and check parity with onnxruntime on the whole test set at the end."),
        click.option(*_dashed("register_as"), "register_as", default=None,
                     help="Also register the ONNX model in the MLflow model registry under this name."),
        click.option("--experiment", default=None,
                     help="MLflow experiment name (not under `mlflow run`: use its --experiment-name)."),
        *checkpoint_options,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _resolve(arch: str, settings: dict):
    """Validate everything a run of ``arch`` needs: its config, architecture and data set."""
    from convzoo.config import resolve_config
    from convzoo.devices import resolve_device, resolve_precision

    settings = dict(settings)
    recipe, dataset, options = settings.pop("recipe"), settings.pop("dataset"), settings.pop("options")
    hyper = {name: settings.pop(name) for name, _, _ in HYPERPARAMETERS}
    device = resolve_device(settings["device"])
    resolve_precision(settings["precision"], device)
    return resolve_config(get_registry(), arch, recipe=recipe, dataset=dataset, on_gpu=device.type == "cuda",
                          overrides=hyper, options=_parse_options(options), **settings)


def _train_one(arch: str, settings: dict, experiment: str | None = None, callbacks=(), placement=None, world=None):
    """Validate everything, then train ``arch`` in one MLflow run (a child when a run is active, or of
    ``placement.parent_run_id``); ``world``: this process's rank when several train it."""
    from convzoo.distributed import SINGLE
    from convzoo.run import RunPlacement, train as run_training

    config, architecture, data = _resolve(arch, settings)
    return run_training(config, architecture, data, experiment=experiment, echo=_echo_now, callbacks=callbacks,
                        placement=placement or RunPlacement(), world=world or SINGLE)


def _resume_one(run_id: str, requested: dict, taken_over: bool = False, world=None):
    """Continue ``run_id`` from its checkpoint with the settings the user gave (``requested``); under several
    processes rank 0 reads the run and its checkpoint and hands them to the others."""
    from convzoo.config import TrainConfig
    from convzoo.distributed import SINGLE
    from convzoo.launch import from_rank_zero
    from convzoo.resume import prepare
    from convzoo.run import train as run_training
    from convzoo.store import check_tracking_store
    from convzoo.tracking import point_mlflow_run_shell_to

    def read_run():
        check_tracking_store()
        config, _, _, resume = prepare(get_registry(), run_id, requested, taken_over)
        point_mlflow_run_shell_to(run_id)
        return config.to_dict(), resume

    world = world or SINGLE
    saved, resume = from_rank_zero(world, read_run)
    config = TrainConfig.from_dict(saved)
    registry = get_registry()
    architecture, data = registry.get_architecture(config.arch), registry.get_dataset(config.dataset)
    return lambda callbacks: run_training(config, architecture, data, echo=_echo_now, callbacks=callbacks,
                                          resume=resume, world=world)


def _given(ctx: click.Context, values: dict) -> dict:
    """The settings the user gave explicitly (on the command line or through ``mlflow run``)."""
    from click.core import ParameterSource

    given = {name: value for name, value in values.items()
             if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}
    if "options" in given:
        given["options"] = _parse_options(given["options"])
    return given


def _last_run_note() -> str:
    import mlflow

    last = mlflow.last_active_run()
    return f"; run {last.info.run_id} ended {last.info.status}" if last else ""


def _stopped_line(signal_name: str, nproc: int) -> str:
    import mlflow

    last = mlflow.last_active_run()
    if last is None:
        return f"stopped by {signal_name} before a run was started"
    again = f" --nproc {nproc}" if nproc > 1 else ""
    return (f"stopped by {signal_name}: run {last.info.run_id} ended KILLED, checkpoint saved; continue it with: "
            f"convzoo resume {last.info.run_id}{again}")


def _train_until_stopped(start, world=None) -> None:
    """Run ``start(callbacks)`` with SIGTERM/SIGINT/SIGHUP turned into a checkpointed stop; say how to resume.
    ``world``: this process's rank when several train the run (rank 0 alone prints)."""
    from convzoo.distributed import SINGLE
    from convzoo.launch import as_one_of_many
    from convzoo.signals import StopOnSignal, exit_code
    from convzoo.trainer import StopRequested

    world = world or SINGLE
    stop = StopOnSignal(world)
    with stop.installed():
        try:
            with as_one_of_many(world, _last_run_note):
                result = start([stop])
        except StopRequested as stopped:
            if world.is_main:
                _echo_now(_stopped_line(stopped.signal_name, world.size))
            raise click.exceptions.Exit(exit_code(stopped.signum)) from None
        except KeyboardInterrupt:
            _echo_now("interrupted at once: the run ended KILLED at its last checkpoint")
            raise click.exceptions.Exit(exit_code(signal.SIGINT)) from None
    if world.is_main:
        final = result.history[-1]
        click.echo(f"run {result.run_id}: {result.arch} test acc {final.test_acc:.4f} after {len(result.history)} "
                   f"epoch(s) on {result.device} ({result.precision})")


nproc_option = click.option(
    "--nproc", type=click.IntRange(min=1), default=1, show_default=True,
    help="Train with N processes on this machine, started by torchrun (DistributedDataParallel; each takes "
         "batch_size/N of every batch; on a CPU each gets cores/N threads). Several machines: see README.")


def _launch_ranks(nproc: int, device: str) -> None:
    """Hand this very command, less ``--nproc``, to torchrun as ``nproc`` ranks, and leave with their exit code."""
    from convzoo.launch import launch, without_nproc

    raise click.exceptions.Exit(launch(nproc, without_nproc(sys.argv[1:]), device, _echo_now))


def _refuse_experiment_under_mlflow_run(experiment: str | None) -> None:
    from convzoo.tracking import inside_mlflow_run

    if experiment and inside_mlflow_run():
        raise ConvzooError("--experiment cannot be used under `mlflow run`; pass --experiment-name to mlflow run")


def _stop_with_mlflow_run() -> None:
    """Under ``mlflow run``, which dies on SIGTERM without passing it on, get SIGTERM when it dies."""
    from convzoo.signals import stop_with_parent
    from convzoo.tracking import inside_mlflow_run

    if inside_mlflow_run():
        stop_with_parent()


@cli.command()
@click.argument("arch", required=False)
@training_options
@click.option("--resume", "resume", default=None, metavar="RUN_ID",
              help="Continue this run from its checkpoint (ARCH may be left out).")
@nproc_option
@click.pass_context
def train(ctx: click.Context, arch: str | None, experiment: str | None, resume: str | None, nproc: int,
          **settings) -> None:
    """Train ARCH, tracked in one MLflow run (the MLproject's main entry point runs this)."""
    from convzoo.launch import rank_world

    _stop_with_mlflow_run()
    _refuse_experiment_under_mlflow_run(experiment)
    if not (arch or resume):
        raise ConvzooError("missing ARCH: name an architecture (`convzoo archs` lists them), or pass --resume RUN_ID")
    if nproc > 1:
        if not resume:
            from convzoo.distributed import check_batch

            check_batch(_resolve(arch, settings)[0].hyper.batch_size, nproc)  # bad input fails before N processes
        _launch_ranks(nproc, settings["device"])
    world = rank_world(settings["device"])
    if resume:
        requested = _given(ctx, settings)
        if arch:
            requested["arch"] = arch
        _train_until_stopped(_resume_one(resume, requested, world=world), world)
        return
    _train_until_stopped(lambda callbacks: _train_one(arch, settings, experiment, callbacks, world=world), world)


@cli.command()
@click.argument("run_id")
@click.option("--epochs", type=int, default=None, help="Train to this many epochs in all (more than the run had).")
@click.option("--data-dir", "--data_dir", "data_dir", default=None, help="Folder with the data set's files.")
@click.option("--export", "export", type=click.BOOL, default=None, help="Export to ONNX at the end (default: as the run).")
@click.option(*_dashed("register_as"), "register_as", default=None, help="Register the ONNX model under this name.")
@checkpoint_options[0]
@checkpoint_options[1]
@nproc_option
@click.pass_context
def resume(ctx: click.Context, run_id: str, nproc: int, **settings) -> None:
    """Continue RUN_ID (KILLED, FAILED, STALE, or FINISHED with more --epochs) exactly where its checkpoint left it."""
    from convzoo.launch import rank_world

    _stop_with_mlflow_run()
    if nproc > 1:
        _launch_ranks(nproc, "auto")
    world = rank_world("auto")
    _train_until_stopped(_resume_one(run_id, _given(ctx, settings), world=world), world)


def study_options(command):
    """``--storage`` and ``--study``: the same command on several machines makes them workers of one study."""
    command = click.option("--storage", default=None, metavar="URL",
                           help="Optuna storage (default: sqlite optuna.db next to the MLflow store; "
                                "postgresql://USER:PASSWORD@HOST/DB for workers on many machines).")(command)
    return click.option("--study", "study_name", default=None, metavar="NAME",
                        help="Study name; workers with the same name and storage share it, and an existing study "
                             "continues.")(command)


def _refuse_under_mlflow_run(command: str) -> None:
    from convzoo.tracking import inside_mlflow_run

    if inside_mlflow_run():
        raise ConvzooError(f"convzoo {command} with a study makes its own parent run; run it outside `mlflow run`")


def _study_settings(settings: dict) -> dict:
    """The settings that decide what every trial trains (not where files go, nor what happens after training)."""
    ignored = ("data_dir", "checkpoint_dir", "checkpoint_every", "export", "register_as")
    return {key: list(value) if isinstance(value, tuple) else value for key, value in settings.items()
            if key not in ignored}


def _until_stopped(start, study: str):
    """Run a sweep or comparison worker with signals turned into a checkpointed stop of its current trial."""
    from convzoo.signals import StopOnSignal, exit_code
    from convzoo.trainer import StopRequested

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial's outcome is printed as one line of convzoo's
    stop = StopOnSignal()
    with stop.installed():
        try:
            return start(stop)
        except StopRequested as stopped:
            _echo_now(f"stopped by {stopped.signal_name}: a trial in progress went back to study {study!r} (its run "
                      f"KILLED, with a checkpoint); the same command continues the study")
            raise click.exceptions.Exit(exit_code(stopped.signum)) from None


def _comparison_params(names: list[str], settings: dict) -> dict:
    """A comparison's parent params: the architectures, the recipe, and every override given."""
    overrides = {name: settings[name] for name, _, _ in HYPERPARAMETERS if settings[name] is not None}
    options = {f"option.{key}": value for key, value in _parse_options(settings["options"]).items()}
    return {"archs": ",".join(names), "recipe": settings["recipe"], **overrides, **options}


@cli.command()
@click.option("--archs", default="all", show_default=True,
              help="Comma-separated architectures, or shell-style patterns; all = every installed one.")
@training_options
@study_options
def compare(archs: str, experiment: str | None, storage: str | None, study_name: str | None, **settings) -> None:
    """Train several architectures as child runs of one parent run and log a comparison table and plots.

    Under `mlflow run --run-id PARENT` it continues that parent: finished children are not trained again. With
    --study (and --storage), every worker started with the same command takes the next architecture not yet
    trained, and the last one to finish logs the comparison.
    """
    import mlflow

    from convzoo.compare import compare as run_comparison, compare_in_study
    from convzoo.store import check_tracking_store

    _refuse_experiment_under_mlflow_run(experiment)
    registry = get_registry()
    patterns = [part.strip() for part in archs.split(",") if part.strip()]
    names = registry.list_architectures() if archs == "all" else [
        name for pattern in patterns
        for name in (registry.list_architectures(include=pattern) if any(c in pattern for c in "*?[") else [pattern])
    ]
    for name in names:
        registry.get_architecture(name)  # unknown names fail before any run
    if not (storage or study_name):
        check_tracking_store()
        run_comparison(names, lambda name: _train_one(name, settings).run_id, echo=_echo_now, experiment=experiment,
                       params=_comparison_params(names, settings))
        return
    from convzoo.studies import default_storage, open_storage

    _refuse_under_mlflow_run("compare")
    study = study_name or "compare-" + "-".join(names)
    url = storage or default_storage(mlflow.get_tracking_uri())
    opened = open_storage(url)  # before the tracking store, so a bad storage leaves nothing behind
    check_tracking_store()
    _until_stopped(lambda stop: compare_in_study(
        names, opened, url, study, _study_settings(settings),
        train_one=lambda name, callbacks, placement: _train_one(name, settings, experiment, [stop, *callbacks],
                                                                 placement),
        resume=lambda run_id, callbacks: _resume_one(run_id, {}, taken_over=True)([stop, *callbacks]),
        experiment=experiment, echo=_echo_now), study)


@cli.command()
@click.argument("arch")
@click.option("--param", "params", multiple=True, metavar="NAME=KIND:ARGS",
              help="A dimension of the search space, repeatable: lr=loguniform:1e-4:1e-2, "
                   "weight_decay=uniform:0:1e-3, resize=int:64:128:16, batch_size=choice:32,64,128, "
                   "option=ratio=choice:4,8.")
@click.option("--trials", type=int, default=10, show_default=True,
              help="The study's total of finished (complete or pruned) trials, over all its workers.")
@click.option("--metric", default="test_acc", show_default=True, help="The last epoch's metric to optimise.")
@click.option("--direction", default="maximize", show_default=True, help="maximize or minimize.")
@click.option("--pruner", default="median", show_default=True,
              help="median (stop trials below the median epoch by epoch, from the 6th trial), median:N (from "
                   "trial N+1), or none.")
@click.option("--sampler-seed", "sampler_seed", type=int, default=None,
              help="Seed Optuna's sampler (repeatable sweeps with one worker).")
@training_options
@study_options
@click.pass_context
def sweep(ctx: click.Context, arch: str, params: tuple[str, ...], trials: int, metric: str, direction: str,
          pruner: str, sampler_seed: int | None, experiment: str | None, storage: str | None, study_name: str | None,
          **settings) -> None:
    """Search ARCH's hyperparameters with Optuna: every trial a convzoo run nested under the study's parent run.

    The same command started on several machines (with one --storage) makes them workers of one study. ONNX export
    is off for trials unless --export true.
    """
    import mlflow
    from click.core import ParameterSource

    from convzoo.config import choose_recipe
    from convzoo.devices import resolve_device
    from convzoo.run import local_checkpoint
    from convzoo.space import parse_space
    from convzoo.store import check_tracking_store
    from convzoo.studies import default_storage, open_storage
    from convzoo.sweep import SweepSpec, run_sweep

    _refuse_under_mlflow_run("sweep")
    if ctx.get_parameter_source("export") == ParameterSource.DEFAULT:
        settings["export"] = False
    space = parse_space(params)
    architecture = get_registry().get_architecture(arch)
    architecture.resolve_options({param.option: architecture.options.get(param.option)
                                  for param in space if param.option})  # unknown options fail here
    recipe = choose_recipe(architecture, settings["recipe"], resolve_device(settings["device"]).type == "cuda")
    spec = SweepSpec(arch, recipe, study_name or f"sweep-{arch}", storage or default_storage(mlflow.get_tracking_uri()),
                     trials, metric, direction, pruner, space, _study_settings(settings), experiment, sampler_seed)
    storage = open_storage(spec.storage)  # before the tracking store, so a bad storage leaves nothing behind
    check_tracking_store()

    def train_new(values: dict, callbacks: list, placement):
        merged = dict(settings, options=(*settings["options"], *(f"{name.removeprefix('option.')}={value}"
                                                                  for name, value in values.items()
                                                                  if name.startswith("option."))))
        merged.update({name: value for name, value in values.items() if not name.startswith("option.")})
        return _train_one(arch, merged, experiment, callbacks, placement)

    _until_stopped(lambda stop: run_sweep(
        spec, storage, lambda values, callbacks, placement: train_new(values, [stop, *callbacks], placement),
        lambda run_id, callbacks: _resume_one(run_id, {}, taken_over=True)([stop, *callbacks]), echo=_echo_now,
        checkpoint_folder=lambda run_id: local_checkpoint(settings["checkpoint_dir"], run_id).parent), spec.study)


@cli.command()
@click.option(*_dashed("run_id"), "run_id", required=True, help="The MLflow run whose model to export.")
@click.option("--quantize", type=click.Choice(["none", "int8"]), default="none", show_default=True,
              help="Also make a static int8 (QDQ) model calibrated on training images.")
@click.option(*_dashed("register_as"), "register_as", default=None, help="Register the ONNX model under this name.")
@click.option("--data-dir", "--data_dir", "data_dir", default=None, help="Folder with the data set's files.")
def export(run_id: str, quantize: str, register_as: str | None, data_dir: str | None) -> None:
    """Export a run's model to ONNX, check parity on the whole test set, and log it into that run."""
    from convzoo.publish import export_run

    export_run(run_id, quantize=None if quantize == "none" else quantize, register_as=register_as,
               data_dir=data_dir, echo=_echo_now)


@cli.command()
@click.option(*_dashed("run_id"), "run_id", required=True, help="The MLflow run whose ONNX model to use.")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True, help="Classes to show per image.")
@click.argument("images", nargs=-1, required=True, type=click.Path())
def predict(run_id: str, top: int, images: tuple[str, ...]) -> None:
    """Classify PNG/JPEG IMAGES with a run's verified ONNX model."""
    from convzoo.predict import predict as classify

    for prediction in classify(run_id, list(images), top=top):
        best, *others = prediction.classes
        rest = ", ".join(f"{name} {p:.3f}" for name, p in others)
        click.echo(f"{prediction.path}: {best[0]} {best[1]:.3f}" + (f" ({rest})" if rest else ""))


@cli.command()
@click.option("--experiment", default=None, help="Only this experiment (default: all).")
@click.option("--sort", default=None, metavar="METRIC", help="Sort by this metric, highest first (e.g. test_acc).")
@click.option("--stale-after", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="A RUNNING run without a heartbeat this long is STALE (default: $CONVZOO_STALE_AFTER_SECONDS or 300).")
@click.option("--mark-stale", is_flag=True, help="End stale runs KILLED (then `convzoo resume RUN_ID` continues one).")
def runs(experiment: str | None, sort: str | None, stale_after: float | None, mark_stale: bool) -> None:
    """Table of convzoo runs in the tracking store (MLFLOW_TRACKING_URI or ./mlflow.db)."""
    from convzoo.runs import COLUMNS, convzoo_runs, mark_stale as end_stale, run_rows, stale_after_seconds

    limit = stale_after_seconds() if stale_after is None else stale_after
    found = convzoo_runs(experiment)
    if mark_stale:
        for run_id in end_stale(found, limit):
            click.echo(f"marked stale run {run_id} KILLED; continue it with: convzoo resume {run_id}")
        found = convzoo_runs(experiment)
    click.echo(format_table(COLUMNS, run_rows(found, sort, limit)))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=5000, show_default=True, help="Port to listen on.")
def ui(host: str, port: int) -> None:
    """Start the MLflow UI on the store runs go to, and print its address."""
    import mlflow

    store = mlflow.get_tracking_uri()
    click.echo(f"MLflow UI for {store} at http://{host}:{port} (Ctrl-C stops it)")
    completed = subprocess.run([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store,
                                "--host", host, "--port", str(port)])
    if completed.returncode:
        raise click.exceptions.Exit(completed.returncode)


@cli.command()
@click.option("--folder", type=click.Path(file_okay=False), default="mlflow-server", show_default=True,
              help="Where the server keeps its SQLite store, artifacts, admin password and auth settings.")
@click.option(*_dashed("backend_store_uri"), "backend_store_uri", default=None, metavar="URI",
              help="Runs and metrics: postgresql://USER:PASSWORD@HOST/DB for a team (default: SQLite in --folder).")
@click.option(*_dashed("artifacts_destination"), "artifacts_destination", default=None, metavar="URI",
              help="Where artifacts go; clients reach them through the server (default: FOLDER/artifacts).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", type=int, default=5000, show_default=True, help="Port to listen on.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Server processes.")
@click.option("--auth/--no-auth", default=True, show_default=True, help="MLflow's basic-auth app: users and "
                                                                       "per-experiment permissions.")
@click.option(*_dashed("default_permission"), "default_permission", default="READ", show_default=True,
              help="What a new user may do on every experiment: READ, EDIT, MANAGE or NO_PERMISSIONS.")
@click.option(*_dashed("auth_database_uri"), "auth_database_uri", default=None, metavar="URI",
              help="Where users and permissions are kept (default: SQLite in --folder).")
def server(folder: str, **settings) -> None:
    """Start a team tracking server (MLflow with a database store, proxied artifacts and basic-auth)."""
    from pathlib import Path

    from convzoo.server import plan, serve

    serve(*plan(Path(folder), **settings), echo=_echo_now)


@cli.command("new-plugin")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where to create the convzoo-NAME folder.")
def new_plugin(name: str, directory: str) -> None:
    """Write a ready plugin package convzoo-NAME: entry point, a network that trains, README and tests."""
    from pathlib import Path

    from convzoo.scaffold import new_plugin as write_plugin

    root = write_plugin(name, Path(directory))
    click.echo(f"wrote {root}; next: convzoo install ./{root.name} (or pip install -e) and pytest {root}/tests")


def _echo_now(line: str) -> None:
    """Print a progress line at once, even when stdout is a file or a pipe (CI logs, `mlflow run`)."""
    click.echo(line)
    sys.stdout.flush()


def _pip(*args: str) -> None:
    completed = subprocess.run([sys.executable, "-m", "pip", *args])
    if completed.returncode:
        raise click.exceptions.Exit(completed.returncode)


@cli.command()
@click.argument("packages", nargs=-1, required=True)
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade packages that are already installed.")
def install(packages: tuple[str, ...], upgrade: bool) -> None:
    """Install plugin PACKAGES (names, wheel files or local folders) with pip into convzoo's environment."""
    _pip("install", *(["--upgrade"] if upgrade else []), *packages)


@cli.command()
@click.argument("packages", nargs=-1, required=True)
def uninstall(packages: tuple[str, ...]) -> None:
    """Uninstall plugin PACKAGES with pip from the environment convzoo runs in."""
    _pip("uninstall", "--yes", *packages)


# MLflow's client retries a server that is down for about four minutes per request; convzoo's own queue retries
# without limit while training and waits a bounded time at the end, so each request gives up sooner.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def main() -> None:
    for name, value in {**HTTP_DEFAULTS, "MPLBACKEND": "Agg"}.items():  # the command never opens a plot window
        os.environ.setdefault(name, value)  # the user's own settings win
    cli(prog_name="convzoo")
