"""Puts a run's proven ONNX model into MLflow: export, parity on the whole test set, speed, and the model itself."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import mlflow
import mlflow.onnx
from mlflow.models import infer_signature
from torch import nn

from convzoo.data import ImageSplits
from convzoo.export import ParityError, check_parity, export_onnx, measure_speed, onnx_runner, session, torch_runner
from convzoo.pipeline import model_input
from convzoo.registry import Dataset
from convzoo.vocabulary import INT8_MODEL, ONNX_MODEL, PARITY_TAG, PYTORCH_MODEL


def publish_onnx(model: nn.Module, splits: ImageSplits, dataset: Dataset, input_size: int, *,
                 register_as: str | None = None, quantize: str | None = None,
                 echo: Callable[[str], None] = print) -> None:
    """Export ``model`` into the active run; raise ``ParityError`` (and tag the run) if ONNX disagrees."""
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, input_size, dataset.in_channels, Path(folder) / "model.onnx")
        verify_and_log(model, path, splits, dataset, input_size, register_as=register_as, echo=echo)
        if quantize == "int8":
            publish_int8(path, splits, dataset, input_size, echo=echo)


def verify_and_log(model: nn.Module, path: Path, splits: ImageSplits, dataset: Dataset, input_size: int, *,
                   register_as: str | None = None, echo: Callable[[str], None] = print) -> None:
    """Check ``path`` against ``model`` on every test image; log the ONNX model only if it passes."""
    report = check_parity(model, path, splits.test_images, splits.test_labels, input_size)
    mlflow.log_metrics(report.metrics())
    mlflow.set_tag(PARITY_TAG, "passed" if report.passed else "failed")
    if not report.passed:
        raise ParityError(f"ONNX parity check failed: {report.reason()}; the ONNX model was not logged")
    echo(f"onnx parity passed on {report.images} test images: max abs diff {report.max_abs_diff:.2e}, "
         f"top-1 agreement {report.top1_agreement:.4f}, onnx test acc {report.onnx_test_acc:.4f}")
    speed = {**measure_speed("torch", torch_runner(model), dataset.in_channels, input_size),
             **measure_speed("onnx", onnx_runner(path), dataset.in_channels, input_size)}
    mlflow.log_metrics(speed)
    echo("latency batch 1: torch {torch_latency_ms_b1:.1f} ms, onnx {onnx_latency_ms_b1:.1f} ms; throughput batch 64: "
         "torch {torch_images_per_sec_b64:.0f}, onnx {onnx_images_per_sec_b64:.0f} images/s".format(**speed))
    _log_onnx(path, splits, input_size, ONNX_MODEL, register_as)


def _log_onnx(path: Path, splits: ImageSplits, input_size: int, name: str, register_as: str | None = None) -> None:
    import onnx

    example = model_input(splits.test_images[:1], input_size).contiguous().numpy()
    output = session(path).run(None, {"images": example})[0]
    mlflow.onnx.log_model(onnx.load(str(path)), name=name, input_example=example,
                          signature=infer_signature(example, output), onnx_execution_providers=["CPUExecutionProvider"],
                          save_as_external_data=False, registered_model_name=register_as,
                          pip_requirements=mlflow.onnx.get_default_pip_requirements())  # skips a slow inference


def publish_int8(fp32_path: Path, splits: ImageSplits, dataset: Dataset, input_size: int, *,
                 echo: Callable[[str], None] = print) -> None:
    """Quantize to static int8, log its agreement, accuracy drop and speed, and the int8 model."""
    from convzoo.quantize import compare_int8, quantize_int8

    int8_path = quantize_int8(fp32_path, fp32_path.with_name("model-int8.onnx"), splits.train_images, input_size)
    report = compare_int8(fp32_path, int8_path, splits.test_images, splits.test_labels, input_size)
    fp32_speed = measure_speed("fp32", onnx_runner(fp32_path), dataset.in_channels, input_size)
    report.update(measure_speed("int8", onnx_runner(int8_path), dataset.in_channels, input_size))
    report["int8_speedup_b64"] = report["int8_images_per_sec_b64"] / fp32_speed["fp32_images_per_sec_b64"]
    mlflow.log_metrics(report)
    echo("int8: top-1 agreement with fp32 {int8_top1_agreement:.4f}, test acc {int8_test_acc:.4f} "
         "(drop {int8_test_acc_drop:+.4f}), {int8_speedup_b64:.2f}x fp32 onnx throughput at batch 64".format(**report))
    _log_onnx(int8_path, splits, input_size, INT8_MODEL)


def export_run(run_id: str, *, quantize: str | None = None, register_as: str | None = None,
               data_dir: str | None = None, echo: Callable[[str], None] = print) -> None:
    """Export the PyTorch model of an existing run into that run; its status stays as it was."""
    import mlflow.pytorch

    from convzoo.artifacts import load_logged_model
    from convzoo.registry import resolve
    from convzoo.vocabulary import trained_run

    trained = trained_run(run_id)
    model = load_logged_model(mlflow.pytorch.load_model, trained.model_uri(PYTORCH_MODEL))
    splits = resolve(trained.dataset.load)(data_dir)
    mlflow.start_run(run_id=run_id)
    try:
        publish_onnx(model, splits, trained.dataset, trained.input_size, register_as=register_as, quantize=quantize,
                     echo=echo)
    finally:
        mlflow.end_run(trained.run.info.status)
