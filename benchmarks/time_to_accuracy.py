"""Accuracy within a time budget: each architecture's `fast` recipe (a 10-minute budget; or `--recipe best`, 45
minutes) trained whole, over several seeds, against its target accuracy, and how closely each run kept its budget.

    python benchmarks/time_to_accuracy.py                          # the seed architectures, seeds 0, 1, 2, 10 min
    python benchmarks/time_to_accuracy.py --recipe best --arch vgg # one row of the README's best table (2.5 h)
    python benchmarks/time_to_accuracy.py --budget 2m --seeds 1    # every seed architecture in 2 minutes (overrun)
    python benchmarks/time_to_accuracy.py --arch vgg --seeds 2 --first-seed 1   # seeds 1 and 2
    python benchmarks/time_to_accuracy.py --arch vgg --seeds 1 --limit-batches 5 --budget 10s   # a smoke test

Every run is a real ``convzoo train ARCH --recipe fast --seed S`` in its own process on a throwaway MLflow store, the
ONNX export and its parity check included. The target is the recipe's ``target_acc`` (the origin repo's 5-epoch GPU
test accuracy). Per run: the final validation and test accuracy, the epochs the budget planned, the seconds the budget
covers (probe, training, evaluations: ``budget_wall_s``) and its overrun, ``time_to_target`` (on validation) and the
wall time of the whole command (start-up and export included), and with flip TTA the accuracy of the exported model
(``tta_*``); per architecture: the mean accuracy with its 95 % t interval over the seeds, the lowest, how many runs
reached the target and their mean time to it, the largest overrun and the mean and max wall.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import report
from convzoo.runs.settings import choose_recipe
from convzoo.statistics import summarize
from convzoo.registry.plugins import get_registry
from convzoo.tables import format_table
from convzoo.vocabulary import PARITY_TAG


def train(arch: str, seed: int, folder: Path, args: argparse.Namespace) -> dict:
    """One whole run; its final metrics from the store, and the command's wall time."""
    import mlflow

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "CONVZOO_CHECKPOINT_DIR": str(folder / "checkpoints")}
    command = [sys.executable, "-m", "convzoo", "train", arch, "--recipe", args.recipe, "--seed", str(seed),
               "--limit-train-batches", str(args.limit_batches), "--limit-eval-batches", str(args.limit_batches),
               *(["--budget", args.budget] if args.budget else [])]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"convzoo train {arch} --recipe {args.recipe} --seed {seed} failed:\n"
                         f"{(done.stdout + done.stderr)[-3000:]}")
    client = mlflow.MlflowClient(uri)
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    run = client.search_runs(experiments, order_by=["attributes.start_time DESC"], max_results=1)[0]
    epoch_times = client.get_metric_history(run.info.run_id, "epoch_time")
    metrics, params = run.data.metrics, run.data.params
    budget = float(params["budget_s"]) if "budget_s" in params else None
    return {"arch": arch, "seed": seed, "run_id": run.info.run_id, "test_acc": metrics["test_acc"],
            "val_acc": metrics.get("val_acc"), "tta_test_acc": metrics.get("tta_test_acc"),
            "tta_val_acc": metrics.get("tta_val_acc"), "epochs": len(epoch_times),  # a budget may re-plan its epochs
            "time_to_target": metrics.get("time_to_target"),
            "train_eval_seconds": sum(m.value for m in epoch_times), "wall_seconds": wall,
            "budget_s": budget, "budget_wall_s": metrics.get("budget_wall_s"),
            "overrun": metrics["budget_wall_s"] / budget - 1 if budget else None,
            "parity": run.data.tags.get(PARITY_TAG)}


def with_recipe(parser: argparse.ArgumentParser, recipe: str) -> list[str]:
    """The seed architectures that ship ``recipe``; those that do not are named and left out."""
    archs = [arch for arch in report.SEED_ARCHS if recipe in get_registry().get_architecture(arch).recipes]
    if not archs:
        parser.error(f"no seed architecture has a recipe {recipe!r}")
    for arch in report.SEED_ARCHS:
        if arch not in archs:
            print(f"{arch} has no {recipe!r} recipe: left out")
    return archs


def target_of(parser: argparse.ArgumentParser, arch: str, recipe: str) -> float:
    """The target_acc of the architecture's recipe (both checked already); a usage error if it has none."""
    found = get_registry().get_architecture(arch)
    target = found.recipes[choose_recipe(found, recipe, on_gpu=False)].target_acc
    if target is None:
        parser.error(f"recipe {recipe!r} of {arch} has no target_acc to measure the time to")
    return target


def seconds(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.0f} s"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


ACCURACIES = ("val_acc", "test_acc", "tta_val_acc", "tta_test_acc")


def accuracies(runs: list[dict]) -> dict[str, float]:
    """Each accuracy the runs logged: mean, spread and 95 % t interval over the seeds (``test_acc_mean`` ...)."""
    found = {}
    for name in ACCURACIES:
        values = [r[name] for r in runs if r[name] is not None]
        if values:
            found.update(summarize(values).as_dict(name))
    return found


def shown(runs: list[dict], name: str) -> str:
    values = [r[name] for r in runs if r[name] is not None]
    return summarize(values).shown() if values else "-"


def accuracy(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def row(run: dict) -> list[object]:
    """One run's line of the table."""
    return [run["arch"], run["seed"], accuracy(run["val_acc"]), accuracy(run["test_acc"]),
            accuracy(run["tta_test_acc"]), run["epochs"], f"{run['train_eval_seconds']:.0f}",
            "-" if run["budget_s"] is None else f"{run['budget_s']:.0f}",
            "-" if run["budget_wall_s"] is None else f"{run['budget_wall_s']:.1f}", percent(run["overrun"]),
            seconds(run["time_to_target"]), f"{run['wall_seconds']:.0f}", run["parity"]]


def summary(arch: str, runs: list[dict], target: float) -> list[object]:
    walls = [r["wall_seconds"] for r in runs]
    reached = [r["time_to_target"] for r in runs if r["time_to_target"] is not None]
    overruns = [r["overrun"] for r in runs if r["overrun"] is not None]
    return [arch, f"{target:.3f}", len(runs), shown(runs, "val_acc"), shown(runs, "test_acc"),
            shown(runs, "tta_test_acc"), f"{min(r['test_acc'] for r in runs):.4f}",
            f"{len(reached)}/{len(runs)}", seconds(statistics.mean(reached) if reached else None),
            percent(max(overruns) if overruns else None), f"{statistics.mean(walls):.0f}", f"{max(walls):.0f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", action="append",
                        help="architecture (repeatable); default: the seed ones that have the recipe")
    parser.add_argument("--recipe", default="fast", help="recipe to train (default: fast)")
    parser.add_argument("--budget", default=None, help="train to this budget (90s, 2m, 1h; default: the recipe's)")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds per architecture")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed; the others follow it")
    parser.add_argument("--limit-batches", type=int, default=0,
                        help="train and evaluate on at most this many batches per epoch (0: all; else a smoke test)")
    parser.add_argument("--json", type=Path, default=report.RESULTS_DIR / "time_to_accuracy.json")
    args = parser.parse_args()
    report.require_at_least_one(parser, args, "seeds")
    archs = report.architectures(parser, args.arch, args.recipe) if args.arch else with_recipe(parser, args.recipe)
    targets = {arch: target_of(parser, arch, args.recipe) for arch in archs}
    info = report.machine()
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for arch in archs:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                runs.append(train(arch, seed, Path(folder), args))
                run = runs[-1]
                print(f"{arch} seed {seed}: test acc {run['test_acc']:.4f}, {run['epochs']} epoch(s), budget "
                      f"overrun {percent(run['overrun'])}, time to target {seconds(run['time_to_target'])}, wall "
                      f"{run['wall_seconds']:.0f} s", flush=True)
    headers = ["arch", "seed", "val acc", "test acc", "TTA test acc", "epochs", "train + eval s", "budget s",
               "budget used s", "overrun", "time to target", "wall s", "ONNX parity"]
    table = [row(r) for r in runs]
    report.show(f"Accuracy within a budget, recipe {args.recipe} (budget used: probe, training and evaluation; wall: "
                f"the whole `convzoo train`, start-up and export included)", headers, table, info)
    print("\nPer architecture (accuracy: mean ± half-width of the 95 % t interval over the seeds; TTA: the exported "
          "model, with its flip averaging)")
    print(format_table(
        ["arch", "target", "seeds", "val acc", "test acc", "TTA test acc", "min test acc", "reached",
         "mean time to target", "max overrun", "mean wall s", "max wall s"],
        [summary(arch, [r for r in runs if r["arch"] == arch], targets[arch]) for arch in archs]))
    path = report.save(args.json, {"benchmark": "time_to_accuracy", "recipe": args.recipe, "budget": args.budget,
                                   "machine": info,
                                   "targets": targets, "results": runs,
                                   "summaries": {arch: accuracies([r for r in runs if r["arch"] == arch])
                                                 for arch in archs}})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
