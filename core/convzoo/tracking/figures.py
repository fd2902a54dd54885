"""The run's plots: confusion matrix, learning curves, a grid of misclassified test images, and the evaluation's
reliability diagram.

Each is a ``matplotlib.figure.Figure`` of its own, outside pyplot: no backend is chosen or changed, and nothing is left
for pyplot to close.
"""
from __future__ import annotations

from typing import Sequence

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from convzoo.statistics import summarize
from convzoo.training.trainer import EpochMetrics


def confusion_matrix(labels: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts with true classes as rows and predicted classes as columns."""
    return torch.bincount(labels * num_classes + predicted, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def plot_confusion_matrix(matrix: torch.Tensor, class_names: Sequence[str]):
    """Counts, or (a float matrix) each true class's share, true classes as rows."""
    figure = Figure(figsize=(7, 6))
    axes = figure.subplots()
    image = axes.imshow(matrix.numpy(), cmap="Blues")
    figure.colorbar(image, ax=axes)
    ticks = range(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, class_names)
    for (row, column), count in zip(((r, c) for r in ticks for c in ticks), matrix.flatten().tolist()):
        axes.text(column, row, f"{count:.2f}" if matrix.is_floating_point() else count, ha="center", va="center",
                  fontsize=7,
                  color="white" if count > matrix.max().item() / 2 else "black")
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    figure.tight_layout()
    return figure


def plot_learning_curves(history: Sequence[EpochMetrics]):
    epochs = [m.epoch for m in history]
    figure = Figure(figsize=(10, 4))
    loss_axes, acc_axes = figure.subplots(1, 2)
    loss_axes.plot(epochs, [m.train_loss for m in history], marker="o", label="train loss")
    loss_axes.set_xlabel("epoch")
    loss_axes.legend()
    acc_axes.plot(epochs, [m.train_acc for m in history], marker="o", label="train acc")
    acc_axes.plot(epochs, [m.test_acc for m in history], marker="o", label="test acc")
    acc_axes.set_xlabel("epoch")
    acc_axes.legend()
    for axes in (loss_axes, acc_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no ticks at 1.2, 1.4, ...
    figure.tight_layout()
    return figure


def plot_misclassified(images: torch.Tensor, labels: torch.Tensor, predicted: torch.Tensor,
                       class_names: Sequence[str], limit: int = 25, confidence: torch.Tensor | None = None):
    """Up to ``limit`` wrongly classified images (uint8, N x C x H x W), titled true -> predicted; given the
    predictions' ``confidence``, the most confidently wrong first, with it."""
    wrong = (labels != predicted).nonzero().flatten()
    if confidence is not None:
        wrong = wrong[torch.argsort(-confidence[wrong], stable=True)]
    wrong = wrong[:limit].tolist()
    columns = 5
    rows = max(1, -(-len(wrong) // columns))
    figure = Figure(figsize=(2 * columns, 2.3 * rows))
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, index in zip(grid.flat, wrong):
        axes.imshow(images[index].permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray")
        sure = "" if confidence is None else f" ({confidence[index]:.2f})"
        axes.set_title(f"{class_names[labels[index]]}\n-> {class_names[predicted[index]]}{sure}", fontsize=8)
    if not wrong:
        grid.flat[0].set_title("no misclassified images")
    figure.tight_layout()
    return figure


def plot_reliability(calibration):
    """A reliability diagram: accuracy against confidence per bin (the diagonal is perfect calibration), with the
    share of images in each bin below."""
    figure = Figure(figsize=(6, 6))
    curve, share = figure.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    bins = len(calibration.counts)
    centres = [(index + 0.5) / bins for index in range(bins)]
    filled = [index for index, count in enumerate(calibration.counts) if count]
    curve.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    curve.bar([centres[i] for i in filled], [calibration.accuracy[i] for i in filled], width=1 / bins,
              edgecolor="black", alpha=0.7, label="accuracy")
    curve.set_ylabel("accuracy")
    curve.set_title(f"expected calibration error {calibration.ece:.4f}")
    curve.legend()
    total = max(sum(calibration.counts), 1)
    share.bar(centres, [count / total for count in calibration.counts], width=1 / bins, edgecolor="black")
    share.set_xlabel("confidence (top-1 probability)")
    share.set_ylabel("share of images")
    figure.tight_layout()
    return figure


def accuracy_bands(runs: Sequence[Sequence[float]]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Per epoch over seed repeats (which may have trained different numbers of epochs): the epochs, the mean, and
    the 95 % t interval's ends (the mean itself where only one run has the epoch)."""
    epochs, means, lows, highs = [], [], [], []
    for index in range(max((len(values) for values in runs), default=0)):
        summary = summarize([values[index] for values in runs if len(values) > index])
        epochs.append(index + 1)
        means.append(summary.mean)
        lows.append(summary.ci_low)
        highs.append(summary.ci_high)
    return epochs, means, lows, highs


def plot_test_accuracy_curves(curves: dict[str, Sequence[Sequence[float]]]):
    """Test accuracy per epoch, one line per architecture: the mean over its seed repeats, with the 95 % interval
    as a band."""
    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    for name, runs in curves.items():
        epochs, means, lows, highs = accuracy_bands(runs)
        line, = axes.plot(epochs, means, marker="o", label=f"{name} ({len(runs)} run{'s' * (len(runs) > 1)})")
        if len(runs) > 1:
            axes.fill_between(epochs, lows, highs, color=line.get_color(), alpha=0.2)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel("test accuracy (mean, 95 % CI band)")
    axes.legend()
    figure.tight_layout()
    return figure


def plot_accuracy_vs_speed(rows: Sequence[dict]):
    """Final test accuracy against training examples/sec; marker area grows with the parameter count."""
    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    largest = max((row["params"] for row in rows), default=1)
    for row in rows:
        axes.scatter(row["examples_per_sec"], row["test_acc"], s=50 + 950 * row["params"] / largest, alpha=0.6)
        axes.annotate(f"{row['architecture']} ({row['params'] / 1e6:.1f}M)", (row["examples_per_sec"], row["test_acc"]))
    axes.set_xlabel("training examples/sec")
    axes.set_ylabel("test accuracy")
    figure.tight_layout()
    return figure


def plot_range_test(rates: Sequence[float], losses: Sequence[float], smoothed: Sequence[float], suggested: float):
    """The learning-rate range test: each step's loss and its smoothed curve against the rate (log scale), with the
    suggested rate marked."""
    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    axes.plot(rates, losses, color="0.75", linewidth=0.8, label="loss per step")
    axes.plot(rates, smoothed, color="C0", label="smoothed loss")
    axes.axvline(suggested, color="C3", linestyle="--", label=f"suggested lr {suggested:.3g}")
    axes.set_xscale("log")
    axes.set_ylim(min(losses) * 0.95, smoothed[0] * 1.3)  # the divergence at the end would flatten the rest
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    axes.legend()
    figure.tight_layout()
    return figure
