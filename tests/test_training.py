"""Short real training runs on real Fashion-MNIST into a real MLflow SQLite store."""
import dataclasses
import json

import mlflow
import mlflow.pytorch
import pytest
import torch
from click.testing import CliRunner
from helpers import rates

from convzoo import hookimpl, list_architectures
from convzoo.cli.app import cli
from convzoo.config import TrainConfig
from convzoo.runs.settings import resolve_config
from convzoo.data.splits import ImageSplits
from convzoo.errors import ConvzooError
from convzoo.tracking.store import sqlite_path
from convzoo.data.fashion_mnist import FILES, load
from convzoo.data.pipeline import resize
from convzoo.registry.plugins import get_registry
from convzoo.runs.training_run import train
from convzoo.registry.summary import flops_per_example

PLOTS = {"plots/confusion_matrix.png", "plots/learning_curves.png", "plots/misclassified.png"}


def short_config(name, registry=None, **overrides):
    return resolve_config(registry or get_registry(), name, overrides={"epochs": 2, "batch_size": 8, **overrides},
                          limit_train_batches=2, limit_eval_batches=2, export=False)


@pytest.fixture(scope="module")
def sample_images():
    return load().test_images[:6].float().div(255)


@pytest.mark.parametrize("name", list_architectures())
def test_short_training_run_is_fully_tracked(name, short_run, sample_images, tmp_path):
    config, result, lines = short_run(name)
    client = mlflow.MlflowClient()
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    for metric in ("train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "epoch_time", "examples_per_sec",
                   "lr", "train_steps", "train_examples"):
        assert [m.step for m in client.get_metric_history(result.run_id, metric)] == [1, 2]
    assert any(key.startswith("system/") for key in run.data.metrics)
    params = run.data.params
    assert (params["arch"], params["recipe"], params["recipe_resolved"]) == (name, "auto", "quick")
    assert (params["epochs"], params["batch_size"], params["resize"]) == ("2", "8", str(config.hyper.resize))
    assert lines[0].startswith("recipe auto -> quick (no GPU")
    assert [line.split(",")[0] for line in lines[1:3]] == ["epoch 1", "epoch 2"]
    tags = run.data.tags
    arch = get_registry().get_architecture(name)
    assert (tags["convzoo.arch"], tags["convzoo.plugin"], tags["convzoo.plugin_version"]) == (
        name, arch.plugin, arch.plugin_version)
    assert (tags["convzoo.device"], tags["convzoo.version"], tags["convzoo.recipe"]) == ("cpu", "0.1.0", "quick")
    assert tags["convzoo.precision"] in ("fp32", "bf16")
    assert tags["convzoo.flops_per_example"] == str(flops_per_example(arch, 1, 10, config.hyper.resize,
                                                                      **config.hyper.options))
    # what the MLflow UI lists and shows: a name that says what ran, and a description
    assert run.info.run_name == f"{name}-fashion-mnist-quick"  # architecture, data set, recipe
    assert tags["mlflow.note.content"].startswith(f"**{name}**")
    assert f"Final test accuracy **{result.history[-1].test_acc:.4f}**" in tags["mlflow.note.content"]
    assert tags["mlflow.note.content"].endswith("ONNX parity: **passed**.")
    # 5,000 of the 60,000 training images held out for validation: two inputs, sizes and digests to match
    inputs = {[tag.value for tag in found.tags][0]: found.dataset for found in run.inputs.dataset_inputs}
    assert {context: (found.name, json.loads(found.profile)) for context, found in inputs.items()} == {
        "training": ("fashion-mnist", {"num_rows": 55_000}), "validation": ("fashion-mnist", {"num_rows": 5_000})}
    assert inputs["validation"].digest == params["val_digest"] != ImageSplits.digest_of(FILES.values())
    assert (params["val_fraction"], params["val_images"]) == (str(1 / 12), "5000")
    predictions = mlflow.artifacts.load_text(f"runs:/{result.run_id}/predictions/test_predictions.csv").splitlines()
    assert predictions[0] == "index,label,predicted,probability" and len(predictions) == 1 + 16  # 2 batches of 8
    index, label, guess, probability = predictions[1].split(",")
    assert (index, label) == ("0", str(int(load().test_labels[0]))) and 0.1 <= float(probability) <= 1
    right = [line.split(",")[1] == line.split(",")[2] for line in predictions[1:]]
    assert sum(right) / len(right) == pytest.approx(result.history[-1].test_acc)  # the last epoch's model's
    assert {"config.json", "plots"} <= {a.path for a in client.list_artifacts(result.run_id)}
    assert {a.path for a in client.list_artifacts(result.run_id, "plots")} == PLOTS
    assert mlflow.artifacts.load_dict(f"runs:/{result.run_id}/config.json")["arch"] == name

    loaded = mlflow.pytorch.load_model(f"runs:/{result.run_id}/model", dst_path=str(tmp_path))
    images = resize(sample_images, config.hyper.resize)
    trained = result.model.cpu().float().to(memory_format=torch.contiguous_format).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), trained(images), rtol=1e-4, atol=1e-5)


class Recorder:
    def __init__(self, interrupt_at_epoch=None):
        self.calls, self.interrupt_at_epoch = [], interrupt_at_epoch

    @hookimpl
    def on_run_start(self, run):
        self.calls.append(("start", run.arch, run.run_id is not None))

    @hookimpl
    def on_epoch_end(self, epoch, metrics):
        self.calls.append(("epoch", epoch, sorted(metrics)))
        if epoch == self.interrupt_at_epoch:
            raise KeyboardInterrupt  # what Ctrl-C raises in the training process

    @hookimpl
    def on_exception(self, error):
        self.calls.append(("exception", type(error).__name__))

    @hookimpl
    def on_run_end(self, run, status):
        self.calls.append(("end", status))


class FailingObserver:
    @hookimpl
    def on_epoch_end(self, run, epoch, metrics):
        raise RuntimeError(f"observer bug at epoch {epoch}")


@pytest.mark.slow
def test_an_observer_that_raises_is_printed_tagged_and_raised_in_strict_mode(tracking_store, load_with, capsys,
                                                                             monkeypatch):
    pm, _ = load_with()
    pm.register(FailingObserver(), name="failing-observer")
    config, arch, dataset = short_config("vgg", resize=32)
    result = train(config, arch, dataset, echo=lambda line: None, pm=pm)
    run = mlflow.MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["convzoo.plugin_errors"] == (
        "plugin failing-observer failed in on_epoch_end: RuntimeError: observer bug at epoch 2")
    assert ("convzoo: plugin failing-observer failed in on_epoch_end: RuntimeError: observer bug at epoch 1 (the run "
            "goes on)") in capsys.readouterr().err

    monkeypatch.setenv("CONVZOO_STRICT_PLUGINS", "1")
    with pytest.raises(RuntimeError, match="observer bug at epoch 1"):
        train(config, arch, dataset, echo=lambda line: None, pm=pm)
    strict = mlflow.MlflowClient().search_runs(["0"], order_by=["attributes.start_time DESC"])[0]
    assert strict.info.status == "FAILED"


def test_a_run_is_named_arch_recipe_unless_somebody_named_it(tracking_store, monkeypatch):
    from convzoo.tracking.active_run import run_name

    client = mlflow.MlflowClient()
    assert run_name("vgg-quick", None) == "vgg-quick"
    assert run_name("vgg-quick", "vgg-quick-t3 lr=0.01") == "vgg-quick-t3 lr=0.01"
    for made_by_mlflow_run, expected in ((client.create_run("0"), "vgg-quick"),  # MLflow's random name
                                         (client.create_run("0", run_name="my-baseline"), None)):  # --run-name
        monkeypatch.setenv("MLFLOW_RUN_ID", made_by_mlflow_run.info.run_id)
        assert run_name("vgg-quick", None) == expected


@pytest.mark.slow
def test_hooks_are_called_by_a_real_training_run(tracking_store, load_with):
    pm, _ = load_with()
    recorder = Recorder()
    pm.register(recorder)
    config, arch, dataset = short_config("nin")
    train(config, arch, dataset, echo=lambda line: None, pm=pm)
    metrics = ["epoch_time", "examples_per_sec", "lr", "test_acc", "train_acc", "train_examples", "train_loss",
               "train_steps", "val_acc", "val_loss"]
    assert recorder.calls == [("start", "nin", True), ("epoch", 1, metrics), ("epoch", 2, metrics), ("end", "FINISHED")]


def test_a_run_that_raises_ends_failed(tracking_store, load_with):
    pm, registry = load_with("convzoo-tinynet")
    recorder = Recorder()
    pm.register(recorder)
    config, arch, dataset = short_config("exploding", registry)
    with pytest.raises(RuntimeError, match="exploding on purpose"):
        train(config, arch, dataset, echo=lambda line: None, pm=pm)
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FAILED"
    assert recorder.calls == [("start", "exploding", True), ("exception", "RuntimeError"), ("end", "FAILED")]
    assert "convzoo.flops_per_example" not in run.data.tags  # its forward raises on the meta device too


@pytest.mark.slow
def test_an_export_that_fails_after_training_is_an_exception_of_the_run(tracking_store, load_with):
    """on_exception fires for an error anywhere after on_run_start, as its hookspec says: here the ONNX parity
    check."""
    pm, registry = load_with("convzoo-tinynet")
    recorder = Recorder()
    pm.register(recorder)
    config, arch, dataset = short_config("unexportable", registry)
    with pytest.raises(ConvzooError, match="ONNX parity check failed"):
        train(dataclasses.replace(config, export=True), arch, dataset, echo=lambda line: None, pm=pm)
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FAILED"
    assert [call[0] for call in recorder.calls] == ["start", "epoch", "epoch", "exception", "end"]
    assert recorder.calls[-2:] == [("exception", "ParityError"), ("end", "FAILED")]


def test_ctrl_c_ends_the_run_killed(tracking_store, load_with):
    pm, registry = load_with()
    recorder = Recorder(interrupt_at_epoch=1)
    pm.register(recorder)
    config, arch, dataset = short_config("nin", registry)
    with pytest.raises(KeyboardInterrupt):
        train(config, arch, dataset, echo=lambda line: None, pm=pm)
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "KILLED"
    assert recorder.calls[-2:] == [("exception", "KeyboardInterrupt"), ("end", "KILLED")]


@pytest.mark.parametrize("args, message", [
    (["resnet"], "unknown architecture 'resnet'"),
    (["alexnet", "--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["alexnet", "--recipe", "fastest"],
     "unknown recipe 'fastest' for alexnet; choose one of: auto, seed, quick, fast, best"),
    (["alexnet", "--precision", "fp16"], "unknown precision 'fp16'; choose one of: auto, fp32, bf16"),
    (["alexnet", "--device", "tpu"], "unknown device 'tpu'; choose one of: auto, cpu, cuda"),
    (["alexnet", "--device", "cuda"], "device 'cuda' is not available on this machine; use cpu or auto"),
    (["alexnet", "--epochs", "0"], "epochs must be a positive integer, got 0"),
    (["alexnet", "--batch-size", "-4"], "batch_size must be a positive integer, got -4"),
    (["alexnet", "--resize", "32"], "resize 32 is too small for alexnet: it needs at least 67"),
    (["alexnet", "--lr", "0"], "lr must be a positive number, got 0.0"),
    (["vgg", "--option", "ratio=0"], "vgg option ratio=0 is not allowed"),
    (["alexnet", "--limit-train-batches", "-1"], "limit_train_batches must be 0 (all batches) or positive, got -1"),
    (["alexnet", "--checkpoint-every", "-1"],
     "checkpoint_every must be 0 (no mid-epoch checkpoints) or positive, got -1"),
    ([], "missing ARCH: name an architecture (`convzoo archs` lists them), or pass --resume RUN_ID"),
])
def test_bad_input_is_a_one_line_error_and_creates_no_run(args, message, tracking_store):
    result = CliRunner().invoke(cli, ["train", *args])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {message}") and result.output.count("\n") == 1
    assert not sqlite_path(tracking_store).exists()  # refused before the store was even opened: no run, no file


@pytest.mark.parametrize("args", [["resume", "0123abcd"], ["train", "--resume", "0123abcd"]])
def test_resuming_an_unknown_run_is_a_one_line_error(args, tracking_store):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == f"Error: no run '0123abcd' in the tracking store {tracking_store}"


@pytest.mark.slow
def test_overrides_apply_on_top_of_the_recipe(tracking_store):
    result = CliRunner().invoke(cli, ["train", "vgg", "--recipe", "quick", "--lr", "0.0005", "--option", "ratio=16",
                                      "--epochs", "1", "--limit-train-batches", "1", "--limit-eval-batches", "1",
                                      "--export", "false"])
    assert result.exit_code == 0, result.output
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    params = run.data.params
    assert (params["lr"], params["option.ratio"], params["epochs"]) == ("0.0005", "16", "1")
    assert (params["resize"], params["batch_size"], params["optimizer"]) == ("112", "64", "adam")


def test_the_resolved_recipe_holds_the_input_size_and_options_and_older_checkpoint_configs_still_load():
    config, arch, _ = resolve_config(get_registry(), "vgg", recipe="quick", overrides={"lr": 0.0005},
                                     options={"ratio": 16})
    assert (config.hyper.resize, config.hyper.options, config.hyper.lr) == (112, {"ratio": 16}, 0.0005)
    assert TrainConfig.from_dict(config.to_dict()) == config
    older = config.to_dict()  # what checkpoints kept before: the resolved values beside an unresolved recipe
    older["hyper"] = {**older["hyper"], "resize": None, "options": {}}
    older.update(resize=112, options={"ratio": 16})
    assert TrainConfig.from_dict(older) == config


@pytest.mark.parametrize("requested, message", [
    ({"options": {"ratio": 8}}, "cannot change option ratio on resume (the run has 16, got 8)"),
    ({"resize": 64}, "cannot change resize on resume (the run has 112, got 64)"),
    ({"epochs": 0}, "epochs can only be raised on resume (the run has 3, got 0)"),
])
def test_resume_refuses_what_would_train_another_network(requested, message):
    from convzoo.runs.resume import resumed_config

    config, arch, _ = resolve_config(get_registry(), "vgg", recipe="quick", options={"ratio": 16})
    with pytest.raises(ConvzooError) as refused:
        resumed_config(config, arch, requested)
    assert str(refused.value).startswith(message)
    longer = resumed_config(config, arch, {"epochs": 5, "options": {"ratio": 16}, "resize": 112})
    assert (longer.hyper.epochs, longer.hyper.resize, longer.hyper.options) == (5, 112, {"ratio": 16})


@pytest.mark.slow
def test_same_seed_same_config_gives_identical_metrics(tracking_store):
    runs = []
    for _ in range(2):
        config, arch, dataset = short_config("nin", augment=True)
        runs.append(train(config, arch, dataset, echo=lambda line: None))
    client = mlflow.MlflowClient()
    for metric in ("train_loss", "train_acc", "test_acc"):
        first, second = ([m.value for m in client.get_metric_history(r.run_id, metric)] for r in runs)
        assert first == second


def test_onecycle_warms_up_to_the_recipe_lr_then_anneals_and_stretches_on_resume():
    from convzoo.recipes import Recipe
    from convzoo.training.trainer import make_optimizer, make_scheduler, stretch_schedule

    hyper = Recipe(epochs=1, batch_size=1, lr=0.01, schedule="onecycle")
    optimizer = make_optimizer(torch.nn.Linear(2, 2), hyper)
    seen = rates(make_scheduler(optimizer, hyper, 100), optimizer, 100)
    assert max(seen) == pytest.approx(0.01) and 25 <= seen.index(max(seen)) <= 30  # 30 % warm-up
    assert seen[0] < 0.001 and seen[-1] < 1e-5  # annealed to a thousandth of lr
    optimizer = make_optimizer(torch.nn.Linear(2, 2), hyper)
    scheduler = make_scheduler(optimizer, hyper, 50)
    first = rates(scheduler, optimizer, 40)
    stretch_schedule(scheduler, 100)  # --epochs raised on resume: 60 more steps, annealing to the new end
    rest = rates(scheduler, optimizer, 60)
    assert max(first) == pytest.approx(0.01)  # the warm-up is kept
    assert rest[:-1] == sorted(rest[:-1], reverse=True) and rest[-1] < 1e-5 < rest[0]  # annealing, over the longer run


@pytest.mark.slow
def test_label_smoothing_reaches_the_loss(tracking_store):
    losses = {}
    for smoothing in (0.0, 0.4):
        config, arch, dataset = short_config("vgg", resize=32, label_smoothing=smoothing)
        losses[smoothing] = train(config, arch, dataset, echo=lambda line: None).history[0].train_loss
    # the same seed and batches: only the loss differs; smoothed, a confident wrong guess costs less, a right one more
    assert losses[0.0] != losses[0.4]
    assert mlflow.search_runs(search_all_experiments=True)["params.label_smoothing"].tolist() == ["0.4", "0.0"]


@pytest.mark.slow
def test_classes_the_network_never_predicts_are_named_in_a_warning_and_a_tag(tracking_store):
    # the seed's NiN ends in a ReLU on its class scores; from seed 0's weights most of them are 0 on every image
    import convzoo
    from convzoo.data.fashion_mnist import CLASS_NAMES

    lines = []
    result = convzoo.train("nin", recipe="quick", epochs=1, resize=67, limit_train_batches=100, limit_eval_batches=2,
                           export=False, echo=lines.append)
    rows = mlflow.artifacts.load_text(f"runs:/{result.run_id}/predictions/test_predictions.csv").splitlines()[1:]
    predicted = {int(row.split(",")[2]) for row in rows}
    missing = [name for index, name in enumerate(CLASS_NAMES) if index not in predicted]
    assert missing and len(rows) == 128
    assert mlflow.get_run(result.run_id).data.tags["convzoo.never_predicted"] == ",".join(missing)
    assert f"warning: nin predicted none of its 128 test images as {', '.join(missing)}: " in lines[-1]
