"""The validation split on the real Fashion-MNIST, the statistics of comparisons against textbook figures, and the
one-line refusals of what would need a split that is not there."""
import math
import subprocess
import sys

import mlflow
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from convzoo.cli.app import cli
from convzoo.data.fashion_mnist import load
from convzoo.data.validation import with_validation
from convzoo.statistics import holm, mcnemar_exact, paired_bootstrap, summarize

SPLIT_DIGEST = "from convzoo.data.fashion_mnist import load; from convzoo.data.validation import with_validation; " \
               "print(with_validation(load(), 1 / 12, {seed}).val_digest)"


@pytest.fixture(scope="module")
def fashion():
    return load()


def test_the_split_is_stratified_disjoint_and_the_same_in_another_process(fashion):
    split = with_validation(fashion, 1 / 12, 3)
    assert torch.bincount(split.val_labels).tolist() == [500] * 10  # 5,000: a twelfth of each class
    assert len(split.train_labels) == 55_000 and split.test_labels is fashion.test_labels
    # every training image is in exactly one part: the two parts' images add up to the whole set's
    whole = fashion.train_images.flatten(1).sum(1).double().sort().values
    parts = torch.cat([split.train_images[:], split.val_images[:]]).flatten(1).sum(1).double().sort().values
    assert torch.equal(whole, parts)
    assert split.train_images.images is split.val_images.images is fashion.train_images  # views, never copies
    elsewhere = [subprocess.run([sys.executable, "-c", SPLIT_DIGEST.format(seed=seed)], capture_output=True,
                                text=True, check=True).stdout.strip() for seed in (3, 4)]
    assert elsewhere == [split.val_digest, with_validation(fashion, 1 / 12, 4).val_digest]
    assert elsewhere[0] != elsewhere[1]  # another seed holds out other images


def test_no_split_and_a_data_sets_own_validation_set(fashion):
    assert not with_validation(fashion, 0.0, 0).has_validation
    own = with_validation(fashion, 0.0, 0)
    own.val_images, own.val_labels = fashion.test_images[:10], fashion.test_labels[:10]
    kept = with_validation(own, 1 / 12, 0)  # a data set that brings validation images keeps them, and all its training
    assert torch.equal(kept.val_labels, fashion.test_labels[:10]) and len(kept.train_labels) == 60_000


def test_mcnemar_exact_matches_the_textbook_example():
    """Fagerland, Lydersen & Laake (BMC Med. Res. Methodol. 2013): airway hyper-responsiveness before and after
    stem-cell transplantation, 21 children, discordant pairs 1 and 7: exact conditional p = 0.070 (= 18/256)."""
    before = np.array([True] * 1 + [False] * 7 + [True] * 2 + [False] * 11)
    after = np.array([False] * 1 + [True] * 7 + [True] * 2 + [False] * 11)
    result = mcnemar_exact(before, after)
    assert (result.a_only, result.b_only) == (1, 7)
    assert result.p_value == pytest.approx(2 * (math.comb(8, 0) + math.comb(8, 1)) / 2 ** 8) == pytest.approx(0.0703, abs=5e-5)
    assert mcnemar_exact(before, before).p_value == 1.0


def test_t_interval_holm_and_the_paired_bootstrap_give_the_known_figures():
    # mean 10, sd 2 over 4 values: 10 ± t(0.975, 3) * 2 / 2 = 10 ± 3.182
    summary = summarize([8.0, 10.0, 10.0, 12.0])
    assert (summary.mean, summary.std) == (10.0, pytest.approx(math.sqrt(8 / 3)))
    assert summary.ci_high - summary.mean == pytest.approx(3.1824 * math.sqrt(8 / 3) / 2, abs=1e-3)
    assert summarize([0.9]).shown() == "0.9000"
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])  # Holm (1979): m·p, then (m-1)·p, ...
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 4000)) < 0.9, rng.random((2, 4000)) < 0.8
    boot = paired_bootstrap(a, b)
    assert boot.ci_low < a.mean() - b.mean() < boot.ci_high and boot.ci_low > 0.08 and boot.p_value < 1e-3
    same = paired_bootstrap(a, a)
    assert (same.difference, same.p_value) == (0.0, 1.0)


@pytest.mark.parametrize("args, message", [
    (["--val-fraction", "1"], "val_fraction must be in [0, 1) (0: no validation split), got 1.0"),
    (["--val-fraction", "-0.1"], "val_fraction must be in [0, 1) (0: no validation split), got -0.1"),
    (["--early-stop", "3", "--recipe", "seed"],
     "early_stop 3 needs a validation split (the seed recipe holds out none); give --val-fraction in (0, 1), e.g. "
     "0.0833 (5,000 of 60,000 images)"),
    (["--early-stop", "3", "--val-fraction", "0"],
     "early_stop 3 needs a validation split (val_fraction is 0); give --val-fraction in (0, 1), e.g. 0.0833 (5,000 "
     "of 60,000 images)"),
    (["--recipe", "fast", "--val-fraction", "0"],
     "target_acc 0.918 needs a validation split (val_fraction is 0): time_to_target is measured on val_acc; give "
     "--val-fraction in (0, 1), e.g. 0.0833"),
    (["--early-stop", "-1"], "early_stop must be 0 (off) or a positive number of epochs, got -1"),
    (["--early-stop", "2", "--early-stop-metric", "test_acc"],
     "unknown early_stop_metric 'test_acc'; choose one of: val_acc, val_loss"),
    (["--min-delta", "-0.01"], "min_delta must be 0 or positive, got -0.01"),
])
def test_bad_validation_settings_are_one_line_errors_before_any_run(args, message, tracking_store, tmp_path):
    # a comparison refuses what every architecture refuses alike (fast recipes each have their own target)
    compare = [] if "fast" in args else [["compare", "vgg", "nin", "--seeds", "2"]]
    for command in (["train", "vgg"], *compare):
        result = CliRunner().invoke(cli, [*command, *args])
        assert (result.exit_code, result.output) == (1, f"Error: {message}\n"), command
    assert not (tmp_path / "mlflow.db").exists()


def test_a_split_that_leaves_a_class_without_validation_images_is_refused_before_a_run(tracking_store):
    result = CliRunner().invoke(cli, ["train", "vgg", "--val-fraction", "0.00005", "--epochs", "1"])
    assert (result.exit_code, result.output.splitlines()[-1]) == (1, (
        "Error: val_fraction 5e-05 leaves class 0 of fashion-mnist (6000 training image(s)) with no validation "
        "image; use a larger fraction, or 0 for no split"))
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_compare_with_zero_seeds_is_a_one_line_error(tracking_store, tmp_path):
    result = CliRunner().invoke(cli, ["compare", "vgg", "nin", "--seeds", "0"])
    assert (result.exit_code, result.output) == (
        1, "Error: --seeds must be at least 1 (the number of runs per architecture), got 0\n")
    assert not (tmp_path / "mlflow.db").exists()
