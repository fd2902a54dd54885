"""Chooses the training device and numeric precision, and says why."""
from __future__ import annotations

import torch

from convzoo.config import DEVICES, PRECISIONS
from convzoo.recipes import check_choice
from convzoo.errors import ConvzooError
from convzoo.training.peak import onednn_isa


def resolve_device(requested: str) -> torch.device:
    """``auto`` is CUDA where present, else the CPU; asking for CUDA without one is an error."""
    check_choice("device", requested, DEVICES)
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConvzooError("device 'cuda' is not available on this machine; use cpu or auto")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 is faster than fp32 here: on a GPU, Ampere or later; on a CPU, an instruction set oneDNN reports
    with bfloat16 (AVX512-BF16, AMX), so ``ONEDNN_MAX_CPU_ISA`` capping it counts. Without one, bf16 is emulated: on a
    2-core AMD EPYC with AVX2, a 512x512 bf16 matrix product runs at 1 GFLOP/s against fp32's 150."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return "bfloat16" in onednn_isa()


def resolve_precision(requested: str, device: torch.device) -> str:
    """``auto`` picks bf16 autocast where the device supports it natively, else fp32."""
    check_choice("precision", requested, PRECISIONS)
    if requested == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return requested
