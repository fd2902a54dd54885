"""AlexNet against what the seed notebook prints."""
from convzoo import get_architecture
from convzoo.testing import summary_shapes

# the notebook's print(net)
NOTEBOOK_ALEXNET = """\
AlexNet(
  (conv): Sequential(
    (0): Conv2d(1, 96, kernel_size=(11, 11), stride=(4, 4))
    (1): ReLU()
    (2): MaxPool2d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=False)
    (3): Conv2d(96, 256, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))
    (4): ReLU()
    (5): MaxPool2d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=False)
    (6): Conv2d(256, 384, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    (7): ReLU()
    (8): Conv2d(384, 384, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    (9): ReLU()
    (10): Conv2d(384, 256, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    (11): ReLU()
    (12): MaxPool2d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=False)
  )
  (fc): Sequential(
    (0): Linear(in_features=6400, out_features=4096, bias=True)
    (1): ReLU()
    (2): Dropout(p=0.5, inplace=False)
    (3): Linear(in_features=4096, out_features=10, bias=True)
  )
)"""


def test_alexnet_prints_as_in_the_notebook():
    assert str(get_architecture("alexnet").create(1, 10, input_size=224)) == NOTEBOOK_ALEXNET


def test_summary_shows_the_conv_stack_and_classifier():
    assert summary_shapes("alexnet") == [("conv", (1, 256, 5, 5)), ("fc", (1, 10))]


def test_second_hidden_layer_is_an_option():
    net = get_architecture("alexnet").create(1, 10, hidden_layers=2)
    assert [type(m).__name__ for m in net.fc] == ["Linear", "ReLU", "Dropout"] * 2 + ["Linear"]
    assert (net.fc[3].in_features, net.fc[3].out_features) == (4096, 4096)


def test_fc_width_follows_the_input_size():
    # 112 -> conv 26 -> pool 12 -> pool 5 -> pool 2
    assert get_architecture("alexnet").create(1, 10, input_size=112).fc[0].in_features == 256 * 2 * 2


def test_seed_recipe_is_the_notebooks():
    recipe = get_architecture("alexnet").recipes["seed"]
    assert (recipe.resize, recipe.batch_size, recipe.lr, recipe.epochs, recipe.optimizer) == (224, 16, 0.001, 3, "adam")
