"""The training loop: ``train_ch5``'s per-epoch loss, train and test accuracy, and time, done efficiently.

Loss and accuracy are summed on the device and read once per epoch (and when the progress bar redraws), so the loop
never waits for the device on every step.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.pipeline import BatchLoader
from convzoo.progress import Progress
from convzoo.recipes import Recipe


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    train_loss: float
    train_acc: float
    test_acc: float
    epoch_time: float
    examples_per_sec: float
    lr: float
    train_steps: int

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in self.__dict__.items() if k != "epoch"}


def autocast(device: torch.device, precision: str):
    """bf16 autocast for ``precision == "bf16"``, nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(model: nn.Module, hyper: Recipe) -> torch.optim.Optimizer:
    """Adam or SGD with momentum, fused: one kernel updates every parameter (on a CPU about 10x faster than the
    per-parameter loop, which costs AlexNet a third of its step)."""
    if hyper.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=hyper.lr, momentum=hyper.momentum,
                               weight_decay=hyper.weight_decay, fused=True)
    return torch.optim.Adam(model.parameters(), lr=hyper.lr, weight_decay=hyper.weight_decay, fused=True)


def make_scheduler(optimizer: torch.optim.Optimizer, hyper: Recipe, steps: int):
    """Per-step cosine decay to zero over the run, or a constant rate."""
    if hyper.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    return None


def evaluate(model: nn.Module, loader: BatchLoader, precision: str) -> tuple[float, torch.Tensor]:
    """Test accuracy and the predicted class of every evaluated image (in loader order)."""
    model.eval()
    predictions = []
    with torch.no_grad(), autocast(loader.device, precision):
        for images, _ in loader:
            predictions.append(model(images).argmax(dim=1))
    predicted = torch.cat(predictions)
    labels = loader.labels[: len(predicted)].to(predicted.device)
    return (predicted == labels).float().mean().item(), predicted.cpu()


MIN_STEPS_FOR_VERDICT = 100


def is_stuck_at_chance(metrics: EpochMetrics, num_classes: int) -> bool:
    """After enough steps to judge, loss still at ln(classes) and accuracy near 1/classes (NiN's known failure)."""
    return (metrics.train_steps >= MIN_STEPS_FOR_VERDICT and abs(metrics.train_loss - math.log(num_classes)) < 0.02
            and metrics.train_acc < 1.5 / num_classes)


def fit(model: nn.Module, train: BatchLoader, test: BatchLoader, hyper: Recipe, precision: str,
        on_epoch: Callable[[EpochMetrics, torch.Tensor], None]) -> None:
    """Train for ``hyper.epochs``; after each epoch call ``on_epoch(metrics, test_predictions)``."""
    optimizer = make_optimizer(model, hyper)
    scheduler = make_scheduler(optimizer, hyper, hyper.epochs * len(train))
    for epoch in range(1, hyper.epochs + 1):
        start = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=train.device)
        correct = torch.zeros((), device=train.device, dtype=torch.long)
        seen = steps = 0
        progress = Progress(len(train), f"epoch {epoch}/{hyper.epochs}")
        for images, labels in train:
            with autocast(train.device, precision):
                output = model(images)
                loss = F.cross_entropy(output, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler:
                scheduler.step()
            loss_sum += loss.detach() * len(labels)
            correct += (output.argmax(dim=1) == labels).sum()
            seen += len(labels)
            steps += 1
            progress.update(lambda: f"loss {loss_sum.item() / seen:.4f} acc {correct.item() / seen:.3f}")
        progress.close()
        train_loss, train_acc = loss_sum.item() / seen, correct.item() / seen  # waits for the device's last step
        train_seconds = time.perf_counter() - start
        test_acc, predictions = evaluate(model, test, precision)
        metrics = EpochMetrics(
            epoch=epoch, train_loss=train_loss, train_acc=train_acc, test_acc=test_acc,
            epoch_time=time.perf_counter() - start, examples_per_sec=seen / train_seconds,
            lr=optimizer.param_groups[0]["lr"], train_steps=steps,
        )
        on_epoch(metrics, predictions)
