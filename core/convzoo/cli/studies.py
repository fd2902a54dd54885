"""``convzoo sweep`` and ``convzoo compare``: many runs, optionally spread over workers that share a study."""
from __future__ import annotations

import click

from convzoo.cli.options import (HYPERPARAMETERS, echo_now, parse_options, refuse_experiment_under_mlflow_run,
                                 study_options, training_options)
from convzoo.cli.training import run_settings
from convzoo.errors import ConvzooError
from convzoo.registry.plugins import get_registry


def _refuse_under_mlflow_run(command: str) -> None:
    from convzoo.vocabulary import inside_mlflow_run

    if inside_mlflow_run():
        raise ConvzooError(f"convzoo {command} with a study makes its own parent run; run it outside `mlflow run`")


def _study_settings(settings: dict) -> dict:
    """The settings that decide what every trial trains (not where files go, nor what happens after training)."""
    ignored = ("data_dir", "checkpoint_dir", "checkpoint_every", "export", "register_as")
    return {key: list(value) if isinstance(value, tuple) else value for key, value in settings.items()
            if key not in ignored}


def _until_stopped(start, study: str):
    """Run a sweep or comparison worker with signals turned into a checkpointed stop of its current trial."""
    from convzoo.training.signals import StopOnSignal, exit_code
    from convzoo.training.trainer import StopRequested

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial's outcome is printed as one line of convzoo's
    stop = StopOnSignal()
    with stop.installed():
        try:
            return start(stop)
        except StopRequested as stopped:
            echo_now(f"stopped by {stopped.signal_name}: a trial in progress went back to study {study!r} (its run "
                      f"KILLED, with a checkpoint); the same command continues the study")
            raise click.exceptions.Exit(exit_code(stopped.signum)) from None


def _comparison_params(names: list[str], settings: dict) -> dict:
    """A comparison's parent params: the architectures, the recipe, and every override given."""
    overrides = {name: settings[name] for name, _, _ in HYPERPARAMETERS if settings[name] is not None}
    options = {f"option.{key}": value for key, value in parse_options(settings["options"]).items()}
    return {"archs": ",".join(names), "recipe": settings["recipe"], **overrides, **options}


@click.command()
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
    from convzoo.runs.start import resume_run, train_arch
    from convzoo.studies.compare import compare as run_comparison, compare_in_study
    from convzoo.tracking.store import check_tracking_store, tracking_uri

    refuse_experiment_under_mlflow_run(experiment)
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
        run_comparison(names, lambda name: train_arch(name, run_settings(settings), echo=echo_now).run_id,
                       echo=echo_now, experiment=experiment, params=_comparison_params(names, settings))
        return
    from convzoo.studies.optuna_studies import default_storage, open_storage

    _refuse_under_mlflow_run("compare")
    study = study_name or "compare-" + "-".join(names)
    url = storage or default_storage(tracking_uri())
    opened = open_storage(url)  # before the tracking store, so a bad storage leaves nothing behind
    check_tracking_store()
    _until_stopped(lambda stop: compare_in_study(
        names, opened, url, study, _study_settings(settings),
        train_one=lambda name, callbacks, placement: train_arch(
            name, run_settings(settings), experiment=experiment, callbacks=[stop, *callbacks], placement=placement,
            echo=echo_now),
        resume=lambda run_id, callbacks: resume_run(run_id, {}, taken_over=True, echo=echo_now)([stop, *callbacks]),
        experiment=experiment, echo=echo_now), study)


@click.command()
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
    from click.core import ParameterSource

    from convzoo.runs.settings import choose_recipe
    from convzoo.runs.start import resume_run, train_arch
    from convzoo.studies.space import parse_space
    from convzoo.tracking.store import check_tracking_store, tracking_uri
    from convzoo.training.checkpoint import local_checkpoint
    from convzoo.training.devices import resolve_device
    from convzoo.studies.optuna_studies import default_storage, open_storage
    from convzoo.studies.sweep import SweepSpec, run_sweep

    _refuse_under_mlflow_run("sweep")
    if ctx.get_parameter_source("export") == ParameterSource.DEFAULT:
        settings["export"] = False
    space = parse_space(params)
    architecture = get_registry().get_architecture(arch)
    architecture.resolve_options({param.option: architecture.options.get(param.option)
                                  for param in space if param.option})  # unknown options fail here
    recipe = choose_recipe(architecture, settings["recipe"], resolve_device(settings["device"]).type == "cuda")
    spec = SweepSpec(arch, recipe, study_name or f"sweep-{arch}", storage or default_storage(tracking_uri()),
                     trials, metric, direction, pruner, space, _study_settings(settings), experiment, sampler_seed)
    storage = open_storage(spec.storage)  # before the tracking store, so a bad storage leaves nothing behind
    check_tracking_store()

    def train_new(values: dict, callbacks: list, placement):
        merged = dict(settings, options=(*settings["options"], *(f"{name.removeprefix('option.')}={value}"
                                                                  for name, value in values.items()
                                                                  if name.startswith("option."))))
        merged.update({name: value for name, value in values.items() if not name.startswith("option.")})
        return train_arch(arch, run_settings(merged), experiment=experiment, callbacks=callbacks, placement=placement,
                          echo=echo_now)

    _until_stopped(lambda stop: run_sweep(
        spec, storage, lambda values, callbacks, placement: train_new(values, [stop, *callbacks], placement),
        lambda run_id, callbacks: resume_run(run_id, {}, taken_over=True, echo=echo_now)([stop, *callbacks]),
        echo=echo_now,
        checkpoint_folder=lambda run_id: local_checkpoint(settings["checkpoint_dir"], run_id).parent), spec.study)
