"""What the README and the docs site say, checked against the code they describe; the site builds strictly."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from convzoo.cli.app import cli
from convzoo.cli.reference import (BEGIN, END, HOOKS_BEGIN, HOOKS_END, generated_block, helpers_reference,
                                   hooks_block, recipes_reference)
from convzoo.testing import CHECKS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = {path.name: path.read_text() for path in (ROOT / "docs").glob("*.md")}
REGENERATE = "run: python -m convzoo.cli.reference"


def test_the_readme_is_a_couple_of_screens_and_points_to_every_reader():
    assert len(README.splitlines()) <= 200
    for page in ("training.md", "writing-plugins.md", "team-server.md", "architecture.md", "cli.md", "stability.md"):
        assert f"docs/{page}" in README, page


def test_the_docs_site_builds_strictly(tmp_path):
    """mkdocs --strict fails on a broken link, a missing anchor or a page left out of the nav."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "architecture" / "index.html").exists() and (tmp_path / "recipes" / "index.html").exists()


def test_the_command_summary_is_what_click_says():
    page = DOCS["cli.md"]
    assert page[page.index(BEGIN):page.index(END) + len(END)] == generated_block(cli), REGENERATE


def test_the_summary_shows_every_option_of_every_command():
    block = DOCS["cli.md"][DOCS["cli.md"].index(BEGIN):DOCS["cli.md"].index(END)]
    for name, command in cli.commands.items():
        for param in command.params:
            flags = [opt for opt in param.opts if opt.startswith("--") and opt != "--help"]
            if flags:
                assert flags[0] in block, f"{name} {flags[0]}"


@pytest.mark.parametrize(("page", "make"), [("helpers.md", helpers_reference), ("recipes.md", recipes_reference)])
def test_a_generated_page_is_what_the_code_says(page, make):
    assert DOCS[page] == make(), REGENERATE


def test_the_hooks_are_the_hook_specifications():
    page = DOCS["plugin-hooks.md"]
    assert page[page.index(HOOKS_BEGIN):page.index(HOOKS_END) + len(HOOKS_END)] == hooks_block(), REGENERATE
    assert re.findall(r"^### (\w+)$", page, re.M) == ["register_architectures", "register_datasets", "on_run_start",
                                                      "on_epoch_end", "on_run_end", "on_exception"]


def test_the_recipe_keys_are_listed_in_one_place():
    """Pages link to recipes.md instead of copying its keys (three copies had drifted apart)."""
    listing = re.compile(r"`epochs`, `batch_size`, `lr`, `resize`, `optimizer`")
    assert [name for name, text in {"README.md": README, **DOCS}.items() if listing.search(text)] == []
    assert "| `label_smoothing` |" in DOCS["recipes.md"] and "| `options` |" in DOCS["recipes.md"]


def test_the_conformance_checks_are_listed_once_and_all_of_them():
    table = re.findall(r"^\| `(check_\w+)` \|", DOCS["testing-plugins.md"], re.M)
    assert table == [check.__name__ for check in CHECKS]


def test_the_plugin_switches_are_described_in_one_place():
    places = [name for name, text in {"README.md": README, **DOCS}.items() if "| `CONVZOO_DISABLE_PLUGINS" in text]
    assert places == ["using-plugins.md"]


def test_the_docs_say_models_are_logged_models_and_how_to_load_them():
    for text in (README, DOCS["tracking.md"]):
        assert 'mlflow.pytorch.load_model("runs:/RUN/model")' in text
        assert 'mlflow.pyfunc.load_model("runs:/RUN/onnx-model")' in text


def test_the_helpers_reference_names_the_public_api():
    for name in ("flat_features(features: 'nn.Module', in_channels: 'int', input_size: 'int') -> 'int'",
                 "class convzoo.layers.GlobalAvgPool2d()", "class convzoo.OptionError", "class convzoo.TrainResult",
                 "convzoo.testing.summary_shapes"):
        assert name in DOCS["helpers.md"]
    assert "(helpers.md)" in DOCS["writing-plugins.md"]
