"""One training run from start to finish: data, model, training, hooks, and what MLflow records."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import pluggy
import torch

from convzoo import tracking
from convzoo.config import AUTO_RECIPE, TrainConfig
from convzoo.data import ImageSplits
from convzoo.devices import resolve_device, resolve_precision
from convzoo.memory import keep_freed_memory
from convzoo.observers import RunContext, notify
from convzoo.pipeline import BatchLoader, resize
from convzoo.plugins import get_plugin_manager
from convzoo.registry import Architecture, Dataset, resolve
from convzoo.summary import count_params
from convzoo.trainer import EpochMetrics, fit, is_stuck_at_chance


@dataclass
class TrainResult:
    run_id: str
    history: list[EpochMetrics]
    device: str
    precision: str
    model: torch.nn.Module


def prepare_device(config: TrainConfig) -> tuple[torch.device, str]:
    """The run's device and precision, with this process set up to train there (freed memory kept on a CPU)."""
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)  # bad input fails before the process is changed
    if device.type == "cpu":
        keep_freed_memory()
    return device, precision


def build_model(config: TrainConfig, arch: Architecture, dataset: Dataset, device: torch.device) -> torch.nn.Module:
    """The run's network, seeded, on ``device`` in the run's memory format."""
    torch.manual_seed(config.seed)
    model = arch.create(dataset.in_channels, dataset.num_classes, input_size=config.resize, **config.options)
    return model.to(device, memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)


def make_loaders(config: TrainConfig, splits: ImageSplits, device: torch.device) -> tuple[BatchLoader, BatchLoader]:
    """The run's training and test batches."""
    loader = functools.partial(BatchLoader, batch_size=config.hyper.batch_size, size=config.resize, device=device,
                               seed=config.seed, channels_last=config.channels_last)
    train = loader(splits.train_images, splits.train_labels, shuffle=True, augment=config.hyper.augment,
                   limit_batches=config.limit_train_batches)
    test = loader(splits.test_images, splits.test_labels, shuffle=False, limit_batches=config.limit_eval_batches)
    return train, test


def train(config: TrainConfig, arch: Architecture, dataset: Dataset, *, experiment: str | None = None,
          echo: Callable[[str], None] = print, pm: pluggy.PluginManager | None = None) -> TrainResult:
    """Train ``arch`` on ``dataset`` as ``config`` says, tracked in one MLflow run; ``pm`` supplies the observers."""
    device, precision = prepare_device(config)
    splits = resolve(dataset.load)(config.data_dir)
    model = build_model(config, arch, dataset, device)
    train_loader, test_loader = make_loaders(config, splits, device)
    if config.recipe == AUTO_RECIPE:
        why = ("a GPU is available" if device.type == "cuda"
               else "no GPU: the seed recipe takes hours on a CPU; --recipe seed forces it")
        echo(f"recipe auto -> {config.recipe_resolved} ({why})")

    pm = pm or get_plugin_manager()
    history: list[EpochMetrics] = []
    with tracking.mlflow_run(experiment) as active:
        context = RunContext(config.arch, config.dataset, config.to_params(), str(device), active.info.run_id)
        tracking.log_setup(config, arch, splits, str(device), precision, count_params(model))
        notify(pm, "on_run_start", run=context)
        final_predictions = torch.empty(0, dtype=torch.long)

        def on_epoch(metrics: EpochMetrics, predictions: torch.Tensor) -> None:
            nonlocal final_predictions
            history.append(metrics)
            final_predictions = predictions
            tracking.log_epoch(metrics)
            echo(f"epoch {metrics.epoch}, loss {metrics.train_loss:.4f}, train acc {metrics.train_acc:.3f}, "
                 f"test acc {metrics.test_acc:.3f}, time {metrics.epoch_time:.1f} sec, "
                 f"{metrics.examples_per_sec:.0f} examples/sec")
            if is_stuck_at_chance(metrics, dataset.num_classes):
                tracking.tag_stuck_at_chance()
                echo(f"warning: {arch.name} looks stuck at chance (loss {metrics.train_loss:.3f}, train acc "
                     f"{metrics.train_acc:.3f}); a lower learning rate (--lr) usually helps")
            notify(pm, "on_epoch_end", run=context, epoch=metrics.epoch, metrics=metrics.as_dict())

        try:
            fit(model, train_loader, test_loader, config.hyper, precision, on_epoch)
            tracking.log_plots(history, splits, final_predictions, dataset)
            example = resize(splits.test_images[:2].float().div(255), config.resize)  # batch 2 keeps batch dynamic
            tracking.log_model(model, example)
            if config.export:
                from convzoo.publish import publish_onnx

                publish_onnx(model, splits, dataset, config.resize, register_as=config.register_as, echo=echo)
        except BaseException as error:
            notify(pm, "on_exception", run=context, error=error)
            notify(pm, "on_run_end", run=context, status="KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
            raise
        notify(pm, "on_run_end", run=context, status="FINISHED")
    return TrainResult(active.info.run_id, history, str(device), precision, model)
