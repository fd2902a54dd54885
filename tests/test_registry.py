"""The registry's public API: listing with patterns, lookups, options and recipes."""
import pytest

from convzoo import get_architecture, list_architectures
from convzoo.errors import ConvzooError
from convzoo.recipes import Recipe


def test_list_with_include_and_exclude_patterns():
    assert list_architectures(include="*net") == ["alexnet", "googlenet"]
    assert list_architectures(include=["v*", "n*"]) == ["nin", "vgg"]
    assert list_architectures(include=["alexnet", "googlenet", "nin", "vgg"], exclude="*net") == ["nin", "vgg"]


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ConvzooError, match=r"unknown architecture 'googlnet' \(did you mean 'googlenet'\?\)"):
        get_architecture("googlnet")


def test_options_are_typed_from_their_defaults():
    vgg = get_architecture("vgg")
    assert vgg.resolve_options({"ratio": "4"}) == {"ratio": 4}
    assert vgg.resolve_options() == {"ratio": 1}


def test_recipe_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ConvzooError, match="alexnet recipe 'fast': unknown recipe key 'epoch'"):
        Recipe.from_mapping({"epoch": 1, "batch_size": 1, "lr": 1.0}, where="alexnet recipe 'fast'")
    with pytest.raises(ConvzooError, match="epochs must be a positive integer, got 0"):
        Recipe(epochs=0, batch_size=16, lr=0.001)
    with pytest.raises(ConvzooError, match="unknown optimizer 'rmsprop'; choose one of: adam, adamw, sgd"):
        Recipe(epochs=1, batch_size=16, lr=0.001, optimizer="rmsprop")


def test_every_seed_architecture_has_a_seed_recipe():
    for name in ("alexnet", "vgg", "nin", "googlenet"):
        assert "seed" in get_architecture(name).recipes
