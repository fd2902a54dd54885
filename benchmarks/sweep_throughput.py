"""Sweep throughput: trials finished per hour by one worker with 2 torch threads against two workers with 1 each, on
one study, and how long a worker waits on the study's database per trial.

    python benchmarks/sweep_throughput.py                          # SQLite and a throwaway PostgreSQL
    python benchmarks/sweep_throughput.py --storage sqlite --trials 4

Every worker is a real ``convzoo sweep`` process (start-up included in the wall time, as a user sees it) writing to a
temporary MLflow store; the workers of one configuration share one study. The database figure is what each worker
reports: time in the study's storage (asking, sampling, telling, polling), outside training. "Steady" trials per hour
leave out process start-up (what a long sweep approaches): workers x 3600 / training seconds per trial.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import report

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
WORKER_LINE = re.compile(r"this worker: (\d+) trial\(s\), ([\d.]+) s training, ([\d.]+) s in the study's storage")
# (workers, torch threads each): the same two cores, used two ways
LAYOUTS = ((1, 2), (2, 1))


def run_layout(args: argparse.Namespace, storage: str, study: str, workers: int, threads: int, folder: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
           "CONVZOO_CHECKPOINT_DIR": str(folder / "checkpoints")}
    command = [sys.executable, "-m", "convzoo", "sweep", args.arch, "--param", "lr=loguniform:1e-4:1e-2",
               "--trials", str(args.trials), "--pruner", "none", "--study", study, "--storage", storage,
               "--epochs", "1", "--limit-train-batches", str(args.batches), "--limit-eval-batches", "5",
               "--resize", str(args.resize), "--batch-size", "64"]
    started = time.perf_counter()
    processes = [subprocess.Popen(command, cwd=folder, env=env, text=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT) for _ in range(workers)]
    outputs = [process.communicate()[0] for process in processes]
    wall = time.perf_counter() - started
    for process, output in zip(processes, outputs):
        if process.returncode:
            raise SystemExit(f"a worker failed (exit {process.returncode}):\n{output[-3000:]}")
    reports = [WORKER_LINE.search(output).groups() for output in outputs]
    trials = sum(int(trial_count) for trial_count, _, _ in reports)
    storage_seconds = sum(float(seconds) for _, _, seconds in reports)
    return {"workers": workers, "threads": threads, "trials": trials, "wall_s": round(wall, 1),
            "trials_per_hour": round(args.trials * 3600 / wall, 1),
            "training_s_per_trial": round(sum(float(s) for _, s, _ in reports) / trials, 2),
            "steady_trials_per_hour": round(workers * 3600 * trials / sum(float(s) for _, s, _ in reports), 1),
            "db_s_per_trial": round(storage_seconds / trials, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vgg", help="Architecture every trial trains (default: vgg).")
    parser.add_argument("--trials", type=int, default=6, help="Trials per study (default: 6).")
    parser.add_argument("--batches", type=int, default=150, help="Training batches of 64 per trial (default: 150).")
    parser.add_argument("--resize", type=int, default=64, help="Input size (default: 64).")
    parser.add_argument("--storage", action="append", choices=("sqlite", "postgres"),
                        help="Study storages to measure, repeatable (default: both).")
    parser.add_argument("--json", type=Path, default=report.RESULTS_DIR / "sweep_throughput.json")
    args = parser.parse_args()
    report.require_at_least_one(parser, args, "trials", "batches", "resize")
    report.architectures(parser, [args.arch], "quick")
    rows, results = [], []
    with tempfile.TemporaryDirectory(prefix="convzoo-bench-sweep-") as temporary:
        for kind in args.storage or ("sqlite", "postgres"):
            postgres = None
            if kind == "postgres":
                from helpers import PostgresServer

                postgres = PostgresServer()
                postgres.start()
            try:
                for workers, threads in LAYOUTS:
                    folder = Path(temporary) / f"{kind}-{workers}"
                    folder.mkdir()
                    name = f"bench-{workers}x{threads}"
                    storage = (postgres.create_database(name.replace("-", "_")) if postgres
                               else f"sqlite:///{folder / 'optuna.db'}")
                    result = {"storage": kind, **run_layout(args, storage, name, workers, threads, folder)}
                    results.append(result)
                    rows.append([kind, f"{workers} x {threads}", result["trials"], result["wall_s"],
                                 result["trials_per_hour"], result["steady_trials_per_hour"],
                                 result["training_s_per_trial"],
                                 f"{result['db_s_per_trial'] * 1000:.1f}"])
            finally:
                if postgres:
                    postgres.remove()
    ratios = {kind: round(next(r for r in results if r["storage"] == kind and r["workers"] == 2)["trials_per_hour"]
                          / next(r for r in results if r["storage"] == kind and r["workers"] == 1)["trials_per_hour"], 3)
              for kind in dict.fromkeys(r["storage"] for r in results)}
    info = report.machine()
    report.show(f"Sweep throughput: {args.arch}, {args.trials} trials of {args.batches} batches at {args.resize}px",
                ["storage", "workers x threads", "trials", "wall s", "trials/hour", "steady trials/hour",
                 "train s/trial", "db ms/trial"],
                rows, info)
    for kind, ratio in ratios.items():
        print(f"{kind}: 2 workers x 1 thread / 1 worker x 2 threads = {ratio:.2f}x trials per hour")
    median_db = statistics.median(r["db_s_per_trial"] for r in results)
    print(f"median time on the study's database: {median_db * 1000:.1f} ms a trial")
    path = report.save(args.json, {"machine": info, "arch": args.arch, "trials": args.trials, "results": results,
                                   "two_workers_over_one": ratios})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
