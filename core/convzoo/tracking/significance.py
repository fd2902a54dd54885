"""Paired significance between the architectures of a comparison, from the per-image test predictions each child
saved: McNemar's exact test (one seed) or a paired bootstrap over seeds and test images (seed repeats), Holm-corrected
over every pair, written as ``significance.csv``."""
from __future__ import annotations

import csv
import itertools
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from convzoo.statistics import holm, mcnemar_exact, paired_bootstrap, shown_p
from convzoo.tracking.artifacts import download_artifact
from convzoo.vocabulary import PREDICTIONS_FILE

COLUMNS = ["a", "b", "seeds", "images", "acc_a", "acc_b", "difference_pts", "ci_low_pts", "ci_high_pts",
           "a_only_right", "b_only_right", "mcnemar_p", "bootstrap_p", "bootstrap_crossings", "test", "p", "p_holm"]
ALPHA = 0.05


def correctness(run_id: str) -> np.ndarray | None:
    """Whether the run's model got each test image right, in image order; None if it saved no predictions."""
    with tempfile.TemporaryDirectory(prefix="convzoo-predictions-") as folder:
        path = download_artifact(run_id, PREDICTIONS_FILE, folder)
        if path is None:
            return None
        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
    return np.array([row["label"] == row["predicted"] for row in rows], dtype=bool)


def compare_pair(a: Mapping[int, np.ndarray], b: Mapping[int, np.ndarray]) -> dict[str, Any] | None:
    """Two architectures' correctness, seed by seed (the same split and data order per seed): over the seeds both
    have and the images both evaluated, McNemar on every (seed, image) pair and a paired bootstrap of the
    difference over seeds and images; the p-value that counts is McNemar's for one seed, the bootstrap's for
    several."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    images = min(len(values) for values in [*(a[s] for s in seeds), *(b[s] for s in seeds)])
    right_a = np.stack([a[s][:images] for s in seeds])
    right_b = np.stack([b[s][:images] for s in seeds])
    exact, resampled = mcnemar_exact(right_a.ravel(), right_b.ravel()), paired_bootstrap(right_a, right_b)
    single = len(seeds) == 1
    return {"seeds": len(seeds), "images": images, "acc_a": round(float(right_a.mean()), 4),
            "acc_b": round(float(right_b.mean()), 4), "difference_pts": round(100 * resampled.difference, 2),
            "ci_low_pts": round(100 * resampled.ci_low, 2), "ci_high_pts": round(100 * resampled.ci_high, 2),
            "a_only_right": exact.a_only, "b_only_right": exact.b_only, "mcnemar_p": exact.p_value,
            "bootstrap_p": resampled.p_value, "bootstrap_crossings": resampled.crossings,
            "test": "mcnemar-exact" if single else "paired-bootstrap",
            "p": exact.p_value if single else resampled.p_value}


def significance_rows(children: Mapping[str, Mapping[int, str]]) -> list[dict[str, Any]]:
    """Every pair of architectures (in the order given) with their test and Holm's correction over all pairs.
    ``children``: per architecture, its run id per seed."""
    right = {name: {seed: found for seed, run_id in runs.items() if (found := correctness(run_id)) is not None}
             for name, runs in children.items()}
    rows = []
    for first, second in itertools.combinations(children, 2):
        compared = compare_pair(right[first], right[second])
        if compared is not None:
            rows.append({"a": first, "b": second, **compared})
    for row, corrected in zip(rows, holm([row["p"] for row in rows])):
        row["p_holm"] = corrected
    return rows


def at_floor(row: Mapping[str, Any]) -> bool:
    """Whether the p-value is the smallest the bootstrap's resamples can show (none crossed zero)."""
    return row["test"] == "paired-bootstrap" and row["bootstrap_crossings"] == 0


def summary_line(row: Mapping[str, Any]) -> str:
    """``vgg − nin: +5.20 pts [4.60, 5.80], p < 1e-4 (paired-bootstrap, Holm)``."""
    verdict = "" if row["p_holm"] < ALPHA else ", not significant"
    return (f"{row['a']} − {row['b']}: {row['difference_pts']:+.2f} pts [{row['ci_low_pts']:.2f}, "
            f"{row['ci_high_pts']:.2f}], {shown_p(row['p_holm'], at_floor(row))} ({row['test']}, Holm over {row['pairs']} "
            f"pair(s)){verdict}")


def write_significance(children: Mapping[str, Mapping[int, str]], folder: str) -> list[str]:
    """``significance.csv`` in ``folder``; the summary lines to print and show under the table."""
    rows = significance_rows(children)
    if not rows:
        return []
    with open(Path(folder) / "significance.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return [summary_line({**row, "pairs": len(rows)}) for row in rows]
