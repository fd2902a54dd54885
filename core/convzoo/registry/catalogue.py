"""What plugins registered: architectures and datasets by name, with the distribution that gave each."""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, Mapping, TypeVar

from convzoo.errors import ConvzooError, one_line
from convzoo.recipes import Recipe

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def resolve(target: Callable[..., Any] | str) -> Callable[..., Any]:
    """Return ``target`` itself, or import it from a ``"package.module:attribute"`` string."""
    if callable(target):
        return target
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def parse_option(name: str, default: Any, value: Any) -> Any:
    """Convert ``value`` (often a string from the command line) to the type of ``default``."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    try:
        if isinstance(default, bool):
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return lowered in ("true", "1", "yes")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        raise ConvzooError(
            f"option {name}={value!r} is not a valid {type(default).__name__}"
        ) from None
    return value


@dataclass(frozen=True)
class Architecture:
    """A network family a plugin provides, with its defaults and named recipes."""

    name: str
    build: Callable[..., Any] | str
    description: str
    input_size: int
    paper: str = ""
    min_input_size: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)
    recipes: Mapping[str, Recipe] = field(default_factory=dict)
    plugin: str = ""
    plugin_version: str = ""

    def resolve_options(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated by ``overrides``; an unknown option name is an error listing the allowed ones."""
        values = dict(self.options)
        for key, value in (overrides or {}).items():
            if key not in self.options:
                allowed = ", ".join(sorted(self.options)) or "none"
                raise ConvzooError(f"unknown option {key!r} for {self.name}; allowed: {allowed}")
            values[key] = parse_option(key, self.options[key], value)
        return values

    def check_input_size(self, size: int) -> None:
        """Raise if ``size`` is below what this architecture accepts."""
        if size < self.min_input_size:
            raise ConvzooError(
                f"resize {size} is too small for {self.name}: it needs at least {self.min_input_size}"
            )

    def create(self, in_channels: int, num_classes: int, input_size: int | None = None, **options: Any):
        """Build the network (an ``nn.Module``) for the given data shape, input size and options. A builder that
        cannot be imported or raises is a one-line error naming the plugin (``OptionError``: the builder's own
        words)."""
        size = input_size or self.input_size
        self.check_input_size(size)
        chosen = self.resolve_options(options)
        owner = f"{self.name} ({self.plugin} {self.plugin_version})".replace(" ()", "")
        try:
            build = resolve(self.build)
        except Exception as error:
            raise ConvzooError(f"architecture {owner} cannot import its builder {self.build!r}: "
                               f"{one_line(error)}") from error
        try:
            return build(in_channels, num_classes, input_size=size, **chosen)
        except ConvzooError:
            raise
        except Exception as error:
            raise ConvzooError(f"architecture {owner} failed to build: {one_line(error)}") from error


@dataclass(frozen=True)
class Dataset:
    """An image classification data set; ``load(data_dir, **options)`` returns its splits. ``in_channels``,
    ``num_classes`` and ``class_names`` may be left out when they come from the data (the ``folder`` data set):
    ``loaded`` gives the data set as its splits describe it."""

    name: str
    load: Callable[..., Any] | str
    description: str
    in_channels: int | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] = ()
    plugin: str = ""
    plugin_version: str = ""

    @property
    def owner(self) -> str:
        return f"{self.name} ({self.plugin} {self.plugin_version})".replace(" ()", "")

    def accepts(self) -> set[str]:
        """The keyword options its ``load`` takes besides ``data_dir`` (all of them if it takes ``**options``)."""
        parameters = inspect.signature(resolve(self.load)).parameters.values()
        if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
            return {"*"}
        return {parameter.name for parameter in parameters} - {"data_dir"}

    def load_splits(self, data_dir: str | None = None, **options: Any):
        """Its ``ImageSplits``: ``options`` its loader takes are passed on, ``image_size`` only where it is taken,
        others given are a one-line error; a loader that raises is a one-line error naming the plugin."""
        try:
            accepted = self.accepts()
        except Exception as error:
            raise ConvzooError(f"dataset {self.owner} cannot import its loader {self.load!r}: "
                               f"{one_line(error)}") from error
        given = {name: value for name, value in options.items() if value is not None}
        refused = sorted(name for name in given if name != "image_size" and "*" not in accepted
                         and name not in accepted)
        if refused:
            raise ConvzooError(f"dataset {self.name} takes no option {refused[0]} (its loader takes: "
                               f"{', '.join(sorted(accepted - {'image_size'})) or 'none'})")
        given = {name: value for name, value in given.items() if "*" in accepted or name in accepted}
        try:
            return resolve(self.load)(data_dir, **given)
        except ConvzooError:
            raise
        except Exception as error:
            raise ConvzooError(f"dataset {self.owner} failed to load: {one_line(error)}") from error

    def loaded(self, splits) -> Dataset:
        """This data set as ``splits`` describe it: their channels, and their class names where they bring them."""
        if not splits.class_names:
            return dataclasses.replace(self, in_channels=int(splits.train_images.shape[1]))
        return dataclasses.replace(self, in_channels=int(splits.train_images.shape[1]),
                                   num_classes=len(splits.class_names), class_names=tuple(splits.class_names))

    def require_shape(self) -> tuple[int, int]:
        """Its channels and class count, known before loading; an error for a data set that reads them from the
        data."""
        if self.in_channels is None or self.num_classes is None:
            raise ConvzooError(f"dataset {self.name} reads its channels and classes from the data; this command "
                               f"needs a data set that declares them (e.g. fashion-mnist)")
        return self.in_channels, self.num_classes


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or registered, with the reason."""

    name: str
    version: str
    error: str


@dataclass
class PluginInfo:
    """A loaded plugin: its distribution, the hooks it implements and what it registered."""

    name: str
    version: str
    entry_point: str
    hooks: list[str]
    architectures: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)


Entry = TypeVar("Entry", Architecture, Dataset)


class Catalogue(Generic[Entry]):
    """Entries of one kind by name; a name registered twice is kept aside as a conflict."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self.conflicts: dict[str, list[str]] = {}

    def add(self, entry: Entry) -> str | None:
        """Add ``entry``; return a warning if its name clashes with another plugin's."""
        if not NAME_PATTERN.match(entry.name):
            raise ConvzooError(
                f"invalid {self.kind} name {entry.name!r}: use lowercase letters, digits, '.', '_' or '-'"
            )
        owner = f"{entry.plugin} {entry.plugin_version}".strip()
        if entry.name in self.conflicts:
            self.conflicts[entry.name].append(owner)
        elif entry.name in self._entries:
            first = self._entries.pop(entry.name)
            self.conflicts[entry.name] = [f"{first.plugin} {first.plugin_version}".strip(), owner]
        else:
            self._entries[entry.name] = entry
            return None
        return self.conflict_message(entry.name)

    def conflict_message(self, name: str) -> str:
        owners = self.conflicts[name]
        if len(set(owners)) == 1:
            return (f"{self.kind} {name!r} is registered {len(owners)} times by {owners[0]}; it is unusable until "
                    f"that plugin registers it once")
        return (
            f"{self.kind} {name!r} is registered by both {' and '.join(owners)}; it is unusable until one "
            f"is uninstalled or disabled with CONVZOO_DISABLE_PLUGINS"
        )

    def names(self, include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None) -> list[str]:
        """Sorted names matching any ``include`` pattern and no ``exclude`` pattern (shell-style)."""
        return sorted(
            name
            for name in self._entries
            if (include is None or _matches(name, include)) and not (exclude and _matches(name, exclude))
        )

    def get(self, name: str, failures: Iterable[PluginFailure] = ()) -> Entry:
        """The entry called ``name``, or an error that suggests the closest name and lists what exists."""
        if name in self._entries:
            return self._entries[name]
        if name in self.conflicts:
            raise ConvzooError(self.conflict_message(name))
        message = f"unknown {self.kind} {name!r}"
        close = difflib.get_close_matches(name, list(self._entries), n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        message += f"; available: {', '.join(self.names()) or 'none'}"
        failed = [f"{failure.name} ({failure.error})" for failure in failures]
        if failed:
            message += f"; plugins that failed to load: {', '.join(failed)}"
        raise ConvzooError(message)


def _matches(name: str, patterns: str | Iterable[str]) -> bool:
    if isinstance(patterns, str):
        patterns = [patterns]
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


class Registry:
    """Everything the loaded plugins contributed, and the plugins that failed."""

    def __init__(self) -> None:
        self.architectures: Catalogue[Architecture] = Catalogue("architecture")
        self.datasets: Catalogue[Dataset] = Catalogue("dataset")
        self.plugins: list[PluginInfo] = []
        self.failures: list[PluginFailure] = []
        self.warnings: list[str] = []

    def list_architectures(self, include=None, exclude=None) -> list[str]:
        """Names of usable architectures, filtered by shell-style ``include``/``exclude`` patterns."""
        return self.architectures.names(include, exclude)

    def get_architecture(self, name: str) -> Architecture:
        return self.architectures.get(name, self.failures)

    def get_dataset(self, name: str) -> Dataset:
        return self.datasets.get(name, self.failures)
