"""What this machine demonstrably computes: the instruction set oneDNN dispatches to, and the peak FLOP/s per device
and precision that MFU divides by, measured by a short matrix-product and convolution microbenchmark.

A peak is measured once per machine and cached (``CONVZOO_CACHE_DIR``, default ``~/.cache/convzoo``), keyed by the
CPU or GPU, torch's thread count, the ``ONEDNN_MAX_CPU_ISA`` cap and torch's version: change any and it is measured
again. Measure on an otherwise idle machine: ``convzoo peak --remeasure``.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

CACHE_FILE = "peak.json"
SECONDS_PER_KERNEL = 0.5


@dataclass(frozen=True)
class Peak:
    """The best FLOP/s one process reached on ``device`` in ``precision``, and the kernel that reached it."""

    device: str
    precision: str
    isa: str
    flops_per_sec: float
    kernel: str


def cache_dir() -> Path:
    """Where measured peaks are kept between runs."""
    if os.environ.get("CONVZOO_CACHE_DIR"):
        return Path(os.environ["CONVZOO_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convzoo"


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (or what the platform module knows)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


@functools.cache
def onednn_isa() -> str:
    """The instruction set oneDNN dispatches to, as its verbose header names it (``Intel AVX2``, ``Intel AVX-512 with
    Intel DL Boost and bfloat16 support``...): the CPU's, unless ``ONEDNN_MAX_CPU_ISA`` caps it. ``unknown`` if this
    process printed that header before (``ONEDNN_VERBOSE`` set)."""
    with native_stdout() as printed, torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        # channels_last sends even a tiny convolution to oneDNN, whose first verbose line is the header
        F.conv2d(torch.ones(2, 16, 8, 8).to(memory_format=torch.channels_last), torch.ones(16, 16, 3, 3))
    for line in "".join(printed).splitlines():
        if ",isa:" in line:
            return line.split(",isa:", 1)[1].strip()
    return "unknown"


@contextlib.contextmanager
def native_stdout() -> Iterator[list[str]]:
    """Collects what native code prints to file descriptor 1 inside the block (oneDNN writes there): the list it
    yields holds the text once the block has ended."""
    libc = ctypes.CDLL(None)
    printed: list[str] = []
    with tempfile.TemporaryFile(mode="w+") as captured:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(captured.fileno(), 1)
        try:
            yield printed
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
            captured.seek(0)
            printed.append(captured.read())


def cache_key(device: torch.device) -> str:
    """What a measured peak depends on besides the precision."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "") if device.type == "cpu" else ""
    threads = torch.get_num_threads() if device.type == "cpu" else 1
    return f"{device.type}|{device_name(device)}|threads={threads}|isa_cap={cap}|torch={torch.__version__}"


def peak(device: torch.device, precision: str, remeasure: bool = False,
         on_measure: Callable[[str], None] = lambda line: None) -> Peak:
    """This machine's peak for one process on ``device`` in ``precision``: cached, else measured now (about a second;
    ``on_measure`` is told first). Processes that ask at once measure one after the other, never side by side."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    key = f"{cache_key(device)}|{precision}"
    with open(folder / f"{CACHE_FILE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = read_cache(folder / CACHE_FILE)
        if key in cached and not remeasure:
            return Peak(**cached[key])
        on_measure(f"measuring this machine's peak {precision} FLOP/s on {device.type} for MFU (once; cached in "
                   f"{folder / CACHE_FILE})")
        measured = measure(device, precision)
        write_cache(folder / CACHE_FILE, {**read_cache(folder / CACHE_FILE), key: asdict(measured)})
    return measured


def read_cache(path: Path) -> dict:
    """The cached peaks; a missing or corrupt file is an empty cache (it is measured again)."""
    try:
        values = json.loads(path.read_text())
        return values if isinstance(values, dict) else {}
    except (OSError, ValueError):
        return {}


def write_cache(path: Path, values: dict) -> None:
    """Replace the cache file whole: a reader never sees half of it."""
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(values, indent=1, sort_keys=True))
    os.replace(temporary, path)


def measure(device: torch.device, precision: str) -> Peak:
    """The best of two kernels convolutional networks spend their time in: a square matrix product and a 5x5
    convolution (AlexNet's second layer, channels_last), each repeated for a fraction of a second, best call kept."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    side = 4096 if device.type == "cuda" else 512  # 512 already reaches a CPU's FMA limit; a GPU needs more work
    batch = 64 if device.type == "cuda" else 8
    a, b = (torch.randn(side, side, device=device, dtype=dtype) for _ in range(2))
    images = torch.randn(batch, 96, 27, 27, device=device, dtype=dtype).to(memory_format=torch.channels_last)
    weight = torch.randn(256, 96, 5, 5, device=device, dtype=dtype).to(memory_format=torch.channels_last)
    rates = {
        f"matmul {side}x{side}": best_rate(lambda: a @ b, 2 * side ** 3, device),
        f"conv 5x5 96->256 27x27 batch {batch}": best_rate(lambda: F.conv2d(images, weight, padding=2),
                                                          2 * batch * 256 * 27 * 27 * 96 * 25, device),
    }
    kernel = max(rates, key=rates.get)
    isa = onednn_isa() if device.type == "cpu" else device_name(device)
    return Peak(device.type, precision, isa, rates[kernel], kernel)


def best_rate(kernel: Callable[[], torch.Tensor], flops: int, device: torch.device) -> float:
    """FLOP/s of ``kernel``'s fastest call after a warm-up, over about ``SECONDS_PER_KERNEL`` (two calls at least)."""
    def timed() -> float:
        start = time.perf_counter()
        kernel()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    timed()
    best, spent, calls = float("inf"), 0.0, 0
    while spent < SECONDS_PER_KERNEL or calls < 2:
        seconds = timed()
        best, spent, calls = min(best, seconds), spent + seconds, calls + 1
    return flops / best
