"""Model FLOP utilization: the model FLOP/s a run achieves, and the fraction (MFU) of the machine's measured peak.

``model_flops_per_sec`` counts the FLOPs the network needs (forward and backward of each training example, as
torch's flop counter counts them), not what the kernels happened to execute; ``mfu`` divides it by the peak
``convzoo.training.peak`` measured for the run's device and precision, times the number of processes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from convzoo.training.peak import Peak, peak
from convzoo.registry.catalogue import Architecture, Dataset
from convzoo.registry.summary import flops_per_example
from convzoo.training.trainer import EpochMetrics
from convzoo.vocabulary import FLOPS_TAG, ISA_TAG, PEAK_TAG


@dataclass(frozen=True)
class Utilization:
    """FLOPs per training example (None: not countable) and the peak of all the run's processes together."""

    flops_per_example: int | None
    peak: Peak
    processes: int = 1

    @property
    def peak_flops_per_sec(self) -> float:
        return self.peak.flops_per_sec * self.processes

    def mfu(self, examples_per_sec: float) -> float | None:
        """The fraction of the peak that training at ``examples_per_sec`` uses (None when the FLOPs are unknown)."""
        if self.flops_per_example is None:
            return None
        return self.flops_per_example * examples_per_sec / self.peak_flops_per_sec

    def metrics(self, epoch: EpochMetrics) -> dict[str, float]:
        """``model_flops_per_sec`` and ``mfu`` of one epoch's training (none when the FLOPs are unknown)."""
        if self.flops_per_example is None:
            return {}
        return {"model_flops_per_sec": self.flops_per_example * epoch.examples_per_sec,
                "mfu": self.mfu(epoch.examples_per_sec)}

    def tags(self) -> dict[str, str]:
        counted = {} if self.flops_per_example is None else {FLOPS_TAG: str(self.flops_per_example)}
        return {**counted, PEAK_TAG: f"{self.peak_flops_per_sec:.4g}", ISA_TAG: self.peak.isa}


def counted_flops(arch: Architecture, dataset: Dataset, input_size: int, options: dict) -> int | None:
    """FLOPs per training example, or None for a network that does not run on the meta device (a counter must not
    stop a run: if the network cannot run at all, its first step says why, with the run's hooks called)."""
    try:
        return flops_per_example(arch, dataset.in_channels, dataset.num_classes, input_size, **options)
    except Exception:
        return None


def run_utilization(arch: Architecture, dataset: Dataset, input_size: int, options: dict, device: torch.device,
                    precision: str, processes: int, echo: Callable[[str], None]) -> Utilization:
    """What a run's MFU needs: its network's FLOPs per example and the machine's peak (measured now if not cached)."""
    return Utilization(counted_flops(arch, dataset, input_size, options), peak(device, precision, on_measure=echo),
                       processes)
