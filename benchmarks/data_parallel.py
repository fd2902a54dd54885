"""Data-parallel scaling on one machine: training examples/sec of 1 process using every core against N processes with
cores/N threads each (``convzoo train --nproc N``), each seed architecture at its quick recipe, and what the
gradient all-reduce costs per step.

    python benchmarks/data_parallel.py                       # the four seed architectures, 1 x 2 against 2 x 1
    python benchmarks/data_parallel.py --arch vgg --batches 5

Every run is a real ``convzoo train`` into a temporary MLflow store (start-up not counted: the figure is the last
epoch's ``examples_per_sec``, and the first of the two epochs pays for warm-up). The layouts take turns, round by
round. What the gradient all-reduce costs is measured two ways between N gloo processes (torchrun), medians of
``--steps`` calls after 3 warm-up calls: alone (``torch.distributed.all_reduce`` of one float32 buffer the size of the model's
gradients), and in the step (a DDP training step of the quick recipe's per-rank batch with the gradient sync, against
the same step under ``no_sync()``), which also counts the wait for the slower rank and DDP's bucket copies.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import report


def quick_setup(name: str) -> tuple[int, int, int]:
    """(input size, global batch, parameter count) of ``name`` at its quick recipe."""
    import torch

    from convzoo.runs.settings import resolve_config
    from convzoo.registry.plugins import get_registry
    from convzoo.registry.summary import count_params

    config, arch, data = resolve_config(get_registry(), name, recipe="quick")
    with torch.device("meta"):
        model = arch.create(data.in_channels, data.num_classes, input_size=config.hyper.resize, **config.hyper.options)
    return config.hyper.resize, config.hyper.batch_size, count_params(model)


def examples_per_sec(name: str, nproc: int, batches: int, folder: Path) -> float:
    """The last epoch's examples/sec of a real ``convzoo train`` with ``nproc`` processes."""
    import mlflow

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "CONVZOO_CHECKPOINT_DIR": str(folder / "checkpoints")}
    command = [sys.executable, "-m", "convzoo", "train", name, "--recipe", "quick", "--epochs", "2",
               "--limit-train-batches", str(batches), "--limit-eval-batches", "1", "--export", "false",
               "--checkpoint-every", "0", "--nproc", str(nproc)]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"convzoo train {name} --nproc {nproc} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    client = mlflow.MlflowClient(uri)
    run = client.search_runs(["0"], order_by=["attributes.start_time DESC"], max_results=1)[0]
    return max(client.get_metric_history(run.info.run_id, "examples_per_sec"), key=lambda m: m.step).value


def all_reduce_costs(names: list[str], nproc: int, steps: int) -> dict[str, dict[str, float]]:
    """Per architecture: seconds of the gradient all-reduce alone, and of a DDP step with and without it."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        threads = str(max(1, report.machine()["cpu_count"] // nproc))
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                               str(nproc), __file__, "--all-reduce-worker", ",".join(names), "--steps", str(steps),
                               "--json", out.name],
                              env={**os.environ, "OMP_NUM_THREADS": threads}, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"the all-reduce measurement failed:\n{(done.stdout + done.stderr)[-3000:]}")
        return json.loads(Path(out.name).read_text())


def median_seconds(work: Callable[[], None], barrier: Callable[[], None], steps: int) -> float:
    times = []
    for attempt in range(3 + steps):
        barrier()
        start = time.perf_counter()
        work()
        if attempt >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def all_reduce_worker(names: list[str], steps: int, out: str) -> None:
    """One rank of the all-reduce measurement (run by torchrun)."""
    import contextlib

    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    from convzoo.runs.settings import resolve_config
    from convzoo.training.devices import resolve_precision
    from convzoo.registry.plugins import get_registry
    from convzoo.training.trainer import autocast, make_optimizer

    dist.init_process_group("gloo")
    costs = {}
    for name in names:
        config, arch, data = resolve_config(get_registry(), name, recipe="quick")
        torch.manual_seed(0)
        model = arch.create(data.in_channels, data.num_classes, input_size=config.hyper.resize, **config.hyper.options)
        model = model.to(memory_format=torch.channels_last)
        parallel = torch.nn.parallel.DistributedDataParallel(model)
        optimizer = make_optimizer(model, config.hyper)
        precision = resolve_precision("auto", torch.device("cpu"))
        batch = config.hyper.batch_size // dist.get_world_size()
        images = torch.rand(batch, data.in_channels, config.hyper.resize, config.hyper.resize)
        images = images.contiguous(memory_format=torch.channels_last)
        labels = torch.randint(0, data.num_classes, (batch,))

        def step(sync: bool) -> None:
            with contextlib.nullcontext() if sync else parallel.no_sync():
                with autocast(torch.device("cpu"), precision):
                    loss = F.cross_entropy(parallel(images), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            optimizer.step()

        buffer = torch.ones(sum(p.numel() for p in model.parameters()))
        costs[name] = {"alone_s": median_seconds(lambda: dist.all_reduce(buffer), dist.barrier, steps),
                       "step_s": median_seconds(lambda: step(True), dist.barrier, steps),
                       "step_without_sync_s": median_seconds(lambda: step(False), dist.barrier, steps)}
    if dist.get_rank() == 0:
        Path(out).write_text(json.dumps(costs))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", help="Architecture (repeatable; default: the four seed ones).")
    parser.add_argument("--nproc", type=int, default=2, help="Processes of the data-parallel layout (default: 2).")
    parser.add_argument("--batches", type=int, default=20, help="Training batches per epoch (default: 20).")
    parser.add_argument("--repeats", type=int, default=2, help="Rounds of both layouts (default: 2).")
    parser.add_argument("--steps", type=int, default=10, help="Timed calls per all-reduce figure (default: 10).")
    parser.add_argument("--json", type=Path, default=report.RESULTS_DIR / "data_parallel.json")
    parser.add_argument("--all-reduce-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.all_reduce_worker:
        return all_reduce_worker(args.all_reduce_worker.split(","), args.steps, str(args.json))
    report.require_at_least_one(parser, args, "nproc", "batches", "repeats", "steps")
    if args.nproc < 2:
        parser.error(f"--nproc must be at least 2 (it is compared with 1 process), got {args.nproc}")
    names = report.architectures(parser, args.arch, "quick")
    info = report.machine()
    setups = {name: quick_setup(name) for name in names}
    costs = all_reduce_costs(names, args.nproc, args.steps)
    rows, results = [], []
    with tempfile.TemporaryDirectory(prefix="convzoo-bench-dp-") as tmp:
        for name in names:
            rates = {1: [], args.nproc: []}
            for round_number in range(args.repeats):
                order = (1, args.nproc) if round_number % 2 == 0 else (args.nproc, 1)
                for nproc in order:
                    folder = Path(tmp) / f"{name}-{nproc}-{round_number}"
                    folder.mkdir()
                    rates[nproc].append(examples_per_sec(name, nproc, args.batches, folder))
            size, batch, params = setups[name]
            one, many = statistics.median(rates[1]), statistics.median(rates[args.nproc])
            cost = {key: value * 1000 for key, value in costs[name].items()}
            in_step = cost["step_s"] - cost["step_without_sync_s"]
            results.append({"arch": name, "input": size, "batch": batch, "params": params,
                            "one_process": round(one, 1), "data_parallel": round(many, 1),
                            "ratio": round(many / one, 3), "all_reduce_ms": round(cost["alone_s"], 2),
                            "step_ms": round(cost["step_s"], 2), "step_without_sync_ms": round(cost["step_without_sync_s"], 2),
                            "sync_share": round(in_step / cost["step_s"], 3),
                            "rounds": {str(k): v for k, v in rates.items()}})
            rows.append([name, f"{size}, {batch}", f"{params:,}", f"{one:.1f}", f"{many:.1f}", f"{many / one:.2f}",
                         f"{cost['alone_s']:.1f}", f"{cost['step_s']:.1f} / {cost['step_without_sync_s']:.1f} "
                         f"({100 * in_step / cost['step_s']:.0f} %)"])
    cores = info["cpu_count"]
    report.show(f"Training examples/sec at the quick recipes: 1 process x {cores} threads against {args.nproc} "
                f"processes x {max(1, cores // args.nproc)} (gloo); all-reduce of the gradients per step",
                ["arch", "input, batch", "params", f"1 x {cores}", f"{args.nproc} x {max(1, cores // args.nproc)}",
                 "ratio", "all-reduce ms", "DDP step ms with / without sync (sync's share)"], rows, info)
    print(f"\nwrote {report.save(args.json, {'machine': info, 'nproc': args.nproc, 'results': results})}")


if __name__ == "__main__":
    main()
