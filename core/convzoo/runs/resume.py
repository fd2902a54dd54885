"""Continuing a run: find its checkpoint, refuse changes that would make it another run, rebuild its config."""
from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Mapping

from convzoo.training import checkpoint
from convzoo.training.early_stop import BEST_FILE
from convzoo.tracking.artifacts import download_artifact
from convzoo.config import TrainConfig
from convzoo.errors import ConvzooError
from convzoo.registry.catalogue import Architecture, Dataset, Registry
from convzoo.tracking.listing import heartbeat_age, stale_after_seconds
from convzoo.vocabulary import CHECKPOINTS_DIR, run_uri
from convzoo.tracking.lookup import get_run

# settings a resumed run may change: they do not change what is trained (``epochs`` only upwards)
CHANGEABLE = ("epochs", "data_dir", "export", "register_as", "checkpoint_every", "checkpoint_dir")


@dataclass
class Resume:
    """A run to continue and the checkpoint it continues from."""

    run_id: str
    state: dict[str, Any]
    path: str


class NoCheckpoint(ConvzooError):
    """The run stopped before its first checkpoint: there is nothing to continue from."""


def load_checkpoint(run_id: str, folder: Path) -> tuple[dict[str, Any], str]:
    """The local checkpoint (always the newest) if there is one, else the one logged into the run; and where from."""
    local = folder / run_id / checkpoint.FILE_NAME
    if local.exists():
        return checkpoint.load(local), str(local)
    artifact = f"{CHECKPOINTS_DIR}/{checkpoint.FILE_NAME}"
    with tempfile.TemporaryDirectory(prefix="convzoo-resume-") as download:
        path = download_artifact(run_id, artifact, download)
        if path is None:
            raise NoCheckpoint(f"run {run_id} has no checkpoint: none in {local} and none logged into the run "
                               f"(it stopped before its first checkpoint, or was not made by convzoo train)")
        state = checkpoint.load(path)
        # early stopping's best weights go where the continued run keeps them, beside its new last checkpoint
        best = download_artifact(run_id, f"{CHECKPOINTS_DIR}/{BEST_FILE}", download)
        if best is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            os.replace(best, local.with_name(BEST_FILE))
        return state, run_uri(run_id, artifact)


def trainer_is_gone(state: dict[str, Any]) -> bool:
    """Whether the process that wrote this checkpoint ran on this machine and has ended."""
    import psutil

    return state.get("host") == socket.gethostname() and not psutil.pid_exists(state.get("pid", -1))


def _saved_value(saved: TrainConfig, name: str) -> Any:
    if name in {field.name for field in dataclasses.fields(saved.hyper)}:
        return getattr(saved.hyper, name)
    return getattr(saved, name)


def resumed_config(saved: TrainConfig, arch: Architecture, requested: Mapping[str, Any]) -> TrainConfig:
    """``saved`` with the changes ``requested`` on resume; any change to what is trained is a one-line error."""
    for name, value in requested.items():
        if name == "options":
            for key, given in arch.resolve_options(value).items():
                had = saved.hyper.options.get(key)
                if key in value and given != had:
                    raise ConvzooError(f"cannot change option {key} on resume (the run has {had!r}, got {given!r}); "
                                       f"only {', '.join(CHANGEABLE)} may change")
        elif name == "epochs" and value < saved.hyper.epochs:
            raise ConvzooError(f"epochs can only be raised on resume (the run has {saved.hyper.epochs}, got {value})")
        elif name not in CHANGEABLE and value != _saved_value(saved, name):
            raise ConvzooError(f"cannot change {name} on resume (the run has {_saved_value(saved, name)!r}, got "
                               f"{value!r}); only {', '.join(CHANGEABLE)} may change")
    epochs = requested.get("epochs", saved.hyper.epochs)
    hyper = dataclasses.replace(saved.hyper, epochs=epochs)
    cut = saved.last_epoch_steps if epochs == saved.hyper.epochs else 0  # the epochs added are whole
    return dataclasses.replace(saved, hyper=hyper, last_epoch_steps=cut,
                               **{name: requested[name] for name in CHANGEABLE[1:] if name in requested})


def prepare(registry: Registry, run_id: str, requested: Mapping[str, Any],
            taken_over: bool = False) -> tuple[TrainConfig, Architecture, Dataset, Resume]:
    """Everything ``run.train`` needs to continue ``run_id``; ``requested`` holds the settings the user gave.
    ``taken_over``: the run's process is known to be gone (a sweep's storage declared its worker dead)."""
    run = get_run(run_id)
    status = run.info.status
    folder = Path(requested.get("checkpoint_dir") or checkpoint.default_folder())
    state, source = load_checkpoint(run_id, folder)
    if status == "RUNNING" and not taken_over and not trainer_is_gone(state):
        age = heartbeat_age(run)
        if age < stale_after_seconds():
            raise ConvzooError(f"run {run_id} is RUNNING (last heartbeat {age:.0f} s ago); stop it first, or resume "
                               f"it once `convzoo runs` shows it STALE")
    saved = TrainConfig.from_dict(state["config"])
    if requested.get("arch", saved.arch) != saved.arch:
        raise ConvzooError(f"run {run_id} trained {saved.arch}, not {requested['arch']}; leave the architecture out "
                           f"or name {saved.arch}")
    arch, dataset = registry.get_architecture(saved.arch), registry.get_dataset(saved.dataset)
    config = resumed_config(saved, arch, {k: v for k, v in requested.items() if k != "arch"})
    done = len(state["trainer"]["loop"]["history"])
    if status == "FINISHED" and config.hyper.epochs <= done:
        raise ConvzooError(f"run {run_id} already finished its {done} epoch(s); pass --epochs N (more than {done}) "
                           f"to train it longer")
    return config, arch, dataset, Resume(run_id, state, source)
