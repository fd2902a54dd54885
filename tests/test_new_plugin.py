"""`convzoo new-plugin` output is a real plugin: built, installed, self-tested, trained, exported, uninstalled."""
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from convzoo.cli import cli


def convzoo(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "convzoo", *args], capture_output=True, text=True, **kwargs)


def plugin_names():
    return {plugin["name"]: plugin for plugin in json.loads(convzoo("plugins", "--json").stdout)["plugins"]}


@pytest.fixture
def uninstall_afterwards():
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "convzoo-scaffolded"],
                   capture_output=True)


def test_a_new_plugin_goes_from_scaffold_to_tracked_verified_run(tmp_path, uninstall_afterwards):
    created = CliRunner().invoke(cli, ["new-plugin", "scaffolded", "--dir", str(tmp_path)])
    assert created.exit_code == 0, created.output
    project = tmp_path / "convzoo-scaffolded"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(project)], check=True)
    [wheel] = (tmp_path / "dist").glob("convzoo_scaffolded-0.1.0-*.whl")
    installed = convzoo("install", str(wheel))
    assert installed.returncode == 0, installed.stderr

    own_tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project / "tests")],
                               cwd=tmp_path, capture_output=True, text=True)
    assert own_tests.returncode == 0, own_tests.stdout[-2000:]
    assert "6 passed" in own_tests.stdout

    assert plugin_names()["convzoo-scaffolded"]["architectures"] == ["scaffolded"]
    assert convzoo("archs", "scaffold*").stdout.splitlines()[1].split()[:3] == ["scaffolded", "convzoo-scaffolded", "0.1.0"]

    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    trained = convzoo("train", "scaffolded", "--epochs", "1", "--limit-train-batches", "3", cwd=tmp_path, env=env)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "onnx parity passed on 10000 test images" in trained.stdout

    removed = convzoo("uninstall", "convzoo-scaffolded")
    assert removed.returncode == 0, removed.stderr
    assert "convzoo-scaffolded" not in plugin_names()


def test_new_plugin_refuses_bad_names_and_existing_folders(tmp_path):
    bad = CliRunner().invoke(cli, ["new-plugin", "My Net", "--dir", str(tmp_path)])
    assert bad.exit_code == 1 and bad.output.startswith("Error: plugin name 'My Net' is not allowed")
    (tmp_path / "convzoo-taken").mkdir()
    taken = CliRunner().invoke(cli, ["new-plugin", "taken", "--dir", str(tmp_path)])
    assert taken.exit_code == 1 and "already exists" in taken.output
