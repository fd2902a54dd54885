"""VGG against what the seed notebook prints."""
from convzoo import get_architecture
from convzoo.testing import summary_shapes

# the notebook's named_children loop over VGG-11 for one 1x224x224 image
NOTEBOOK_VGG11_SHAPES = [
    ("vgg_block_1", (1, 64, 112, 112)),
    ("vgg_block_2", (1, 128, 56, 56)),
    ("vgg_block_3", (1, 256, 28, 28)),
    ("vgg_block_4", (1, 512, 14, 14)),
    ("vgg_block_5", (1, 512, 7, 7)),
    ("fc", (1, 10)),
]

# the notebook's print(net) of the ratio-8 network it trains
NOTEBOOK_SMALL_VGG = """\
Sequential(
  (vgg_block_1): Sequential(
    (0): Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    (1): ReLU()
    (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  )
  (vgg_block_2): Sequential(
    (0): Conv2d(8, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    (1): ReLU()
    (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  )
  (vgg_block_3): Sequential(
    (0): Conv2d(16, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    (1): ReLU()
    (2): Conv2d(32, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    (3): ReLU()
    (4): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  )
  (vgg_block_4): Sequential(
    (0): Conv2d(32, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    (1): ReLU()
    (2): Conv2d(64, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    (3): ReLU()
    (4): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  )
  (vgg_block_5): Sequential(
    (0): Conv2d(64, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    (1): ReLU()
    (2): Conv2d(64, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    (3): ReLU()
    (4): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  )
  (fc): Sequential(
    (0): FlattenLayer()
    (1): Linear(in_features=3136, out_features=512, bias=True)
    (2): ReLU()
    (3): Dropout(p=0.5, inplace=False)
    (4): Linear(in_features=512, out_features=512, bias=True)
    (5): ReLU()
    (6): Dropout(p=0.5, inplace=False)
    (7): Linear(in_features=512, out_features=10, bias=True)
  )
)"""


def test_summary_of_vgg11_matches_the_notebook_shapes():
    assert summary_shapes("vgg", resize=224, ratio=1) == NOTEBOOK_VGG11_SHAPES


def test_small_vgg_prints_as_in_the_notebook():
    assert str(get_architecture("vgg").create(1, 10, input_size=224, ratio=8)) == NOTEBOOK_SMALL_VGG


def test_seed_recipe_is_the_notebooks():
    recipe = get_architecture("vgg").recipes["seed"]
    assert (recipe.resize, recipe.batch_size, recipe.lr, recipe.epochs, recipe.optimizer) == (224, 16, 0.001, 5, "adam")
    assert dict(recipe.options) == {"ratio": 8}


def test_fc_width_follows_the_input_size():
    net = get_architecture("vgg").create(1, 10, input_size=96, ratio=8)
    assert net.fc[1].in_features == 64 * 3 * 3
