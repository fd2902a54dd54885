"""The ``convzoo`` command: help, speed-critical imports, errors, and real pip installs of plugins."""
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from helpers import convzoo_in, plugin_names

from convzoo.cli.app import cli

NO_TORCH = """
import sys
from convzoo.cli.app import cli
try:
    cli(sys.argv[1:], prog_name="convzoo")
except SystemExit:
    pass
print("TORCH-IMPORTED" if "torch" in sys.modules else "NO-TORCH")
"""


@pytest.mark.parametrize("command", [[]] + [[name] for name in sorted(cli.commands)])
def test_every_command_has_help(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Usage: " in result.output


@pytest.mark.parametrize("args", [["--help"], ["plugins"], ["plugins", "--json"]])
def test_help_and_plugin_listing_do_not_import_torch(args):
    result = subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "NO-TORCH", result.stderr


def test_archs_lists_the_seed_architectures_with_params_and_recipes():
    result = CliRunner().invoke(cli, ["archs"])
    rows = {line.split()[0]: re.split(r"\s{2,}", line) for line in result.output.splitlines()[1:]}
    assert rows["alexnet"][1:7] == ["convzoo-alexnet 0.1.0", "29,983,434", "224", "67", "seed, quick, fast, best",
                                    "hidden_layers=1"]
    assert rows["googlenet"][2:4] == ["5,977,530", "96"]


def test_archs_filters_by_pattern():
    result = CliRunner().invoke(cli, ["archs", "*net"])
    assert [line.split()[0] for line in result.output.splitlines()[1:]] == ["alexnet", "googlenet"]


@pytest.mark.parametrize("args, message", [
    (["summary", "alexnt"], "Error: unknown architecture 'alexnt' (did you mean 'alexnet'?); available: "),
    (["summary", "alexnet", "--resize", "64"], "Error: resize 64 is too small for alexnet: it needs at least 67"),
    (["summary", "vgg", "--option", "ratio=eight"], "Error: option ratio='eight' is not a valid int"),
    (["summary", "vgg", "--option", "depth=3"], "Error: unknown option 'depth' for vgg; allowed: ratio"),
    (["summary", "vgg", "--option", "ratio"], "Error: option 'ratio' is not of the form key=value"),
    (["summary", "vgg", "--option", "ratio=128"], "Error: vgg option ratio=128 is not allowed; use an integer from 1 to 64"),
    (["summary", "vgg", "--dataset", "cifar"], "Error: unknown dataset 'cifar'; available: fashion-mnist"),
])
def test_bad_input_is_a_one_line_error(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.output.startswith(message) and result.output.count("\n") == 1


def test_summary_reports_options_and_totals():
    result = CliRunner().invoke(cli, ["summary", "vgg", "--option", "ratio=8"])
    assert result.output.splitlines()[0] == "vgg (convzoo-vgg 0.1.0) input 1x1x224x224 options: ratio=8"
    assert result.output.splitlines()[-1] == "total params: 2,018,346"


@pytest.mark.slow
def test_install_and_uninstall_a_plugin_wheel(plugin_wheels, private_environment):
    installed = convzoo_in(private_environment, "install", str(plugin_wheels["convzoo-tinynet"]))
    assert installed.returncode == 0, installed.stderr
    assert ("plugin convzoo-tinynet 0.1.0 loads: tinynet, exploding, unexportable, blank-squares\n"
            in installed.stdout)  # checked in a new process, after pip
    assert "convzoo-tinynet" in plugin_names(private_environment)
    broken = convzoo_in(private_environment, "install", str(plugin_wheels["convzoo-broken"]))
    assert broken.returncode == 1
    assert broken.stderr.splitlines()[-1] == ("Error: plugin convzoo-broken 0.1.0 was installed but fails to load: "
                                              "ImportError: boom: this plugin is broken on purpose")
    removed = convzoo_in(private_environment, "uninstall", "convzoo-tinynet")
    assert removed.returncode == 0, removed.stderr
    assert "convzoo-tinynet" not in plugin_names(private_environment)


def test_install_passes_pip_failures_on():
    result = subprocess.run([sys.executable, "-m", "convzoo", "install", "/nonexistent/convzoo_nothing.whl"],
                            capture_output=True, text=True)
    assert result.returncode != 0


def test_every_recipe_field_is_a_training_option_and_the_choices_come_from_one_place():
    from dataclasses import fields

    from convzoo.config import DEVICES, PRECISIONS
    from convzoo.recipes import Recipe

    shown = CliRunner().invoke(cli, ["train", "--help"], terminal_width=200).output
    for field in fields(Recipe):
        if field.name != "options":
            assert f"--{field.name.replace('_', '-')}" in shown and field.metadata["help"].split("(")[0] in shown
    assert f"{', '.join(DEVICES)}." in shown and ", ".join(PRECISIONS) in shown


@pytest.mark.parametrize("command, reason", [
    (["export"], "was not made by convzoo train (it has no resize/dataset params)"),
    (["predict", "x.png"], "has no logged model 'onnx-model'"),
    (["serve"], "has no logged model 'onnx-model'"),
])
def test_a_run_convzoo_did_not_train_cannot_be_exported_predicted_or_served(command, reason, tracking_store):
    import mlflow

    with mlflow.start_run() as run:
        mlflow.set_tag("parity", "passed")  # even a run that claims a verified model needs convzoo's params or model
    name, *images = command
    target = [run.info.run_id] if name == "serve" else ["--run-id", run.info.run_id]
    result = CliRunner().invoke(cli, [name, *target, *images])
    assert result.exit_code == 1
    assert result.output == f"Error: run {run.info.run_id} {reason}\n"
    assert mlflow.get_run(run.info.run_id).info.status == "FINISHED"
