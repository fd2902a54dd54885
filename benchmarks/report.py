"""What every benchmark prints and saves: the machine it ran on, a table, and a JSON file. Its argument checks need
no torch (a usage error comes before the heavy imports of a benchmark that imports only this module at its top)."""
from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any, Sequence

import convzoo
from convzoo.runs.settings import choose_recipe
from convzoo.errors import ConvzooError
from convzoo.registry.plugins import get_registry
from convzoo.tables import format_table

RESULTS_DIR = Path(__file__).parent / "results"
SEED_ARCHS = ("alexnet", "vgg", "nin", "googlenet")


def architectures(parser: argparse.ArgumentParser, requested: Sequence[str] | None, recipe: str) -> list[str]:
    """The architectures asked for (default: the four seed ones); an unknown one, or one without ``recipe``, is a
    usage error."""
    for name in requested or ():
        try:
            choose_recipe(get_registry().get_architecture(name), recipe, on_gpu=False)
        except ConvzooError as error:
            parser.error(str(error))
    return list(requested or SEED_ARCHS)


def require_at_least_one(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    """A usage error for the first of the options ``names`` whose value is below 1."""
    for name in names:
        value = getattr(args, name)
        if value < 1:
            parser.error(f"--{name} must be at least 1, got {value}")


def machine() -> dict[str, Any]:
    """The hardware and software a figure was measured with."""
    import torch

    from convzoo.training.peak import cpu_model, onednn_isa

    return {
        "cpu": cpu_model(),
        "onednn_isa": onednn_isa(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "convzoo": convzoo.__version__,
    }


def describe(info: dict[str, Any]) -> str:
    gpu = info["gpu"] or "no GPU"
    return (f"{info['cpu']} ({info['cpu_count']} CPUs, torch uses {info['torch_threads']} threads, oneDNN "
            f"ISA {info['onednn_isa']}), {gpu}; "
            f"torch {info['torch']}, convzoo {info['convzoo']}")


def show(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]], info: dict[str, Any]) -> None:
    print(f"\n{title}\n{describe(info)}\n")
    print(format_table(headers, rows))


def save(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as JSON (whole or not at all) and return where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_text(json.dumps(payload, indent=2) + "\n")
    partial.replace(path)
    return path


def free_port() -> int:
    """A loopback port nothing listens on now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
