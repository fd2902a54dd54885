"""Every global random generator a run draws from, as one state to checkpoint and restore: torch's (dropout,
mixing, erasing), Python's, NumPy's and CUDA's."""
from __future__ import annotations

import random
from typing import Any

import torch


def rng_state() -> dict[str, Any]:
    """Every global random generator a run may draw from (dropout uses torch's)."""
    import numpy

    kind, keys, position, has_gauss, cached = numpy.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_version": random.getstate()[0], "python_gauss": random.getstate()[2],
             "numpy": {"keys": torch.from_numpy(keys.astype("int64")), "position": position,
                       "has_gauss": has_gauss, "cached": cached}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy

    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    saved = state["numpy"]
    numpy.random.set_state(("MT19937", saved["keys"].numpy().astype("uint32"), saved["position"],
                            saved["has_gauss"], saved["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
