"""Batches of uint8 images resized and scaled on the training device: the seed's ``Resize`` + ``ToTensor``, batched.

Optional augmentation (the seed's flip, crop and colour changes): one random affine resample per image does the
horizontal flip and the random resized crop together, then brightness and contrast are jittered. The lighter
``flip_shift`` resamples each image flipped or not and shifted by a few pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

CROP_AREA = (0.64, 1.0)
JITTER = 0.2
SHIFT = 1 / 14  # of the image's width and height: 2 of Fashion-MNIST's 28 pixels


@dataclass(frozen=True)
class Shard:
    """Which rows of every global batch a process takes: under data-parallel training, rank ``rank`` of ``size``
    (``convzoo.training.distributed.World`` is one); ``WHOLE`` is a single process's, every row."""

    rank: int = 0
    size: int = 1

    def rows(self, count: int, rank: int | None = None) -> slice:
        """The rows of a ``count``-row global batch that ``rank`` (default: this one) trains on."""
        rank = self.rank if rank is None else rank
        base, extra = divmod(count, self.size)
        start = rank * base + min(rank, extra)
        return slice(start, start + base + (rank < extra))


WHOLE = Shard()


class BatchLoader:
    """Iterates (images, labels) on ``device``: float images in [0, 1] of ``size`` x ``size``; under several
    processes, this rank's rows of each ``batch_size`` global batch."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, size: int, device: torch.device,
                 *, shuffle: bool, augment: bool = False, flip_shift: bool = False, seed: int = 0,
                 limit_batches: int = 0,
                 channels_last: bool = False, world: Shard = WHOLE) -> None:
        # on a GPU the whole uint8 data set lives on the device, so the pipeline never waits on the host
        self.images = images.to(device) if device.type == "cuda" else images
        self.labels = labels.to(device) if device.type == "cuda" else labels
        self.batch_size, self.size, self.device = batch_size, size, device
        self.shuffle, self.augment, self.flip_shift, self.seed, self.world = shuffle, augment, flip_shift, seed, world
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        batches = math.ceil(len(images) / batch_size)
        self.num_batches = min(batches, limit_batches) if limit_batches else batches
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_batches

    def batch_rows(self, position: int) -> int:
        """Rows of global batch ``position`` (the last one may be short)."""
        return min(self.batch_size, len(self.images) - position * self.batch_size)

    def positions(self, rank: int) -> torch.Tensor:
        """Which images (in data set order) ``rank`` sees over an unshuffled epoch."""
        parts = []
        for position in range(self.num_batches):
            start, rows = position * self.batch_size, self.batch_rows(position)
            parts.append(torch.arange(start, start + rows)[self.world.rows(rows, rank)])
        return torch.cat(parts)

    def __iter__(self):
        batches = self.epoch_batches(self.epoch)
        self.epoch += 1
        return iter(batches)

    def epoch_batches(self, epoch: int, start: int = 0, rng_state: torch.Tensor | None = None) -> EpochBatches:
        """Epoch ``epoch``'s batches (counting from 0) from batch ``start``, the random state restored if given."""
        return EpochBatches(self, epoch, start, rng_state)


class EpochBatches:
    """One epoch's batches; ``position`` and ``generator`` say exactly where it is, for a checkpoint."""

    def __init__(self, loader: BatchLoader, epoch: int, start: int, rng_state: torch.Tensor | None) -> None:
        # random numbers are drawn where the images are: a host-to-GPU copy per batch would wait for the GPU each step
        where = loader.images.device
        self.loader, self.position = loader, start
        self.rows = 0  # rows of the global batch last yielded, over every rank
        self.generator = torch.Generator(device=where).manual_seed(loader.seed * 1000003 + epoch)
        count = len(loader.images)
        if loader.shuffle:
            self.order = torch.randperm(count, generator=self.generator, device=where)
        else:
            self.order = torch.arange(count, device=where)
        if rng_state is not None:
            self.generator.set_state(rng_state)

    def __iter__(self):
        loader = self.loader
        while self.position < loader.num_batches:
            start = self.position * loader.batch_size
            index = self.order[start:start + loader.batch_size]
            self.rows, mine = len(index), loader.world.rows(len(index))
            index = index[mine]
            images = loader.images[index].to(loader.device, non_blocking=True).float().div_(255)
            labels = loader.labels[index].to(loader.device, non_blocking=True)
            if loader.augment:
                images = augment(images, loader.size, self.generator, mine, self.rows)
            elif loader.flip_shift:
                images = flip_and_shift(images, loader.size, self.generator, mine, self.rows)
            else:
                images = resize(images, loader.size)
            self.position += 1
            yield images.contiguous(memory_format=loader.memory_format), labels


def model_input(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images (N x C x H x W, 0-255) as the networks take them: floats in [0, 1], resized to ``size``."""
    return resize(images.float().div(255), size)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of a batch to ``size`` x ``size`` (antialiased when shrinking)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < images.shape[-1])


def uniform_draws(generator: torch.Generator, total: int, rows: slice | None, device: torch.device):
    """``uniform(low, high)``: one number per image of a ``total``-image batch, of which these are ``rows``: each
    image gets the numbers it would get in the whole batch, whichever rank holds it."""
    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(total, generator=generator, device=device)[rows or slice(None)] * (high - low) + low

    return uniform


def resample(images: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Each image through its own affine map ``theta`` (N x 2 x 3) onto a ``size`` x ``size`` grid."""
    grid = F.affine_grid(theta, [images.shape[0], images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augment(images: torch.Tensor, size: int, generator: torch.Generator, rows: slice | None = None,
            total: int | None = None) -> torch.Tensor:
    """Random horizontal flip, random resized crop and brightness/contrast jitter, per image. ``images`` may be
    ``rows`` of a batch of ``total``."""
    n = images.shape[0]
    uniform = uniform_draws(generator, total or n, rows, images.device)
    scale = uniform(*CROP_AREA).sqrt()
    flip = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=images.device)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, 0, 2], theta[:, 1, 2] = uniform(-1, 1) * (1 - scale), uniform(-1, 1) * (1 - scale)
    out = resample(images, theta, size)
    brightness = uniform(1 - JITTER, 1 + JITTER).view(n, 1, 1, 1)
    contrast = uniform(1 - JITTER, 1 + JITTER).view(n, 1, 1, 1)
    mean = out.mean((1, 2, 3), keepdim=True)
    return ((out - mean) * contrast + mean).mul_(brightness).clamp_(0, 1)


def flip_and_shift(images: torch.Tensor, size: int, generator: torch.Generator, rows: slice | None = None,
                   total: int | None = None) -> torch.Tensor:
    """Random horizontal flip and a shift of up to ``SHIFT`` of the image each way, per image, resampled to
    ``size``. ``images`` may be ``rows`` of a batch of ``total``."""
    n = images.shape[0]
    uniform = uniform_draws(generator, total or n, rows, images.device)
    theta = torch.zeros(n, 2, 3, device=images.device)
    theta[:, 0, 0], theta[:, 1, 1] = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0), 1.0
    # affine_grid's coordinates run from -1 to 1: a shift of SHIFT of the image is 2 * SHIFT there
    theta[:, 0, 2], theta[:, 1, 2] = uniform(-2 * SHIFT, 2 * SHIFT), uniform(-2 * SHIFT, 2 * SHIFT)
    return resample(images, theta, size)
