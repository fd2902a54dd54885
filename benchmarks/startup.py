"""Command-line start-up: `convzoo --help`, `convzoo plugins` and refusing a misspelt architecture, against
`python -c "import torch"`, side by side.

    python benchmarks/startup.py

None of the three imports torch (nor mlflow); the ratio shows what that saves on this machine.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import report

# name: (command, the exit code it must end with)
COMMANDS = {
    "convzoo --help": (["{convzoo}", "--help"], 0),
    "convzoo plugins": (["{convzoo}", "plugins"], 0),
    "convzoo train resnet (refused)": (["{convzoo}", "train", "resnet"], 1),
    "python -c 'import torch'": ([sys.executable, "-c", "import torch"], 0),
}


def wall_seconds(command: list[str], exit_code: int, repeats: int) -> float:
    """Median wall time of ``command`` after one untimed run (which warms the file cache)."""
    timings = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        timings.append(time.perf_counter() - start)
        if done.returncode != exit_code:
            sys.exit(f"error: {' '.join(command)} exited {done.returncode}, not {exit_code}: {done.stderr.strip()}")
    return statistics.median(timings[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each command (default 5)")
    parser.add_argument("--json", type=Path, default=report.RESULTS_DIR / "startup.json")
    args = parser.parse_args()
    report.require_at_least_one(parser, args, "repeats")
    convzoo = shutil.which("convzoo", path=str(Path(sys.executable).parent)) or shutil.which("convzoo")
    if convzoo is None:
        sys.exit("error: the convzoo command is not installed next to this Python or on PATH; run `make install`")
    seconds = {name: wall_seconds([part.format(convzoo=convzoo) for part in command], exit_code, args.repeats)
               for name, (command, exit_code) in COMMANDS.items()}
    torch_seconds = seconds["python -c 'import torch'"]
    rows = [[name, f"{value:.3f}", f"{value / torch_seconds:.2f}"] for name, value in seconds.items()]
    info = report.machine()
    report.show(f"Start-up, median wall time of {args.repeats} runs", ["command", "seconds", "/ import torch"], rows,
                info)
    path = report.save(args.json, {"benchmark": "startup", "machine": info, "seconds": seconds})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
