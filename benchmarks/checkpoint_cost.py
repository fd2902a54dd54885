"""What checkpoints cost: the time to write one against the training steps between two, at seed and quick recipes.

    python benchmarks/checkpoint_cost.py                      # the four seed architectures, seed and quick recipes
    python benchmarks/checkpoint_cost.py --arch alexnet --recipe quick

Each architecture is set up exactly as a run sets it up (device, precision, model, batches, optimizer), trained for a
few steps so that Adam's moments exist, then its whole checkpoint is written (atomically, fsynced) and copied into a
local MLflow run as the run's queue would copy it. The overhead is one checkpoint against ``--every`` steps.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import mlflow

import report
from step_clock import StepClock
from convzoo.training import checkpoint
from convzoo.config import DEFAULT_CHECKPOINT_EVERY
from convzoo.runs.settings import resolve_config
from convzoo.registry.plugins import get_registry
from convzoo.registry.catalogue import resolve
from convzoo.training.setup import build_model, make_loaders, prepare_device
from convzoo.training.trainer import Trainer
from convzoo.vocabulary import CHECKPOINTS_DIR

RECIPES = ("seed", "quick")


def measure(arch: str, recipe: str, splits, args: argparse.Namespace, folder: Path) -> dict:
    config, architecture, dataset = resolve_config(get_registry(), arch, recipe=recipe, overrides={"epochs": 1},
                                                   limit_train_batches=args.warmup + args.steps, limit_eval_batches=1)
    device, precision = prepare_device(config)
    model = build_model(config, architecture, dataset, device)
    train, test, _ = make_loaders(config, splits, device)
    clock = StepClock()
    trainer = Trainer(model, train, test, config.hyper, precision, callbacks=[clock])
    trainer.fit()
    step = statistics.median(clock.times[args.warmup:])
    path = folder / arch / recipe / checkpoint.FILE_NAME
    writes, copies = [], []
    client = mlflow.MlflowClient()
    run = client.create_run(client.get_experiment_by_name("Default").experiment_id)
    for _ in range(args.repeats):
        start = time.perf_counter()
        checkpoint.save({"format": checkpoint.FORMAT, "trainer": trainer.state_dict()}, path)
        writes.append(time.perf_counter() - start)
        start = time.perf_counter()
        client.log_artifact(run.info.run_id, str(path), CHECKPOINTS_DIR)
        copies.append(time.perf_counter() - start)
    write = statistics.median(writes)
    return {"arch": arch, "recipe": recipe, "input_size": config.hyper.resize, "batch_size": config.hyper.batch_size,
            "precision": precision, "step_ms": step * 1000, "checkpoint_mb": path.stat().st_size / 2**20,
            "write_ms": write * 1000, "upload_ms": statistics.median(copies) * 1000,
            "overhead_pct": 100 * write / (args.every * step), "every": args.every}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", action="append", help="architecture (repeatable); default: the four seed ones")
    parser.add_argument("--recipe", action="append", choices=RECIPES, help="recipe (repeatable); default: both")
    parser.add_argument("--every", type=int, default=DEFAULT_CHECKPOINT_EVERY,
                        help="steps between two mid-epoch checkpoints (default: the trainer's)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    parser.add_argument("--repeats", type=int, default=3, help="checkpoints written and copied")
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files (default: where convzoo looks)")
    parser.add_argument("--json", type=Path, default=report.RESULTS_DIR / "checkpoint_cost.json")
    args = parser.parse_args()
    report.require_at_least_one(parser, args, "every", "steps", "warmup", "repeats")
    recipes = args.recipe or list(RECIPES)
    for recipe in recipes:
        args.arch = report.architectures(parser, args.arch, recipe)
    info = report.machine()
    splits = resolve(get_registry().get_dataset("fashion-mnist").load)(args.data_dir)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        for arch in args.arch:
            for recipe in recipes:
                rows.append(measure(arch, recipe, splits, args, Path(folder)))
                print(f"{arch} {recipe}: checkpoint {rows[-1]['checkpoint_mb']:.0f} MB in "
                      f"{rows[-1]['write_ms']:.0f} ms, step {rows[-1]['step_ms']:.0f} ms", flush=True)
    headers = ["arch", "recipe", "input, batch", "step ms", "checkpoint MB", "write ms", "copy into run ms",
               f"write / {args.every} steps"]
    table = [[r["arch"], r["recipe"], f"{r['input_size']}, {r['batch_size']}", f"{r['step_ms']:.0f}",
              f"{r['checkpoint_mb']:.1f}", f"{r['write_ms']:.0f}", f"{r['upload_ms']:.0f}", f"{r['overhead_pct']:.2f} %"]
             for r in rows]
    report.show("Checkpoint cost (write: blocks training; copy into the run: the background queue)", headers, table,
                info)
    path = report.save(args.json, {"benchmark": "checkpoint_cost", "machine": info, "results": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
