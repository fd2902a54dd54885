"""Evaluating a model on a loader's images: per image its predicted class, that class's probability and its loss,
in data set order over every rank (what accuracy, the validation loss and the saved test predictions come from)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.data.pipeline import BatchLoader
from convzoo.training.distributed import World


@dataclass(frozen=True)
class Evaluation:
    """One pass over a loader: per image (in data set order), the predicted class, its softmax probability, and the
    cross-entropy loss; on the CPU."""

    predicted: torch.Tensor
    confidence: torch.Tensor
    loss: torch.Tensor
    labels: torch.Tensor

    @property
    def accuracy(self) -> float:
        return (self.predicted == self.labels).float().mean().item()

    @property
    def mean_loss(self) -> float:
        return self.loss.double().mean().item()


def evaluate(model: nn.Module, loader: BatchLoader, world: World, autocast, on_batch: Callable[[], None]) -> Evaluation:
    """Run ``model`` (eval mode, no gradients, under ``autocast``) over ``loader``; ``on_batch`` after each batch."""
    model.eval()
    predicted, confidence, losses = [], [], []
    with torch.no_grad(), autocast:
        for images, labels in loader:
            logits = model(images).float()
            probabilities = logits.softmax(dim=1)
            best = probabilities.max(dim=1)
            predicted.append(best.indices)
            confidence.append(best.values)
            losses.append(F.cross_entropy(logits, labels, reduction="none"))
            on_batch()
    model.train()
    parts = [in_loader_order(torch.cat(values), loader, world) for values in (predicted, confidence, losses)]
    labels = loader.labels[: len(parts[0])]
    return Evaluation(*(part.cpu() for part in parts), labels.cpu())


def in_loader_order(values: torch.Tensor, loader: BatchLoader, world: World) -> torch.Tensor:
    """Every rank's per-image ``values``, put back in the order one process would have made them."""
    if not world.distributed:
        return values
    positions = [loader.positions(rank) for rank in range(world.size)]
    parts = world.gather(values, [len(p) for p in positions])
    merged = torch.empty(sum(len(p) for p in positions), dtype=values.dtype, device=parts[0].device)
    for where, part in zip(positions, parts):
        merged[where.to(merged.device)] = part
    return merged
