"""Block-by-block output shapes and parameter counts, like the notebook's ``named_children`` loop."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class BlockSummary:
    name: str
    output_shape: tuple[int, ...]
    params: int


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def summarize(model: nn.Module, in_channels: int, input_size: int) -> list[BlockSummary]:
    """Run one random image through ``model``; each top-level block's output shape, in the order they ran."""
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(_module, _inputs, output) -> None:
            shapes.setdefault(name, tuple(output.shape))

        return hook

    handles = [child.register_forward_hook(record(name)) for name, child in model.named_children()]
    try:
        with torch.no_grad():
            model.eval()(torch.rand(1, in_channels, input_size, input_size))
    finally:
        for handle in handles:
            handle.remove()
    children = dict(model.named_children())
    return [BlockSummary(name, shape, count_params(children[name])) for name, shape in shapes.items()]
