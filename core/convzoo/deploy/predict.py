"""Classifies image files with a run's verified ONNX model, as ``mlflow models serve`` of that model does."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convzoo.errors import ConvzooError
from convzoo.deploy.image_classifier import BadImage, ImageClassifier, decode, to_size


@dataclass(frozen=True)
class Prediction:
    path: str
    classes: list[tuple[str, float]]  # most probable first


def read_image(path: str, classifier: ImageClassifier) -> np.ndarray:
    """A PNG or JPEG file as the model takes it (its size and channels); anything else is an error naming the file."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConvzooError(f"no such file: {path}") from None
    except OSError as error:
        raise ConvzooError(f"cannot read {path}: {error.strerror}") from None
    try:
        pixels = decode(data, classifier.channels, path)
    except BadImage as error:
        raise ConvzooError(str(error)) from None
    return to_size(pixels, *classifier.shape[:2])


def load_classifier(run_id: str) -> ImageClassifier:
    """The run's verified ONNX model as an image classifier; an error if the run has none."""
    import mlflow.onnx

    from convzoo.tracking.artifacts import load_logged_model
    from convzoo.tracking.lookup import verified_onnx_uri

    model = load_logged_model(mlflow.onnx.load_model, verified_onnx_uri(run_id))
    try:
        return ImageClassifier(model.SerializeToString())
    except TypeError as error:  # a model exported before models took images
        raise ConvzooError(f"run {run_id}: {error}; export it again: convzoo export --run-id {run_id}") from None


def predict(run_id: str, paths: list[str], top: int = 3) -> list[Prediction]:
    """The ``top`` most probable classes of each image, with probabilities."""
    classifier = load_classifier(run_id)
    images = np.stack([read_image(path, classifier) for path in paths])
    return [Prediction(str(Path(path)), [(rank["class"], rank["probability"]) for rank in result[f"top{top}"]])
            for path, result in zip(paths, classifier.classify(images, top=top))]
