"""The benchmarks run end to end at tiny sizes and report consistent figures (speed itself is never asserted here).
The serving benchmark's test is in test_serving.py, beside the trained model it serves."""
from __future__ import annotations

import json

import pytest
from helpers import benchmark as bench


def test_train_throughput_measures_three_loops_and_their_ratios(tmp_path):
    out = tmp_path / "train.json"
    done = bench("train_throughput.py", "--arch", "vgg", "--steps", "1", "--warmup", "1", "--repeats", "2",
                 "--json", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    [row] = report["results"]
    assert (row["arch"], row["input_size"], row["batch_size"]) == ("vgg", 224, 16)  # the seed recipe
    assert len(row["rounds"]) == 2
    for loop in ("baseline", "bare", "convzoo"):
        rates = [one[loop] for one in row["rounds"]]
        assert all(rate > 0 for rate in rates) and min(rates) <= row[loop] <= max(rates)
    for name, other in (("convzoo_over_baseline", "baseline"), ("convzoo_over_bare", "bare")):
        ratios = sorted(one["convzoo"] / one[other] for one in row["rounds"])
        assert row[name] == pytest.approx(sum(ratios) / 2)  # the median of two rounds
        assert row[f"{name}_range"] == pytest.approx(ratios)
    assert row["convzoo_fixed_seconds"] > 0
    assert row["flops_per_example"] == pytest.approx(0.72e9, rel=0.01)  # VGG/8 at 224
    for loop in ("baseline", "bare", "convzoo"):
        assert row[f"{loop}_mfu"] == pytest.approx(row["flops_per_example"] * row[loop] / row["peak_flops_per_sec"])
    assert row["isa"] == report["machine"]["onednn_isa"]
    assert f"{row['convzoo_mfu']:.0%}" in done.stdout and "convzoo MFU" in done.stdout
    assert set(report["targets_met"]) == {"convzoo_over_baseline", "convzoo_over_bare"}
    assert report["machine"]["torch"] and report["machine"]["cpu_count"] >= 1
    assert "convzoo/baseline" in done.stdout and "targets:" in done.stdout


def test_inference_compares_eager_onnx_and_int8(tmp_path):
    out = tmp_path / "inference.json"
    done = bench("inference.py", "--arch", "vgg", "--recipe", "quick", "--repeats", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    [row] = json.loads(out.read_text())["results"]
    assert row["input_size"] == 112
    for engine in ("torch", "onnx", "int8"):
        assert row[f"{engine}_latency_ms_b1"] > 0 and row[f"{engine}_images_per_sec_b64"] > 0
    assert row["onnx_latency_speedup"] == pytest.approx(row["torch_latency_ms_b1"] / row["onnx_latency_ms_b1"])
    assert row["int8_throughput_speedup"] == pytest.approx(
        row["int8_images_per_sec_b64"] / row["torch_images_per_sec_b64"])
    assert "onnx/torch b1" in done.stdout


def test_startup_times_the_commands_against_importing_torch(tmp_path):
    out = tmp_path / "startup.json"
    done = bench("startup.py", "--repeats", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    seconds = json.loads(out.read_text())["seconds"]
    assert set(seconds) == {"convzoo --help", "convzoo plugins", "convzoo train resnet (refused)",
                            "python -c 'import torch'"}
    assert all(value > 0 for value in seconds.values())


def test_checkpoint_cost_times_a_write_against_the_steps_between_two(tmp_path):
    out = tmp_path / "checkpoint.json"
    done = bench("checkpoint_cost.py", "--arch", "vgg", "--recipe", "quick", "--steps", "1", "--warmup", "1",
                 "--repeats", "1", "--every", "100", "--json", str(out))
    assert done.returncode == 0, done.stderr
    [row] = json.loads(out.read_text())["results"]
    assert (row["arch"], row["recipe"], row["input_size"], row["batch_size"]) == ("vgg", "quick", 112, 64)
    assert row["checkpoint_mb"] > 0 and row["write_ms"] > 0 and row["upload_ms"] > 0 and row["step_ms"] > 0
    assert row["overhead_pct"] == pytest.approx(100 * row["write_ms"] / (100 * row["step_ms"]))
    assert "write / 100 steps" in done.stdout


def test_denormals_times_a_checkpoints_state_with_subnormals_kept_and_flushed(tracking_store, tmp_path):
    import mlflow

    import convzoo

    run = convzoo.train("vgg", recipe="quick", epochs=1, limit_train_batches=1, limit_eval_batches=1, export=False,
                        echo=lambda line: None)
    checkpoint = mlflow.artifacts.download_artifacts(run_id=run.run_id, artifact_path="checkpoints/last.pt",
                                                     dst_path=str(tmp_path / "download"))
    out = tmp_path / "denormals.json"
    done = bench("denormals.py", "--arch", "vgg", "--recipe", "quick", "--checkpoint", checkpoint, "--steps", "1",
                 "--warmup", "1", "--repeats", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    kept, flushed = report["results"]
    assert (kept["mode"], flushed["mode"]) == ("kept", "flushed")
    assert kept["subnormal_share"] == flushed["subnormal_share"] and 0 <= kept["subnormal_share"] < 1
    assert flushed["subnormal_share_after"] == 0  # a flushed step writes no subnormal
    assert report["ratio"] == pytest.approx(kept["step_ms"] / flushed["step_ms"])
    assert f"{report['ratio']:.2f}x" in done.stdout


def test_sweep_throughput_runs_one_and_two_workers_on_one_study(tmp_path, whole_machine):
    out = tmp_path / "sweep.json"
    done = bench("sweep_throughput.py", "--storage", "sqlite", "--trials", "2", "--batches", "2", "--resize", "32",
                 "--json", str(out))
    assert done.returncode == 0, done.stderr + done.stdout
    payload = json.loads(out.read_text())
    one, two = payload["results"]
    assert (one["workers"], one["threads"], two["workers"], two["threads"]) == (1, 2, 2, 1)
    assert one["trials"] == two["trials"] == 2  # the study's total, however many workers
    for row in (one, two):
        assert row["trials_per_hour"] == pytest.approx(2 * 3600 / row["wall_s"], rel=0.01)
        assert row["db_s_per_trial"] > 0 and row["training_s_per_trial"] > 0
    assert payload["two_workers_over_one"]["sqlite"] == pytest.approx(
        two["trials_per_hour"] / one["trials_per_hour"], abs=0.001)
    assert "2 workers x 1 thread / 1 worker x 2 threads" in done.stdout


def test_data_parallel_compares_one_process_with_two_and_times_the_all_reduce(tmp_path):
    out = tmp_path / "dp.json"
    done = bench("data_parallel.py", "--arch", "vgg", "--batches", "2", "--repeats", "1", "--steps", "1",
                 "--json", str(out))
    assert done.returncode == 0, done.stderr + done.stdout
    [row] = json.loads(out.read_text())["results"]
    assert (row["arch"], row["input"], row["batch"]) == ("vgg", 112, 64)
    assert row["ratio"] == pytest.approx(row["data_parallel"] / row["one_process"], abs=0.001)
    assert row["all_reduce_ms"] > 0 and row["step_ms"] > 0 and row["step_without_sync_ms"] > 0
    assert row["sync_share"] == pytest.approx(1 - row["step_without_sync_ms"] / row["step_ms"], abs=0.002)
    assert "1 process x" in done.stdout and "DDP step ms with / without sync" in done.stdout


def test_step_profile_lists_where_a_step_goes_and_its_mfu(tmp_path):
    out = tmp_path / "profile.json"
    done = bench("step_profile.py", "--arch", "vgg", "--recipe", "quick", "--steps", "1", "--warmup", "1", "--top",
                 "8", "--json", str(out))
    assert done.returncode == 0, done.stderr + done.stdout
    [row] = json.loads(out.read_text())["results"]
    assert (row["arch"], row["input_size"], row["batch_size"]) == ("vgg", 112, 64)  # the quick recipe
    assert row["examples_per_sec"] == pytest.approx(64 / row["step_seconds"])
    assert 0 < row["mfu"] < 1.5
    shares = [top["share"] for top in row["top"]]
    assert len(shares) == 8 and shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1
    # which op leads depends on the CPU (max pooling led on one CI machine); a VGG step always spends in convolution
    assert any("convolution" in top["op"] for top in row["top"])
    assert f"MFU {row['mfu']:.0%}" in done.stdout and "SHARE OF STEP" in done.stdout


def test_time_to_accuracy_trains_the_fast_recipe_per_seed_within_a_budget_against_its_target(tmp_path):
    out = tmp_path / "tta.json"
    # one seed (each is a whole run with its export and parity on 10,000 images); test_compare covers seed repeats
    done = bench("time_to_accuracy.py", "--arch", "vgg", "--seeds", "1", "--first-seed", "4",
                 "--limit-batches", "2", "--budget", "10s", "--json", str(out))
    assert done.returncode == 0, done.stderr + done.stdout
    report = json.loads(out.read_text())
    assert report["targets"] == {"vgg": 0.918}  # the origin repo's 5-epoch GPU test accuracy
    [run] = report["results"]
    assert (run["arch"], run["seed"]) == ("vgg", 4)
    assert 0 < run["test_acc"] < 0.918 and run["time_to_target"] is None  # 2 batches an epoch reach no target
    assert 0 < run["train_eval_seconds"] < run["budget_wall_s"] < run["wall_seconds"]
    assert run["budget_s"] == 10 and run["overrun"] == pytest.approx(run["budget_wall_s"] / 10 - 1)
    assert run["epochs"] >= 1 and 0 < run["val_acc"] < 1
    assert run["parity"] == "passed"
    assert f"{run['test_acc']:.4f}" in done.stdout and "0/1" in done.stdout
    summary = report["summaries"]["vgg"]  # one seed: its interval is the point itself
    assert summary["test_acc_mean"] == summary["test_acc_ci_low"] == run["test_acc"]
    assert summary["val_acc_mean"] == run["val_acc"] and run["tta_test_acc"] is None  # fast has no flip TTA


def test_folder_cache_compares_two_folder_sizes_and_the_second_start(tmp_path):
    out = tmp_path / "folder.json"
    done = bench("folder_cache.py", "--sizes", "80,160", "--batches", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr + done.stdout
    results = json.loads(out.read_text())["results"]
    assert sorted(results) == ["160", "80"]
    for count, result in results.items():
        assert result["cache_mib"] * 2**20 == int(count) * 3 * 32 * 32  # uint8, colour, 32 x 32: the whole folder
        for run in ("first", "second"):
            assert result[run]["startup_s"] > 0 and result[run]["peak_rss_anon_mib"] > 100  # torch alone is more
    assert "second start s" in done.stdout and "/ 80" in done.stdout


@pytest.mark.parametrize("script, args, message", [
    ("train_throughput.py", ["--steps", "0"], "--steps must be at least 1, got 0"),
    ("train_throughput.py", ["--arch", "googlnet"], "unknown architecture 'googlnet' (did you mean 'googlenet'?)"),
    ("inference.py", ["--repeats", "-1"], "--repeats must be at least 1, got -1"),
    ("checkpoint_cost.py", ["--every", "0"], "--every must be at least 1, got 0"),
    ("sweep_throughput.py", ["--trials", "0"], "--trials must be at least 1, got 0"),
    ("step_profile.py", ["--top", "0"], "--top must be at least 1, got 0"),
    ("data_parallel.py", ["--nproc", "1"], "--nproc must be at least 2 (it is compared with 1 process), got 1"),
    ("time_to_accuracy.py", ["--seeds", "0"], "--seeds must be at least 1, got 0"),
    ("folder_cache.py", ["--sizes", "10,x"], "--sizes '10,x' is not a comma-separated list of image counts"),
    ("serving.py", ["--concurrency", "0"], "--concurrency must be at least 1, got 0"),
    ("serving.py", ["--requests", "0"], "--requests must be at least 1, got 0"),
    ("time_to_accuracy.py", ["--recipe", "fastest"], "no seed architecture has a recipe 'fastest'"),
    ("time_to_accuracy.py", ["--recipe", "quick"],
     "recipe 'quick' of alexnet has no target_acc to measure the time to"),
])
def test_bad_arguments_are_one_line_errors(script, args, message, tmp_path):
    out = tmp_path / "never.json"
    done = bench(script, *args, "--json", str(out))
    assert done.returncode == 2
    assert message in done.stderr.splitlines()[-1]
    assert not out.exists()
