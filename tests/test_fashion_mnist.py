"""The built-in Fashion-MNIST plugin on the real files (Debian's dataset-fashion-mnist)."""
import gzip
import shutil

import pytest
import torch

from convzoo.data import fashion_mnist
from convzoo.errors import ConvzooError
from convzoo.registry.plugins import get_registry


@pytest.fixture(scope="module")
def splits():
    return fashion_mnist.load()


def test_real_data_shapes_and_labels(splits):
    assert splits.train_images.shape == (60000, 1, 28, 28) and splits.train_images.dtype == torch.uint8
    assert splits.test_images.shape == (10000, 1, 28, 28)
    assert splits.train_labels.dtype == torch.int64
    assert torch.bincount(splits.train_labels).tolist() == [6000] * 10
    assert torch.bincount(splits.test_labels).tolist() == [1000] * 10
    assert int(splits.train_images.max()) == 255 and int(splits.train_images.min()) == 0


def test_dataset_declares_its_shape_and_class_names():
    dataset = get_registry().get_dataset("fashion-mnist")
    assert (dataset.in_channels, dataset.num_classes) == (1, 10)
    assert dataset.class_names[0] == "t-shirt" and dataset.class_names[9] == "ankle boot"


def _copy(tmp_path):
    found = fashion_mnist.locate()
    for path in found.values():
        shutil.copy(path, tmp_path / path.name)
    return {name: tmp_path / path.name for name, path in found.items()}


def test_explicit_data_dir_with_raw_files(tmp_path):
    for name, path in _copy(tmp_path).items():
        if path.suffix == ".gz":
            (tmp_path / name).write_bytes(gzip.decompress(path.read_bytes()))
            path.unlink()
    assert fashion_mnist.load(tmp_path).test_labels[:5].tolist() == [9, 2, 1, 1, 6]


def test_a_corrupted_file_fails_its_checksum_naming_the_file(tmp_path):
    path = _copy(tmp_path)["t10k-labels-idx1-ubyte"]
    content = bytearray(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes())
    content[100] = (content[100] + 1) % 10
    path.write_bytes(gzip.compress(bytes(content)) if path.suffix == ".gz" else bytes(content))
    with pytest.raises(ConvzooError, match=rf"{path.name} fails its checksum"):
        fashion_mnist.load(tmp_path)


def test_a_truncated_archive_is_an_error_naming_the_file(tmp_path):
    path = _copy(tmp_path)["train-images-idx3-ubyte"]
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ConvzooError, match=rf"{path.name} (is corrupt or truncated|fails its checksum)"):
        fashion_mnist.load(tmp_path)


def test_an_incomplete_data_dir_lists_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVZOO_DATA_DIR", str(tmp_path))
    with pytest.raises(ConvzooError, match=f"data directory {tmp_path} lacks Fashion-MNIST file"):
        fashion_mnist.load()


def test_without_local_copies_a_failed_download_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian-package")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(ConvzooError, match="install the Debian package dataset-fashion-mnist or point CONVZOO_DATA_DIR"):
        fashion_mnist.locate(mirror="http://127.0.0.1:9/")
    assert not list((tmp_path / "cache").rglob("*.part"))
