"""Finds plugins in the ``convzoo`` entry-point group and loads each one in isolation.

``CONVZOO_DISABLE_PLUGINS`` and ``CONVZOO_LOAD_PLUGINS`` are read once per process, when the plugins load;
``CONVZOO_STRICT_PLUGINS`` (``strict_plugins``) also whenever a plugin's hook fails during a run. The docs' page on
using plugins describes them.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import re
import sys
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any, Callable

import pluggy

from convzoo.version import __version__
from convzoo.registry import hookspecs
from convzoo.recipes import Recipe
from convzoo.registry.catalogue import Architecture, Dataset, PluginFailure, PluginInfo, Registry

ENTRY_POINT_GROUP = "convzoo"
BUILTIN_PLUGINS: tuple[str, ...] = ("convzoo.data.builtin",)


def strict_plugins() -> bool:
    """``CONVZOO_STRICT_PLUGINS=1``: a plugin's error is raised instead of reported."""
    return os.environ.get("CONVZOO_STRICT_PLUGINS", "") not in ("", "0", "false")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _env_names(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {_normalise(part.strip()) for part in value.split(",") if part.strip()}


def _wanted(entry_point: EntryPoint) -> bool:
    names = {_normalise(entry_point.name), _normalise(entry_point.dist.name if entry_point.dist else "")}
    disabled = _env_names("CONVZOO_DISABLE_PLUGINS") or set()
    allowed = _env_names("CONVZOO_LOAD_PLUGINS")
    return not (names & disabled) and (allowed is None or bool(names & allowed))


def _architecture(info: PluginInfo, fields: dict[str, Any]) -> Architecture:
    recipes = {
        name: Recipe.from_mapping(values, where=f"{fields.get('name')} recipe {name!r}")
        for name, values in (fields.pop("recipes", None) or {}).items()
    }
    architecture = _entry(Architecture, info, {**fields, "recipes": recipes})
    for recipe in recipes.values():
        architecture.resolve_options(recipe.options)
    return architecture


def _dataset(info: PluginInfo, fields: dict[str, Any]) -> Dataset:
    fields["class_names"] = tuple(fields.get("class_names", ()))
    return _entry(Dataset, info, fields)


def _entry(kind: type, info: PluginInfo, fields: dict[str, Any]):
    """``kind(**fields)`` of plugin ``info``; a missing or unknown field is an error naming the plugin and the
    field."""
    known = {field.name for field in dataclasses.fields(kind)} - {"plugin", "plugin_version"}
    what = f"plugin {info.name} registers {kind.__name__.lower()} {fields.get('name', '(no name)')!r}"
    missing = [field.name for field in dataclasses.fields(kind) if field.name in known
               and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
               and field.name not in fields]
    if missing:
        raise TypeError(f"{what} without {', '.join(missing)} (register(..., {missing[0]}=...))")
    unknown = sorted(set(fields) - known)
    if unknown:
        raise TypeError(f"{what} with unknown field {unknown[0]!r}; allowed: {', '.join(sorted(known))}")
    return kind(**fields, plugin=info.name, plugin_version=info.version)


REGISTRATIONS: dict[str, tuple[str, Callable[[PluginInfo, dict[str, Any]], Any]]] = {
    "register_architectures": ("architectures", _architecture),
    "register_datasets": ("datasets", _dataset),
}


def _collector(staged: list, info: PluginInfo, kind: str, make: Callable) -> Callable[..., None]:
    """The ``register`` callback handed to one plugin's registration hook."""

    def register(**fields: Any) -> None:
        staged.append((kind, make(info, fields)))

    return register


def _register(pm: pluggy.PluginManager, registry: Registry, module: ModuleType, info: PluginInfo) -> None:
    """Register ``module`` and run its registration hooks; on any error nothing of it is kept."""
    pm.register(module, name=f"{info.name}:{info.entry_point}")
    try:
        callers = pm.get_hookcallers(module) or []
        unknown = sorted(caller.name for caller in callers if caller.spec is None)
        if unknown:
            raise TypeError(f"unknown hook {unknown[0]!r}; known hooks: {', '.join(sorted(_hook_names()))}")
        info.hooks = sorted(caller.name for caller in callers)
        if not info.hooks:
            _report(registry, f"plugin {info.name} {info.version} implements no convzoo hook, so it adds nothing: "
                              f"mark its hook functions with @convzoo.hookimpl (known hooks: "
                              f"{', '.join(sorted(_hook_names()))})")
        staged: list[tuple[str, Any]] = []
        for hook_name, (kind, make) in REGISTRATIONS.items():
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                if impl.plugin is module:
                    impl.function(register=_collector(staged, info, kind, make))
    except BaseException:
        pm.unregister(module)
        raise
    for kind, entry in staged:
        warning = getattr(registry, kind).add(entry)
        getattr(info, kind).append(entry.name)
        if warning:
            _report(registry, warning)
    registry.plugins.append(info)


def _hook_names() -> list[str]:
    return [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "convzoo_spec")]


def _say(message: str) -> None:
    print(f"convzoo: {message}", file=sys.stderr)


def _report(registry: Registry, message: str) -> None:
    """A warning: on stderr now, and in ``convzoo plugins`` later."""
    registry.warnings.append(message)
    _say(message)


def _load_entry_point(pm, registry: Registry, entry_point: EntryPoint, strict: bool) -> None:
    dist = entry_point.dist
    info = PluginInfo(
        name=dist.name if dist else entry_point.name,
        version=dist.version if dist else "",
        entry_point=entry_point.name,
        hooks=[],
    )
    try:
        _register(pm, registry, entry_point.load(), info)
    except Exception as error:
        if strict:
            raise
        reason = f"{type(error).__name__}: {error}"
        registry.failures.append(PluginFailure(info.name, info.version, reason))  # listed as FAILED, not a warning
        _say(
            f"plugin {info.name} {info.version} failed to load: {reason} "
            f"(disable it with CONVZOO_DISABLE_PLUGINS={info.name})",
        )


def load(strict: bool | None = None) -> tuple[pluggy.PluginManager, Registry]:
    """A fresh plugin manager and registry from the built-in plugins and every wanted entry point."""
    if strict is None:
        strict = strict_plugins()
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    for module_name in BUILTIN_PLUGINS:
        info = PluginInfo(name="convzoo", version=__version__, entry_point=module_name, hooks=[])
        _register(pm, registry, importlib.import_module(module_name), info)
    found = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.dist.name if ep.dist else "", ep.name))
    for entry_point in found:
        if _wanted(entry_point):
            _load_entry_point(pm, registry, entry_point, strict)
    return pm, registry


@functools.cache
def _loaded() -> tuple[pluggy.PluginManager, Registry]:
    return load()


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, loaded on first use."""
    return _loaded()[0]


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    return _loaded()[1]
