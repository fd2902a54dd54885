"""Why a long CPU run's steps slow down: subnormal floats in the optimizer's state, with and without flushing them.

    python benchmarks/denormals.py --checkpoint last.pt     # a long AlexNet best run's checkpoint (its artifact)

A unit that stops getting gradient (a dead ReLU) keeps an Adam first moment that shrinks by 0.9 a step: after a few
hundred steps it is subnormal, and x86 CPUs take tens of times longer on each operation on one. Each mode runs in a
fresh process (the flag is per thread; a process's threads copy it from the thread that starts them): the run's
set-up, its model and optimizer state from ``--checkpoint`` (without one, a fresh run's: no subnormals), then
``--steps`` timed training steps.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import report
from step_clock import StepClock

MODES = ("kept", "flushed")


def subnormal_share(tensors) -> float:
    """The share of the float32 entries of ``tensors`` that are subnormal, read from their bits (with subnormals
    flushed, comparing one with zero says equal)."""
    import torch

    tensors = [t for t in tensors if torch.is_tensor(t) and t.dtype == torch.float32]
    bits = [t.reshape(-1).view(torch.int32) for t in tensors]
    count = sum(int(((b & 0x7F800000) == 0).logical_and_((b & 0x007FFFFF) != 0).sum()) for b in bits)
    return count / max(sum(t.numel() for t in tensors), 1)


def moments(optimizer) -> list:
    """Every tensor of the optimizer's state (Adam's first and second moments, its step counts)."""
    return [value for state in optimizer.state.values() for value in state.values()]


def child(args: argparse.Namespace) -> dict:
    """One mode's measurement, in this process."""
    import torch

    if args.child == "flushed":  # first: threads copy the flag when they start
        torch.set_flush_denormal(True)
    from convzoo.training.memory import keep_freed_memory
    from convzoo.registry.catalogue import resolve
    from convzoo.registry.plugins import get_registry
    from convzoo.runs.settings import resolve_config
    from convzoo.training.setup import build_model, make_loaders, prepare_device
    from convzoo.training.trainer import Trainer

    registry = get_registry()
    config, architecture, dataset = resolve_config(registry, args.arch, recipe=args.recipe,
                                                   overrides={"epochs": 1, "budget": None},
                                                   limit_train_batches=args.warmup + args.steps, limit_eval_batches=1)
    device, precision = prepare_device(config, tune_process=False)  # the flag as this mode sets it
    keep_freed_memory()
    splits = resolve(registry.get_dataset("fashion-mnist").load)(None)
    train, test, _ = make_loaders(config, splits, device)
    clock = StepClock()
    trainer = Trainer(build_model(config, architecture, dataset, device), train, test, config.hyper, precision,
                      callbacks=[clock])
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location=device, weights_only=False)["trainer"]
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
    share = subnormal_share(moments(trainer.optimizer))
    trainer.fit()
    step_ms = 1000 * statistics.median(clock.times[args.warmup:])
    return {"mode": args.child, "subnormal_share": share, "step_ms": step_ms,
            "subnormal_share_after": subnormal_share(moments(trainer.optimizer))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="alexnet")
    parser.add_argument("--recipe", default="best")
    parser.add_argument("--checkpoint", help="a run's checkpoint (last.pt) whose model and optimizer state to use")
    parser.add_argument("--repeats", type=int, default=2, help="processes per mode, interleaved")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps first")
    parser.add_argument("--json", type=Path, default=report.RESULTS_DIR / "denormals.json")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    report.require_at_least_one(parser, args, "steps", "warmup", "repeats")
    if args.child:
        print(json.dumps(child(args)))
        return
    info = report.machine()
    rows = []
    for mode in MODES * args.repeats:
        command = [sys.executable, __file__, "--child", mode, *sys.argv[1:]]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{mode}: {rows[-1]['step_ms']:.0f} ms a step", flush=True)
    step = {mode: statistics.median(r["step_ms"] for r in rows if r["mode"] == mode) for mode in MODES}
    table = [[r["mode"], f"{100 * r['subnormal_share']:.2f} %", f"{100 * r['subnormal_share_after']:.2f} %",
              f"{r['step_ms']:.0f}"] for r in rows]
    report.show(f"Subnormal optimizer state, {args.arch} {args.recipe} "
                f"({'checkpoint ' + args.checkpoint if args.checkpoint else 'a fresh run'})",
                ["subnormals", "share before", "share after", "step ms"], table, info)
    print(f"\nkept / flushed step time: {step['kept'] / step['flushed']:.2f}x")
    path = report.save(args.json, {"benchmark": "denormals", "machine": info, "results": rows, "ratio":
                                   step["kept"] / step["flushed"]})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
