"""Training examples/sec at each architecture's seed recipe: the notebook's loop, a bare loop, and the convzoo trainer.

    python benchmarks/train_throughput.py                 # the four seed architectures, about 5 minutes on 2 cores
    python benchmarks/train_throughput.py --steps 50      # longer, steadier figures
    python benchmarks/train_throughput.py --compile       # also the bare loop under torch.compile

baseline: torchvision FashionMNIST with Resize + ToTensor per sample, DataLoader(num_workers=2, shuffle=True), fp32,
          and d2l's train_ch5 step (forward, loss, backward, Adam, loss and accuracy read back every step).
bare:     convzoo's model, batches, optimizer and defaults for the device, in a minimal hand-written loop.
convzoo:  a real tracked run of the convzoo trainer (hooks, MLflow, progress bar) into a temporary store, one epoch
          of --steps steps per block, as the trainer itself reports it; its first epoch is the warm-up.
Each loop runs in a process of its own, so nothing one sets up speeds up or slows down another. After every loop has
warmed up, they take turns: each round times one block of --steps steps of each loop in turn, while the others wait,
so a round's ratios compare loops measured seconds apart. Figures are medians over --repeats rounds.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import mlflow
import torch
import torch.nn.functional as F

import report
from convzoo import hookimpl
from convzoo.config import TrainConfig
from convzoo.runs.settings import resolve_config
from convzoo.training.devices import resolve_device
from convzoo.registry.plugins import get_plugin_manager, get_registry
from convzoo.registry.catalogue import Architecture, Dataset, resolve
from convzoo.runs.training_run import train
from convzoo.training.setup import build_model, make_loaders, prepare_device
from convzoo.tables import format_table
from convzoo.training.peak import peak
from convzoo.training.trainer import autocast, make_optimizer
from convzoo.training.utilization import Utilization, counted_flops

LOOPS = ("baseline", "bare", "convzoo")
TARGETS = {"convzoo_over_baseline": 2.0, "convzoo_over_bare": 0.97}
TRAIN_EXAMPLES = 60_000


def seed_run(arch: str, args: argparse.Namespace) -> tuple[TrainConfig, Architecture, Dataset]:
    """The seed recipe of ``arch``: a warm-up epoch and one epoch per block of ``args.steps`` steps, no export."""
    return resolve_config(get_registry(), arch, recipe="seed", overrides={"epochs": args.repeats + 1},
                          device=args.device, limit_train_batches=args.steps, limit_eval_batches=1, export=False,
                          data_dir=args.data_dir)


def say(message: dict) -> None:
    """Child to parent: one JSON line on stdout."""
    print(json.dumps(message), flush=True)


def wait_for_turn() -> float:
    """Child: block until the parent says go; the seconds waited."""
    start = time.perf_counter()
    if sys.stdin.readline().strip() != "go":
        sys.exit(0)  # the parent is gone or done
    return time.perf_counter() - start


def serve_blocks(steps: Iterator[None], batch_size: int, args: argparse.Namespace, device: torch.device) -> None:
    """Child: warm up, say ready, then time one block of ``args.steps`` steps per turn the parent gives."""
    start = time.perf_counter()
    for _ in range(args.warmup):
        next(steps)
    synchronize(device)
    say({"ready": True, "warmup_seconds": time.perf_counter() - start})
    for _ in range(args.repeats):
        wait_for_turn()
        start = time.perf_counter()
        for _ in range(args.steps):
            next(steps)
        synchronize(device)
        say({"rate": batch_size * args.steps / (time.perf_counter() - start)})
    sys.stdin.read()  # tear down only when the parent closes us, not during another loop's block


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def torchvision_root(data_dir: str | None, folder: Path) -> Path:
    """Un-gzipped, checksum-verified copies of the data set where torchvision's ``FashionMNIST`` looks for them."""
    from convzoo.data.fashion_mnist import FILES, locate
    from convzoo.data.idx import read_verified

    raw = folder / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, path in locate(data_dir).items():
        (raw / name).write_bytes(read_verified(path, FILES[name]))
    return folder


def baseline_steps(config: TrainConfig, arch: Architecture, dataset: Dataset, root: Path, device: torch.device
                   ) -> Iterator[None]:
    """The notebook's pipeline and ``train_ch5`` loop, one step per ``next``."""
    import torchvision
    from torch.utils.data import DataLoader
    from torchvision import transforms

    transform = transforms.Compose([transforms.Resize(config.hyper.resize), transforms.ToTensor()])
    mnist_train = torchvision.datasets.FashionMNIST(str(root), train=True, transform=transform, download=False)
    loader = DataLoader(mnist_train, batch_size=config.hyper.batch_size, shuffle=True, num_workers=2)
    net = build_model(dataclasses.replace(config, channels_last=False), arch, dataset, device)
    loss = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=config.hyper.lr)
    train_l_sum, train_acc_sum, n = 0.0, 0.0, 0
    while True:
        for X, y in loader:
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            l = loss(y_hat, y)
            optimizer.zero_grad()
            l.backward()
            optimizer.step()
            train_l_sum += l.cpu().item()
            train_acc_sum += (y_hat.argmax(dim=1) == y).sum().cpu().item()
            n += y.shape[0]
            yield


def bare_steps(config: TrainConfig, arch: Architecture, dataset: Dataset, compile_model: bool = False
               ) -> Iterator[None]:
    """convzoo's device set-up, model, batches and optimizer, and nothing else, one step per ``next``."""
    device, precision = prepare_device(config)
    model = build_model(config, arch, dataset, device)
    optimizer = make_optimizer(model, config.hyper)
    step_model = torch.compile(model) if compile_model else model
    loader = make_loaders(config, resolve(dataset.load)(config.data_dir), device)[0]
    while True:
        for images, labels in loader:
            with autocast(device, precision):
                loss = F.cross_entropy(step_model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            yield


class Pacer:
    """An observer plugin that hands each epoch's figure to the parent and starts the next epoch on its turn."""

    def __init__(self, repeats: int) -> None:
        self.repeats, self.waited = repeats, 0.0

    @hookimpl
    def on_epoch_end(self, run, epoch: int, metrics: dict[str, float]) -> None:
        if epoch == 1:
            say({"ready": True, "warmup_seconds": metrics["epoch_time"]})
        else:
            say({"rate": metrics["examples_per_sec"]})
        if epoch <= self.repeats:
            self.waited += wait_for_turn()


def serve_convzoo_epochs(config: TrainConfig, arch: Architecture, dataset: Dataset) -> None:
    """Child: a real tracked run into a temporary MLflow store, paced one epoch per turn; then its fixed cost."""
    pacer = Pacer(config.hyper.epochs - 1)
    pm = get_plugin_manager()
    pm.register(pacer)
    with tempfile.TemporaryDirectory() as store:
        mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
        mlflow.create_experiment("benchmark", artifact_location=Path(store, "artifacts").as_uri())
        start = time.perf_counter()
        result = train(config, arch, dataset, experiment="benchmark", echo=lambda line: None, pm=pm)
        wall = time.perf_counter() - start
    say({"fixed_seconds": wall - pacer.waited - sum(epoch.epoch_time for epoch in result.history),
         "precision": result.precision})


def serve_loop(loop: str, arch: str, args: argparse.Namespace) -> None:
    """Child: set up one loop and serve its blocks to the parent."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    config, architecture, dataset = seed_run(arch, args)
    if loop == "convzoo":
        serve_convzoo_epochs(config, architecture, dataset)
        return
    device = resolve_device(args.device)
    if loop == "baseline":
        steps = baseline_steps(config, architecture, dataset, Path(args.torchvision_root), device)
    else:
        steps = bare_steps(config, architecture, dataset, compile_model=loop == "compiled")
    serve_blocks(steps, config.hyper.batch_size, args, device)


class Child:
    """One loop in its own process, spoken to line by line."""

    def __init__(self, loop: str, arch: str, args: argparse.Namespace, root: Path, log: Path) -> None:
        command = [sys.executable, __file__, "--serve", loop, "--arch", arch, "--torchvision-root", str(root),
                   "--steps", str(args.steps), "--warmup", str(args.warmup), "--repeats", str(args.repeats),
                   "--device", args.device, *(["--data-dir", args.data_dir] if args.data_dir else [])]
        # a compile is timed cold, as a user's first seed run pays it
        env = {**os.environ, "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"} if loop == "compiled" else None
        self.loop, self.arch, self.log, self.stderr = loop, arch, log, log.open("w")
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.stderr, text=True, env=env)

    def read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            sys.exit(f"error: the {self.loop} loop of {self.arch} failed:\n{self.log.read_text().strip()}")
        return json.loads(line)

    def turn(self) -> float:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return self.read()["rate"]

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except BrokenPipeError:  # it has already ended
            pass
        self.process.wait()
        self.stderr.close()


def measure(arch: str, loops: list[str], args: argparse.Namespace, root: Path, folder: Path) -> dict:
    """Start each loop and let it warm up alone, then time them in turns: ``args.repeats`` rounds."""
    children, warmups = {}, {}
    try:
        for loop in loops:
            children[loop] = Child(loop, arch, args, root, folder / f"{arch}-{loop}.log")
            warmups[loop] = children[loop].read()["warmup_seconds"]
        rounds = [{loop: children[loop].turn() for loop in loops} for _ in range(args.repeats)]
        convzoo = children["convzoo"].read()
    finally:
        for child in children.values():
            child.close()
    return summarise(arch, rounds, warmups, convzoo, args)


def summarise(arch: str, rounds: list[dict[str, float]], warmups: dict[str, float], convzoo: dict,
              args: argparse.Namespace) -> dict:
    """One row: each loop's median examples/sec and block range, and the medians of each round's ratios."""
    config, architecture, dataset = seed_run(arch, args)
    flops = counted_flops(architecture, dataset, config.hyper.resize, config.hyper.options)
    machine_peak = peak(resolve_device(args.device), convzoo["precision"], on_measure=print)
    row = {"arch": arch, "input_size": config.hyper.resize, "batch_size": config.hyper.batch_size,
           "precision": convzoo["precision"], "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats,
           "convzoo_fixed_seconds": convzoo["fixed_seconds"], "rounds": rounds, "flops_per_example": flops,
           "peak_flops_per_sec": machine_peak.flops_per_sec, "isa": machine_peak.isa}
    for loop in rounds[0]:
        row[loop] = statistics.median(one[loop] for one in rounds)
    utilization = Utilization(flops, machine_peak)
    row.update({f"{loop}_mfu": utilization.mfu(row[loop]) for loop in rounds[0]})
    for name, other in (("convzoo_over_baseline", "baseline"), ("convzoo_over_bare", "bare")):
        ratios = [one["convzoo"] / one[other] for one in rounds]
        row[name], row[f"{name}_range"] = statistics.median(ratios), [min(ratios), max(ratios)]
    if "compiled" in rounds[0]:
        row.update(compile_verdict(config, architecture, row, warmups["compiled"], args.warmup))
    return row


def compile_verdict(config: TrainConfig, arch: Architecture, row: dict, warmup_seconds: float,
                    warmup_steps: int) -> dict:
    """torch.compile's one-off cost, and what it would save (negative: lose) over a whole seed-recipe run."""
    batch = config.hyper.batch_size
    compile_seconds = warmup_seconds - warmup_steps * batch / row["bare"]
    seed = arch.recipes["seed"]
    seed_steps = seed.epochs * math.ceil(TRAIN_EXAMPLES / seed.batch_size)
    saved = seed_steps * (batch / row["bare"] - batch / row["compiled"]) - compile_seconds
    return {"compile_seconds": compile_seconds, "compile_net_seconds_saved_in_seed_run": saved}


def gigaflops(flops: int | None) -> str:
    return "?" if flops is None else f"{flops / 1e9:.2f}"


def percent(fraction: float | None) -> str:
    return "?" if fraction is None else f"{fraction:.0%}"


def spread(row: dict, loop: str) -> str:
    """A loop's median and, after several rounds, its range: ``85.1 (83-86)``."""
    blocks = [one[loop] for one in row["rounds"]]
    return f"{row[loop]:.1f}" + (f" ({min(blocks):.0f}-{max(blocks):.0f})" if len(blocks) > 1 else "")


def ratio(row: dict, name: str, digits: int) -> str:
    """A median ratio and, after several rounds, its range: ``2.06 (1.98-2.11)``."""
    low, high = row[f"{name}_range"]
    return f"{row[name]:.{digits}f}" + (f" ({low:.{digits}f}-{high:.{digits}f})" if row["repeats"] > 1 else "")


def show(rows: list[dict], args: argparse.Namespace, device: torch.device, info: dict) -> None:
    headers = ["arch", "input", "batch", "precision", *(f"{loop} ex/s" for loop in LOOPS), "convzoo/baseline",
               "convzoo/bare", "GFLOP/ex", "convzoo MFU", "run fixed s"]
    table = [[r["arch"], r["input_size"], r["batch_size"], r["precision"], *(spread(r, loop) for loop in LOOPS),
              ratio(r, "convzoo_over_baseline", 2), ratio(r, "convzoo_over_bare", 3), gigaflops(r["flops_per_example"]),
              percent(r["convzoo_mfu"]), f"{r['convzoo_fixed_seconds']:.1f}"] for r in rows]
    report.show(f"Training throughput, seed recipes on {device}: median (range) of {args.repeats} rounds of one "
                f"{args.steps}-step block per loop", headers, table, info)
    peaks = sorted({(r["precision"], r["peak_flops_per_sec"], r["isa"]) for r in rows})
    print("MFU: the network's FLOPs per training example x examples/sec, over this machine's measured peak: "
          + "; ".join(f"{precision} {flops / 1e9:.0f} GFLOP/s ({isa})" for precision, flops, isa in peaks))
    if args.compile:
        compiled = [[r["arch"], spread(r, "bare"), spread(r, "compiled"), f"{r['compiled'] / r['bare']:.2f}",
                     f"{r['compile_seconds']:.0f}", f"{r['compile_net_seconds_saved_in_seed_run']:.0f}"] for r in rows]
        print("\n" + format_table(["arch", "eager ex/s", "compiled ex/s", "compiled/eager", "compile s",
                                   "seconds saved in a seed run"], compiled))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", action="append", help="architecture (repeatable); default: the four seed ones")
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed block (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of timed blocks, medians kept (default 3)")
    parser.add_argument("--compile", action="store_true", help="also time the bare loop under torch.compile")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files (default: where convzoo looks)")
    parser.add_argument("--json", type=Path, default=report.RESULTS_DIR / "train_throughput.json")
    parser.add_argument("--serve", choices=[*LOOPS, "compiled"], help=argparse.SUPPRESS)
    parser.add_argument("--torchvision-root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    report.require_at_least_one(parser, args, "steps", "warmup", "repeats")
    args.arch = report.architectures(parser, args.arch, "seed")
    return args


def main() -> None:
    args = parse_args()
    if args.serve:
        return serve_loop(args.serve, args.arch[0], args)
    device = resolve_device(args.device)
    info = report.machine()
    loops = ["baseline", "bare", *(["compiled"] if args.compile else []), "convzoo"]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = torchvision_root(args.data_dir, Path(folder))
        for arch in args.arch:
            rows.append(measure(arch, loops, args, root, Path(folder)))
            print(f"{arch}: " + ", ".join(f"{loop} {rows[-1][loop]:.1f}" for loop in loops) + " examples/sec",
                  flush=True)
    show(rows, args, device, info)
    met = {name: all(r[name] >= goal for r in rows) for name, goal in TARGETS.items()}
    print("\ntargets: " + ", ".join(f"{name} >= {goal}: {'met' if met[name] else 'NOT met'}"
                                    for name, goal in TARGETS.items()))
    path = report.save(args.json, {"benchmark": "train_throughput", "machine": info, "device": str(device),
                                   "targets": TARGETS, "targets_met": met, "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
