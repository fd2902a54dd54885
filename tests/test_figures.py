"""The run's plots as matplotlib figures: what they show, and that drawing them leaves pyplot alone."""
import subprocess
import sys

import pytest
import torch

from convzoo.tracking import figures
from convzoo.training.trainer import EpochMetrics


def history(epochs):
    return [EpochMetrics(epoch, 2.0 / epoch, 0.5, 0.6, 1.0, 100.0, 0.001, 10, 640) for epoch in range(1, epochs + 1)]


def test_learning_curves_tick_whole_epochs_only():
    figure = figures.plot_learning_curves(history(2))
    for axes in figure.axes:
        ticks = [tick for tick in axes.get_xticks() if axes.get_xlim()[0] <= tick <= axes.get_xlim()[1]]
        assert ticks and all(float(tick).is_integer() for tick in ticks), ticks


def test_the_comparison_curves_tick_whole_epochs_only():
    axes = figures.plot_test_accuracy_curves({"vgg": [[0.5, 0.6, 0.7]], "nin": [[0.4, 0.5, 0.55]]}).axes[0]
    assert all(float(tick).is_integer() for tick in axes.get_xticks())


def test_seed_repeats_draw_their_mean_with_a_band():
    """Three seeds of one architecture, the third stopped early after two epochs."""
    epochs, means, lows, highs = figures.accuracy_bands([[0.5, 0.6, 0.7], [0.6, 0.8, 0.9], [0.7, 0.7]])
    assert epochs == [1, 2, 3] and means == pytest.approx([0.6, 0.7, 0.8])
    assert lows[0] < 0.6 < highs[0] and lows[2] < 0.8 < highs[2]
    axes = figures.plot_test_accuracy_curves({"vgg": [[0.5, 0.6, 0.7], [0.6, 0.8, 0.9]], "nin": [[0.4, 0.5]]}).axes[0]
    assert [line.get_label() for line in axes.get_lines()] == ["vgg (2 runs)", "nin (1 run)"]
    assert len(axes.collections) == 1  # a band for the architecture with repeats only


@pytest.mark.slow
def test_figures_are_drawn_without_pyplot_or_a_backend_switch():
    script = ("import sys, matplotlib; before = matplotlib.get_backend(); from convzoo.tracking import figures; from convzoo.training import trainer; "
              "import torch; m = figures.confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 0]), 2); "
              "figures.plot_confusion_matrix(m, ('a', 'b')).savefig(sys.argv[1]); "
              "print('matplotlib.pyplot' in sys.modules, matplotlib.get_backend() == before)")
    done = subprocess.run([sys.executable, "-c", script, "/dev/null"], capture_output=True, text=True,
                          env={"MPLBACKEND": "svg", "PATH": ""})
    assert done.stdout.split() == ["False", "True"], done.stderr


def test_the_confusion_matrix_counts_true_rows_and_predicted_columns():
    matrix = figures.confusion_matrix(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 1]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
