"""Classifies image files with a run's verified ONNX model."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convzoo.errors import ConvzooError


@dataclass(frozen=True)
class Prediction:
    path: str
    classes: list[tuple[str, float]]  # most probable first


def read_image(path: str, in_channels: int):
    """A uint8 tensor (C, H, W) from a PNG or JPEG file; anything else is an error naming the file."""
    import torch
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L" if in_channels == 1 else "RGB"))
    except FileNotFoundError:
        raise ConvzooError(f"no such file: {path}") from None
    except (UnidentifiedImageError, OSError) as error:
        raise ConvzooError(f"{path} is not an image this can read (PNG or JPEG): {error}") from None
    tensor = torch.from_numpy(pixels.copy())
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)


def load_run_model(run_id: str):
    """The run's ONNX session, input size and dataset; an error if the run has no verified ONNX model."""
    import mlflow
    import mlflow.onnx
    import onnxruntime

    from convzoo.artifacts import load_logged_model
    from convzoo.vocabulary import ONNX_MODEL, PARITY_TAG, TrainedRun, get_run

    run = get_run(run_id)
    parity = run.data.tags.get(PARITY_TAG, "not run")
    if parity != "passed":
        raise ConvzooError(f"run {run_id} has no verified ONNX model (parity: {parity})")
    trained = TrainedRun.of(run)
    model = load_logged_model(mlflow.onnx.load_model, trained.model_uri(ONNX_MODEL))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session, trained.input_size, trained.dataset


def predict(run_id: str, paths: list[str], top: int = 3) -> list[Prediction]:
    """The ``top`` most probable classes of each image, with probabilities."""
    from convzoo.export import INPUT_NAME
    from convzoo.pipeline import model_input

    session, input_size, dataset = load_run_model(run_id)
    images = [read_image(path, dataset.in_channels) for path in paths]
    results = []
    for path, image in zip(paths, images):
        batch = model_input(image.unsqueeze(0), input_size).contiguous().numpy()
        logits = session.run(None, {INPUT_NAME: batch})[0][0]
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        order = np.argsort(-probabilities)[:top]
        results.append(Prediction(str(Path(path)), [(dataset.class_names[i], float(probabilities[i])) for i in order]))
    return results
