"""What each modern recipe feature does to training: AdamW's decoupled weight decay, the linear warm-up into the
schedule, gradient-norm clipping, random erasing, mixup and CutMix, the moving average of the weights, and the flip
test-time augmentation in the exported model. (Each is also in the exact-resume tests of test_durable_runs.py.)"""
import mlflow
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import rates

from convzoo.cli.app import cli
from convzoo.deploy.export import session
from convzoo.training.callbacks import Callback
from convzoo.data.fashion_mnist import load
from convzoo.data.pipeline import BatchLoader
from convzoo.recipes import Recipe
from convzoo.training.trainer import Trainer, make_optimizer, make_scheduler, stretch_schedule, warmup_steps


@pytest.fixture(scope="module")
def fashion():
    return load()


def recipe(**settings):
    return Recipe(**{"epochs": 5, "batch_size": 16, "lr": 0.1, **settings})


def test_adamw_shrinks_the_weights_apart_from_the_gradient_and_adam_adds_decay_to_it():
    after = {}
    for name in ("adam", "adamw"):
        layer = torch.nn.Linear(3, 3)
        torch.nn.init.ones_(layer.weight)
        optimizer = make_optimizer(layer, recipe(optimizer=name, weight_decay=0.5))
        for parameter in layer.parameters():
            parameter.grad = torch.zeros_like(parameter)
        optimizer.step()
        after[name] = layer.weight.detach()
    # AdamW: w - lr * decay * w, untouched by Adam's normalisation; Adam: the decay is a gradient, normalised to lr
    assert torch.allclose(after["adamw"], torch.full((3, 3), 1 - 0.1 * 0.5))
    assert torch.allclose(after["adam"], torch.full((3, 3), 1 - 0.1), atol=1e-6)


@pytest.mark.parametrize("schedule", ["cosine", "none"])
def test_warmup_rises_linearly_to_lr_then_follows_the_schedule_and_stretches_on_resume(schedule):
    hyper = recipe(schedule=schedule, warmup_epochs=0.5)
    assert warmup_steps(hyper, 40) == 20
    optimizer = make_optimizer(torch.nn.Linear(2, 2), hyper)
    scheduler = make_scheduler(optimizer, hyper, 100, warmup_steps(hyper, 40))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.001)  # the first step at lr / 100
    seen = rates(scheduler, optimizer, 100)
    ramp = [0.001 + (0.1 - 0.001) * step / 20 for step in range(1, 21)]
    assert seen[:20] == pytest.approx(ramp)  # linear, reaching lr at the end of the warm-up
    if schedule == "none":
        assert seen[20:] == pytest.approx([0.1] * 80)
        return
    assert seen[20:] == sorted(seen[20:], reverse=True) and seen[-1] < 1e-9  # annealed over the other 80 steps
    optimizer = make_optimizer(torch.nn.Linear(2, 2), hyper)
    scheduler = make_scheduler(optimizer, hyper, 100, 20)
    rates(scheduler, optimizer, 50)
    stretch_schedule(scheduler, 200)  # --epochs raised on resume: the cosine part ends at the new end
    rest = rates(scheduler, optimizer, 150)
    assert rest == sorted(rest, reverse=True) and rest[-1] < 1e-9 < rest[-2]


def test_gradient_clipping_bounds_every_step_of_a_real_training_epoch(fashion):
    moved = {}
    for clip in (0.0, 1e-3):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                    torch.nn.Linear(4 * 26 * 26, 10))
        start = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
        loaders = [BatchLoader(images, labels, 16, 28, torch.device("cpu"), shuffle=False, limit_batches=3)
                   for images, labels in ((fashion.train_images, fashion.train_labels),
                                          (fashion.test_images, fashion.test_labels))]
        hyper = Recipe(epochs=1, batch_size=16, lr=1.0, optimizer="sgd", momentum=0.0, clip_grad_norm=clip)
        Trainer(model, *loaders, hyper, "fp32").fit()
        moved[clip] = (torch.nn.utils.parameters_to_vector(model.parameters()) - start).norm().item()
    # SGD at lr 1: each of the 3 steps moves the weights by the clipped gradient, at most 1e-3 each
    assert 0 < moved[1e-3] <= 3 * 1e-3 * 1.0001 and moved[0.0] > 100 * moved[1e-3]


@pytest.mark.parametrize("args, message", [
    (["--warmup-epochs", "3", "--epochs", "2"],
     "Error: warmup_epochs must be 0 (none) or more, and less than epochs (2), got 3.0"),
    (["--warmup-epochs", "1", "--schedule", "onecycle"],
     "Error: warmup_epochs cannot be used with schedule onecycle, which warms up itself; use schedule cosine or none"),
    (["--clip-grad-norm", "-1"], "Error: clip_grad_norm must be 0 (no clipping) or positive, got -1.0"),
    (["--optimizer", "adamax"], "Error: unknown optimizer 'adamax'; choose one of: adam, adamw, sgd"),
    (["--mixup-alpha", "0"], "Error: mixup_alpha must be > 0 (leave it unset for none), got 0.0"),
    (["--cutmix-alpha", "-1"], "Error: cutmix_alpha must be > 0 (leave it unset for none), got -1.0"),
    (["--mix-prob", "1.5"], "Error: mix_prob must be in (0, 1], got 1.5"),
    (["--random-erasing", "2"], "Error: random_erasing must be in [0, 1] (the chance per image; 0: none), got 2.0"),
    (["--ema-decay", "1"], "Error: ema_decay must be in (0, 1) (leave it unset for none), got 1.0"),
    (["--ema-decay", "0"], "Error: ema_decay must be in (0, 1) (leave it unset for none), got 0.0"),
])
def test_bad_feature_settings_are_one_line_errors(args, message, tracking_store):
    result = CliRunner().invoke(cli, ["train", "vgg", *args])
    assert result.exit_code == 1 and result.output == message + "\n"


def mixing_trainer(splits, **settings):
    loader = BatchLoader(splits.train_images, splits.train_labels, 16, 28, torch.device("cpu"), shuffle=False,
                         limit_batches=1)
    hyper = Recipe(epochs=1, batch_size=16, lr=0.1, **settings)
    return Trainer(torch.nn.Linear(784, 10), loader, loader, hyper, "fp32", num_classes=10), next(iter(loader))


def test_mixup_blends_each_image_with_the_next_by_the_weight_its_soft_label_carries(fashion):
    trainer, (images, labels) = mixing_trainer(fashion, mixup_alpha=0.4)
    torch.manual_seed(1)
    mixed, targets = trainer.transformed(images, labels)
    rolled = labels.roll(1)
    for row in torch.nonzero(labels != rolled).flatten().tolist():
        weight = targets[row, labels[row]].item()
        assert 0 < weight < 1 and targets[row, rolled[row]].item() == pytest.approx(1 - weight)
        assert torch.allclose(mixed[row], weight * images[row] + (1 - weight) * images.roll(1, 0)[row], atol=1e-6)


def test_cutmix_pastes_a_box_of_the_next_image_and_weights_the_labels_by_its_area(fashion):
    trainer, (_, labels) = mixing_trainer(fashion, cutmix_alpha=1.0)
    torch.manual_seed(3)
    images = torch.rand(16, 1, 28, 28)  # no pixel equal to its neighbour's (Fashion-MNIST's black ones are)
    mixed, targets = trainer.transformed(images, labels)
    own, other = mixed == images, mixed == images.roll(1, 0)
    assert bool((own | other).all())  # every pixel is the image's own or its neighbour's
    pasted = (~own).float().mean().item()  # one box, the same for the whole batch
    row = torch.nonzero(labels != labels.roll(1)).flatten()[0].item()
    assert 0 < pasted < 1 and targets[row, labels.roll(1)[row]].item() == pytest.approx(pasted)


def test_mix_prob_mixes_about_that_share_of_the_batches(fashion):
    trainer, (images, labels) = mixing_trainer(fashion, mixup_alpha=0.4, cutmix_alpha=1.0, mix_prob=0.3)
    torch.manual_seed(0)
    mixed = sum(trainer.transformed(images, labels)[1].dim() == 2 for _ in range(400))
    assert 80 <= mixed <= 160  # 120 expected; the others keep their images and integer labels


def test_random_erasing_blacks_out_one_box_per_image_with_its_chance(fashion):
    trainer, (_, labels) = mixing_trainer(fashion, random_erasing=1.0)
    torch.manual_seed(0)
    images = torch.rand(16, 1, 28, 28) + 0.01  # no pixel is black before
    erased, targets = trainer.transformed(images, labels)
    assert targets is labels  # erasing alone leaves the labels as they are
    boxes = []
    for before, after in zip(images, erased):
        rows, columns = torch.nonzero(after[0] == 0, as_tuple=True)
        assert len(rows) and torch.equal(after[after != 0], before[after != 0])  # the rest untouched
        box = (rows.min().item(), rows.max().item(), columns.min().item(), columns.max().item())
        assert len(rows) == (box[1] - box[0] + 1) * (box[3] - box[2] + 1)  # one filled rectangle
        boxes.append(box)
    assert len(set(boxes)) > 1  # a box of its own for each image, not one for the batch
    trainer, _ = mixing_trainer(fashion, random_erasing=0.25)
    erased, _ = trainer.transformed(torch.rand(400, 1, 28, 28) + 0.01, torch.zeros(400, dtype=torch.long))
    assert 60 <= int((erased == 0).flatten(1).any(1).sum()) <= 140  # about a quarter of the images


class WeightsAfterEachStep(Callback):
    def __init__(self):
        self.seen = []

    def on_step_end(self, trainer):
        self.seen.append(torch.nn.utils.parameters_to_vector(trainer.model.parameters()).detach().clone())


def test_ema_averages_the_weights_of_every_step_and_evaluation_uses_the_average(fashion):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    train, test = (BatchLoader(images, labels, 16, 28, torch.device("cpu"), shuffle=False, limit_batches=4)
                   for images, labels in ((fashion.train_images, fashion.train_labels),
                                          (fashion.test_images, fashion.test_labels)))
    steps = WeightsAfterEachStep()
    trainer = Trainer(model, train, test, Recipe(epochs=1, batch_size=16, lr=0.01, ema_decay=0.75), "fp32",
                      callbacks=[steps])
    trainer.fit()
    expected = steps.seen[0]  # the first step copies the weights, each later one moves 1/4 of the way
    for weights in steps.seen[1:]:
        expected = 0.75 * expected + 0.25 * weights
    averaged = torch.nn.utils.parameters_to_vector(trainer.weights.parameters())
    assert torch.allclose(averaged, expected, atol=1e-7)
    assert not torch.allclose(averaged, steps.seen[-1])
    assert trainer.weights is not trainer.model  # the average is evaluated, the model trains
    assert torch.equal(trainer.state.predictions, trainer.evaluate(test).predicted)
    assert trainer.state.history[-1].test_acc == trainer.evaluate(test).accuracy


def test_a_flip_tta_run_logs_and_exports_the_mirror_averaged_ema_model(tracking_store):
    result = CliRunner().invoke(cli, [
        "train", "vgg", "--recipe", "quick", "--epochs", "1", "--limit-train-batches", "80", "--resize", "32",
        "--precision", "fp32", "--val-fraction", "0.05", "--ema-decay", "0.5", "--tta-flip", "true"])
    assert result.exit_code == 0, result.output
    [run] = mlflow.search_runs(output_format="list")
    metrics = run.data.metrics
    assert "flip test-time augmentation: tta_val_acc " in result.output
    # the logged PyTorch model, measured by the parity check on every test image, is the flip-averaged one
    assert metrics["tta_test_acc"] == pytest.approx(metrics["torch_fp32_test_acc"]) == metrics["onnx_test_acc"]
    assert 0 < metrics["tta_val_acc"] <= 1 and metrics["onnx_top1_agreement"] == 1.0
    onnx = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/onnx-model/model.onnx")
    images = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    runtime = session(onnx)
    logits, mirrored = (runtime.run(["logits"], {"image": batch})[0] for batch in (images, images[:, :, ::-1].copy()))
    assert np.allclose(logits, mirrored, atol=1e-5)  # the graph averages each image with its mirror image
    assert not np.allclose(logits[0], logits[1], atol=1e-3)  # and still tells images apart
