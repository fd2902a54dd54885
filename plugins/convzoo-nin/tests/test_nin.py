"""NiN against what the seed notebook prints."""
import torch
import torch.nn.functional as F

from convzoo import get_architecture
from convzoo.testing import summary_shapes

# the notebook's named_children loop for one 1x224x224 image
NOTEBOOK_NIN_SHAPES = [
    ("0", (1, 96, 54, 54)),
    ("1", (1, 96, 26, 26)),
    ("2", (1, 256, 26, 26)),
    ("3", (1, 256, 12, 12)),
    ("4", (1, 384, 12, 12)),
    ("5", (1, 384, 5, 5)),
    ("6", (1, 384, 5, 5)),
    ("7", (1, 10, 5, 5)),
    ("8", (1, 10, 1, 1)),
    ("9", (1, 10)),
]


def test_summary_matches_the_notebook_shapes():
    assert summary_shapes("nin", resize=224) == NOTEBOOK_NIN_SHAPES


def test_global_pooling_is_the_notebooks_avg_pool2d():
    pool = get_architecture("nin").create(1, 10)[8]
    x = torch.rand(3, 10, 5, 7)
    torch.testing.assert_close(pool(x), F.avg_pool2d(x, kernel_size=x.size()[2:]))


def test_seed_recipe_is_the_notebooks():
    recipe = get_architecture("nin").recipes["seed"]
    assert (recipe.resize, recipe.batch_size, recipe.lr, recipe.epochs, recipe.optimizer) == (224, 128, 0.002, 5, "adam")
