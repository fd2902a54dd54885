"""The checks every architecture must pass; convzoo runs them over its whole registry, plugins over their own."""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from convzoo.errors import ConvzooError
from convzoo.registry.catalogue import Architecture, Dataset
from convzoo.registry.summary import smallest_input_size, summarize

__all__ = ["CHECKS", "check_dataset", "conformance_suite", "dataset_conformance_suite", "summary_shapes"]

BATCH = 2


def _images(in_channels: int, size: int, batch: int = BATCH) -> torch.Tensor:
    return torch.rand(batch, in_channels, size, size, generator=torch.Generator().manual_seed(0))


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
    """The declared minimum input size is the smallest that builds and runs, and convzoo refuses the size below it."""
    smallest = smallest_input_size(arch, in_channels, num_classes)
    assert smallest == arch.min_input_size, (
        f"{arch.name}: min_input_size is {arch.min_input_size}, but the smallest input size that works is {smallest}; "
        f"register it with min_input_size={smallest}")
    if arch.min_input_size > 1:
        too_small = arch.min_input_size - 1
        try:
            arch.check_input_size(too_small)
        except ConvzooError as error:
            assert re.search(rf"\b{arch.min_input_size}\b", str(error))
        else:
            raise AssertionError(f"{arch.name}: resize {too_small} was accepted")


def check_onnx_export(arch: Architecture, in_channels: int = 1, num_classes: int = 10) -> None:
    """Exports to ONNX behind convzoo's input pipeline, with a dynamic batch, and matches PyTorch in onnxruntime
    (rtol 1e-3, atol 1e-5) on raw uint8 images."""
    import tempfile
    from pathlib import Path

    from convzoo.deploy.export import export_onnx, onnx_runner, torch_runner

    torch.manual_seed(0)
    model = arch.create(in_channels, num_classes).eval()
    image_shape = (in_channels, arch.input_size, arch.input_size)
    images = (_images(in_channels, arch.input_size, batch=3) * 255).to(torch.uint8)  # not the batch it was exported with
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, arch.input_size, image_shape, Path(folder) / "model.onnx")
        [actual] = onnx_runner(path)(images)
    expected = torch_runner(model, arch.input_size)(images)
    torch.testing.assert_close(torch.from_numpy(actual), expected, rtol=1e-3, atol=1e-5)


CHECKS = (check_forward, check_backward, check_channels_last, check_other_input_size, check_min_input_size,
          check_onnx_export)


def check_dataset(dataset: Dataset, data_dir: str | None = None) -> None:
    """What training needs from a dataset plugin's ``load``: uint8 ``N x C x H x W`` images with the registered
    ``in_channels`` (or as many as the data says, for a data set that reads them from it), one int64 label per image in ``[0, num_classes)``, a class name per class, no image in both
    train and test, and the same content on every call (same ``digest``)."""
    import hashlib

    splits = dataset.load_splits(data_dir)
    dataset = dataset.loaded(splits)
    assert len(dataset.class_names) == dataset.num_classes, (
        f"{dataset.name}: {len(dataset.class_names)} class_names for {dataset.num_classes} classes")
    for split in ("train", "test"):
        images, labels = getattr(splits, f"{split}_images"), getattr(splits, f"{split}_labels")
        assert images.dtype == torch.uint8 and images.ndim == 4 and images.shape[1] == dataset.in_channels, (
            f"{dataset.name}: {split}_images must be uint8 N x {dataset.in_channels} x H x W, got {images.dtype} "
            f"{tuple(images.shape)}")
        assert labels.dtype == torch.int64 and tuple(labels.shape) == (len(images),), (
            f"{dataset.name}: {split}_labels must be int64 with one label per image, got {labels.dtype} "
            f"{tuple(labels.shape)}")
        assert 0 <= labels.min() and labels.max() < dataset.num_classes, (
            f"{dataset.name}: {split}_labels must be in [0, {dataset.num_classes}), got {labels.min().item()} to "
            f"{labels.max().item()}")

    def fingerprints(images: torch.Tensor) -> set[bytes]:
        return {hashlib.blake2b(image.numpy().tobytes(), digest_size=16).digest() for image in images}

    shared = len(fingerprints(splits.train_images) & fingerprints(splits.test_images))
    assert not shared, f"{dataset.name}: {shared} image(s) are in both train and test"
    again = dataset.load_splits(data_dir)
    assert again.digest == splits.digest and torch.equal(again.test_images, splits.test_images) and torch.equal(
        again.train_labels, splits.train_labels), f"{dataset.name}: load gives other content on a second call"


def summary_shapes(name: str, resize: int | None = None, dataset: str = "fashion-mnist",
                   **options) -> list[tuple[str, tuple[int, ...]]]:
    """Each top-level block's name and output shape for one image, as ``convzoo summary`` prints them."""
    from convzoo.registry.plugins import get_registry

    registry = get_registry()
    arch, data = registry.get_architecture(name), registry.get_dataset(dataset)
    size = resize or arch.input_size
    model = arch.create(data.in_channels, data.num_classes, input_size=size, **options)
    return [(block.name, block.output_shape) for block in summarize(model, data.in_channels, size)]


def conformance_suite(name: str):
    """A pytest test running every check on architecture ``name``: ``test_conformance = conformance_suite("mynet")``."""
    import pytest

    from convzoo import get_architecture

    @pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
    def test_conformance(check) -> None:
        check(get_architecture(name))

    return test_conformance


def dataset_conformance_suite(name: str):
    """A pytest test running ``check_dataset`` on dataset ``name``:
    ``test_dataset = dataset_conformance_suite("x")``."""
    from convzoo.registry.plugins import get_registry

    def test_dataset() -> None:
        check_dataset(get_registry().get_dataset(name))

    return test_dataset
