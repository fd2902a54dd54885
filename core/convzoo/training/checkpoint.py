"""Checkpoints: the whole training state in one file, written atomically, kept locally and in the MLflow run."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch

from convzoo.training.callbacks import Callback
from convzoo.errors import ConvzooError
from convzoo.training.trainer import StopRequested, Trainer

FORMAT = 1
FILE_NAME = "last.pt"


def default_folder() -> Path:
    """Where checkpoints go unless ``--checkpoint-dir`` says: ``$CONVZOO_CHECKPOINT_DIR`` or ``./checkpoints``."""
    return Path(os.environ.get("CONVZOO_CHECKPOINT_DIR") or "checkpoints")


def local_checkpoint(checkpoint_dir: str | None, run_id: str) -> Path:
    """Where this machine keeps ``run_id``'s checkpoint while it trains (``checkpoint_dir``: ``--checkpoint-dir``)."""
    return Path(checkpoint_dir or default_folder()).absolute() / run_id / FILE_NAME


def save(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` atomically: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint (tensors and plain values only); a corrupt or foreign file is a one-line error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConvzooError(f"checkpoint {path} does not exist") from None
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConvzooError(f"checkpoint {path} is corrupt or truncated ({reason[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConvzooError(f"checkpoint {path} is not a convzoo checkpoint (format {FORMAT})")
    return state


class Checkpointer(Callback):
    """Saves the trainer's state every ``every`` steps, after every epoch, and when a stop is requested.

    Under several processes every rank has one (the state is gathered over all of them); only rank 0's has a
    ``path`` and writes.
    """

    def __init__(self, path: Path | None, every: int, meta: dict[str, Any],
                 upload: Callable[[Path], None] = lambda path: None) -> None:
        self.path, self.every, self.meta, self.upload = path, every, meta, upload

    def save(self, trainer: Trainer) -> None:
        state = trainer.state_dict()
        if self.path is not None:
            save({"format": FORMAT, **self.meta, "trainer": state}, self.path)
            self.upload(self.path)

    def on_step_end(self, trainer: Trainer) -> None:
        in_epoch = trainer.state.step < trainer.steps_in(trainer.state.epoch)  # the epoch's end saves its last step
        if self.every and trainer.global_step % self.every == 0 and in_epoch:
            self.save(trainer)

    def on_epoch_end(self, trainer: Trainer, metrics) -> None:
        self.save(trainer)

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        if isinstance(error, StopRequested):  # raised between steps: the state is consistent
            self.save(trainer)
