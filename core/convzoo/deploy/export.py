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
from convzoo.data.pipeline import model_input

# torchvision's ONNX test tolerances
RTOL, ATOL = 1e-3, 1e-5
INPUT_NAME, LOGITS, PROBABILITIES = "image", "logits", "probabilities"
PROVIDERS = ["CPUExecutionProvider"]


class ParityError(ConvzooError):
    """The ONNX model does not give the PyTorch model's answers."""


class ImagesInNamesOut(nn.Module):
    """``network`` behind convzoo's input pipeline: uint8 images in the data set's layout (``native_layout``) are
    scaled and resized as in training; out come the logits and the class probabilities."""

    def __init__(self, network: nn.Module, input_size: int) -> None:
        super().__init__()
        self.network, self.input_size = network, input_size

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = image.unsqueeze(1) if image.ndim == 3 else image.permute(0, 3, 1, 2)
        logits = self.network(model_input(images, self.input_size))
        return logits, logits.softmax(1)


def native_layout(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N x C x H x W) as images are stored and deployed: N x H x W for one channel, else N x H x W x C."""
    return images[:, 0] if images.shape[1] == 1 else images.permute(0, 2, 3, 1).contiguous()


def export_onnx(model: nn.Module, input_size: int, image_shape: tuple[int, int, int], path: Path,
                metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` (eval, fp32, CPU) behind its input pipeline to one ONNX file, with a dynamic batch dimension:
    input ``image`` (uint8 images of ``image_shape``, C x H x W, in ``native_layout``), outputs ``logits`` and
    ``probabilities``; ``metadata`` goes into the model's metadata. The file is checked fully."""
    import onnx

    # a batch of 2 keeps the batch dimension dynamic
    example = native_layout(torch.randint(0, 256, (2, *image_shape), dtype=torch.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(ImagesInNamesOut(cpu_eval_copy(model), input_size), (example,),
                                    dynamic_shapes=({0: "batch"},), input_names=[INPUT_NAME],
                                    output_names=[LOGITS, PROBABILITIES], verbose=False)
    program.model.metadata_props.update(metadata or {})
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
    decisive_disagreements: int = 0

    @property
    def passed(self) -> bool:
        """Every logit within tolerance, and no top-1 prediction that differs where PyTorch's choice was not a tie:
        a flip between two classes whose PyTorch logits are within the tolerance of each other is rounding (seen
        once in 10,000 images for ResNet-18 on a 2-core AMD EPYC), not a different model."""
        return self.within_tolerance and self.decisive_disagreements == 0

    def reason(self) -> str:
        if not self.within_tolerance:
            return (f"ONNX outputs differ from PyTorch beyond rtol {RTOL:g} (of each image's largest logit) / atol "
                    f"{ATOL:g} (max abs diff {self.max_abs_diff:.3g}, max rel diff {self.max_rel_diff:.3g})")
        if self.decisive_disagreements:
            return (f"ONNX top-1 predictions differ from PyTorch on {self.decisive_disagreements} of {self.images} "
                    f"test images")
        return "passed"

    def metrics(self) -> dict[str, float]:
        return {"onnx_max_abs_diff": self.max_abs_diff, "onnx_max_rel_diff": self.max_rel_diff,
                "onnx_top1_agreement": self.top1_agreement, "onnx_test_acc": self.onnx_test_acc,
                "torch_fp32_test_acc": self.torch_test_acc}


def check_parity(model: nn.Module, onnx_path: Path, images: torch.Tensor, labels: torch.Tensor, input_size: int,
                 batch_size: int = 500) -> ParityReport:
    """Run onnxruntime on every raw uint8 image, and PyTorch (fp32, eval) on the same images through convzoo's input
    pipeline, and compare logits and top-1 predictions."""
    model, runtime = reference_model(model), session(onnx_path)
    max_abs = max_rel = 0.0
    within, agree, decisive, onnx_correct, torch_correct = True, 0, 0, 0, 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            raw = images[start:start + batch_size]
            expected = model(model_input(raw, input_size).contiguous(memory_format=torch.channels_last)).numpy()
            actual = runtime.run([LOGITS], {INPUT_NAME: native_layout(raw).numpy()})[0]
            difference = np.abs(actual - expected)
            max_abs = max(max_abs, float(difference.max()))
            significant = np.abs(expected) > ATOL
            if significant.any():
                max_rel = max(max_rel, float((difference[significant] / np.abs(expected[significant])).max()))
            within &= bool(np.all(difference <= tolerance(expected)))
            truth = labels[start:start + batch_size].numpy()
            agree += int((actual.argmax(1) == expected.argmax(1)).sum())
            decisive += decisive_flips(expected, actual)
            onnx_correct += int((actual.argmax(1) == truth).sum())
            torch_correct += int((expected.argmax(1) == truth).sum())
    count = len(images)
    return ParityReport(count, max_abs, max_rel, within, agree / count, onnx_correct / count, torch_correct / count,
                        decisive)


def tolerance(expected: np.ndarray) -> np.ndarray:
    """How far each image's ONNX logits may be from PyTorch's: ``ATOL + RTOL`` x the image's largest PyTorch logit
    (N x 1). On the scale of the largest, not of each logit: the softmax reads them all on that scale, and a logit
    near zero carries float32 rounding of the others' size (a trained GoogLeNet's differed by 1.6e-4, 1.7 % of that
    logit, with every prediction the same)."""
    return ATOL + RTOL * np.abs(expected).max(1, keepdims=True)


def decisive_flips(expected: np.ndarray, actual: np.ndarray) -> int:
    """Images whose ONNX top-1 differs from PyTorch's where PyTorch's own logits tell the two classes apart by more
    than the tolerance (a near tie may flip either way by rounding)."""
    rows = np.arange(len(expected))
    ours, theirs = expected.argmax(1), actual.argmax(1)
    gap = expected[rows, ours] - expected[rows, theirs]
    return int(np.sum((ours != theirs) & (gap > tolerance(expected)[:, 0])))


def _median_seconds(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def torch_runner(model: nn.Module, input_size: int) -> Callable[[torch.Tensor], object]:
    """PyTorch eager inference (fp32, eval, CPU) on a batch of uint8 images (N x C x H x W), resized as in training."""
    model = cpu_eval_copy(model)

    def run(images: torch.Tensor):
        with torch.no_grad():
            return model(model_input(images, input_size))

    return run


def onnx_runner(path: Path) -> Callable[[torch.Tensor], object]:
    """onnxruntime inference (CPU provider) on a batch of uint8 images (N x C x H x W): the logits."""
    runtime = session(path)
    return lambda images: runtime.run([LOGITS], {INPUT_NAME: native_layout(images).numpy()})


def measure_speed(prefix: str, run: Callable[[torch.Tensor], object], image_shape: tuple[int, int, int],
                  repeats: int = 10) -> dict[str, float]:
    """Median batch-1 latency (ms) and batch-64 throughput (images/s) on uint8 images of ``image_shape`` (C x H x W),
    as ``PREFIX_latency_ms_b1`` and so on."""
    one, many = (torch.randint(0, 256, (batch, *image_shape), dtype=torch.uint8) for batch in (1, 64))
    return {f"{prefix}_latency_ms_b1": 1000 * _median_seconds(lambda: run(one), repeats),
            f"{prefix}_images_per_sec_b64": 64 / _median_seconds(lambda: run(many), max(3, repeats // 3))}
