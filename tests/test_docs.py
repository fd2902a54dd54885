"""What the README and docs/ say, checked against the code they describe."""
import re
from pathlib import Path

from convzoo.cli.app import cli
from convzoo.cli.reference import BEGIN, END, generated_block, helpers_reference
from convzoo.testing import CHECKS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = {path.name: path.read_text() for path in (ROOT / "docs").glob("*.md")}


def test_the_readme_command_summary_is_what_click_says():
    block = README[README.index(BEGIN):README.index(END) + len(END)]
    assert block == generated_block(cli), "run: python -m convzoo.cli.reference README.md"


def test_the_summary_shows_every_option_of_every_command():
    block = README[README.index(BEGIN):README.index(END)]
    for name, command in cli.commands.items():
        for param in command.params:
            flags = [opt for opt in param.opts if opt.startswith("--") and opt != "--help"]
            if flags:
                assert flags[0] in block, f"{name} {flags[0]}"


def test_the_conformance_checks_are_listed_once_and_all_of_them():
    table = re.findall(r"^\| `(check_\w+)` \|", DOCS["testing-plugins.md"], re.M)
    assert table == [check.__name__ for check in CHECKS]
    assert "testing-plugins.md" in README


def test_the_plugin_switches_are_described_in_one_place():
    places = [name for name, text in {"README.md": README, **DOCS}.items() if "| `CONVZOO_DISABLE_PLUGINS" in text]
    assert places == ["using-plugins.md"]


def test_the_readme_says_models_are_logged_models_and_how_to_load_them():
    assert 'mlflow.pytorch.load_model("runs:/RUN/model")' in README
    assert 'mlflow.pyfunc.load_model("runs:/RUN/onnx-model")' in README


def test_the_helpers_reference_is_what_the_code_says():
    assert DOCS["helpers.md"] == helpers_reference(), "run: python -m convzoo.cli.reference README.md docs/helpers.md"
    for name in ("flat_features(features: 'nn.Module', in_channels: 'int', input_size: 'int') -> 'int'",
                 "class convzoo.layers.GlobalAvgPool2d()", "class convzoo.OptionError"):
        assert name in DOCS["helpers.md"]
    assert "(helpers.md)" in DOCS["writing-plugins.md"]
