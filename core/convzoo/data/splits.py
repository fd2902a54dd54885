"""Data sets held in memory as uint8 tensors, the form every dataset plugin's ``load`` returns."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable


@dataclass
class ImageSplits:
    """Train and test images (uint8, N x C x H x W) with int64 labels, and where they came from."""

    name: str
    train_images: Any
    train_labels: Any
    test_images: Any
    test_labels: Any
    source: str
    digest: str

    @staticmethod
    def digest_of(checksums: Iterable[str]) -> str:
        """A short digest naming this exact content, for MLflow's dataset input."""
        return hashlib.md5("".join(checksums).encode()).hexdigest()[:8]
