"""Starting a run from what a user asked for, and continuing one: what ``convzoo train`` and ``resume``, sweep
trials and comparison children all call (the command line only parses and validates its options)."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from convzoo.registry.plugins import get_registry
from convzoo.runs.settings import run_config
from convzoo.runs.training_run import RunPlacement, TrainResult, train
from convzoo.training.callbacks import Callback
from convzoo.training.distributed import SINGLE, World


def train_arch(arch: str, settings: Mapping[str, Any], *, experiment: str | None = None,
               callbacks: Sequence[Callback] = (), placement: RunPlacement = RunPlacement(), world: World = SINGLE,
               echo: Callable[[str], None] = print) -> TrainResult:
    """Validate everything, then train ``arch`` in one MLflow run (a child when a run is active, or of
    ``placement.parent_run_id``). ``settings``: ``recipe``, ``dataset``, ``options`` and what ``run_config`` takes;
    ``world``: this process's rank when several train it."""
    config, architecture, data = run_config(get_registry(), arch, **settings)
    return train(config, architecture, data, experiment=experiment, echo=echo, callbacks=callbacks,
                 placement=placement, world=world)


def resume_run(run_id: str, requested: Mapping[str, Any], *, taken_over: bool = False, world: World = SINGLE,
               echo: Callable[[str], None] = print) -> Callable[[Sequence[Callback]], TrainResult]:
    """Read ``run_id`` and its checkpoint with the settings the user gave (``requested``), refusing what cannot be
    continued; returns the function that continues it with given callbacks. Under several processes rank 0 reads
    the run and hands it to the others. ``taken_over``: the run's worker is known to be gone."""
    from convzoo.config import TrainConfig
    from convzoo.runs.resume import prepare
    from convzoo.tracking.active_run import point_mlflow_run_shell_to
    from convzoo.tracking.store import check_tracking_store
    from convzoo.training.launch import from_rank_zero

    def read_run():
        check_tracking_store()
        config, _, _, resume = prepare(get_registry(), run_id, requested, taken_over)
        point_mlflow_run_shell_to(run_id)
        return config.to_dict(), resume

    saved, resume = from_rank_zero(world, read_run)
    config = TrainConfig.from_dict(saved)
    registry = get_registry()
    architecture, data = registry.get_architecture(config.arch), registry.get_dataset(config.dataset)
    return lambda callbacks: train(config, architecture, data, echo=echo, callbacks=callbacks, resume=resume,
                                   world=world)
