"""Every registered architecture, first- or third-party, passes the same checks."""
import dataclasses

import pytest
from click.testing import CliRunner

from convzoo import get_architecture, list_architectures
from convzoo.cli.app import cli
from convzoo.registry.plugins import get_registry
from convzoo.testing import CHECKS, check_dataset, check_min_input_size, check_onnx_export


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


def test_flops_per_example_count_forward_and_backward_without_touching_the_random_state():
    import torch
    from torch import nn

    from convzoo.registry.catalogue import Architecture
    from convzoo.registry.summary import flops_per_example

    def build(in_channels, num_classes, *, input_size):
        return nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.Flatten(),
                             nn.Linear(4 * input_size * input_size, num_classes))

    # by hand, per 8x8 image: the convolution 4*8*8 outputs x 9 multiply-adds = 4,608 FLOPs forward and as many for its
    # weights' gradient (the input needs none); the linear layer 256 x 10 = 5,120 forward, input and weight gradients
    torch.manual_seed(0)
    expected_random = torch.rand(3)
    torch.manual_seed(0)
    counted = flops_per_example(Architecture("hand", build, "by hand", input_size=8), 1, 10, 8)
    assert counted == 2 * 4608 + 3 * 5120
    assert torch.equal(torch.rand(3), expected_random)
    # the notebook's AlexNet at 224 px: the 5.46 GFLOP issue 14 measured independently
    assert flops_per_example(get_architecture("alexnet"), 1, 10, 224) == pytest.approx(5.46e9, rel=1e-3)


@pytest.mark.parametrize("name", get_registry().datasets.names(exclude="folder"))  # test_image_folder: its own
def test_dataset_conforms(name):
    check_dataset(get_registry().get_dataset(name))


def test_the_dataset_check_finds_what_training_would_trip_over(load_with):
    _, registry = load_with("convzoo-tinynet")  # blank-squares: the same eight blank images in train and test
    with pytest.raises(AssertionError, match=r"^blank-squares: 1 image\(s\) are in both train and test$"):
        check_dataset(registry.get_dataset("blank-squares"))
    bad = dataclasses.replace(registry.get_dataset("blank-squares"), num_classes=3)
    with pytest.raises(AssertionError, match=r"^blank-squares: 2 class_names for 3 classes$"):
        check_dataset(bad)


def test_datasets_lists_every_registered_data_set(run_convzoo):
    listed = run_convzoo("datasets", with_plugins=("convzoo-tinynet",))
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows["fashion-mnist"][1:5] == ["convzoo", "0.1.0", "1", "10"]
    assert rows["blank-squares"][1:5] == ["convzoo-tinynet", "0.1.0", "1", "2"]


def test_the_documented_dataset_plugin_example_passes_the_dataset_check():
    from pathlib import Path

    from convzoo.registry.catalogue import Dataset

    text = (Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md").read_text()
    example = text[text.index("## A dataset plugin"):].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(example, "writing-plugins.md", "exec"), namespace)
    registered = []
    namespace["register_datasets"](register=lambda **fields: registered.append(Dataset(**fields)))
    [digits] = registered
    check_dataset(digits)
    assert (digits.name, digits.num_classes) == ("digits", 10)
