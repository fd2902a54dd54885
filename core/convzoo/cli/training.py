"""``convzoo train`` and ``convzoo resume``: one run, in this process or in several (``--nproc``), stopped cleanly
by signals."""
from __future__ import annotations

import signal
import sys

import click

from convzoo.cli.options import (checkpoint_options, dashed, echo_now, nproc_option, parse_options,
                                 refuse_experiment_under_mlflow_run, training_options)
from convzoo.errors import ConvzooError
from convzoo.registry.plugins import get_registry


def run_settings(settings: dict) -> dict:
    """The command's training options as ``convzoo.runs.start.train_arch`` takes them (``--option`` pairs parsed)."""
    return dict(settings, options=parse_options(settings["options"]))


def _given(ctx: click.Context, values: dict) -> dict:
    """The settings the user gave explicitly (on the command line or through ``mlflow run``)."""
    from click.core import ParameterSource

    given = {name: value for name, value in values.items()
             if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}
    if "options" in given:
        given["options"] = parse_options(given["options"])
    return given


def _last_run_note() -> str:
    from convzoo.tracking.active_run import last_run

    last = last_run()
    return f"; run {last[0]} ended {last[1]}" if last else ""


def _stopped_line(signal_name: str, nproc: int) -> str:
    from convzoo.tracking.active_run import last_run

    last = last_run()
    if last is None:
        return f"stopped by {signal_name} before a run was started"
    again = f" --nproc {nproc}" if nproc > 1 else ""
    return (f"stopped by {signal_name}: run {last[0]} ended KILLED, checkpoint saved; continue it with: "
            f"convzoo resume {last[0]}{again}")


def _train_until_stopped(start, world=None) -> None:
    """Run ``start(callbacks)`` with SIGTERM/SIGINT/SIGHUP turned into a checkpointed stop; say how to resume.
    ``world``: this process's rank when several train the run (rank 0 alone prints)."""
    from convzoo.training.distributed import SINGLE
    from convzoo.training.launch import as_one_of_many
    from convzoo.training.signals import StopOnSignal, exit_code
    from convzoo.training.trainer import StopRequested

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
    if not world.is_main:
        from convzoo.training.distributed import end_helper_rank

        end_helper_rank()
    from convzoo.tracking.store import where_tracked

    final = result.history[-1]
    click.echo(f"run {result.run_id}: {result.arch} test acc {final.test_acc:.4f} after {len(result.history)} "
               f"epoch(s) on {result.device} ({result.precision})")
    click.echo(where_tracked(result.run_id))


def _launch_ranks(nproc: int, device: str) -> None:
    """Hand this very command, less ``--nproc``, to torchrun as ``nproc`` ranks, and leave with their exit code."""
    from convzoo.training.launch import launch, without_nproc

    raise click.exceptions.Exit(launch(nproc, without_nproc(sys.argv[1:]), device, echo_now))


def _stop_with_mlflow_run() -> None:
    """Under ``mlflow run``, which dies on SIGTERM without passing it on, get SIGTERM when it dies."""
    from convzoo.vocabulary import inside_mlflow_run

    if inside_mlflow_run():
        from convzoo.training.signals import stop_with_parent

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
    from convzoo.runs.settings import check_request

    _stop_with_mlflow_run()
    refuse_experiment_under_mlflow_run(experiment)
    if not (arch or resume):
        raise ConvzooError("missing ARCH: name an architecture (`convzoo archs` lists them), or pass --resume RUN_ID")
    if not resume:
        check_request(get_registry(), arch, **run_settings(settings))  # before torch is imported: a fraction of a second

    from convzoo.runs.start import resume_run, train_arch
    from convzoo.training.launch import rank_world

    if nproc > 1:
        if not resume:
            from convzoo.runs.settings import run_config
            from convzoo.training.distributed import check_batch

            config = run_config(get_registry(), arch, **run_settings(settings))[0]
            check_batch(config.hyper.batch_size, nproc)  # bad input fails before N processes
        _launch_ranks(nproc, settings["device"])
    world = rank_world(settings["device"])
    if resume:
        requested = _given(ctx, settings)
        if arch:
            requested["arch"] = arch
        _train_until_stopped(resume_run(resume, requested, world=world, echo=echo_now), world)
        return
    _train_until_stopped(lambda callbacks: train_arch(arch, run_settings(settings), experiment=experiment,
                                                      callbacks=callbacks, world=world, echo=echo_now), world)


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
    from convzoo.runs.start import resume_run
    from convzoo.training.launch import rank_world

    _stop_with_mlflow_run()
    if nproc > 1:
        _launch_ranks(nproc, "auto")
    world = rank_world("auto")
    _train_until_stopped(resume_run(run_id, _given(ctx, settings), world=world, echo=echo_now), world)
