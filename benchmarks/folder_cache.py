"""The folder data set's cache: a training process's anonymous memory (RssAnon) on a small and a 10x larger folder of
generated PNGs, and the start-up time of the first run (which decodes every image) against the second (which reads
the cache), side by side.

    python benchmarks/folder_cache.py                      # 10,000 and 100,000 images of 32x32
    python benchmarks/folder_cache.py --sizes 2000,20000   # smaller

The images are read through a memory map, so the training process's own memory should not grow with the folder:
the file's pages are the page cache's (RssFile), not the process's (RssAnon).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import report

CLASSES = ("red", "green", "blue", "grey")
SPLITS = {"train": 0.9, "test": 0.1}  # no val/: the run holds out its validation images from train/
READY_LINE = "recipe auto -> "  # printed once the data has loaded and passed its checks


def write_images(job: tuple[Path, int, int, int]) -> None:
    """``count`` PNGs of class ``label`` (a noisy colour field) into ``folder``."""
    import numpy as np
    from PIL import Image

    folder, label, count, size = job
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(label * 7919 + count)
    for index in range(count):
        pixels = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        if label < 3:
            pixels[..., label] += 150
        else:
            pixels += 90
        Image.fromarray(pixels).save(folder / f"{index}.png", compress_level=1)


def generate(root: Path, images: int, size: int) -> None:
    """``images`` PNGs in ``root/{train,test}/<class>/``, split 90/10."""
    jobs = [(root / split / name, label, round(images * share / len(CLASSES)), size)
            for split, share in SPLITS.items() for label, name in enumerate(CLASSES)]
    with ProcessPoolExecutor() as pool:
        list(pool.map(write_images, jobs))


def train_once(root: Path, env: dict[str, str], batches: int) -> dict[str, float]:
    """One short run on ``root``: seconds until its data is loaded and checked, and its peak RssAnon in MiB."""
    command = [sys.executable, "-m", "convzoo", "train", "vgg", "--dataset", "folder", "--data-dir", str(root),
               "--resize", "32", "--option", "ratio=8", "--epochs", "1", "--limit-train-batches", str(batches),
               "--limit-eval-batches", "5", "--export", "false"]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready, peak, output = None, 0, []
    os.set_blocking(process.stdout.fileno(), False)
    while process.poll() is None:
        peak = max(peak, rss_anon_kib(process.pid))
        for line in iter(process.stdout.readline, ""):
            output.append(line)
            if ready is None and line.startswith(READY_LINE):
                ready = time.perf_counter() - start
        time.sleep(0.05)
    output.append(process.stdout.read() or "")
    if process.returncode:
        sys.exit(f"error: the training run failed:\n{''.join(output)[-2000:]}")
    return {"startup_s": ready, "peak_rss_anon_mib": peak / 1024}


def rss_anon_kib(pid: int) -> int:
    """The process's anonymous resident memory (``RssAnon`` of /proc/PID/status), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="image counts, comma-separated (default 10000,100000)")
    parser.add_argument("--image-size", type=int, default=32, help="side of the generated images (default 32)")
    parser.add_argument("--batches", type=int, default=20, help="training batches per run (default 20)")
    parser.add_argument("--json", type=Path, default=report.RESULTS_DIR / "folder_cache.json")
    args = parser.parse_args()
    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes {args.sizes!r} is not a comma-separated list of image counts")
    if not sizes or min(sizes) < 40:
        parser.error(f"--sizes {args.sizes!r}: each count must be at least 40 (ten per class and split)")
    report.require_at_least_one(parser, args, "image_size", "batches")
    work = Path(tempfile.mkdtemp(prefix="convzoo-bench-folder-"))
    env = {**os.environ, "CONVZOO_CACHE_DIR": str(work / "cache"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    results = {}
    try:
        for size in sizes:
            root = work / f"images-{size}"
            started = time.perf_counter()
            generate(root, size, args.image_size)
            print(f"generated {size:,} PNGs in {time.perf_counter() - started:.0f} s", flush=True)
            first, second = train_once(root, env, args.batches), train_once(root, env, args.batches)
            cache = sum(path.stat().st_size for path in (work / "cache").glob("folder-*.u8"))  # this folder's only
            results[size] = {"first": first, "second": second, "cache_mib": cache / 2**20}
            shutil.rmtree(root)
            for path in (work / "cache").glob("folder-*"):
                path.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    smallest = results[sizes[0]]["second"]["peak_rss_anon_mib"]
    rows = [[f"{size:,}", f"{result['cache_mib']:.0f}", f"{result['first']['startup_s']:.1f}",
             f"{result['second']['startup_s']:.1f}", f"{result['second']['peak_rss_anon_mib']:.0f}",
             f"{result['second']['peak_rss_anon_mib'] / smallest:.2f}"] for size, result in results.items()]
    info = report.machine()
    report.show("Folder data set: start-up (s) of the first run (decoding) and the second (cache), peak RssAnon of "
                "the second", ["images", "cache MiB", "first start s", "second start s", "RssAnon MiB",
                               f"/ {sizes[0]:,}"], rows, info)
    path = report.save(args.json, {"benchmark": "folder_cache", "machine": info, "image_size": args.image_size,
                                   "results": {str(size): result for size, result in results.items()}})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
