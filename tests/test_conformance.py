"""Every registered architecture, first- or third-party, passes the same checks."""
import dataclasses

import pytest
from click.testing import CliRunner

from convzoo import get_architecture, list_architectures
from convzoo.cli import cli
from convzoo.testing import CHECKS, check_min_input_size, check_onnx_export


# the ONNX check exports and runs onnxruntime (seconds per architecture): slow
@pytest.mark.parametrize("check", [pytest.param(check, marks=pytest.mark.slow) if check is check_onnx_export else check
                                   for check in CHECKS], ids=lambda check: check.__name__)
@pytest.mark.parametrize("name", list_architectures())
def test_architecture_conforms(name, check):
    check(get_architecture(name))


def test_the_four_seed_architectures_are_registered():
    assert {"alexnet", "vgg", "nin", "googlenet"} <= set(list_architectures())


@pytest.mark.parametrize("declared", [1, 80])
def test_a_wrong_min_input_size_fails_with_the_right_value(declared):
    wrong = dataclasses.replace(get_architecture("alexnet"), min_input_size=declared)
    with pytest.raises(AssertionError) as failure:
        check_min_input_size(wrong)
    assert str(failure.value).startswith(f"alexnet: min_input_size is {declared}, but the smallest input size that "
                                         f"works is 67; register it with min_input_size=67")


def test_summary_finds_the_smallest_input_size_and_archs_shows_the_registered_one():
    found = CliRunner().invoke(cli, ["summary", "vgg", "--min-size", "--option", "ratio=8"])
    assert found.exit_code == 0, found.output
    assert found.output.splitlines()[0] == "smallest input size that works: 32 (registered min_input_size: 32)"
    listed = CliRunner().invoke(cli, ["archs", "vgg"]).output.splitlines()
    assert listed[0].split()[:5] == ["NAME", "PLUGIN", "PARAMS", "INPUT", "MIN"] and listed[1].split()[5] == "32"
