"""The batched input pipeline on real Fashion-MNIST images."""
import pytest
import torch
import torchvision.transforms.functional as TF

from convzoo.fashion_mnist import load
from convzoo.pipeline import BatchLoader, augment, resize


@pytest.fixture(scope="module")
def splits():
    return load()


def loader(splits, **kwargs):
    settings = {"batch_size": 16, "size": 56, "device": torch.device("cpu"), "shuffle": True, "seed": 3,
                "limit_batches": 4, **kwargs}
    return BatchLoader(splits.train_images, splits.train_labels, **settings)


def test_batches_are_resized_scaled_and_limited(splits):
    batches = list(loader(splits))
    assert len(batches) == 4
    images, labels = batches[0]
    assert images.shape == (16, 1, 56, 56) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1 and labels.dtype == torch.int64


def test_resize_matches_the_seeds_per_image_resize_and_to_tensor(splits):
    images = splits.test_images[:8]
    seed_way = torch.stack([TF.to_tensor(TF.resize(TF.to_pil_image(image), 224)) for image in images])
    batched = resize(images.float().div(255), 224)
    assert (batched - seed_way).abs().mean() < 0.01


def test_shuffling_is_deterministic_per_seed_and_new_each_epoch(splits):
    first, second = loader(splits), loader(splits)
    epoch1 = [labels for _, labels in first]
    assert all(torch.equal(a, b) for a, b in zip(epoch1, [labels for _, labels in second]))
    epoch2 = [labels for _, labels in first]
    assert not all(torch.equal(a, b) for a, b in zip(epoch1, epoch2))
    other_seed = [labels for _, labels in loader(splits, seed=4)]
    assert not all(torch.equal(a, b) for a, b in zip(epoch1, other_seed))


def test_test_loader_keeps_order_and_covers_everything(splits):
    test = BatchLoader(splits.test_images, splits.test_labels, 4096, 28, torch.device("cpu"), shuffle=False)
    assert len(test) == 3
    assert torch.equal(torch.cat([labels for _, labels in test]), splits.test_labels)


def test_augmentation_is_deterministic_changes_images_and_stays_in_range(splits):
    images = splits.train_images[:32].float().div(255)
    first = augment(images, 40, torch.Generator().manual_seed(0))
    again = augment(images, 40, torch.Generator().manual_seed(0))
    assert torch.equal(first, again)
    assert first.shape == (32, 1, 40, 40) and 0 <= first.min() and first.max() <= 1
    assert (first - resize(images, 40)).abs().mean() > 0.02


def test_channels_last_batches(splits):
    images, _ = next(iter(loader(splits, channels_last=True)))
    assert images.is_contiguous(memory_format=torch.channels_last)
