"""Third-party plugins end to end: `convzoo new-plugin` output (an architecture, and a data set) and the example ResNet
plugin are built as wheels, pip-installed, pass their own tests, show up, train through `convzoo train` with ONNX
parity, and uninstall cleanly."""
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import convzoo_in, plugin_names

from convzoo.cli.app import cli

ROOT = Path(__file__).resolve().parents[1]


def scaffolded(folder: Path, name: str = "scaffolded", kind: str = "architecture") -> Path:
    created = CliRunner().invoke(cli, ["new-plugin", name, "--dir", str(folder), "--kind", kind])
    assert created.exit_code == 0, created.output
    return folder / f"convzoo-{name}"


def scaffolded_dataset(folder: Path) -> Path:
    return scaffolded(folder, "stripes", "dataset")


def example_resnet(folder: Path) -> Path:
    return Path(shutil.copytree(ROOT / "examples" / "convzoo-resnet", folder / "convzoo-resnet"))


FASHION_MNIST_TEST_IMAGES, STRIPES_TEST_IMAGES = 10000, 500


@pytest.mark.parametrize("make, dist, kind, name, listing, own_tests, train_args, test_images", [
    (scaffolded, "convzoo-scaffolded", "architectures", "scaffolded", "archs", 6, ["scaffolded"],
     FASHION_MNIST_TEST_IMAGES),
    (example_resnet, "convzoo-resnet", "architectures", "resnet", "archs", 7, ["resnet"], FASHION_MNIST_TEST_IMAGES),
    (scaffolded_dataset, "convzoo-stripes", "datasets", "stripes", "datasets", 1,
     ["vgg", "--option", "ratio=8", "--dataset", "stripes"], STRIPES_TEST_IMAGES),
])
def test_plugin_lifecycle(make, dist, kind, name, listing, own_tests, train_args, test_images, tmp_path,
                          private_environment):
    convzoo = functools.partial(convzoo_in, private_environment)
    project = make(tmp_path)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(project)], check=True)
    [wheel] = (tmp_path / "dist").glob(f"{dist.replace('-', '_')}-0.1.0-*.whl")
    installed = convzoo("install", str(wheel))
    assert installed.returncode == 0, installed.stderr
    assert dist not in plugin_names(Path(sys.executable))  # installed there, not into the suite's

    tests = subprocess.run([str(private_environment), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(project / "tests")], cwd=tmp_path, capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout[-2000:]
    assert f"{own_tests} passed" in tests.stdout

    assert plugin_names(private_environment)[dist][kind] == [name]
    assert [name, dist, "0.1.0"] in [line.split()[:3] for line in convzoo(listing).stdout.splitlines()]

    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    trained = convzoo("train", *train_args, "--recipe", "quick", "--epochs", "1", "--resize", "32",
                      "--limit-train-batches", "3", "--limit-eval-batches", "2", cwd=tmp_path, env=env)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert f"onnx parity passed on {test_images} raw test images" in trained.stdout

    removed = convzoo("uninstall", dist)
    assert removed.returncode == 0, removed.stderr
    assert dist not in plugin_names(private_environment)


def test_new_plugin_refuses_bad_names_and_existing_folders(tmp_path):
    bad = CliRunner().invoke(cli, ["new-plugin", "My Net", "--dir", str(tmp_path)])
    assert bad.exit_code == 1 and bad.output.startswith("Error: plugin name 'My Net' is not allowed")
    (tmp_path / "convzoo-taken").mkdir()
    taken = CliRunner().invoke(cli, ["new-plugin", "taken", "--dir", str(tmp_path)])
    assert taken.exit_code == 1 and "already exists" in taken.output
    kind = CliRunner().invoke(cli, ["new-plugin", "other", "--dir", str(tmp_path), "--kind", "optimizer"])
    assert kind.exit_code == 2 and "'optimizer' is not one of 'architecture', 'dataset'" in kind.output
    assert not (tmp_path / "convzoo-other").exists()
