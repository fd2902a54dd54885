"""Keeps memory freed by one training step for the next, instead of handing it back to the operating system.

glibc's malloc serves every block over 32 MiB with a fresh ``mmap`` and unmaps it on free, so each CPU training step
page-faults its big tensors (weights cast to bf16, gradients, activations) in again: that costs AlexNet and NiN about
a third of their step on a 2-core CPU. Serving them from malloc's heap, which is not trimmed, removes the cost.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
KEEP_BYTES = 1 << 30
PAD_BYTES = 256 << 20


def keep_freed_memory() -> bool:
    """Make this process's malloc reuse freed blocks (glibc only); whether it could.

    The process keeps up to its peak memory for its lifetime; call it only in processes that train.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, KEEP_BYTES), (M_TOP_PAD, PAD_BYTES))
    return all(libc.mallopt(option, value) == 1 for option, value in settings)
