"""The registry's public API: listing with patterns, lookups, options and recipes."""
import dataclasses

import pytest

from convzoo import best_recipe, get_architecture, list_architectures
from convzoo.errors import ConvzooError
from convzoo.recipes import BEST_ADDITIONS, Recipe


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


def test_a_best_recipe_is_the_fast_one_for_45_minutes_with_a_modern_recipes_regularizers():
    fast = {"resize": 64, "batch_size": 128, "lr": 0.002, "schedule": "onecycle", "budget": "10m", "target_acc": 0.9,
            "options": {"ratio": 8}}
    best = Recipe.from_mapping(best_recipe(fast, target_acc=0.935), where="vgg recipe 'best'")
    assert (best.resize, best.batch_size, best.lr, best.schedule, best.options) == (64, 128, 0.002, "onecycle",
                                                                                     {"ratio": 8})
    assert (best.budget, best.optimizer, best.weight_decay, best.ema_decay, best.tta_flip) == (
        "45m", "adamw", 0.05, 0.999, True)
    assert best.flip_shift and best.random_erasing == 0.25 and best.label_smoothing == 0.1
    assert best.target_acc == 0.935 and fast["budget"] == "10m"  # the fast recipe is left as it was
    for name in ("alexnet", "vgg", "googlenet"):  # the shipped ones are built so
        shipped = get_architecture(name).recipes
        assert shipped["best"] == dataclasses.replace(shipped["fast"], **BEST_ADDITIONS,
                                                      target_acc=shipped["best"].target_acc)
