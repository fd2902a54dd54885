"""The core's shape: layered subpackages, each importing only its own layer and the ones below it, no import cycles
between modules, MLflow only where runs are recorded or models deployed, and plugins on the public API alone.

The modules' imports are read with ``ast`` (every ``import`` statement, at the top or inside a function), so an
upward import fails here the moment it is written, naming the module, the line and the import.
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core" / "convzoo"

# lowest first: a module may import modules of its own layer and of the layers before it
LAYERS = (
    ("leaves", ("convzoo._moved", "convzoo.errors", "convzoo.version", "convzoo.vocabulary", "convzoo.recipes", "convzoo.config",
                "convzoo.tables", "convzoo.progress", "convzoo.layers", "convzoo.statistics")),
    ("registry", ("convzoo.registry",)),
    ("data", ("convzoo.data",)),
    ("training", ("convzoo.training",)),
    ("tracking", ("convzoo.tracking",)),
    ("deploy", ("convzoo.deploy",)),
    ("runs", ("convzoo.runs",)),
    ("studies", ("convzoo.studies",)),
    ("interface", ("convzoo.cli", "convzoo.api", "convzoo.testing", "convzoo.__main__", "convzoo")),
)
# where mlflow may be imported; everywhere else reaches MLflow through these layers
MLFLOW_LAYERS = {"tracking", "deploy"}
# imported by every module that names what convzoo writes to MLflow: nothing heavy may come in with it
LIGHT = {"convzoo._moved", "convzoo.errors", "convzoo.vocabulary", "convzoo.version", "convzoo.recipes", "convzoo.config"}
HEAVY = {"torch", "torchvision", "mlflow", "onnx", "onnxruntime", "optuna", "matplotlib", "numpy", "PIL", "click"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports: a convzoo module, or a top-level third-party package
    line: int
    type_only: bool  # inside ``if TYPE_CHECKING:``

    def __str__(self) -> str:
        return f"{self.module} (line {self.line}) imports {self.target}"


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(CORE.rglob("*.py"))}


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, child.end_lineno + 1))
    return lines


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    """Every import in ``path``: convzoo targets resolved to the module they name (``from convzoo.x import y`` is
    ``convzoo.x.y`` when that is a module)."""
    tree = ast.parse(path.read_text())
    type_only = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            targets = submodules or [base]
        for target in targets:
            if not target.startswith("convzoo"):
                target = target.split(".")[0]
            found.append(Import(name, target, node.lineno, node.lineno in type_only))
    return found


def layer_of(module: str) -> int:
    """The index of the layer ``module`` belongs to (the longest matching prefix)."""
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    if best is None:
        raise AssertionError(f"module {module} is in no layer: add it to LAYERS in tests/test_layers.py")
    return best[0]


@pytest.fixture(scope="module")
def graph() -> list[Import]:
    modules = core_modules()
    return [found for name, path in modules.items() for found in imports_of(name, path, set(modules))]


def upward_imports(graph: list[Import]) -> list[str]:
    modules = set(core_modules())
    problems = []
    for found in graph:
        if not found.target.startswith("convzoo"):
            continue
        if found.target not in modules:
            problems.append(f"{found}, which does not exist (an old path? use the new one)")
            continue
        low, high = layer_of(found.module), layer_of(found.target)
        if high > low:
            problems.append(f"{found}: layer {LAYERS[low][0]} may not import layer {LAYERS[high][0]}")
    return problems


def test_no_module_imports_a_higher_layer(graph):
    assert upward_imports(graph) == []


def test_an_upward_import_is_named(tmp_path):
    """The check itself: a leaf that imports the training loop is reported with its line."""
    found = Import("convzoo.errors", "convzoo.training.trainer", 3, False)
    assert upward_imports([found]) == [
        "convzoo.errors (line 3) imports convzoo.training.trainer: layer leaves may not import layer training"]


def cycles(graph: list[Import]) -> list[list[str]]:
    """Import cycles between modules (type-only imports left out), by Tarjan's strongly connected components."""
    edges: dict[str, set[str]] = {}
    for found in graph:
        if found.target.startswith("convzoo") and not found.type_only and found.target != found.module:
            edges.setdefault(found.module, set()).add(found.target)
    index, low, stack, on_stack, result = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(edges.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return result


def test_no_import_cycles(graph):
    # a package's __init__ that re-exports its modules is imported with them: only module-to-module cycles count
    packages = {name for name, path in core_modules().items() if path.name == "__init__.py"}
    assert cycles([found for found in graph if found.target not in packages and found.module not in packages]) == []


def test_mlflow_is_imported_only_by_tracking_and_deploy(graph):
    allowed = {index for index, (name, _) in enumerate(LAYERS) if name in MLFLOW_LAYERS}
    assert [str(found) for found in graph if found.target == "mlflow" and layer_of(found.module) not in allowed] == []


def test_the_vocabulary_and_settings_import_nothing_heavy(graph):
    assert [str(found) for found in graph if found.module in LIGHT and found.target in HEAVY] == []


def test_no_module_is_over_400_lines_nor_any_function_over_60():
    long_modules = [f"{name}: {len(path.read_text().splitlines())} lines" for name, path in core_modules().items()
                    if len(path.read_text().splitlines()) > 400]
    long_functions = [f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
                      for name, path in core_modules().items() for node in ast.walk(ast.parse(path.read_text()))
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.end_lineno - node.lineno + 1 > 60]
    assert long_modules + long_functions == []


def test_every_package_says_what_lives_there_and_what_it_may_import():
    packages = [path for path in CORE.rglob("__init__.py") if path.parent != CORE]
    missing = [str(path.relative_to(ROOT)) for path in packages
               if "May import:" not in (ast.get_docstring(ast.parse(path.read_text())) or "")]
    assert len(packages) >= 8 and missing == []


def public_api() -> dict[str, set[str]]:
    import importlib

    return {module: set(importlib.import_module(module).__all__)
            for module in ("convzoo", "convzoo.layers", "convzoo.testing")}


def off_the_public_api(path: Path, own_package: str, label: str | None = None) -> list[str]:
    """Each import in ``path`` of a convzoo name that is not in the public API (``own_package``'s are its own)."""
    public, problems, label = public_api(), [], label or str(path.relative_to(ROOT))
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("convzoo"):
            module = node.module
            if module.split(".")[0] == own_package:
                continue
            for alias in node.names:
                if module not in public or alias.name not in public[module]:
                    problems.append(f"{label} (line {node.lineno}): from {module} import {alias.name}")
        elif isinstance(node, ast.Import):
            problems += [f"{label} (line {node.lineno}): import {alias.name}" for alias in node.names
                         if alias.name.startswith("convzoo.") and alias.name not in public]
    return problems


def test_the_shipped_plugins_and_the_example_use_only_the_public_api():
    sources = [path for folder in ("plugins", "examples") for path in (ROOT / folder).rglob("*.py")]
    own = {path: path.relative_to(ROOT).parts[1].replace("-", "_") for path in sources}
    assert len(sources) >= 15
    assert [problem for path in sources for problem in off_the_public_api(path, own[path])] == []


def test_an_import_off_the_public_api_is_named(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("from convzoo import hookimpl\nfrom convzoo_probe.model import Net\n"
                      "from convzoo.training.trainer import Trainer\n")
    assert off_the_public_api(source, "convzoo_probe", label="probe.py") == [
        "probe.py (line 3): from convzoo.training.trainer import Trainer"]
