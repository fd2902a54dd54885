"""GoogLeNet against the shapes of the seed notebook's block loop."""
from convzoo import get_architecture
from convzoo.testing import summary_shapes

# the notebook's loop over net.children() for one 1x96x96 image (its output cell is empty in the seed copy;
# these are the shapes the same code prints in Dive-into-DL-PyTorch 5.9)
NOTEBOOK_GOOGLENET_SHAPES = [
    ("0", (1, 64, 24, 24)),
    ("1", (1, 192, 12, 12)),
    ("2", (1, 480, 6, 6)),
    ("3", (1, 832, 3, 3)),
    ("4", (1, 1024, 1, 1)),
    ("5", (1, 1024)),
    ("6", (1, 10)),
]


def test_summary_matches_the_notebook_shapes():
    assert summary_shapes("googlenet", resize=96) == NOTEBOOK_GOOGLENET_SHAPES


def test_inception_concatenates_its_four_paths():
    from convzoo_googlenet.model import Inception

    block = Inception(192, 64, (96, 128), (16, 32), 32)
    import torch

    assert block(torch.rand(1, 192, 12, 12)).shape == (1, 64 + 128 + 32 + 32, 12, 12)


def test_seed_recipe_is_the_notebooks():
    recipe = get_architecture("googlenet").recipes["seed"]
    assert (recipe.resize, recipe.batch_size, recipe.lr, recipe.epochs, recipe.optimizer) == (96, 16, 0.001, 5, "adam")
