"""Inference speed: PyTorch eager against onnxruntime fp32 and static int8, batch-1 latency and batch-64 throughput.

    python benchmarks/inference.py                   # the four seed architectures at their seed input sizes
    python benchmarks/inference.py --recipe quick    # at the input sizes a CPU run trains

Each network is built with its default initialisation (weights do not change the speed), exported to ONNX as a
trained run exports it, and quantized to int8 with calibration on real Fashion-MNIST training images.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import onnxruntime
import torch

import report
from convzoo.runs.settings import resolve_config
from convzoo.deploy.export import export_onnx, measure_speed, onnx_runner, torch_runner
from convzoo.registry.plugins import get_registry
from convzoo.deploy.quantize import quantize_int8
from convzoo.registry.catalogue import resolve
from convzoo.training.setup import build_model

ENGINES = ("torch", "onnx", "int8")


def measure(arch: str, args: argparse.Namespace, train_images: torch.Tensor, folder: Path) -> dict:
    """One architecture's latencies, throughputs and speed-ups over PyTorch eager."""
    registry = get_registry()
    config, architecture, dataset = resolve_config(registry, arch, recipe=args.recipe)
    model = build_model(config, architecture, dataset, torch.device("cpu")).eval()
    image_shape = tuple(train_images.shape[1:])
    fp32 = export_onnx(model, config.hyper.resize, image_shape, folder / f"{arch}.onnx")
    int8 = quantize_int8(fp32, folder / f"{arch}-int8.onnx", train_images)
    runners = {"torch": torch_runner(model, config.hyper.resize), "onnx": onnx_runner(fp32), "int8": onnx_runner(int8)}
    row = {"arch": arch, "input_size": config.hyper.resize}
    for engine, run in runners.items():
        row.update(measure_speed(engine, run, image_shape, repeats=args.repeats))
    for engine in ("onnx", "int8"):
        row[f"{engine}_latency_speedup"] = row["torch_latency_ms_b1"] / row[f"{engine}_latency_ms_b1"]
        row[f"{engine}_throughput_speedup"] = row[f"{engine}_images_per_sec_b64"] / row["torch_images_per_sec_b64"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", action="append", help="architecture (repeatable); default: the four seed ones")
    parser.add_argument("--recipe", default="seed", choices=["seed", "quick"],
                        help="whose input sizes to use (default: seed)")
    parser.add_argument("--repeats", type=int, default=10, help="timed batch-1 calls; batch 64 gets a third")
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files (default: where convzoo looks)")
    parser.add_argument("--json", type=Path, default=report.RESULTS_DIR / "inference.json")
    args = parser.parse_args()
    report.require_at_least_one(parser, args, "repeats")
    args.arch = report.architectures(parser, args.arch, args.recipe)
    logging.getLogger("onnxruntime").setLevel(logging.WARNING)
    info = {**report.machine(), "onnxruntime": onnxruntime.__version__}
    train_images = resolve(get_registry().get_dataset("fashion-mnist").load)(args.data_dir).train_images
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for arch in args.arch:
            rows.append(measure(arch, args, train_images, Path(folder)))
            print(f"{arch}: batch-1 latency torch {rows[-1]['torch_latency_ms_b1']:.1f} ms, "
                  f"onnx {rows[-1]['onnx_latency_ms_b1']:.1f} ms, int8 {rows[-1]['int8_latency_ms_b1']:.1f} ms",
                  flush=True)
    headers = ["arch", "input", *(f"{e} b1 ms" for e in ENGINES), *(f"{e} b64 img/s" for e in ENGINES),
               "onnx/torch b1", "onnx/torch b64", "int8/torch b1", "int8/torch b64"]
    table = [[r["arch"], r["input_size"], *(f"{r[f'{e}_latency_ms_b1']:.2f}" for e in ENGINES),
              *(f"{r[f'{e}_images_per_sec_b64']:.0f}" for e in ENGINES),
              *(f"{r[f'{e}_{kind}_speedup']:.2f}" for e in ("onnx", "int8") for kind in ("latency", "throughput"))]
             for r in rows]
    report.show(f"Inference on the CPU, {args.recipe} input sizes (speed-ups: latency and throughput over PyTorch "
                f"eager fp32)", headers, table, info)
    path = report.save(args.json, {"benchmark": "inference", "machine": info, "recipe": args.recipe, "results": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
