"""Where a training step goes: torch.profiler over the bare loop of each architecture at a recipe, top operations.

    python benchmarks/step_profile.py                       # the four seed architectures, seed recipes
    python benchmarks/step_profile.py --arch nin --top 12 --recipe quick

For each architecture: the step's time and MFU (the network's FLOPs x examples/sec over this machine's measured peak),
then the operations with the most self time over the profiled steps, each with its share of the step. Forward and
backward kernels of one layer type are listed apart (``aten::mkldnn_convolution``, ``ConvolutionBackward0`` ...).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

import report
from convzoo.runs.settings import resolve_config
from convzoo.training.devices import resolve_device, resolve_precision
from convzoo.training.peak import peak
from convzoo.registry.plugins import get_registry
from convzoo.tables import format_table
from convzoo.training.utilization import Utilization, counted_flops
from train_throughput import bare_steps


def profile_arch(arch: str, args: argparse.Namespace) -> dict:
    """One architecture: warm up, time ``args.steps`` steps, then profile as many."""
    config, architecture, dataset = resolve_config(get_registry(), arch, recipe=args.recipe, device=args.device,
                                                   limit_train_batches=10_000, export=False, data_dir=args.data_dir)
    steps = bare_steps(config, architecture, dataset)
    for _ in range(args.warmup):
        next(steps)
    start = time.perf_counter()
    for _ in range(args.steps):
        next(steps)
    step_seconds = (time.perf_counter() - start) / args.steps
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])]
    with profile(activities=activities) as profiled:
        for _ in range(args.steps):
            next(steps)
    events = sorted(profiled.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
    total = sum(event.self_cpu_time_total for event in events)
    device = resolve_device(args.device)
    precision = resolve_precision(config.precision, device)
    utilization = Utilization(counted_flops(architecture, dataset, config.hyper.resize, config.hyper.options),
                              peak(device, precision, on_measure=print))
    examples_per_sec = config.hyper.batch_size / step_seconds
    return {"arch": arch, "recipe": config.recipe_resolved, "input_size": config.hyper.resize,
            "batch_size": config.hyper.batch_size, "precision": precision, "step_seconds": step_seconds,
            "examples_per_sec": examples_per_sec, "mfu": utilization.mfu(examples_per_sec),
            "top": [{"op": event.key, "share": event.self_cpu_time_total / total, "calls": event.count // args.steps}
                    for event in events[:args.top]]}


def show(row: dict) -> None:
    mfu = "?" if row["mfu"] is None else f"{row['mfu']:.0%}"
    print(f"\n{row['arch']} ({row['recipe']}: {row['input_size']} px, batch {row['batch_size']}, {row['precision']}): "
          f"{row['step_seconds'] * 1000:.0f} ms a step, {row['examples_per_sec']:.1f} examples/sec, MFU {mfu}")
    print(format_table(["OPERATION", "SHARE OF STEP", "CALLS PER STEP"],
                       [[top["op"], f"{top['share']:.1%}", top["calls"]] for top in row["top"]]))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", action="append", help="architecture (repeatable); default: the four seed ones")
    parser.add_argument("--recipe", default="seed", help="recipe to profile (default seed)")
    parser.add_argument("--steps", type=int, default=5, help="steps timed, then as many profiled (default 5)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--top", type=int, default=8, help="operations listed per architecture (default 8)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files (default: where convzoo looks)")
    parser.add_argument("--json", type=Path, default=report.RESULTS_DIR / "step_profile.json")
    args = parser.parse_args()
    report.require_at_least_one(parser, args, "steps", "warmup", "top")
    args.arch = report.architectures(parser, args.arch, args.recipe)
    return args


def main() -> None:
    args = parse_args()
    info = report.machine()
    print(f"Training step profiles, {args.recipe} recipes\n{report.describe(info)}")
    rows = []
    for arch in args.arch:
        rows.append(profile_arch(arch, args))
        show(rows[-1])
    print(f"\nwrote {report.save(args.json, {'benchmark': 'step_profile', 'machine': info, 'results': rows})}")


if __name__ == "__main__":
    main()
