"""How the suite shares the machine under pytest-xdist (``make test`` runs ``pytest -n auto --dist loadscope``).

Each worker runs on a share of the cores of its own, and so does every process it starts: torch, onnxruntime and
the ``convzoo`` processes under test size their thread pools to that share, so two workers never fight over one core
(OpenMP threads that share cores spin and wait; the whole suite took longer with two unpinned workers than with
one). The tests of one file run on one worker (its module fixtures are made once), and so do files that share an
expensive session fixture (``GROUPS``); the longest groups start first.
Import this module before torch: the OpenMP runtime counts the cores it may use when it loads.
"""
from __future__ import annotations

import os
from pathlib import Path

ALL_CORES = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()

# modules whose tests share a session fixture that trains (short_run, trained_vgg): one worker builds it once
GROUPS = {"test_onnx": "trained-runs", "test_training": "trained-runs", "test_utilization": "trained-runs",
          "test_serving": "trained-runs"}
# the groups that take longest, started first so that the others fill in around them
LONGEST_FIRST = ("test_benchmarks", "trained-runs", "test_durable_runs", "test_sweep", "test_server_faults",
                 "test_distributed", "test_new_plugin", "test_team_server", "test_compare")


def pin_this_worker() -> None:
    """Under xdist, keep this worker (and the processes it starts) to its own share of the cores."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker or count < 2 or not ALL_CORES:
        return
    cores, index = sorted(ALL_CORES), int(worker.removeprefix("gw"))
    os.sched_setaffinity(0, cores[index::count] or [cores[index % len(cores)]])


def group_of(module: str) -> str:
    return GROUPS.get(module, module)


def group_scheduling(config, log):
    """xdist's scope scheduling with a test file's group as its scope (xdist's own ``loadgroup`` marks are lost
    under pytest 9.2, which no longer reads the node id xdist 3.8 rewrites)."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(Path(nodeid.split("::", 1)[0]).stem)

    return GroupScheduling(config, log)


def schedule_order(group: str) -> int:
    return LONGEST_FIRST.index(group) if group in LONGEST_FIRST else len(LONGEST_FIRST)
