"""Data sets held in memory as uint8 tensors, the form every dataset plugin's ``load`` returns."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable


class ImageRows:
    """Rows ``index`` of ``images`` without copying them: a split carved out of a memory-mapped data set stays in the
    file's pages, and only the batches read from it are copied. Indexed, it gives a tensor as ``images`` would."""

    def __init__(self, images: Any, index: Any) -> None:
        self.images, self.index = images, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: Any) -> Any:
        return self.images[self.index[key]]

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.images.shape[1:])

    @property
    def device(self) -> Any:
        return self.images.device

    def to(self, device: Any) -> Any:
        """The rows as one tensor on ``device``."""
        return self.images[self.index].to(device)


@dataclass
class ImageSplits:
    """Train and test images (uint8, N x C x H x W) with int64 labels, and where they came from. A data set may
    bring its own validation images (``val_images``, ``val_labels``); otherwise a run with ``val_fraction`` carves
    them out of the training images (``convzoo.data.validation``). ``class_names``: the classes as the data names
    them (the ``folder`` data set's folder names; empty: the registered ones); ``skipped``: files left out as
    unreadable."""

    name: str
    train_images: Any
    train_labels: Any
    test_images: Any
    test_labels: Any
    source: str
    digest: str
    val_images: Any = None
    val_labels: Any = None
    val_digest: str | None = None
    train_digest: str | None = None  # of the training images left once a validation split is carved out
    class_names: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    @property
    def has_validation(self) -> bool:
        return self.val_images is not None

    def parts(self) -> dict[str, tuple[Any, Any]]:
        """(images, labels) of each split it has: train, val, test."""
        parts = {"train": (self.train_images, self.train_labels), "test": (self.test_images, self.test_labels)}
        if self.has_validation:
            parts["val"] = (self.val_images, self.val_labels)
        return parts

    @staticmethod
    def digest_of(checksums: Iterable[str]) -> str:
        """A short digest naming this exact content, for MLflow's dataset input."""
        return hashlib.md5("".join(checksums).encode()).hexdigest()[:8]
