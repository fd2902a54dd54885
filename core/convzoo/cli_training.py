"""``convzoo train`` and ``convzoo resume``: one run, in this process or in several (``--nproc``), stopped cleanly
by signals."""
from __future__ import annotations

import signal
import sys

import click

from convzoo.cli_options import (HYPERPARAMETERS, checkpoint_options, dashed, echo_now, nproc_option, parse_options,
                                 training_options)
from convzoo.errors import ConvzooError
from convzoo.plugins import get_registry


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
                          overrides=hyper, options=parse_options(options), **settings)


def _train_one(arch: str, settings: dict, experiment: str | None = None, callbacks=(), placement=None, world=None):
    """Validate everything, then train ``arch`` in one MLflow run (a child when a run is active, or of
    ``placement.parent_run_id``); ``world``: this process's rank when several train it."""
    from convzoo.distributed import SINGLE
    from convzoo.run import RunPlacement, train as run_training

    config, architecture, data = _resolve(arch, settings)
    return run_training(config, architecture, data, experiment=experiment, echo=echo_now, callbacks=callbacks,
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
    return lambda callbacks: run_training(config, architecture, data, echo=echo_now, callbacks=callbacks,
                                          resume=resume, world=world)


def _given(ctx: click.Context, values: dict) -> dict:
    """The settings the user gave explicitly (on the command line or through ``mlflow run``)."""
    from click.core import ParameterSource

    given = {name: value for name, value in values.items()
             if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}
    if "options" in given:
        given["options"] = parse_options(given["options"])
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
                echo_now(_stopped_line(stopped.signal_name, world.size))
            raise click.exceptions.Exit(exit_code(stopped.signum)) from None
        except KeyboardInterrupt:
            echo_now("interrupted at once: the run ended KILLED at its last checkpoint")
            raise click.exceptions.Exit(exit_code(signal.SIGINT)) from None
    if world.is_main:
        final = result.history[-1]
        click.echo(f"run {result.run_id}: {result.arch} test acc {final.test_acc:.4f} after {len(result.history)} "
                   f"epoch(s) on {result.device} ({result.precision})")


def _launch_ranks(nproc: int, device: str) -> None:
    """Hand this very command, less ``--nproc``, to torchrun as ``nproc`` ranks, and leave with their exit code."""
    from convzoo.launch import launch, without_nproc

    raise click.exceptions.Exit(launch(nproc, without_nproc(sys.argv[1:]), device, echo_now))


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


@click.command()
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


@click.command()
@click.argument("run_id")
@click.option("--epochs", type=int, default=None, help="Train to this many epochs in all (more than the run had).")
@click.option("--data-dir", "--data_dir", "data_dir", default=None, help="Folder with the data set's files.")
@click.option("--export", "export", type=click.BOOL, default=None, help="Export to ONNX at the end (default: as the run).")
@click.option(*dashed("register_as"), "register_as", default=None, help="Register the ONNX model under this name.")
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
