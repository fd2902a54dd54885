"""A built-in data set (``convzoo.data.builtin`` registers it): the real Fashion-MNIST, from a local copy or its
official mirror, checksum-verified."""
from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from convzoo.errors import ConvzooError

NAME = "fashion-mnist"
CLASS_NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
# MD5 of each file's decompressed content (Debian recompresses the archives, the content is the original)
FILES = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def register_dataset(register) -> None:
    register(
        name=NAME,
        load="convzoo.data.fashion_mnist:load",
        description="Zalando's Fashion-MNIST: 60,000 train / 10,000 test 28x28 greyscale clothing images",
        in_channels=1,
        num_classes=10,
        class_names=CLASS_NAMES,
    )


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "convzoo" / NAME


def _file_in(directory: Path, name: str) -> Path | None:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _complete(directory: Path) -> dict[str, Path] | None:
    found = {name: _file_in(directory, name) for name in FILES}
    return found if all(found.values()) else None


def _download(directory: Path, mirror: str) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        target = directory / f"{name}.gz"
        if target.is_file():
            continue
        partial = target.with_suffix(".gz.part")
        try:
            with urllib.request.urlopen(f"{mirror}{name}.gz", timeout=30) as response:
                partial.write_bytes(response.read())
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise ConvzooError(
                f"Fashion-MNIST is not on this machine and the download from {mirror} failed ({error}); "
                f"install the Debian package dataset-fashion-mnist or point CONVZOO_DATA_DIR at the four IDX files"
            ) from None
        partial.replace(target)
    return _complete(directory)


def locate(data_dir: str | Path | None = None, mirror: str = MIRROR) -> dict[str, Path]:
    """The four files: from ``data_dir``/``CONVZOO_DATA_DIR``, else Debian's package, else the cache, else download."""
    explicit = data_dir or os.environ.get("CONVZOO_DATA_DIR")
    if explicit:
        found = _complete(Path(explicit))
        if not found:
            missing = [name for name in FILES if not _file_in(Path(explicit), name)]
            raise ConvzooError(f"data directory {explicit} lacks Fashion-MNIST file(s): {', '.join(missing)}")
        return found
    for directory in (DEBIAN_DIR, cache_dir()):
        found = _complete(directory)
        if found:
            return found
    return _download(cache_dir(), mirror)


def load(data_dir: str | Path | None = None):
    """The verified data set as ``ImageSplits`` of uint8 images (N, 1, 28, 28) and int64 labels."""
    from convzoo.data.splits import ImageSplits
    from convzoo.data.idx import decode, read_verified

    paths = locate(data_dir)
    arrays = {name: decode(read_verified(path, FILES[name]), path.name) for name, path in paths.items()}
    return ImageSplits(
        name=NAME,
        train_images=arrays["train-images-idx3-ubyte"].unsqueeze(1),
        train_labels=arrays["train-labels-idx1-ubyte"].long(),
        test_images=arrays["t10k-images-idx3-ubyte"].unsqueeze(1),
        test_labels=arrays["t10k-labels-idx1-ubyte"].long(),
        source=str(paths["train-images-idx3-ubyte"].parent),
        digest=ImageSplits.digest_of(FILES.values()),
    )
