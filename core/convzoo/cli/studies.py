"""``convzoo sweep`` and ``convzoo compare``: many runs, optionally spread over workers that share a study; and
``convzoo lr-find``, the learning-rate range test."""
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


def _refuse_what_every_architecture_refuses(names: list[str], settings: dict) -> None:
    """A value that every architecture refuses with the same error (``--val-fraction 2``, ``--early-stop`` without
    a split) is bad input: refused before any run. One an architecture refuses alone (an input size too small for
    it) is that architecture's failure in the comparison."""
    from convzoo.runs.settings import check_request

    errors = set()
    for name in names:
        try:
            check_request(get_registry(), name, **settings)
        except ConvzooError as error:
            errors.add(str(error))
        else:
            return
    if len(errors) == 1:
        raise ConvzooError(errors.pop())


def _comparison_params(names: list[str], settings: dict) -> dict:
    """A comparison's parent params: the architectures, the recipe, and every override given."""
    overrides = {name: settings[name] for name, _, _ in HYPERPARAMETERS if settings[name] is not None}
    options = {f"option.{key}": value for key, value in parse_options(settings["options"]).items()}
    return {"archs": ",".join(names), "recipe": settings["recipe"], **overrides, **options}


@click.command()
@click.argument("arch_names", metavar="[ARCH]...", nargs=-1)
@click.option("--archs", default=None,
              help="Comma-separated architectures, or shell-style patterns; all = every installed one (the default "
                   "when no ARCH is named).")
@click.option("--seeds", type=int, default=1, show_default=True,
              help="Train every architecture this many times, with seeds --seed … --seed + N - 1; the table then "
                   "shows mean ± 95 % CI, and pairs are compared by a paired bootstrap.")
@training_options
@study_options
def compare(arch_names: tuple[str, ...], archs: str | None, seeds: int, experiment: str | None, storage: str | None,
            study_name: str | None, **settings) -> None:
    """Train several architectures (each once per seed) as child runs of one parent run and log a comparison: mean
    ± CI table, significance of every pair, plots.

    Under `mlflow run --run-id PARENT` it continues that parent: finished children are not trained again. With
    --study (and --storage), every worker started with the same command takes the next architecture and seed not
    yet trained, and the last one to finish logs the comparison.
    """
    from convzoo.runs.start import resume_run, train_arch
    from convzoo.runs.training_run import RunPlacement
    from convzoo.studies.compare import compare as run_comparison, compare_in_study, seed_list
    from convzoo.tracking.store import check_tracking_store, tracking_uri
    from convzoo.vocabulary import GROUP_TAG

    refuse_experiment_under_mlflow_run(experiment)
    seed_values = seed_list(settings["seed"], seeds)
    registry = get_registry()
    archs = ",".join(arch_names) if arch_names else (archs or "all")
    patterns = [part.strip() for part in archs.split(",") if part.strip()]
    names = registry.list_architectures() if archs == "all" else [
        name for pattern in patterns
        for name in (registry.list_architectures(include=pattern) if any(c in pattern for c in "*?[") else [pattern])
    ]
    for name in names:
        registry.get_architecture(name)  # unknown names fail before any run

    def seeded(seed: int) -> dict:
        return run_settings(dict(settings, seed=seed))

    _refuse_what_every_architecture_refuses(names, seeded(seed_values[0]))
    if not (storage or study_name):
        check_tracking_store()
        run_comparison(names, lambda name, seed: train_arch(name, seeded(seed), echo=echo_now,
                                                            placement=RunPlacement(tags={GROUP_TAG: name})).run_id,
                       seeds=seed_values, echo=echo_now, experiment=experiment,
                       params={**_comparison_params(names, settings), "seeds": seeds})
        return
    from convzoo.studies.optuna_studies import default_storage, open_storage

    _refuse_under_mlflow_run("compare")
    study = study_name or "compare-" + "-".join(names)
    url = storage or default_storage(tracking_uri())
    opened = open_storage(url)  # before the tracking store, so a bad storage leaves nothing behind
    check_tracking_store()
    _until_stopped(lambda stop: compare_in_study(
        names, opened, url, study, _study_settings(settings),
        train_one=lambda name, seed, callbacks, placement: train_arch(
            name, seeded(seed), experiment=experiment, callbacks=[stop, *callbacks], placement=placement,
            echo=echo_now),
        resume=lambda run_id, callbacks: resume_run(run_id, {}, taken_over=True, echo=echo_now)([stop, *callbacks]),
        seeds=seed_values, experiment=experiment, echo=echo_now), study)


@click.command()
@click.argument("arch")
@click.option("--param", "params", multiple=True, metavar="NAME=KIND:ARGS",
              help="A dimension of the search space, repeatable: lr=loguniform:1e-4:1e-2, "
                   "weight_decay=uniform:0:1e-3, resize=int:64:128:16, batch_size=choice:32,64,128, "
                   "option=ratio=choice:4,8.")
@click.option("--trials", type=int, default=10, show_default=True,
              help="The study's total of finished (complete or pruned) trials, over all its workers.")
@click.option("--metric", default="val_acc", show_default=True,
              help="The last epoch's metric to optimise and prune on: val_acc, val_loss or a train_* figure, never "
                   "a test_* one.")
@click.option("--direction", default=None,
              help="maximize or minimize (default: minimize for a loss or a time, else maximize).")
@click.option("--pruner", default="median", show_default=True,
              help="median (stop trials below the median epoch by epoch, from the 6th trial, on --metric), "
                   "median:N (from trial N+1), or none.")
@click.option("--sampler-seed", "sampler_seed", type=int, default=None,
              help="Seed Optuna's sampler (repeatable sweeps with one worker).")
@training_options
@study_options
@click.pass_context
def sweep(ctx: click.Context, arch: str, params: tuple[str, ...], trials: int, metric: str, direction: str | None,
          pruner: str, sampler_seed: int | None, experiment: str | None, storage: str | None, study_name: str | None,
          **settings) -> None:
    """Search ARCH's hyperparameters with Optuna: every trial a convzoo run nested under the study's parent run.

    The same command started on several machines (with one --storage) makes them workers of one study. ONNX export
    is off for trials unless --export true.
    """
    from click.core import ParameterSource

    from convzoo.runs.settings import check_request, choose_recipe
    from convzoo.runs.start import resume_run, train_arch
    from convzoo.studies.space import parse_space
    from convzoo.tracking.store import check_tracking_store, tracking_uri
    from convzoo.training.checkpoint import local_checkpoint
    from convzoo.training.devices import resolve_device
    from convzoo.studies.optuna_studies import default_storage, open_storage
    from convzoo.studies.sweep import SweepSpec, default_direction, run_sweep

    _refuse_under_mlflow_run("sweep")
    if ctx.get_parameter_source("export") == ParameterSource.DEFAULT:
        settings["export"] = False
    space = parse_space(params)
    architecture = get_registry().get_architecture(arch)
    architecture.resolve_options({param.option: architecture.options.get(param.option)
                                  for param in space if param.option})  # unknown options fail here
    recipe = choose_recipe(architecture, settings["recipe"], resolve_device(settings["device"]).type == "cuda")
    spec = SweepSpec(arch, recipe, study_name or f"sweep-{arch}", storage or default_storage(tracking_uri()),
                     trials, metric, direction or default_direction(metric), pruner, space, _study_settings(settings),
                     experiment, sampler_seed)
    config = check_request(get_registry(), arch, **run_settings(dict(settings, recipe=recipe)))
    if metric.startswith("val_") and not config.hyper.val_fraction:
        raise ConvzooError(f"--metric {metric} needs a validation split, and recipe {recipe} with val_fraction "
                           f"{config.hyper.val_fraction:g} holds out none; give --val-fraction in (0, 1), e.g. 0.0833")
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


@click.command("lr-find")
@click.argument("arch")
@training_options
@click.option("--steps", type=int, default=200, show_default=True,
              help="Steps of the sweep (at most one epoch's batches: --limit-train-batches caps them).")
@click.option("--start-lr", "start_lr", type=float, default=1e-7, show_default=True, help="The sweep's first rate.")
@click.option("--end-lr", "end_lr", type=float, default=10.0, show_default=True, help="The sweep's last rate.")
def lr_find(arch: str, experiment: str | None, steps: int, start_lr: float, end_lr: float, **settings) -> None:
    """The learning-rate range test for ARCH with the recipe's other settings: the rate rises exponentially step by
    step until the loss diverges; logged as its own MLflow run with the loss-vs-rate figure, and the suggested rate
    printed. Nothing is kept for later runs."""
    from convzoo.runs.settings import run_config
    from convzoo.studies.lr_find import lr_find as range_test

    refuse_experiment_under_mlflow_run(experiment)
    config, architecture, data = run_config(get_registry(), arch, **run_settings(settings))
    range_test(config, architecture, data, steps=steps, start_lr=start_lr, end_lr=end_lr, experiment=experiment,
               echo=echo_now)
