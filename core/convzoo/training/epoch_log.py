"""What a run records for each epoch, for the console and the tracking store alike."""
from __future__ import annotations

from dataclasses import dataclass

from convzoo.training.trainer import EpochMetrics, time_to_target
from convzoo.training.utilization import Utilization


@dataclass(frozen=True)
class EpochLog:
    """What a run logs for an epoch: ``train_ch5``'s figures and throughput, utilization where the FLOPs are known,
    and ``time_to_target`` at the epoch whose validation accuracy first reached ``target_acc``."""

    utilization: Utilization
    target_acc: float | None = None

    def metrics(self, metrics: EpochMetrics, history: list[EpochMetrics]) -> dict[str, float]:
        logged = {**metrics.as_dict(), **self.utilization.metrics(metrics)}
        reached = time_to_target(history, self.target_acc)
        if reached and reached[0] == metrics.epoch:
            logged["time_to_target"] = reached[1]
        return logged
