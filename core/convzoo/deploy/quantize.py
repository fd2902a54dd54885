"""Static int8 (QDQ) quantization of an exported model, calibrated on training images.

Dynamic int8 turns convolutions into ConvInteger, which runs slower than fp32 on CPUs: it is not offered.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from convzoo.deploy.export import INPUT_NAME, LOGITS, native_layout, session

CALIBRATION_IMAGES = 256
KEPT_FLOAT = {"Resize", "Softmax"}  # the input pipeline's resize, and the probabilities (not in steps of 1/256)


def quantize_int8(fp32_path: Path, int8_path: Path, train_images: torch.Tensor) -> Path:
    """Write a QDQ int8 copy of ``fp32_path`` calibrated on the first ``CALIBRATION_IMAGES`` training images (uint8,
    N x C x H x W). The input pipeline's resize and the output probabilities stay float."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.registry import QDQRegistry
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Calibration(CalibrationDataReader):
        def __init__(self):
            images = native_layout(train_images[:CALIBRATION_IMAGES]).numpy()
            self.batches = iter(np.split(images, len(images) // 32))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    prepared = int8_path.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(int8_path), Calibration(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    op_types_to_quantize=[op for op in QDQRegistry if op not in KEPT_FLOAT])
    prepared.unlink()
    return int8_path


def compare_int8(fp32_path: Path, int8_path: Path, images: torch.Tensor, labels: torch.Tensor,
                 batch_size: int = 500) -> dict[str, float]:
    """Top-1 agreement of int8 with fp32 ONNX on ``images`` (uint8, N x C x H x W), and both test accuracies."""
    fp32, int8 = session(fp32_path), session(int8_path)
    agree = fp32_correct = int8_correct = 0
    for start in range(0, len(images), batch_size):
        batch = native_layout(images[start:start + batch_size]).numpy()
        truth = labels[start:start + batch_size].numpy()
        a = fp32.run([LOGITS], {INPUT_NAME: batch})[0].argmax(1)
        b = int8.run([LOGITS], {INPUT_NAME: batch})[0].argmax(1)
        agree += int((a == b).sum())
        fp32_correct += int((a == truth).sum())
        int8_correct += int((b == truth).sum())
    count = len(images)
    return {"int8_top1_agreement": agree / count, "int8_test_acc": int8_correct / count,
            "int8_test_acc_drop": (fp32_correct - int8_correct) / count}
