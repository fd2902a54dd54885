"""``convzoo evaluate``: a run's verified ONNX model on its own test split (or on other images), logged as a child
run. MLflow's classifier evaluator gives accuracy, weighted precision / recall / F1, the per-class table and the
confusion matrix; written here is what it lacks: top-5 accuracy, the expected calibration error with a reliability
diagram, the normalised confusion matrix and the most confidently wrong images. ``--require`` turns it into a
gate."""
from __future__ import annotations

import operator
import re
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import mlflow
import numpy as np
import torch

from convzoo.errors import ConvzooError
from convzoo.vocabulary import (EVALUATION_DIGEST_TAG, EVALUATION_DIR, EVALUATION_OWN_DATA_TAG, EVALUATION_PASSED_TAG,
                                EVALUATION_SOURCE_TAG, PARENT_RUN_TAG)

BATCH = 256
COMPARISONS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Requirement:
    """``metric op value``, e.g. ``accuracy>=0.9``."""

    metric: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Requirement:
        match = REQUIREMENT.match(text)
        if not match:
            raise ConvzooError(f"requirement {text!r} is not METRIC>=VALUE (or >, <=, <), e.g. accuracy>=0.9")
        try:
            return cls(match[1], match[2], float(match[3]))
        except ValueError:
            raise ConvzooError(f"requirement {text!r}: {match[3]!r} is not a number") from None

    def failure(self, metrics: dict[str, float]) -> str | None:
        """Why ``metrics`` miss this requirement, or None when they meet it."""
        if self.metric not in metrics:
            raise ConvzooError(f"requirement on {self.metric!r}: the evaluation has no such metric; it has "
                               f"{', '.join(sorted(metrics))}")
        found = metrics[self.metric]
        if COMPARISONS[self.op](found, self.value):
            return None
        return f"{self.metric} {found:.4f} is not {self.op} {self.value:g}"


@dataclass
class Evaluation:
    """The child run an evaluation was logged to, its metrics, and what it failed of its requirements."""

    run_id: str
    metrics: dict[str, float]
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def probabilities_of(run_id: str, images: torch.Tensor, class_names: Sequence[str]) -> np.ndarray:
    """The verified ONNX model's class probabilities for uint8 ``images`` (N x C x H x W), in batches."""
    from convzoo.deploy.export import native_layout
    from convzoo.deploy.predict import load_classifier

    classifier = load_classifier(run_id)
    if list(classifier.class_names) != list(class_names):
        raise ConvzooError(f"the data's classes ({', '.join(class_names)}) are not the model's "
                           f"({', '.join(classifier.class_names)}); evaluate on data with the model's classes")
    return np.concatenate([classifier.probabilities(native_layout(images[start:start + BATCH]).numpy())
                           for start in range(0, len(images), BATCH)])


def computed_metrics(labels: np.ndarray, probabilities: np.ndarray) -> tuple[dict[str, float], object]:
    """Top-1 (``accuracy``) and top-k accuracy (k = 5, or the class count if smaller) and the calibration."""
    from convzoo.statistics import calibration

    k = min(5, probabilities.shape[1])
    top_k = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    predicted = top_k[:, 0]
    calibrated = calibration(probabilities.max(axis=1), predicted == labels)
    return {"accuracy": float(np.mean(predicted == labels)),
            f"top{k}_accuracy": float(np.mean((top_k == labels[:, None]).any(axis=1))),
            "ece": calibrated.ece}, calibrated


def evaluate_run(run_id: str, *, data_dir: str | None = None, require: Sequence[str] = (),
                 echo: Callable[[str], None] = print) -> Evaluation:
    """Evaluate run ``run_id``'s verified ONNX model on its test split (or that of ``data_dir``) into a new child
    run; the run itself is not changed. ``require``: ``METRIC>=VALUE`` bars the evaluation must clear."""
    import pandas as pd

    from convzoo.tracking import figures
    from convzoo.tracking.lookup import trained_run

    requirements = [Requirement.parse(text) for text in require]  # a bad bar fails before any work
    trained = trained_run(run_id)
    splits, dataset = trained.load_data(data_dir)
    probabilities = probabilities_of(run_id, splits.test_images, dataset.class_names)
    labels = splits.test_labels.numpy()
    names = np.array(dataset.class_names)
    own = splits.digest == trained.run.data.params.get("data_digest", splits.digest)
    metrics, calibrated = computed_metrics(labels, probabilities)
    client = mlflow.MlflowClient()
    child = client.create_run(trained.run.info.experiment_id, run_name=f"evaluate-{splits.name}-{splits.digest}",
                              tags={PARENT_RUN_TAG: run_id, EVALUATION_DIGEST_TAG: splits.digest,
                                    EVALUATION_SOURCE_TAG: splits.source, EVALUATION_OWN_DATA_TAG: str(own).lower()})
    with mlflow.start_run(run_id=child.info.run_id):
        table = pd.DataFrame({"label": names[labels], "prediction": names[probabilities.argmax(axis=1)]})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn's note on a class never predicted: its precision is 0
            result = mlflow.models.evaluate(data=table, targets="label", predictions="prediction",
                                            model_type="classifier",
                                            evaluator_config={"log_model_explainability": False})
        mlflow.log_metrics(metrics)
        predicted = torch.from_numpy(probabilities.argmax(axis=1))
        matrix = figures.confusion_matrix(splits.test_labels, predicted, len(names))
        shares = matrix.double() / matrix.sum(dim=1, keepdim=True).clamp(min=1)
        mlflow.log_figure(figures.plot_confusion_matrix(shares, names),
                          f"{EVALUATION_DIR}/confusion_matrix_normalised.png")
        mlflow.log_figure(figures.plot_reliability(calibrated), f"{EVALUATION_DIR}/reliability_diagram.png")
        mlflow.log_figure(figures.plot_misclassified(splits.test_images, splits.test_labels, predicted, names,
                                                     confidence=torch.from_numpy(probabilities.max(axis=1))),
                          f"{EVALUATION_DIR}/confidently_wrong.png")
        every = {**{key: float(value) for key, value in result.metrics.items()}, **metrics}
        failures = [reason for reason in (need.failure(every) for need in requirements) if reason]
        if requirements:
            mlflow.set_tag(EVALUATION_PASSED_TAG, str(not failures).lower())
    echo(f"evaluation {child.info.run_id} of run {run_id} on {len(labels)} test images of {splits.source}: accuracy "
         f"{metrics['accuracy']:.4f}, weighted F1 {every.get('f1_score', float('nan')):.4f}, ECE {metrics['ece']:.4f}")
    return Evaluation(child.info.run_id, every, failures)
