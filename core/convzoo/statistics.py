"""The statistics of a comparison: a group of seed repeats summarised with a Student's t confidence interval, and
two models compared on the same test images (McNemar's exact test, a paired bootstrap over seeds and images),
p-values corrected by Holm. The distributions are scipy's, the resampling numpy's; nothing here knows about runs."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 10_000


@dataclass(frozen=True)
class Summary:
    """Seed repeats of one figure: their count, mean, standard deviation (n - 1), range and 95 % t interval."""

    n: int
    mean: float
    std: float
    min: float
    max: float
    ci_low: float
    ci_high: float

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}_{name}": value for name, value in self.__dict__.items() if name != "n"}

    def shown(self, digits: int = 4) -> str:
        """``mean ± half-width`` of the interval (just the mean for one value)."""
        if self.n < 2:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {(self.ci_high - self.ci_low) / 2:.{digits}f}"


def summarize(values: Sequence[float]) -> Summary:
    """Mean, spread and the 95 % Student's t interval of ``values``; one value has no interval (both ends its mean)."""
    from scipy import stats

    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if len(data) < 2:
        return Summary(len(data), mean, 0.0, mean, mean, mean, mean)
    std = float(data.std(ddof=1))
    if std == 0:
        low = high = mean
    else:
        low, high = stats.t.interval(CONFIDENCE, len(data) - 1, loc=mean, scale=std / math.sqrt(len(data)))
    return Summary(len(data), mean, std, float(data.min()), float(data.max()), float(low), float(high))


@dataclass(frozen=True)
class McNemar:
    """Images only model A got right (``a_only``), only B got right (``b_only``), and the exact two-sided p-value."""

    a_only: int
    b_only: int
    p_value: float


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> McNemar:
    """McNemar's exact test on paired correctness: under no difference, each discordant pair is A's with probability
    1/2 (``scipy.stats.binomtest``)."""
    from scipy import stats

    a_only = int(np.sum(a_correct & ~b_correct))
    b_only = int(np.sum(~a_correct & b_correct))
    if a_only + b_only == 0:
        return McNemar(0, 0, 1.0)
    return McNemar(a_only, b_only, float(stats.binomtest(a_only, a_only + b_only, 0.5).pvalue))


@dataclass(frozen=True)
class Bootstrap:
    """The accuracy difference A - B, its 95 % percentile interval over resamples, and a two-sided p-value: how often
    a resample lands on the other side of zero, doubled, with ``(crossings + 1) / (resamples + 1)`` as its floor (no
    crossing at all gives the smallest p the resamples can show)."""

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    crossings: int
    resamples: int


def paired_bootstrap(a_correct: np.ndarray, b_correct: np.ndarray, resamples: int = RESAMPLES,
                     seed: int = 0, batch: int = 250) -> Bootstrap:
    """Resample the seeds and the test images, both with replacement, and recompute the mean accuracy difference.
    ``a_correct`` and ``b_correct`` are ``seeds x images`` (rows pair up: same seed, same split and data order).
    Resampling the seeds too carries training noise into the interval: a seed on which one model failed widens it,
    where resampling images alone would call the gap certain. One seed is the plain paired bootstrap over images."""
    differences = np.atleast_2d(a_correct).astype(np.float32) - np.atleast_2d(b_correct).astype(np.float32)
    seeds, images = differences.shape
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, batch):
        count = min(batch, resamples - start)
        picked = rng.integers(images, size=(count, images))
        per_seed = differences[:, picked].mean(axis=2).T  # resample x seed: each resample's images, every seed
        drawn = rng.integers(seeds, size=(count, seeds))
        means[start:start + count] = np.take_along_axis(per_seed, drawn, axis=1).mean(axis=1)
    low, high = np.percentile(means, [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2])
    crossings = min(int(np.sum(means <= 0)), int(np.sum(means >= 0)))
    return Bootstrap(float(differences.mean()), float(low), float(high),
                     min(1.0, 2 * (crossings + 1) / (resamples + 1)), crossings, resamples)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down correction of ``p_values`` for testing them all at once (in the order given)."""
    order = sorted(range(len(p_values)), key=lambda index: p_values[index])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(p_values) - rank) * p_values[index])
        adjusted[index] = min(1.0, running)
    return adjusted


def shown_p(p_value: float, bound: bool = False) -> str:
    """``p = 0.031``, ``p < 1e-4``, or ``p ≤ 0.0012`` where ``bound``: the resamples cannot show a smaller one."""
    if p_value < 1e-4:
        return "p < 1e-4"
    return f"p {'≤' if bound else '='} {p_value:.2g}"


@dataclass(frozen=True)
class Calibration:
    """How far a model's confidence is from its accuracy: per equal-width confidence bin, its image count, mean
    confidence and accuracy; ``ece`` (expected calibration error) is the count-weighted mean gap."""

    counts: list[int]
    confidence: list[float]
    accuracy: list[float]
    ece: float


def calibration(confidence: Sequence[float], correct: Sequence[bool], bins: int = 15) -> Calibration:
    """The calibration of top-1 predictions of ``confidence`` (their probability) that were ``correct`` or not."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    mean_confidence = np.bincount(which, confidence, bins) / np.maximum(counts, 1)
    accuracy = np.bincount(which, correct, bins) / np.maximum(counts, 1)
    ece = float(np.sum(counts * np.abs(mean_confidence - accuracy)) / max(len(confidence), 1))
    return Calibration(counts.tolist(), mean_confidence.tolist(), accuracy.tolist(), ece)
