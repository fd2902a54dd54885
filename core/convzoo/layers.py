"""Building blocks the seed notebook shares between networks (its ``d2l`` helpers), made export-safe."""
from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["FlattenLayer", "GlobalAvgPool2d", "flat_features"]


class FlattenLayer(nn.Module):
    """``d2l.FlattenLayer``: (N, C, H, W) -> (N, C*H*W); ``torch.flatten`` also works on channels_last."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, 1)


class GlobalAvgPool2d(nn.Module):
    """``d2l.GlobalAvgPool2d`` as a mean over H and W: the same function, and it exports to ONNX correctly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


def flat_features(features: nn.Module, in_channels: int, input_size: int) -> int:
    """How many values ``features`` outputs per image of ``input_size``, computed on the meta device."""
    probe = torch.empty(1, in_channels, input_size, input_size, device="meta")
    return copy.deepcopy(features).to("meta")(probe).numel()
