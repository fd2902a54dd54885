"""Images decoded once into a uint8 cache file and read back through a memory map: later runs start at once, and a
data set larger than free memory still trains (its pages are the file's, not the process's)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from convzoo.errors import ConvzooError, one_line
from convzoo.progress import Progress

GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def cache_root() -> Path:
    """``CONVZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/convzoo`` (``~/.cache/convzoo``)."""
    explicit = os.environ.get("CONVZOO_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convzoo"


@dataclass(frozen=True)
class CachedImages:
    """A cache's images (N x C x S x S, a copy-on-write memory map), the files they came from (``kept``) and those
    that could not be read (``skipped``)."""

    images: np.ndarray
    kept: tuple[int, ...]
    skipped: tuple[str, ...]
    path: Path


def detect_channels(files: Sequence[Path]) -> int:
    """1 if every image is greyscale, else 3 (only the headers are read)."""
    from PIL import Image

    for file in files:
        try:
            with Image.open(file) as image:
                if image.mode not in GRAY_MODES:
                    return 3
        except Exception:
            continue  # the decoding pass names it
    return 1


def decode(file: Path, size: int, channels: int) -> np.ndarray:
    """One image as uint8 C x S x S: the centre cropped square and resized bilinearly, as a served model brings
    images to its size (``convzoo.deploy.image_classifier.to_size``, which the model carries without convzoo)."""
    from PIL import Image, ImageOps

    with Image.open(file) as image:
        image = ImageOps.fit(image.convert("L" if channels == 1 else "RGB"), (size, size),
                             Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def cached_images(files: Sequence[Path], key: str, size: int, channels: int, *, skip_bad: bool,
                  label: str) -> CachedImages:
    """The images of ``files`` from the cache named ``key``, decoding them into it first if it is not there. An
    image that cannot be read is a one-line error naming it, or with ``skip_bad`` left out and listed."""
    root = cache_root()
    data, meta = root / f"{key}.u8", root / f"{key}.json"
    if not meta.is_file():
        _fill(files, data, meta, size, channels, skip_bad, label)
    record = json.loads(meta.read_text())
    shape = (len(record["kept"]), channels, size, size)
    images = np.memmap(data, dtype=np.uint8, mode="c", shape=shape) if shape[0] else np.zeros(shape, np.uint8)
    return CachedImages(images, tuple(record["kept"]), tuple(record["skipped"]), data)


def _fill(files: Sequence[Path], data: Path, meta: Path, size: int, channels: int, skip_bad: bool,
          label: str) -> None:
    """Decode ``files`` in order into ``data``; ``meta``, written last, marks the cache complete."""
    data.parent.mkdir(parents=True, exist_ok=True)
    partial = data.with_name(f"{data.name}.part{os.getpid()}")
    kept, skipped = [], []
    progress = Progress(len(files), f"decoding {label}")
    try:
        with partial.open("wb") as out:
            for index, file in enumerate(files):
                try:
                    out.write(decode(file, size, channels).tobytes())
                    kept.append(index)
                except Exception as error:
                    if not skip_bad:
                        raise ConvzooError(f"cannot read image {file} ({one_line(error)}); fix or remove it, or "
                                           f"pass --skip-bad-images to leave it out") from None
                    skipped.append(str(file))
                progress.update()
        partial.replace(data)
        record = meta.with_name(f"{meta.name}.part{os.getpid()}")
        record.write_text(json.dumps({"kept": kept, "skipped": skipped, "size": size, "channels": channels}))
        record.replace(meta)
    finally:
        progress.close()
        partial.unlink(missing_ok=True)
