"""A sweep's search space from the command line: ``--param lr=loguniform:1e-4:1e-2`` and friends.

Each ``Param`` asks an Optuna trial for one value; names are the recipe's hyperparameters, ``seed``, or an
architecture option (``option=ratio=choice:4,8``, recorded as ``option.ratio``).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from convzoo.errors import ConvzooError
from convzoo.recipes import Recipe

FORMS = ("NAME=loguniform:LOW:HIGH", "NAME=uniform:LOW:HIGH", "NAME=int:LOW:HIGH[:STEP]", "NAME=choice:A,B,...")
OPTION_PREFIX = "option."


def _value_types() -> dict[str, type]:
    """The type of each hyperparameter a sweep may vary, read from ``Recipe`` itself."""
    hints = typing.get_type_hints(Recipe)
    types = {field.name: hints[field.name] for field in dataclasses.fields(Recipe) if field.name != "options"}
    types["resize"] = int  # ``int | None`` in the recipe: None means the architecture's default
    types["target_acc"] = float  # ``float | None``: None means no target
    types["val_fraction"] = float  # ``float | None``: None means the recipe's default
    types["seed"] = int
    return types


VALUE_TYPES = _value_types()


def _bad(spec: str, why: str) -> ConvzooError:
    names = ", ".join([*VALUE_TYPES, "option=KEY"])
    return ConvzooError(f"bad --param {spec!r} ({why}); use {' or '.join(FORMS)}, with NAME one of: {names}")


def _number(text: str, spec: str, kind: type = float) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise _bad(spec, f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None


def _choice_value(text: str, kind: type | None) -> Any:
    """A choice as the hyperparameter's type; for options (whose type the plugin decides), int, float or text."""
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(text)
        return text.lower() == "true"
    if kind is not None:
        return kind(text)
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


@dataclass(frozen=True)
class Param:
    """One dimension of the search space."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    step: int = 1
    choices: tuple = ()

    @property
    def option(self) -> str | None:
        """The architecture option this varies, if it is one."""
        return self.name[len(OPTION_PREFIX):] if self.name.startswith(OPTION_PREFIX) else None

    def suggest(self, trial) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=self.step)
        return trial.suggest_float(self.name, self.low, self.high, log=self.kind == "loguniform")

    def describe(self) -> str:
        """The spec as the user would write it (what the sweep's parent run logs)."""
        if self.kind == "choice":
            return f"choice:{','.join(map(str, self.choices))}"
        if self.kind == "int":
            return f"int:{int(self.low)}:{int(self.high)}:{self.step}"
        return f"{self.kind}:{self.low:g}:{self.high:g}"


def parse_param(spec: str) -> Param:
    """``NAME=KIND:ARGS`` (or ``option=KEY=KIND:ARGS``) as a ``Param``; anything else is a one-line error."""
    name, sep, rest = spec.partition("=")
    if name == "option":
        key, sep, rest = rest.partition("=")
        if not key:
            raise _bad(spec, "option needs a KEY")
        name, kind_type = OPTION_PREFIX + key, None
    elif name in VALUE_TYPES:
        kind_type = VALUE_TYPES[name]
    else:
        raise _bad(spec, f"unknown NAME {name!r}")
    kind, _, args = rest.partition(":")
    if not sep or not args:
        raise _bad(spec, "no KIND:ARGS after the name")
    if kind == "choice":
        values = []
        for text in (text.strip() for text in args.split(",") if text.strip()):
            try:
                values.append(_choice_value(text, kind_type))
            except ValueError:
                raise _bad(spec, f"{text!r} is not of type {kind_type.__name__}") from None
        choices = tuple(dict.fromkeys(values))
        if len(choices) < 2:
            raise _bad(spec, "choice needs at least two different values")
        return Param(name, kind, choices=choices)
    parts = args.split(":")
    if kind in ("loguniform", "uniform") and len(parts) == 2:
        if kind_type not in (float, None):
            raise _bad(spec, f"{name} takes {kind_type.__name__} values, not any number in a range")
        low, high = (_number(part, spec) for part in parts)
        if not low < high or (kind == "loguniform" and low <= 0):
            raise _bad(spec, "needs LOW < HIGH" + (", LOW > 0" if kind == "loguniform" else ""))
        return Param(name, kind, low, high)
    if kind == "int" and len(parts) in (2, 3):
        if kind_type not in (int, None):
            raise _bad(spec, f"{name} takes {kind_type.__name__} values, not integers")
        low, high, step = (_number(part, spec, int) for part in (*parts, "1")[:3])
        if not low <= high or step <= 0:
            raise _bad(spec, "needs LOW <= HIGH and STEP > 0")
        return Param(name, kind, low, high, step)
    raise _bad(spec, f"unknown KIND {kind!r} or wrong number of values")


def parse_space(specs: tuple[str, ...] | list[str]) -> list[Param]:
    """Every ``--param``, each name at most once."""
    params = [parse_param(spec) for spec in specs]
    names = [param.name for param in params]
    for name in names:
        if names.count(name) > 1:
            raise ConvzooError(f"--param {name} is given {names.count(name)} times; give each name once")
    return params
