"""The checks every architecture must pass; convzoo runs them over its whole registry, plugins over their own."""
from __future__ import annotations

import re
import warnings

import torch
import torch.nn.functional as F

from convzoo.errors import ConvzooError
from convzoo.registry import Architecture, resolve

BATCH = 2


def _images(in_channels: int, size: int, batch: int = BATCH) -> torch.Tensor:
    return torch.rand(batch, in_channels, size, size, generator=torch.Generator().manual_seed(0))


def _meta_images(in_channels: int, size: int) -> torch.Tensor:
    return torch.empty(BATCH, in_channels, size, size, device="meta")


def other_input_size(arch: Architecture) -> int:
    """A resize different from the default that the architecture accepts."""
    half = arch.input_size // 2
    return half if half >= arch.min_input_size else arch.input_size + 32


def check_forward(arch: Architecture, in_channels: int = 1, num_classes: int = 10) -> None:
    """Builds for its default input and maps a batch to finite (batch, num_classes) logits."""
    torch.manual_seed(0)
    output = arch.create(in_channels, num_classes).eval()(_images(in_channels, arch.input_size))
    assert output.shape == (BATCH, num_classes), f"{arch.name}: output shape {tuple(output.shape)}"
    assert torch.isfinite(output).all(), f"{arch.name}: non-finite output"


def check_backward(arch: Architecture, in_channels: int = 1, num_classes: int = 10) -> None:
    """A training step's backward pass reaches every parameter with finite gradients."""
    torch.manual_seed(0)
    model = arch.create(in_channels, num_classes).train()
    loss = F.cross_entropy(model(_images(in_channels, arch.input_size)), torch.arange(BATCH) % num_classes)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{arch.name}: no gradient for {name}"
        assert torch.isfinite(parameter.grad).all(), f"{arch.name}: non-finite gradient for {name}"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters()), f"{arch.name}: all gradients are zero"


def check_channels_last(arch: Architecture, in_channels: int = 1, num_classes: int = 10) -> None:
    """The channels_last memory format gives the same outputs as the default format."""
    torch.manual_seed(0)
    model = arch.create(in_channels, num_classes).eval()
    images = _images(in_channels, arch.input_size)
    with torch.no_grad():
        expected = model(images)
        actual = model.to(memory_format=torch.channels_last)(images.to(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def check_other_input_size(arch: Architecture, in_channels: int = 1, num_classes: int = 10) -> None:
    """A non-default resize builds and forwards to (batch, num_classes)."""
    size = other_input_size(arch)
    output = arch.create(in_channels, num_classes, input_size=size).eval()(_images(in_channels, size))
    assert output.shape == (BATCH, num_classes), f"{arch.name} at {size}: output shape {tuple(output.shape)}"


def check_min_input_size(arch: Architecture, in_channels: int = 1, num_classes: int = 10) -> None:
    """The declared minimum input size works, and (where it is above 1) the size below it does not."""
    with torch.device("meta"):
        model = arch.create(in_channels, num_classes, input_size=arch.min_input_size)
        assert model(_meta_images(in_channels, arch.min_input_size)).shape == (BATCH, num_classes)
        if arch.min_input_size > 1:
            too_small = arch.min_input_size - 1
            try:
                arch.check_input_size(too_small)
            except ConvzooError as error:
                assert re.search(rf"\b{arch.min_input_size}\b", str(error))
            else:
                raise AssertionError(f"{arch.name}: resize {too_small} was accepted")
            _assert_fails_at(arch, in_channels, num_classes, too_small)


def _assert_fails_at(arch: Architecture, in_channels: int, num_classes: int, size: int) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # empty layers warn before they fail
            built = resolve(arch.build)(in_channels, num_classes, input_size=size, **arch.resolve_options())
            built(_meta_images(in_channels, size))
    except (RuntimeError, ValueError):
        return
    raise AssertionError(f"{arch.name}: min_input_size {arch.min_input_size} is too high, {size} works")


def check_onnx_export(arch: Architecture, in_channels: int = 1, num_classes: int = 10) -> None:
    """Exports to ONNX with a dynamic batch and matches PyTorch in onnxruntime (rtol 1e-3, atol 1e-5)."""
    import tempfile
    from pathlib import Path

    from convzoo.export import export_onnx, onnx_runner

    torch.manual_seed(0)
    model = arch.create(in_channels, num_classes).eval()
    images = _images(in_channels, arch.input_size, batch=3)  # not the batch of 2 it was exported with
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, arch.input_size, in_channels, Path(folder) / "model.onnx")
        [actual] = onnx_runner(path)(images)
    with torch.no_grad():
        expected = model(images)
    torch.testing.assert_close(torch.from_numpy(actual), expected, rtol=1e-3, atol=1e-5)


CHECKS = (check_forward, check_backward, check_channels_last, check_other_input_size, check_min_input_size,
          check_onnx_export)


def summary_shapes(*args: str) -> list[tuple[str, tuple[int, ...]]]:
    """Run ``convzoo summary ARGS`` and return each block's name and output shape from what it printed."""
    from click.testing import CliRunner

    from convzoo.cli import cli

    result = CliRunner().invoke(cli, ["summary", *args])
    assert result.exit_code == 0, result.output
    rows = re.findall(r"^(\S+)\s+\(([\d, ]+)\)", result.output, flags=re.MULTILINE)
    return [(name, tuple(int(n) for n in shape.split(","))) for name, shape in rows]


def conformance_suite(name: str):
    """A pytest test running every check on architecture ``name``: ``test_conformance = conformance_suite("mynet")``."""
    import pytest

    from convzoo import get_architecture

    @pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
    def test_conformance(check) -> None:
        check(get_architecture(name))

    return test_conformance
