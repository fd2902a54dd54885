"""Registered models and their aliases (MLflow's ``champion``-style pointers; stages are deprecated): what a serving
target names, moving an alias, and which runs back which aliases."""
from __future__ import annotations

import mlflow
from mlflow.exceptions import MlflowException

from convzoo.errors import ConvzooError
from convzoo.tracking.lookup import verified_onnx_uri

MODELS_PREFIX = "models:/"


def model_version(target: str):
    """The registered model version ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` names; a one-line error if
    there is none."""
    name, at, rest = target[len(MODELS_PREFIX):].partition("@")
    if not at:
        name, _, rest = name.partition("/")
    if not name or not rest:
        raise ConvzooError(f"cannot read {target!r}; name a registered model as models:/NAME@ALIAS or "
                           f"models:/NAME/VERSION")
    client = mlflow.MlflowClient()
    try:
        return client.get_model_version_by_alias(name, rest) if at else client.get_model_version(name, rest)
    except MlflowException:
        raise ConvzooError(f"no registered model version {target} in the tracking store "
                           f"{mlflow.get_tracking_uri()}") from None


def served_uri(target: str) -> str:
    """The MLflow URI of the model to serve: ``target`` itself for ``models:/...``, else the verified ONNX model of
    run ``target``; an error naming what is missing."""
    if target.startswith(MODELS_PREFIX):
        model_version(target)
        return target
    return verified_onnx_uri(target)


def promote(name: str, version: str, alias: str):
    """Point ``NAME@ALIAS`` at ``version`` (moving it from whichever version had it); the version."""
    promoted = model_version(f"{MODELS_PREFIX}{name}/{version}")
    try:
        mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
    except MlflowException as error:
        raise ConvzooError(f"alias {alias!r} is not allowed: {error.message.splitlines()[0]}") from None
    return promoted


def aliases_by_run() -> dict[str, list[str]]:
    """``NAME@ALIAS`` of every alias in the registry, by the run whose model it points at."""
    client = mlflow.MlflowClient()
    found: dict[str, list[str]] = {}
    for registered in mlflow.search_registered_models():  # every page
        for alias, version in sorted(registered.aliases.items()):
            run_id = client.get_model_version(registered.name, version).run_id
            found.setdefault(run_id, []).append(f"{registered.name}@{alias}")
    return found
