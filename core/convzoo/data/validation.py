"""The validation split: a stratified hold-out carved from the training images, a pure function of the run's seed
and the data set's digest, so every rank, every resume, every trial and every machine holds out the same images."""
from __future__ import annotations

import dataclasses
import hashlib

import torch

from convzoo.data.splits import ImageRows, ImageSplits
from convzoo.errors import ConvzooError


def split_seed(seed: int, digest: str) -> int:
    """The generator seed of the split: the same for the same run seed and the same data."""
    return int.from_bytes(hashlib.sha256(f"{digest}:{seed}".encode()).digest()[:8], "little") & (2**63 - 1)


def held_out(labels: torch.Tensor, fraction: float, seed: int, digest: str, dataset: str,
             option: str = "val_fraction") -> torch.Tensor:
    """Sorted indices of the held-out images: ``round(fraction * n)`` of each class's ``n``, drawn at random. A
    class left with none held out, or none left, is a one-line error naming ``option``."""
    generator = torch.Generator().manual_seed(split_seed(seed, digest))
    chosen = []
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        count = round(fraction * len(members))
        if count == 0:
            raise ConvzooError(f"{option} {fraction:g} leaves class {label} of {dataset} ({len(members)} "
                               f"training image(s)) with no {'validation' if option == 'val_fraction' else 'test'} image; use a "
                               f"larger fraction{', or 0 for no split' if option == 'val_fraction' else ''}")
        if count == len(members):
            raise ConvzooError(f"{option} {fraction:g} leaves class {label} of {dataset} ({len(members)} "
                               f"training image(s)) with no training image; use a smaller fraction")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(chosen).sort().values


def index_digest(indices: torch.Tensor, digest: str) -> str:
    """A short digest of exactly which images of the data set ``digest`` names."""
    return hashlib.md5(digest.encode() + indices.to(torch.int64).numpy().tobytes()).hexdigest()[:8]


def with_validation(splits: ImageSplits, fraction: float, seed: int) -> ImageSplits:
    """``splits`` with validation images: its own if the data set brought them, else ``fraction`` of the training
    images held out (stratified; both parts are views of the training images, never copies); unchanged when
    ``fraction`` is 0."""
    if not fraction:
        return dataclasses.replace(splits, val_images=None, val_labels=None, val_digest=None, train_digest=None)
    if splits.has_validation:
        return dataclasses.replace(splits, val_digest=splits.val_digest or f"{splits.digest}-val",
                                   train_digest=splits.train_digest or splits.digest)
    validation = held_out(splits.train_labels, fraction, seed, splits.digest, splits.name)
    keep = torch.ones(len(splits.train_labels), dtype=torch.bool)
    keep[validation] = False
    training = torch.nonzero(keep).flatten()
    return dataclasses.replace(
        splits, train_images=ImageRows(splits.train_images, training), train_labels=splits.train_labels[training],
        val_images=ImageRows(splits.train_images, validation), val_labels=splits.train_labels[validation],
        val_digest=index_digest(validation, splits.digest), train_digest=index_digest(training, splits.digest))
