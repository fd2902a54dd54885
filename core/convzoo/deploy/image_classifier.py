"""Classifies raw images with a self-contained convzoo ONNX model: uint8 images of the data set's native size in,
class names and probabilities out.

This module is copied into every logged ONNX model as its MLflow ``python_function`` loader, so ``mlflow models
serve`` of a run's model speaks images without convzoo or torch installed: it imports only numpy, onnxruntime, Pillow
and (for serving errors) MLflow. ``convzoo predict`` uses the same code, so both decode and guard images alike.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import os

import numpy as np

MAX_PIXELS = 4096 * 4096  # per decoded image: a PNG of a few hundred KB can claim 20000x20000 (a decompression bomb)
MAX_IMAGES = 1024  # per request
TOP = 3
THREADS_VARIABLE = "CONVZOO_SERVE_THREADS"  # onnxruntime threads per serving worker (convzoo serve sets it)


class BadImage(ValueError):
    """An image, or a batch of them, this model cannot take; the message is one line naming what is wrong."""


def decode(data: bytes, channels: int, name: str) -> np.ndarray:
    """PNG or JPEG bytes as uint8 pixels (H x W, or H x W x 3), refused before decoding when over ``MAX_PIXELS``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=("PNG", "JPEG")) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise BadImage(f"{name} is {width}x{height} pixels; images of at most {MAX_PIXELS:,} pixels are "
                               f"accepted")
            return np.asarray(image.convert("L" if channels == 1 else "RGB"))
    except Image.DecompressionBombError:  # Pillow refuses to open these at all
        raise BadImage(f"{name} claims more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels (a decompression bomb); "
                       f"images of at most {MAX_PIXELS:,} pixels are accepted") from None
    except UnidentifiedImageError:
        raise BadImage(f"{name} is not a PNG or JPEG image") from None
    except (OSError, SyntaxError, ValueError) as error:  # a truncated or corrupt file
        raise BadImage(f"{name} is not a PNG or JPEG image this can read ({error})") from None


def to_size(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """``pixels`` at ``height`` x ``width``: as they are if they fit, else resized bilinearly by Pillow, the centre
    cropped to that shape first (as the ``folder`` data set stores its images)."""
    from PIL import Image, ImageOps

    if pixels.shape[:2] == (height, width):
        return pixels
    return np.asarray(ImageOps.fit(Image.fromarray(pixels), (width, height), Image.Resampling.BILINEAR))


class ImageClassifier:
    """A convzoo ONNX model (a path or its bytes) with its class names and image shape, read from the model."""

    def __init__(self, model) -> None:
        """Under ``convzoo serve`` (``CONVZOO_SERVE_THREADS`` set), onnxruntime gets that many threads and they do not
        spin-wait for work: spinning threads took the cores the HTTP server needs (on 2 cores, AlexNet at 112 px:
        123 requests/s spinning, 167 not)."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        threads = int(os.environ.get(THREADS_VARIABLE, 0))
        if threads:
            options.intra_op_num_threads = threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                                    providers=["CPUExecutionProvider"])
        [given] = self.session.get_inputs()
        if given.type != "tensor(uint8)":
            raise TypeError(f"this ONNX model takes {given.type} network inputs, not images: it was exported before "
                            f"convzoo exported models that take images")
        self.input_name, self.shape = given.name, tuple(given.shape[1:])  # (H, W) or (H, W, C)
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.class_names = json.loads(metadata["class_names"])

    @property
    def channels(self) -> int:
        return 1 if len(self.shape) == 2 else self.shape[2]

    @property
    def layout(self) -> str:
        return f"[N, {', '.join(map(str, self.shape))}]"

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Each image's probability of every class (N x classes)."""
        return self.session.run(None, {self.input_name: images})[1]

    def classify(self, images: np.ndarray, top: int = TOP) -> list[dict]:
        """Per image: the most probable class, its probability, and the ``top`` classes with theirs."""
        results = []
        for row in self.probabilities(images):
            order = np.argsort(-row, kind="stable")[:top]
            ranked = [{"class": self.class_names[i], "probability": float(row[i])} for i in order]
            results.append({**ranked[0], f"top{top}": ranked})
        return results

    def images(self, payload) -> np.ndarray:
        """A request's images as one uint8 batch: an integer array in the model's layout, or a list of base64 PNG or
        JPEG images (any size: each is resized to the model's), or a one-column table of either."""
        if hasattr(payload, "columns"):  # a pandas DataFrame (dataframe_split / dataframe_records requests)
            if len(payload.columns) != 1:
                raise BadImage(f"a table of images must have one column; got {len(payload.columns)}")
            payload = payload.iloc[:, 0].tolist()
        if isinstance(payload, dict):
            if set(payload) != {self.input_name}:
                raise BadImage(f"named inputs must be {{{self.input_name!r}: images}}; got {sorted(payload)}")
            payload = payload[self.input_name]
        if isinstance(payload, (list, tuple)) and payload and all(isinstance(i, (str, bytes)) for i in payload):
            return self._decoded(list(payload))
        try:
            array = np.asarray(payload)
        except ValueError:  # nested lists of different lengths
            raise BadImage(f"images must be an array of shape {self.layout}; got lists of different lengths") from None
        if array.dtype.kind in "OSU":  # MLflow turns a JSON list of strings into an array of them
            return self._decoded(array.ravel().tolist())
        return self._checked(array)

    def _checked(self, array: np.ndarray) -> np.ndarray:
        if array.ndim != len(self.shape) + 1 or tuple(array.shape[1:]) != self.shape:
            raise BadImage(f"images must be an array of shape {self.layout}; got {list(array.shape)}")
        if array.dtype.kind not in "iu":
            raise BadImage(f"images must be integers from 0 to 255 (uint8); got {array.dtype}")
        _check_count(len(array))
        if array.size and (array.min() < 0 or array.max() > 255):
            raise BadImage(f"pixel values must be from 0 to 255; got {array.min()} to {array.max()}")
        return array.astype(np.uint8, copy=False)

    def _decoded(self, items: list) -> np.ndarray:
        _check_count(len(items))
        batch = []
        for index, item in enumerate(items):
            name = f"image {index}"
            if isinstance(item, str):
                try:
                    item = base64.b64decode(item, validate=True)
                except (binascii.Error, ValueError):
                    raise BadImage(f"{name} is not base64-encoded PNG or JPEG bytes") from None
            if not isinstance(item, bytes):
                raise BadImage(f"{name} is a {type(item).__name__}; give base64 PNG or JPEG strings, or an integer "
                               f"array of shape {self.layout}")
            height, width = self.shape[:2]
            batch.append(to_size(decode(item, self.channels, name), height, width))
        return np.stack(batch)

    def predict(self, model_input, params=None) -> list[dict]:
        """MLflow's ``python_function`` entry point: a bad request is an HTTP 400 whose message is the one-line
        reason."""
        try:
            return self.classify(self.images(model_input))
        except BadImage as error:
            raise _bad_request(str(error)) from None


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_IMAGES:
        raise BadImage(f"a request must hold from 1 to {MAX_IMAGES} images; got {count}")


def _bad_request(reason: str):
    """An MLflow error for HTTP 400 whose message stays ``reason``: MLflow's scoring server prefixes a prediction
    error's message with the whole request's data, which would bury the reason in a dump of base64 or pixels."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    class BadRequest(MlflowException):
        message = property(lambda self: reason, lambda self, value: None)

    return BadRequest(reason, error_code=INVALID_PARAMETER_VALUE)


def _load_pyfunc(path: str) -> ImageClassifier:
    """MLflow's loader for the ``python_function`` flavour (``path``: the model's ONNX file)."""
    return ImageClassifier(path)
