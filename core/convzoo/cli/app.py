"""The ``convzoo`` command: the group and the commands that inspect, export and serve (training in cli_training,
sweeps and comparisons in cli_studies). Only the commands that build networks import torch, and only when they run."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import asdict

import click

from convzoo.version import __version__
from convzoo.cli.options import DEFAULT_DATASET, dashed, echo_now, parse_options
from convzoo.cli.studies import compare, lr_find, sweep
from convzoo.cli.training import resume, train
from convzoo.config import DEVICES
from convzoo.errors import ConvzooError
from convzoo.registry.plugins import get_registry
from convzoo.registry.scaffold import KINDS as PLUGIN_KINDS
from convzoo.registry.scaffold import new_plugin as write_plugin
from convzoo.tables import format_table

MEASURED_PRECISIONS = ("fp32", "bf16")


class ConvzooGroup(click.Group):
    """Turns ``ConvzooError`` into a one-line ``Error: ...`` and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ConvzooError as error:
            raise click.ClickException(str(error)) from None


def _verbose(ctx: click.Context, param: click.Parameter, verbose: bool) -> None:
    if verbose:
        os.environ["MLFLOW_LOGGING_LEVEL"] = "INFO"
        logging.getLogger("mlflow").setLevel(logging.INFO)  # if MLflow was imported already


@click.group(cls=ConvzooGroup)
@click.version_option(__version__, prog_name="convzoo")
@click.option("--verbose", is_flag=True, expose_value=False, is_eager=True, callback=_verbose,
              help="Show MLflow's INFO messages (quiet by default: MLFLOW_LOGGING_LEVEL=WARNING).")
def cli() -> None:
    """Train, track and export the d2l modern CNNs (and any plugin's) on Fashion-MNIST with MLflow."""


@cli.command()
@click.argument("pattern", required=False)
@click.option("--dataset", default=DEFAULT_DATASET, show_default=True, help="Data set whose shape the networks take.")
def archs(pattern: str | None, dataset: str) -> None:
    """List installed architectures (optionally those matching a shell-style PATTERN)."""
    import torch

    from convzoo.registry.summary import count_params

    registry = get_registry()
    channels, classes = registry.get_dataset(dataset).require_shape()
    rows, broken = [], []
    for name in registry.list_architectures(include=pattern):
        arch = registry.get_architecture(name)
        try:
            with torch.device("meta"):
                params = f"{count_params(arch.create(channels, classes)):,}"
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
def datasets() -> None:
    """List installed data sets: the plugin, image channels, classes and what each is."""
    registry = get_registry()
    rows = [[name, f"{data.plugin} {data.plugin_version}", data.in_channels or "from data",
             data.num_classes or "from data", data.description]
            for name in registry.datasets.names() for data in [registry.get_dataset(name)]]
    click.echo(format_table(["NAME", "PLUGIN", "CHANNELS", "CLASSES", "DESCRIPTION"], rows))


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
    from convzoo.registry.summary import count_params, smallest_input_size, summarize

    registry = get_registry()
    architecture, (channels, classes) = registry.get_architecture(arch), registry.get_dataset(dataset).require_shape()
    if min_size:
        smallest = smallest_input_size(architecture, channels, classes, **parse_options(options))
        click.echo(f"smallest input size that works: {smallest} (registered min_input_size: "
                   f"{architecture.min_input_size})")
    size = resize or architecture.input_size
    model = architecture.create(channels, classes, input_size=size, **parse_options(options))
    blocks = summarize(model, channels, size)
    chosen = ", ".join(f"{k}={v}" for k, v in architecture.resolve_options(parse_options(options)).items())
    click.echo(f"{arch} ({architecture.plugin} {architecture.plugin_version}) input 1x{channels}x{size}x{size}"
               + (f" options: {chosen}" if chosen else ""))
    rows = [[block.name, "(" + ", ".join(map(str, block.output_shape)) + ")", f"{block.params:,}"] for block in blocks]
    click.echo(format_table(["BLOCK", "OUTPUT SHAPE", "PARAMS"], rows))
    click.echo(f"total params: {count_params(model):,}")


@cli.command("peak")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True, help="Device to measure.")
@click.option("--precision", "precisions", multiple=True, type=click.Choice(MEASURED_PRECISIONS),
              help="Precision to measure; repeatable (default: both).")
@click.option("--remeasure", is_flag=True, help="Measure again instead of reading the cache (on an idle machine).")
def peak_command(device: str, precisions: tuple[str, ...], remeasure: bool) -> None:
    """This machine's measured peak FLOP/s per precision: what a run's MFU divides by."""
    from convzoo.training.devices import resolve_device, resolve_precision
    from convzoo.training.peak import cache_dir, peak

    where = resolve_device(device)
    peaks = [peak(where, precision, remeasure=remeasure, on_measure=echo_now)
             for precision in precisions or MEASURED_PRECISIONS]
    rows = [[p.device, p.precision, f"{p.flops_per_sec / 1e9:.1f}", p.kernel] for p in peaks]
    click.echo(format_table(["DEVICE", "PRECISION", "PEAK GFLOP/S", "BEST KERNEL"], rows))
    click.echo(f"{'oneDNN ISA' if where.type == 'cpu' else 'GPU'}: {peaks[0].isa}; precision auto trains in "
               f"{resolve_precision('auto', where)}; cached in {cache_dir()}")


@cli.command()
@click.option(*dashed("run_id"), "run_id", required=True, help="The MLflow run whose model to export.")
@click.option("--quantize", type=click.Choice(["none", "int8"]), default="none", show_default=True,
              help="Also make a static int8 (QDQ) model calibrated on training images.")
@click.option(*dashed("register_as"), "register_as", default=None, help="Register the ONNX model under this name.")
@click.option("--data-dir", "--data_dir", "data_dir", default=None,
              help="Folder with the data set's files (default: the one the run was trained on).")
@click.option(*dashed("other_data"), "other_data", is_flag=True, default=False,
              help="--data-dir holds other data than the run's: check parity there, logged as other_data.DIGEST.*.")
def export(run_id: str, quantize: str, register_as: str | None, data_dir: str | None, other_data: bool) -> None:
    """Export a run's model to ONNX, check parity on the whole test set, and log it into that run (its status,
    times and existing metrics unchanged)."""
    from convzoo.deploy.publish import export_run

    export_run(run_id, quantize=None if quantize == "none" else quantize, register_as=register_as,
               data_dir=data_dir, other_data=other_data, echo=echo_now)


@cli.command()
@click.option(*dashed("run_id"), "run_id", required=True, help="The MLflow run whose ONNX model to use.")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True, help="Classes to show per image.")
@click.argument("images", nargs=-1, required=True, type=click.Path())
def predict(run_id: str, top: int, images: tuple[str, ...]) -> None:
    """Classify PNG/JPEG IMAGES with a run's verified ONNX model."""
    from convzoo.deploy.predict import predict as classify

    for prediction in classify(run_id, list(images), top=top):
        best, *others = prediction.classes
        rest = ", ".join(f"{name} {p:.3f}" for name, p in others)
        click.echo(f"{prediction.path}: {best[0]} {best[1]:.3f}" + (f" ({rest})" if rest else ""))


@cli.command()
@click.argument("target", metavar="RUN_ID|models:/NAME@ALIAS")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=5001, show_default=True, help="Port to listen on.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Server processes, each with cores/workers onnxruntime threads (default: one per two cores).")
def serve(target: str, host: str, port: int, workers: int | None) -> None:
    """Serve a run's (or a registered model's) image classifier over HTTP with mlflow models serve."""
    from convzoo.deploy.serving import default_workers, serve as serve_model

    sys.exit(serve_model(target, host, port, workers or default_workers(), echo=echo_now))


require_option = click.option("--require", "require", multiple=True, metavar="METRIC>=VALUE",
                              help="A bar the evaluation must clear, e.g. accuracy>=0.9 or ece<0.05; repeatable.")


@cli.command()
@click.option(*dashed("run_id"), "run_id", required=True, help="The MLflow run whose verified ONNX model to evaluate.")
@click.option("--data-dir", "--data_dir", "data_dir", default=None,
              help="Evaluate on this folder's test split (default: the run's own data).")
@require_option
def evaluate(run_id: str, data_dir: str | None, require: tuple[str, ...]) -> None:
    """Evaluate a run's ONNX model on its test split into a child run: per-class precision/recall/F1, top-1/top-5,
    confusion matrices, calibration (ECE, reliability diagram), the most confidently wrong images."""
    from convzoo.deploy.evaluation import evaluate_run

    evaluation = evaluate_run(run_id, data_dir=data_dir, require=require, echo=echo_now)
    if not evaluation.passed:
        raise ConvzooError(f"evaluation {evaluation.run_id} fails its bar: {'; '.join(evaluation.failures)}")


@cli.command()
@click.argument("name")
@click.argument("version")
@click.option("--alias", default="champion", show_default=True, help="The alias to point at VERSION.")
@require_option
def promote(name: str, version: str, alias: str, require: tuple[str, ...]) -> None:
    """Point registered model NAME's ALIAS at VERSION (models:/NAME@ALIAS then serves it); with --require, only if
    an evaluation of its run clears every bar."""
    from convzoo.deploy.model_registry import model_version, promote as set_alias

    if require:
        from convzoo.deploy.evaluation import evaluate_run

        run_id = model_version(f"models:/{name}/{version}").run_id
        evaluation = evaluate_run(run_id, require=require, echo=echo_now)
        if not evaluation.passed:
            raise ConvzooError(f"version {version} of {name} fails its evaluation ({'; '.join(evaluation.failures)}); "
                               f"{alias} not moved")
    promoted = set_alias(name, version, alias)
    click.echo(f"models:/{name}@{alias} is version {version} (run {promoted.run_id}); serve it with: convzoo serve "
               f"models:/{name}@{alias}")


@cli.command()
@click.option("--experiment", default=None, help="Only this experiment (default: all).")
@click.option("--sort", default=None, metavar="METRIC", help="Sort by this metric, highest first (e.g. test_acc).")
@click.option("--stale-after", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="A RUNNING run without a heartbeat this long is STALE (default: $CONVZOO_STALE_AFTER_SECONDS or 300).")
@click.option("--mark-stale", is_flag=True, help="End stale runs KILLED (then `convzoo resume RUN_ID` continues one).")
@click.option("--group-by", "group_by", default=None, metavar="KEY",
              help="Summarise the finished runs per value of this param or tag (arch, recipe, lr, ...): test and "
                   "validation accuracy and training time as mean ± 95 % CI.")
def runs(experiment: str | None, sort: str | None, stale_after: float | None, mark_stale: bool,
         group_by: str | None) -> None:
    """Table of convzoo runs in the tracking store (MLFLOW_TRACKING_URI or ./mlflow.db)."""
    from convzoo.deploy.model_registry import aliases_by_run
    from convzoo.tracking.listing import COLUMNS, convzoo_runs, mark_stale as end_stale, run_rows, stale_after_seconds

    limit = stale_after_seconds() if stale_after is None else stale_after
    found = convzoo_runs(experiment)
    if mark_stale:
        for run_id in end_stale(found, limit):
            click.echo(f"marked stale run {run_id} KILLED; continue it with: convzoo resume {run_id}")
        found = convzoo_runs(experiment)
    if group_by:
        from convzoo.tracking.comparison import grouped_runs

        click.echo(grouped_runs(found, group_by))
        return
    click.echo(format_table(COLUMNS, run_rows(found, sort, limit, aliases_by_run())))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=5000, show_default=True, help="Port to listen on.")
def ui(host: str, port: int) -> None:
    """Start the MLflow UI on the store runs go to, and print its address once it answers."""
    from convzoo.tracking.server import run_ui
    from convzoo.tracking.store import tracking_uri

    status = run_ui(tracking_uri(), host, port, echo_now)
    if status:
        raise click.exceptions.Exit(status)


@cli.command()
@click.option("--folder", type=click.Path(file_okay=False), default="mlflow-server", show_default=True,
              help="Where the server keeps its SQLite store, artifacts, admin password and auth settings.")
@click.option(*dashed("backend_store_uri"), "backend_store_uri", default=None, metavar="URI",
              help="Runs and metrics: postgresql://USER:PASSWORD@HOST/DB for a team (default: SQLite in --folder).")
@click.option(*dashed("artifacts_destination"), "artifacts_destination", default=None, metavar="URI",
              help="Where artifacts go; clients reach them through the server (default: FOLDER/artifacts).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", type=int, default=5000, show_default=True, help="Port to listen on.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Server processes.")
@click.option("--auth/--no-auth", default=True, show_default=True, help="MLflow's basic-auth app: users and "
                                                                       "per-experiment permissions.")
@click.option(*dashed("default_permission"), "default_permission", default="READ", show_default=True,
              help="What a new user may do on every experiment: READ, EDIT, MANAGE or NO_PERMISSIONS.")
@click.option(*dashed("auth_database_uri"), "auth_database_uri", default=None, metavar="URI",
              help="Where users and permissions are kept (default: SQLite in --folder).")
def server(folder: str, **settings) -> None:
    """Start a team tracking server (MLflow with a database store, proxied artifacts and basic-auth)."""
    from pathlib import Path

    from convzoo.tracking.server import plan, serve

    serve(*plan(Path(folder), **settings), echo=echo_now)


@cli.command("new-plugin")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where to create the convzoo-NAME folder.")
@click.option("--kind", type=click.Choice(list(PLUGIN_KINDS)), default="architecture", show_default=True,
              help="What the plugin adds: a network or a data set.")
def new_plugin(name: str, directory: str, kind: str) -> None:
    """Write a ready plugin package convzoo-NAME: entry point, a network (or data set) that trains, README and tests."""
    from pathlib import Path

    root = write_plugin(name, Path(directory), kind)
    click.echo(f"wrote {root}; next: convzoo install ./{root.name} (or pip install -e) and pytest {root}/tests")


def _pip(*args: str) -> None:
    completed = subprocess.run([sys.executable, "-m", "pip", *args])
    if completed.returncode:
        raise click.exceptions.Exit(completed.returncode)


@cli.command()
@click.argument("packages", nargs=-1, required=True)
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade packages that are already installed.")
def install(packages: tuple[str, ...], upgrade: bool) -> None:
    """Install plugin PACKAGES (names, wheel files or local folders) with pip into convzoo's environment, then load
    every plugin in a new process and say what the new ones registered, or why one failed."""
    before = _loaded_plugins()
    _pip("install", *(["--upgrade"] if upgrade else []), *packages)
    after = _loaded_plugins()
    for name, plugin in sorted(after["plugins"].items()):
        if before["plugins"].get(name) != plugin:
            added = ", ".join([*plugin["architectures"], *plugin["datasets"]]) or "nothing"
            click.echo(f"plugin {name} {plugin['version']} loads: {added}")
    failed = {name: failure for name, failure in after["failed"].items() if before["failed"].get(name) != failure}
    if failed:
        raise ConvzooError("; ".join(f"plugin {name} {failure['version']} was installed but fails to load: "
                                     f"{failure['error']}" for name, failure in sorted(failed.items())))


def _loaded_plugins() -> dict[str, dict[str, dict]]:
    """What ``convzoo plugins --json`` says in a new process (this one's plugins were loaded before pip ran), by
    distribution name."""
    listed = json.loads(subprocess.run([sys.executable, "-m", "convzoo", "plugins", "--json"], capture_output=True,
                                       text=True, check=True).stdout)
    return {kind: {entry["name"]: entry for entry in listed[kind]} for kind in ("plugins", "failed")}


@cli.command()
@click.argument("packages", nargs=-1, required=True)
def uninstall(packages: tuple[str, ...]) -> None:
    """Uninstall plugin PACKAGES with pip from the environment convzoo runs in."""
    _pip("uninstall", "--yes", *packages)


# MLflow's client retries a server that is down for about four minutes per request; convzoo's own queue retries
# without limit while training and waits a bounded time at the end, so each request gives up sooner.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


for command in (train, resume, compare, sweep, lr_find):
    cli.add_command(command)


def main() -> None:
    # the command never opens a plot window; MLflow's INFO lines (database set-up, system metrics) would bury
    # convzoo's own unless asked for (--verbose)
    for name, value in {**HTTP_DEFAULTS, "MPLBACKEND": "Agg", "MLFLOW_LOGGING_LEVEL": "WARNING"}.items():
        os.environ.setdefault(name, value)  # the user's own settings win
    cli(prog_name="convzoo")
