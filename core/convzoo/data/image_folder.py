"""A built-in data set (``convzoo.data.builtin`` registers it): ``folder``, a user's own images in torchvision's
``ImageFolder`` layout, ``DIR/train/<class>/*`` with optional ``DIR/val/<class>/*`` and ``DIR/test/<class>/*``.
Class names are the folder names; without ``test/`` a stratified ``test_fraction`` of the training images is the
test split. Images are decoded once into a cache (``convzoo.data.image_cache``)."""
from __future__ import annotations

import hashlib
from pathlib import Path

from convzoo.errors import ConvzooError

NAME = "folder"
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SPLITS = ("train", "val", "test")
DEFAULT_IMAGE_SIZE = 64
DEFAULT_TEST_FRACTION = 0.2
CHANNELS = (1, 3)


def register_dataset(register) -> None:
    register(name=NAME, load="convzoo.data.image_folder:load",
             description="Your own images: --data-dir DIR with DIR/train/<class>/*.png|jpg|bmp|webp (val/, test/ "
                         "optional)")


def class_folders(root: Path) -> list[str]:
    """The class names: ``root/train``'s sub-folders, sorted; each must hold an image."""
    train = root / "train"
    if not root.is_dir():
        raise ConvzooError(f"data set {NAME}: data dir {root} is not a folder; give --data-dir DIR with "
                           f"DIR/train/<class>/<image>")
    if not train.is_dir():
        raise ConvzooError(f"data set {NAME}: {root} has no train/ folder; the layout is DIR/train/<class>/<image> "
                           f"(val/ and test/ alike, optional)")
    names = sorted(child.name for child in train.iterdir() if child.is_dir())
    if not names:
        raise ConvzooError(f"data set {NAME}: {train} has no class folder; put each class's images in "
                           f"{train}/<class>/")
    return names


def images_of(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in EXTENSIONS and path.is_file())


def split_files(root: Path, split: str, classes: list[str]) -> list[tuple[Path, int]]:
    """(file, label) of one split's folder; an empty class folder, or a class that train/ lacks, is an error."""
    folder = root / split
    if not folder.is_dir():
        return []
    unknown = sorted(child.name for child in folder.iterdir() if child.is_dir() and child.name not in classes)
    if unknown:
        raise ConvzooError(f"data set {NAME}: {folder / unknown[0]} is a class train/ does not have; classes: "
                           f"{', '.join(classes)}")
    files = []
    for label, name in enumerate(classes):
        found = images_of(folder / name)
        if not found and (split == "train" or (folder / name).is_dir()):
            raise ConvzooError(f"data set {NAME}: class folder {folder / name} is empty (no "
                               f"{', '.join(EXTENSIONS)} file)")
        files += [(path, label) for path in found]
    return files


def content_key(files: list[Path], size: int, channels: str) -> str:
    """The digest of exactly these files (paths, sizes, modification times) decoded at ``size`` and ``channels``."""
    hasher = hashlib.md5(f"{size}:{channels}".encode())
    for path in files:
        stat = path.stat()
        hasher.update(f"\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return hasher.hexdigest()[:8]


def load(data_dir: str | None = None, *, image_size: int | None = None, channels: int | None = None,
         test_fraction: float | None = None, skip_bad_images: bool = False):
    """``ImageSplits`` of the images under ``data_dir``, decoded at ``image_size`` (shorter side resized, centre
    cropped) with ``channels`` (1 or 3; detected when not given: 1 if every image is greyscale)."""
    import torch

    from convzoo.data import image_cache
    from convzoo.data.splits import ImageSplits
    from convzoo.data.validation import held_out

    if not data_dir:
        raise ConvzooError(f"data set {NAME} needs --data-dir DIR, a folder with DIR/train/<class>/<image>")
    if channels is not None and channels not in CHANNELS:
        raise ConvzooError(f"channels {channels} is not allowed; choose 1 (greyscale) or 3 (colour)")
    root, size = Path(data_dir).resolve(), image_size or DEFAULT_IMAGE_SIZE
    classes = class_folders(root)
    listed = {split: split_files(root, split, classes) for split in SPLITS}
    if listed["test"] and test_fraction is not None:
        raise ConvzooError(f"test_fraction {test_fraction:g} is not used: {root} has its own test/ folder")
    if not listed["test"]:
        fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
        if not 0 < fraction < 1:
            raise ConvzooError(f"test_fraction {fraction:g} must be in (0, 1)")
        labels = torch.tensor([label for _, label in listed["train"]])
        chosen = set(held_out(labels, fraction, 0, "test", NAME, option="test_fraction").tolist())
        listed["test"] = [item for index, item in enumerate(listed["train"]) if index in chosen]
        listed["train"] = [item for index, item in enumerate(listed["train"]) if index not in chosen]
    ordered = [item for split in SPLITS for item in listed[split]]
    files = [path for path, _ in ordered]
    key = content_key(files, size, str(channels or "auto"))
    cached = image_cache.cached_images(files, f"{NAME}-{key}", size,
                                       channels or image_cache.detect_channels(files), skip_bad=skip_bad_images,
                                       label=f"{len(files)} images of {root}")
    labels = torch.tensor([ordered[index][1] for index in cached.kept], dtype=torch.int64)
    images = torch.from_numpy(cached.images)
    segments = _segments(cached.kept, [len(listed[split]) for split in SPLITS])
    part = {split: (images[a:b], labels[a:b]) for split, (a, b) in zip(SPLITS, segments)}
    return ImageSplits(name=NAME, train_images=part["train"][0], train_labels=part["train"][1],
                       test_images=part["test"][0], test_labels=part["test"][1], source=str(root), digest=key,
                       val_images=part["val"][0] if listed["val"] else None,
                       val_labels=part["val"][1] if listed["val"] else None, class_names=tuple(classes),
                       skipped=cached.skipped)


def _segments(kept: tuple[int, ...], sizes: list[int]) -> list[tuple[int, int]]:
    """Where each split's kept images lie in the cache: files were written in split order, the unreadable left
    out."""
    segments, first, row = [], 0, 0
    for size in sizes:
        count = sum(1 for index in kept if first <= index < first + size)
        segments.append((row, row + count))
        first, row = first + size, row + count
    return segments
