"""Puts a run's proven ONNX model into MLflow: export with the input pipeline, parity on the whole test set, speed,
and the model itself, which ``mlflow models serve`` serves as an image classifier."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import mlflow
import mlflow.onnx
from torch import nn

from convzoo.deploy import image_classifier
from convzoo.data.splits import ImageSplits
from convzoo.deploy.export import (PROVIDERS, ParityError, check_parity, export_onnx, measure_speed, native_layout,
                            onnx_runner, torch_runner)
from convzoo.errors import ConvzooError
from convzoo.registry.catalogue import Dataset
from convzoo.vocabulary import ARCH_TAG, INT8_MODEL, ONNX_MODEL, PARITY_TAG, PYTORCH_MODEL

# the name image_classifier.py has inside every logged model, where it is the python_function loader
LOADER_MODULE = "convzoo_image_classifier"


def publish_onnx(model: nn.Module, splits: ImageSplits, dataset: Dataset, input_size: int, run_id: str, *,
                 register_as: str | None = None, quantize: str | None = None,
                 echo: Callable[[str], None] = print) -> None:
    """Export ``model`` into run ``run_id`` (never starting or ending it); raise ``ParityError`` (and tag the run)
    if ONNX disagrees."""
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, input_size, tuple(splits.test_images.shape[1:]), Path(folder) / "model.onnx",
                           metadata=model_metadata(dataset, input_size, run_id))
        verify_and_log(model, path, splits, input_size, run_id, register_as=register_as, echo=echo)
        if quantize == "int8":
            publish_int8(path, splits, run_id, echo=echo)


def model_metadata(dataset: Dataset, input_size: int, run_id: str) -> dict[str, str]:
    """What a deployed model says about itself (ONNX metadata): its classes, where it came from, its network's input
    size."""
    arch = mlflow.MlflowClient().get_run(run_id).data.tags.get(ARCH_TAG, "")
    return {"class_names": json.dumps(list(dataset.class_names)), "dataset": dataset.name, "arch": arch,
            "run_id": run_id, "input_size": str(input_size)}


def log_new_metrics(run_id: str, metrics: dict[str, float], echo: Callable[[str], None] = print) -> None:
    """Log the ``metrics`` run ``run_id`` does not have yet: a figure once recorded is never overwritten (a second
    export measures the speed again, and says it kept the first)."""
    client = mlflow.MlflowClient()
    existing = client.get_run(run_id).data.metrics
    kept = sorted(key for key in metrics if key in existing)
    if kept:
        echo(f"kept the run's own {', '.join(kept)} (a re-export does not overwrite them)")
    for key, value in metrics.items():
        if key not in existing:
            client.log_metric(run_id, key, value)


def verify_and_log(model: nn.Module, path: Path, splits: ImageSplits, input_size: int, run_id: str, *,
                   register_as: str | None = None, echo: Callable[[str], None] = print) -> None:
    """Check ``path`` against ``model`` on every raw test image; log the ONNX model only if it passes."""
    report = check_parity(model, path, splits.test_images, splits.test_labels, input_size)
    log_new_metrics(run_id, report.metrics(), echo)
    mlflow.MlflowClient().set_tag(run_id, PARITY_TAG, "passed" if report.passed else "failed")
    if not report.passed:
        raise ParityError(f"ONNX parity check failed: {report.reason()}; the ONNX model was not logged")
    echo(f"onnx parity passed on {report.images} raw test images: max abs diff {report.max_abs_diff:.2e}, "
         f"top-1 agreement {report.top1_agreement:.4f}, onnx test acc {report.onnx_test_acc:.4f}")
    image_shape = tuple(splits.test_images.shape[1:])
    speed = {**measure_speed("torch", torch_runner(model, input_size), image_shape),
             **measure_speed("onnx", onnx_runner(path), image_shape)}
    log_new_metrics(run_id, speed, echo)
    echo("latency batch 1: torch {torch_latency_ms_b1:.1f} ms, onnx {onnx_latency_ms_b1:.1f} ms; throughput batch 64: "
         "torch {torch_images_per_sec_b64:.0f}, onnx {onnx_images_per_sec_b64:.0f} images/s".format(**speed))
    log_onnx(path, splits, ONNX_MODEL, run_id, register_as)


class ImageClassifierFlavor:
    """Saves an ONNX model as MLflow's ``onnx`` flavour whose ``python_function`` flavour is convzoo's image
    classifier (``image_classifier``, copied into the model): ``mlflow.onnx.load_model`` gives the ONNX graph,
    ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` classify images."""

    @staticmethod
    def save_model(path: str, mlflow_model, onnx_model, input_example, **_) -> None:
        from mlflow.models.model import MLMODEL_FILE_NAME
        from mlflow.pyfunc import add_to_model

        with tempfile.TemporaryDirectory() as folder:
            loader = Path(folder) / f"{LOADER_MODULE}.py"
            shutil.copyfile(image_classifier.__file__, loader)
            mlflow.onnx.save_model(onnx_model, path, mlflow_model=mlflow_model, input_example=input_example,
                                   code_paths=[str(loader)], onnx_execution_providers=PROVIDERS,
                                   save_as_external_data=False,
                                   pip_requirements=[*mlflow.onnx.get_default_pip_requirements(), "pillow"])
        python_function = mlflow_model.flavors["python_function"]
        add_to_model(mlflow_model, loader_module=LOADER_MODULE, data=python_function["data"],
                     code=python_function["code"], conda_env=python_function["env"]["conda"],
                     python_env=python_function["env"]["virtualenv"])
        mlflow_model.save(os.path.join(path, MLMODEL_FILE_NAME))


def log_onnx(path: Path, splits: ImageSplits, name: str, run_id: str, register_as: str | None = None) -> None:
    """Log the ONNX file at ``path`` as run ``run_id``'s logged model ``name``, with two test images as its input
    example."""
    import onnx
    from mlflow.models import Model

    Model.log(None, name=name, flavor=ImageClassifierFlavor, flavor_name="onnx", onnx_model=onnx.load(str(path)),
              input_example=native_layout(splits.test_images[:2]).numpy(), registered_model_name=register_as,
              validate_serving_input=False, run_id=run_id)


def publish_int8(fp32_path: Path, splits: ImageSplits, run_id: str, *, echo: Callable[[str], None] = print) -> None:
    """Quantize to static int8, log its agreement, accuracy drop and speed, and the int8 model."""
    from convzoo.deploy.quantize import compare_int8, quantize_int8

    int8_path = quantize_int8(fp32_path, fp32_path.with_name("model-int8.onnx"), splits.train_images)
    report = compare_int8(fp32_path, int8_path, splits.test_images, splits.test_labels)
    image_shape = tuple(splits.test_images.shape[1:])
    fp32_speed = measure_speed("fp32", onnx_runner(fp32_path), image_shape)
    report.update(measure_speed("int8", onnx_runner(int8_path), image_shape))
    report["int8_speedup_b64"] = report["int8_images_per_sec_b64"] / fp32_speed["fp32_images_per_sec_b64"]
    log_new_metrics(run_id, report, echo)
    echo("int8: top-1 agreement with fp32 {int8_top1_agreement:.4f}, test acc {int8_test_acc:.4f} "
         "(drop {int8_test_acc_drop:+.4f}), {int8_speedup_b64:.2f}x fp32 onnx throughput at batch 64".format(**report))
    log_onnx(int8_path, splits, INT8_MODEL, run_id)


def export_run(run_id: str, *, quantize: str | None = None, register_as: str | None = None,
               data_dir: str | None = None, other_data: bool = False, echo: Callable[[str], None] = print) -> None:
    """Export the PyTorch model of an existing run into that run, on the data it was trained with (its recorded data
    dir unless ``data_dir`` is given). Other data (another digest) is refused, or with ``other_data`` only checked,
    its figures logged as ``other_data.DIGEST.*``. The run's status, times and metrics stay as they were."""
    import mlflow.pytorch

    from convzoo.tracking.artifacts import load_logged_model
    from convzoo.tracking.lookup import trained_run

    trained = trained_run(run_id)
    splits, dataset = trained.load_data(data_dir)
    recorded = trained.run.data.params.get("data_digest")
    model = load_logged_model(mlflow.pytorch.load_model, trained.model_uri(PYTORCH_MODEL))
    if recorded in (None, splits.digest):
        publish_onnx(model, splits, dataset, trained.input_size, run_id, register_as=register_as, quantize=quantize,
                     echo=echo)
        return
    if not other_data:
        raise ConvzooError(f"{splits.source} holds other data (digest {splits.digest}) than run {run_id} was "
                           f"trained on ({recorded}, {trained.run.data.params.get('data_source')}); export on its "
                           f"own data (no --data-dir), or pass --other-data to check parity there under new names")
    check_on_other_data(model, splits, trained.input_size, run_id, echo)


def check_on_other_data(model: nn.Module, splits: ImageSplits, input_size: int, run_id: str,
                        echo: Callable[[str], None] = print) -> None:
    """Parity and accuracy of the exported model on other images, logged as ``other_data.DIGEST.*`` beside the
    run's own figures (the ONNX model itself is not logged from other data)."""
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, input_size, tuple(splits.test_images.shape[1:]), Path(folder) / "model.onnx")
        report = check_parity(model, path, splits.test_images, splits.test_labels, input_size)
    prefix = f"other_data.{splits.digest}."
    log_new_metrics(run_id, {prefix + key: value for key, value in report.metrics().items()}, echo)
    echo(f"on other data {splits.source} (digest {splits.digest}): parity {'passed' if report.passed else 'FAILED'}, "
         f"onnx test acc {report.onnx_test_acc:.4f}; logged as {prefix}*, the run's own figures untouched")
