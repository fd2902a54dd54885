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


def works_at(build, in_channels: int, num_classes: int, size: int) -> bool:
    """Whether ``build(in_channels, num_classes, input_size=size)`` builds and forwards a batch (on the meta device:
    shapes only, no memory or compute)."""
    import warnings

    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")  # empty layers warn before they fail
            model = build(in_channels, num_classes, input_size=size)
            return tuple(model(torch.empty(2, in_channels, size, size)).shape) == (2, num_classes)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return False


def smallest_input_size(arch, in_channels: int, num_classes: int, **options) -> int | None:
    """The smallest input size up to ``arch``'s default that builds and runs with ``options`` (a bisection: every size
    above it works too), or None if even the default does not. The declared ``min_input_size`` plays no part."""
    from convzoo.registry.catalogue import resolve

    chosen = arch.resolve_options(options)

    def build(channels: int, classes: int, input_size: int):
        return resolve(arch.build)(channels, classes, input_size=input_size, **chosen)

    largest = arch.input_size
    if not works_at(build, in_channels, num_classes, largest):
        return None
    low, high = 1, largest
    while low < high:
        middle = (low + high) // 2
        if works_at(build, in_channels, num_classes, middle):
            high = middle
        else:
            low = middle + 1
    return low


def flops_per_example(arch, in_channels: int, num_classes: int, input_size: int, **options) -> int:
    """The FLOPs one training example costs (forward and backward, as ``torch.utils.flop_counter`` counts them:
    convolutions and matrix products), counted on the meta device: no memory, compute or random numbers used."""
    from torch.utils.flop_counter import FlopCounterMode

    batch = 2
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        model = arch.create(in_channels, num_classes, input_size=input_size, **options)
        counter = FlopCounterMode(display=False)
        with counter:
            model(torch.empty(batch, in_channels, input_size, input_size)).sum().backward()
    return counter.get_total_flops() // batch


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
