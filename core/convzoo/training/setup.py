"""Setting a training process up from a run's configuration: its device and precision, its seeded network and its
batches (this rank's rows of them)."""
from __future__ import annotations

import functools

import torch

from convzoo.config import TrainConfig
from convzoo.data.pipeline import BatchLoader
from convzoo.data.splits import ImageSplits
from convzoo.registry.catalogue import Architecture, Dataset
from convzoo.training.devices import resolve_device, resolve_precision
from convzoo.training.distributed import SINGLE, World, cores, threads_per_rank
from convzoo.training.memory import keep_freed_memory


def prepare_device(config: TrainConfig, world: World = SINGLE,
                   tune_process: bool = True) -> tuple[torch.device, str]:
    """The run's device and precision, with this process set up to train there (on a CPU, unless ``tune_process`` is
    false, freed memory kept and subnormal floats flushed to zero; under several processes, this rank's GPU, or its
    share of the CPU cores)."""
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)  # bad input fails before the process is changed
    if device.type == "cpu":
        if tune_process:
            keep_freed_memory()
            # a dead unit's Adam moments shrink into subnormals, which x86 computes on tens of times slower: after
            # 45 minutes, 9 % of AlexNet's moments, steps 1.07x slower. The flag is per thread and threads copy it
            # when they start, so this comes before the first parallel tensor operation (benchmarks/denormals.py)
            torch.set_flush_denormal(True)
        if world.distributed:
            torch.set_num_threads(threads_per_rank(world.local_size))
    elif world.distributed:
        device = torch.device("cuda", world.local_rank)
    return device, precision


def describe_world(world: World, batch_size: int, device: torch.device) -> str:
    """One line on how the work is spread: processes, threads or GPUs, and each one's share of the batch."""
    where = (f"{world.size} processes x {torch.get_num_threads()} thread(s) ({world.local_size} on this machine's "
             f"{cores()} cores)" if device.type == "cpu" else f"{world.size} processes, one GPU each")
    return (f"{where}, backend {world.backend}: each takes {batch_size // world.size} of every {batch_size}-image "
            f"batch")


def build_model(config: TrainConfig, arch: Architecture, dataset: Dataset, device: torch.device) -> torch.nn.Module:
    """The run's network, seeded, on ``device`` in the run's memory format."""
    torch.manual_seed(config.seed)
    model = arch.create(dataset.in_channels, dataset.num_classes, input_size=config.hyper.resize,
                        **config.hyper.options)
    return model.to(device, memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)


def make_loaders(config: TrainConfig, splits: ImageSplits, device: torch.device,
                 world: World = SINGLE) -> tuple[BatchLoader, BatchLoader, BatchLoader | None]:
    """The run's training, test and validation batches (this rank's rows of them; no validation batches without a
    validation split). ``limit_eval_batches`` limits the test and the validation batches alike."""
    loader = functools.partial(BatchLoader, batch_size=config.hyper.batch_size, size=config.hyper.resize, device=device,
                               seed=config.seed, channels_last=config.channels_last, world=world)
    train = loader(splits.train_images, splits.train_labels, shuffle=True, augment=config.hyper.augment,
                   flip_shift=config.hyper.flip_shift, limit_batches=config.limit_train_batches)
    test = loader(splits.test_images, splits.test_labels, shuffle=False, limit_batches=config.limit_eval_batches)
    val = loader(splits.val_images, splits.val_labels, shuffle=False,
                 limit_batches=config.limit_eval_batches) if splits.has_validation else None
    return train, test, val
