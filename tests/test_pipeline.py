"""The batched input pipeline on real Fashion-MNIST images."""
import pytest
import torch
import torchvision.transforms.functional as TF

from convzoo.data.fashion_mnist import load
from convzoo.data.pipeline import BatchLoader, augment, flip_and_shift, model_input, resize


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


def test_flip_and_shift_mirrors_some_images_and_moves_each_by_at_most_two_pixels():
    images = torch.zeros(64, 1, 28, 28)
    images[:, :, :, 5] = 1.0  # one bright column, 5 pixels from the left edge
    moved = flip_and_shift(images, 28, torch.Generator().manual_seed(0))
    columns = moved[:, 0].sum(dim=1).argmax(dim=1)  # where each image's column went
    mirrored = columns >= 14
    assert 10 < mirrored.sum() < 54  # about half flipped
    assert ((columns[~mirrored] - 5).abs() <= 2).all() and ((columns[mirrored] - 22).abs() <= 2).all()
    assert len(set(columns.tolist())) > 4  # shifted by different amounts
    assert moved.shape == (64, 1, 28, 28)
    assert torch.equal(moved, flip_and_shift(images, 28, torch.Generator().manual_seed(0)))


def test_channels_last_batches(splits):
    images, _ = next(iter(loader(splits, channels_last=True)))
    assert images.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("augmentation", [{"augment": True}, {"flip_shift": True}])
def test_ranks_split_every_global_batch_and_together_see_what_one_process_sees(splits, augmentation):
    from convzoo.training.distributed import World

    one = [(images, labels) for images, labels in loader(splits, **augmentation)]
    ranks = [[(images, labels) for images, labels in loader(splits, **augmentation, world=World(rank, 3))]
             for rank in range(3)]
    for step, (images, labels) in enumerate(one):
        parts = [rank[step] for rank in ranks]
        assert [len(part[1]) for part in parts] == [6, 5, 5]  # 16 rows over 3 ranks
        assert torch.equal(torch.cat([part[1] for part in parts]), labels)
        # each image gets the augmentation it gets in the whole batch (same generator, its row of the draws)
        assert torch.allclose(torch.cat([part[0] for part in parts]), images, atol=1e-6)


def test_unshuffled_positions_of_all_ranks_cover_the_test_set_once(splits):
    from convzoo.training.distributed import World

    test = BatchLoader(splits.test_images, splits.test_labels, 300, 28, torch.device("cpu"), shuffle=False,
                       world=World(0, 4), limit_batches=5)
    positions = torch.cat([test.positions(rank) for rank in range(4)])
    assert torch.equal(positions.sort().values, torch.arange(1500))
    assert torch.equal(torch.cat([labels for _, labels in test]), splits.test_labels[test.positions(0)])


def test_model_input_is_what_the_test_loader_feeds_the_network(splits):
    """One conversion from uint8 images to network input, the same for training, export, parity and predict."""
    test = BatchLoader(splits.test_images, splits.test_labels, 16, 56, torch.device("cpu"), shuffle=False)
    images, _ = next(iter(test))
    assert torch.equal(images, model_input(splits.test_images[:16], 56))
