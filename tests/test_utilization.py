"""MFU: the machine's measured peak (cached per machine and precision), the ISA oneDNN reports, and what runs log."""
import json
import subprocess
import sys

import mlflow
import pytest
import torch

from convzoo.training.peak import Peak, cache_dir, onednn_isa, peak
from convzoo.training.trainer import EpochMetrics, time_to_target
from convzoo.training.utilization import Utilization

CPU = torch.device("cpu")


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVZOO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_peak_is_measured_once_then_read_from_the_cache(empty_cache):
    told = []
    first = peak(CPU, "fp32", on_measure=told.append)
    assert len(told) == 1 and told[0].startswith("measuring this machine's peak fp32 FLOP/s on cpu for MFU")
    assert first.isa == onednn_isa() and first.kernel.split()[0] in ("matmul", "conv")
    assert 1e9 < first.flops_per_sec < 1e14
    assert peak(CPU, "fp32", on_measure=told.append) == first and len(told) == 1
    [entry] = json.loads((empty_cache / "peak.json").read_text()).values()
    assert Peak(**entry) == first
    assert cache_dir() == empty_cache


@pytest.mark.slow
def test_another_thread_count_or_remeasure_measures_again(empty_cache):
    told = []
    peak(CPU, "fp32", on_measure=told.append)
    threads = torch.get_num_threads()
    other = 2 if threads == 1 else 1
    torch.set_num_threads(other)
    try:
        peak(CPU, "fp32", on_measure=told.append)
    finally:
        torch.set_num_threads(threads)
    peak(CPU, "fp32", remeasure=True, on_measure=told.append)
    assert len(told) == 3
    keys = json.loads((empty_cache / "peak.json").read_text())
    assert sorted(key.split("|")[2] for key in keys) == sorted({f"threads={other}", f"threads={threads}"})


def test_a_corrupt_cache_is_measured_again_and_rewritten_whole(empty_cache):
    empty_cache.mkdir()
    (empty_cache / "peak.json").write_text('{"cpu|trunc')
    told = []
    measured = peak(CPU, "fp32", on_measure=told.append)
    assert len(told) == 1
    assert [Peak(**entry) for entry in json.loads((empty_cache / "peak.json").read_text()).values()] == [measured]
    assert sorted(path.name for path in empty_cache.iterdir()) == ["peak.json", "peak.json.lock"]


def test_precision_auto_follows_the_isa_onednn_reports():
    """Capped at AVX2, oneDNN has no bfloat16 instructions on any CPU, and auto picks fp32."""
    probe = ("import torch; from convzoo.training.peak import onednn_isa; from convzoo.training.devices import resolve_precision; "
             "print(onednn_isa()); print(resolve_precision('auto', torch.device('cpu')))")
    capped = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env={"ONEDNN_MAX_CPU_ISA": "AVX2", "PATH": "/usr/bin:/bin"})
    assert capped.stdout.splitlines() == ["Intel AVX2", "fp32"]
    from convzoo.training.devices import resolve_precision

    assert resolve_precision("auto", CPU) == ("bf16" if "bfloat16" in onednn_isa() else "fp32")


def epoch(examples_per_sec):
    return EpochMetrics(epoch=1, train_loss=1.0, train_acc=0.5, test_acc=0.5, epoch_time=10.0,
                        examples_per_sec=examples_per_sec, lr=0.001, train_steps=10, train_examples=640)


def test_mfu_is_model_flops_per_second_over_every_process_peak():
    two = Utilization(3_000_000, Peak("cpu", "fp32", "Intel AVX2", 1e9, "matmul 512x512"), processes=2)
    assert two.metrics(epoch(200.0)) == {"model_flops_per_sec": 6e8, "mfu": pytest.approx(0.3)}
    assert two.tags() == {"convzoo.flops_per_example": "3000000", "convzoo.peak_flops_per_sec": "2e+09",
                          "convzoo.isa": "Intel AVX2"}
    uncounted = Utilization(None, two.peak)
    assert uncounted.metrics(epoch(200.0)) == {} and "convzoo.flops_per_example" not in uncounted.tags()


def test_a_run_logs_model_flops_and_mfu_every_epoch(short_run):
    config, result, lines = short_run("vgg")
    client = mlflow.MlflowClient()
    tags = client.get_run(result.run_id).data.tags
    flops, peak_flops = int(tags["convzoo.flops_per_example"]), float(tags["convzoo.peak_flops_per_sec"])
    assert tags["convzoo.isa"] == onednn_isa()
    assert peak_flops == pytest.approx(peak(CPU, result.precision).flops_per_sec, rel=1e-3)
    speeds = [m.value for m in client.get_metric_history(result.run_id, "examples_per_sec")]
    achieved = [m.value for m in client.get_metric_history(result.run_id, "model_flops_per_sec")]
    mfu = [m.value for m in client.get_metric_history(result.run_id, "mfu")]
    assert achieved == pytest.approx([flops * speed for speed in speeds])
    assert mfu == pytest.approx([value / peak_flops for value in achieved], rel=1e-3)
    assert [line.rsplit(", ", 1)[1] for line in lines[1:3]] == [f"MFU {value:.0%}" for value in mfu]


def test_convzoo_peak_prints_the_measured_peaks(run_convzoo, tmp_path):
    shown = run_convzoo("peak", "--precision", "fp32", env={"CONVZOO_CACHE_DIR": str(tmp_path)})
    assert shown.returncode == 0, shown.stderr
    header, row, isa = shown.stdout.splitlines()[-3:]
    assert header.split() == ["DEVICE", "PRECISION", "PEAK", "GFLOP/S", "BEST", "KERNEL"]
    measured = json.loads((tmp_path / "peak.json").read_text())
    [entry] = measured.values()
    assert row.split()[:3] == ["cpu", "fp32", f"{entry['flops_per_sec'] / 1e9:.1f}"]
    assert isa.startswith(f"oneDNN ISA: {entry['isa']}; precision auto trains in ")


def test_epochs_logged_on_resume_get_their_mfu_too(tracking_store):
    from convzoo.tracking.run_log import EpochLog, log_missing_epochs

    utilization = Utilization(1_000_000, Peak("cpu", "fp32", "Intel AVX2", 1e9, "matmul 512x512"))
    first, second = epoch(100.0), EpochMetrics(**{**epoch(300.0).__dict__, "epoch": 2})
    with mlflow.start_run() as run:
        mlflow.log_metrics(first.as_dict(), step=1)  # the process died after the checkpoint, before epoch 2's metrics
        log_missing_epochs(run.info.run_id, [first, second], EpochLog(utilization, target_acc=0.5))
    client = mlflow.MlflowClient()
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train_loss")] == [(1, 1.0), (2, 1.0)]
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "mfu")] == [(2, pytest.approx(0.3))]
    # epoch 1 reached the target already: logging epoch 2 does not log it again
    assert client.get_metric_history(run.info.run_id, "time_to_target") == []


def test_time_to_target_is_the_training_and_evaluation_until_the_first_epoch_whose_val_acc_reached_it():
    # the test accuracy reaches 0.99 at once: a target is a decision, and never reads it
    history = [EpochMetrics(**{**epoch(100.0).__dict__, "epoch": n, "val_acc": acc, "test_acc": 0.99,
                               "epoch_time": seconds})
               for n, acc, seconds in ((1, 0.80, 10.0), (2, 0.91, 12.5), (3, 0.90, 11.0), (4, 0.95, 9.0))]
    assert time_to_target(history, 0.9) == (2, 22.5)
    assert time_to_target(history, 0.95) == (4, 42.5)
    assert time_to_target(history, 0.96) is None and time_to_target(history, None) is None


@pytest.mark.slow
def test_a_run_with_a_target_logs_time_to_target_once(tracking_store):
    from convzoo.runs.settings import resolve_config
    from convzoo.registry.plugins import get_registry
    from convzoo.runs.training_run import train

    config, arch, dataset = resolve_config(get_registry(), "vgg", overrides={
        "epochs": 2, "batch_size": 64, "resize": 32, "target_acc": 0.05}, limit_train_batches=2, export=False)
    lines = []
    result = train(config, arch, dataset, echo=lines.append)
    reached_at, seconds = time_to_target(result.history, 0.05)  # 5,000 validation images: a constant guess scores 0.1
    logged = mlflow.MlflowClient().get_metric_history(result.run_id, "time_to_target")
    assert [(m.step, m.value) for m in logged] == [(reached_at, pytest.approx(seconds))]
    reached = [line for line in lines if "reached the target" in line]
    assert reached == [f"val acc {result.history[reached_at - 1].val_acc:.4f} reached the target 0.05 after "
                       f"{seconds:.0f} s of training and evaluation (epoch {reached_at})"]
