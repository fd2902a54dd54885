"""The notebook API: convzoo.train and convzoo.list_architectures, tracked like the command line, and without
changing the process more than a notebook expects."""
import json
import os
import platform
import subprocess
import sys

import mlflow
import pytest
import torch
from helpers import MALLINFO

import convzoo
from convzoo.errors import ConvzooError
from convzoo.tracking.store import sqlite_path

TINY = {"epochs": 1, "batch_size": 16, "resize": 32, "limit_train_batches": 2, "limit_eval_batches": 1,
        "export": False}


@pytest.mark.slow
def test_train_returns_the_run_history_and_model_and_tracks_like_the_cli(tracking_store):
    lines = []
    result = convzoo.train("vgg", recipe="quick", options={"ratio": 8}, echo=lines.append, **TINY)
    run = mlflow.MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert (run.data.params["recipe_resolved"], run.data.params["resize"], run.data.params["option.ratio"]) == (
        "quick", "32", "8")
    assert [m.epoch for m in result.history] == [1]
    assert run.data.metrics["test_acc"] == result.history[-1].test_acc
    assert isinstance(result.model, torch.nn.Module)
    assert any(line.startswith("epoch 1, loss") for line in lines)
    assert "vgg" in convzoo.list_architectures("v*")


@pytest.mark.parametrize("settings, message", [
    ({"epoch": 1}, "unknown setting 'epoch'; allowed: epochs, batch_size, lr, budget, resize, optimizer, momentum, "
                   "weight_decay, schedule, warmup_epochs, random_erasing, mixup_alpha, cutmix_alpha, mix_prob, "
                   "ema_decay, tta_flip, clip_grad_norm, augment, flip_shift, label_smoothing, target_acc, "
                   "val_fraction, early_stop, early_stop_metric, min_delta, device, precision"),
    ({"label_smoothing": 1.0}, "label_smoothing must be in [0, 1), got 1.0"),
    ({"lr": -1.0}, "lr must be a positive number, got -1.0"),
    ({"target_acc": 1.5}, "target_acc must be in (0, 1], got 1.5"),
    ({"precision": "fp16"}, "unknown precision 'fp16'; choose one of: auto, fp32, bf16"),
    ({"recipe": "fastest"}, "unknown recipe 'fastest' for vgg; choose one of: auto, seed, quick, fast"),
])
def test_bad_settings_are_the_cli_s_one_line_errors_and_make_no_run(tracking_store, settings, message):
    with pytest.raises(ConvzooError) as error:
        convzoo.train("vgg", echo=lambda line: None, **{**TINY, **settings})
    assert str(error.value).startswith(message)
    assert not sqlite_path(tracking_store).exists()  # refused before the store was even opened: no run, no file


PROBE = MALLINFO + '''
import convzoo
convzoo.train("vgg", echo=lambda line: None, keep_freed_memory=sys.argv[1] == "keep", **json.loads(sys.argv[2]))
before = libc.mallinfo2()
block = torch.ones(64 << 20, dtype=torch.uint8)
subnormal = torch.full((1 << 20,), 1e-39) * 1.0  # shared out over every thread of the pool
print(json.dumps({"mmapped": libc.mallinfo2().hblkhd - before.hblkhd, "subnormals": int(subnormal.count_nonzero())}))
'''


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_malloc_and_the_float_mode_are_left_alone_unless_asked(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}

    def probe(mode):
        done = subprocess.run([sys.executable, "-c", PROBE, mode, json.dumps(TINY)], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.splitlines()[-1])

    default, tuned = probe("default"), probe("keep")
    assert default["mmapped"] >= 64 << 20  # glibc's own behaviour: a big block gets a mapping of its own
    assert default["subnormals"] == 1 << 20  # IEEE arithmetic: subnormal results kept
    assert tuned["mmapped"] < 64 << 20  # the command line's: served from the heap
    assert tuned["subnormals"] == 0  # and flushed to zero on every thread, the pool's too