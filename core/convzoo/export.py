"""ONNX export of a trained network, proven with onnxruntime to give PyTorch's answers before it counts."""
from __future__ import annotations

import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.pipeline import model_input

# torchvision's ONNX test tolerances
RTOL, ATOL = 1e-3, 1e-5
INPUT_NAME, OUTPUT_NAME = "images", "logits"
PROVIDERS = ["CPUExecutionProvider"]


class ParityError(ConvzooError):
    """The ONNX model does not give the PyTorch model's answers."""


def export_onnx(model: nn.Module, input_size: int, in_channels: int, path: Path) -> Path:
    """Write ``model`` (eval, fp32, CPU) to one ONNX file with a dynamic batch dimension, and check it fully."""
    import onnx

    example = torch.rand(2, in_channels, input_size, input_size)  # a batch of 2 keeps the batch dimension dynamic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(cpu_eval_copy(model), (example,), dynamic_shapes=({0: "batch"},),
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False)
    program.save(str(path), external_data=False)
    onnx.checker.check_model(str(path), full_check=True)
    return path


def cpu_eval_copy(model: nn.Module) -> nn.Module:
    """The model on the CPU in fp32, eval mode and the default memory format (the form that is exported)."""
    import copy

    if isinstance(model, torch.fx.GraphModule):  # a model loaded back from MLflow's pt2 format
        return model
    return copy.deepcopy(model).cpu().float().to(memory_format=torch.contiguous_format).eval()


def reference_model(model: nn.Module) -> nn.Module:
    """``cpu_eval_copy`` in channels_last: the same fp32 answers, 1.1-8x sooner on a CPU (MobileNet, EfficientNet most,
    whose depthwise convolutions are slow in the default format). A loaded pt2 model is left as it is."""
    model = cpu_eval_copy(model)
    return model if isinstance(model, torch.fx.GraphModule) else model.to(memory_format=torch.channels_last)


def session(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=PROVIDERS)


@dataclass(frozen=True)
class ParityReport:
    images: int
    max_abs_diff: float
    max_rel_diff: float
    within_tolerance: bool
    top1_agreement: float
    onnx_test_acc: float
    torch_test_acc: float

    @property
    def passed(self) -> bool:
        return self.within_tolerance and self.top1_agreement == 1.0

    def reason(self) -> str:
        if not self.within_tolerance:
            return (f"ONNX outputs differ from PyTorch beyond rtol {RTOL:g} / atol {ATOL:g} "
                    f"(max abs diff {self.max_abs_diff:.3g}, max rel diff {self.max_rel_diff:.3g})")
        if self.top1_agreement < 1.0:
            differing = round((1 - self.top1_agreement) * self.images)
            return f"ONNX top-1 predictions differ from PyTorch on {differing} of {self.images} test images"
        return "passed"

    def metrics(self) -> dict[str, float]:
        return {"onnx_max_abs_diff": self.max_abs_diff, "onnx_max_rel_diff": self.max_rel_diff,
                "onnx_top1_agreement": self.top1_agreement, "onnx_test_acc": self.onnx_test_acc,
                "torch_fp32_test_acc": self.torch_test_acc}


def check_parity(model: nn.Module, onnx_path: Path, images: torch.Tensor, labels: torch.Tensor, input_size: int,
                 batch_size: int = 500) -> ParityReport:
    """Run PyTorch (fp32, eval) and onnxruntime on every image and compare logits and top-1 predictions."""
    model, runtime = reference_model(model), session(onnx_path)
    max_abs = max_rel = 0.0
    within, agree, onnx_correct, torch_correct = True, 0, 0, 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = model_input(images[start:start + batch_size], input_size).contiguous()
            expected = model(batch.to(memory_format=torch.channels_last)).numpy()
            actual = runtime.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})[0]
            difference = np.abs(actual - expected)
            max_abs = max(max_abs, float(difference.max()))
            significant = np.abs(expected) > ATOL
            if significant.any():
                max_rel = max(max_rel, float((difference[significant] / np.abs(expected[significant])).max()))
            within &= bool(np.all(difference <= ATOL + RTOL * np.abs(expected)))
            truth = labels[start:start + batch_size].numpy()
            agree += int((actual.argmax(1) == expected.argmax(1)).sum())
            onnx_correct += int((actual.argmax(1) == truth).sum())
            torch_correct += int((expected.argmax(1) == truth).sum())
    count = len(images)
    return ParityReport(count, max_abs, max_rel, within, agree / count, onnx_correct / count, torch_correct / count)


def _median_seconds(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def torch_runner(model: nn.Module) -> Callable[[torch.Tensor], object]:
    """PyTorch eager inference (fp32, eval, CPU) on a batch."""
    model = cpu_eval_copy(model)

    def run(images: torch.Tensor):
        with torch.no_grad():
            return model(images)

    return run


def onnx_runner(path: Path) -> Callable[[torch.Tensor], object]:
    """onnxruntime inference (CPU provider) on a batch."""
    runtime = session(path)
    return lambda images: runtime.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})


def measure_speed(prefix: str, run: Callable[[torch.Tensor], object], in_channels: int, input_size: int,
                  repeats: int = 10) -> dict[str, float]:
    """Median batch-1 latency (ms) and batch-64 throughput (images/s), as ``PREFIX_latency_ms_b1`` and so on."""
    one = torch.rand(1, in_channels, input_size, input_size)
    many = torch.rand(64, in_channels, input_size, input_size)
    return {f"{prefix}_latency_ms_b1": 1000 * _median_seconds(lambda: run(one), repeats),
            f"{prefix}_images_per_sec_b64": 64 / _median_seconds(lambda: run(many), max(3, repeats // 3))}
