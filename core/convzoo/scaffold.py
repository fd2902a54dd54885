"""``convzoo new-plugin``: writes a ready-to-install plugin package with an architecture that trains as it is."""
from __future__ import annotations

import re
from pathlib import Path
from string import Template

from convzoo.errors import ConvzooError

PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "convzoo-$name"
version = "0.1.0"
description = "The $name architecture for convzoo"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["convzoo"]

[project.entry-points.convzoo]
$name = "$package"

[tool.setuptools]
packages = ["$package"]
''')

PLUGIN = Template('''\
"""convzoo plugin: $name. Importing this module must not import torch (the network lives in model.py)."""
from convzoo import hookimpl


@hookimpl
def register_architectures(register):
    register(
        name="$name",
        build="$package.model:build",
        description="$name: two convolution blocks and a small classifier (replace with your network)",
        input_size=28,
        min_input_size=4,
        options={"width": 16},
        recipes={
            "seed": {"epochs": 5, "batch_size": 64, "lr": 0.001},
            "quick": {"epochs": 1, "batch_size": 64, "lr": 0.001},
        },
    )
''')

MODEL = Template('''\
"""The $name network. Edit freely: convzoo only calls ``build``."""
import torch
from torch import nn

from convzoo.layers import FlattenLayer, flat_features


class $cls(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, input_size: int, width: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            FlattenLayer(),
            nn.Linear(flat_features(self.features, in_channels, input_size), 128), nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build(in_channels: int, num_classes: int, *, input_size: int, width: int) -> $cls:
    return $cls(in_channels, num_classes, input_size, width)
''')

TESTS = Template('''\
"""The conformance suite convzoo runs over every architecture, run on $name."""
from convzoo.testing import conformance_suite

test_conformance = conformance_suite("$name")
''')

README = Template('''\
# convzoo-$name

A convzoo plugin that adds the `$name` architecture.

```bash
convzoo install ./convzoo-$name          # or: pip install -e ./convzoo-$name
convzoo archs $name                       # it is listed
pytest convzoo-$name/tests                # build, forward, backward, channels_last, resize, ONNX parity
convzoo train $name --recipe quick        # a tracked MLflow run with a verified ONNX model
```

Edit `$package/model.py` for the network and `$package/__init__.py` for its name, input size, options and
recipes. See convzoo's docs/writing-plugins.md and docs/plugin-hooks.md.
''')

NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


def new_plugin(name: str, directory: Path) -> Path:
    """Write ``convzoo-NAME`` under ``directory`` and return its folder; an existing folder is never touched."""
    if not NAME.match(name):
        raise ConvzooError(f"plugin name {name!r} is not allowed: use lowercase letters and digits, "
                           f"separated by '-' or '_', starting with a letter (e.g. mynet)")
    root = directory / f"convzoo-{name}"
    if root.exists():
        raise ConvzooError(f"{root} already exists; choose another name or --dir")
    package = "convzoo_" + name.replace("-", "_")
    values = {"name": name, "package": package,
              "cls": "".join(part.capitalize() for part in re.split(r"[-_]", name)) + "Net"}
    files = {
        "pyproject.toml": PYPROJECT, "README.md": README, f"{package}/__init__.py": PLUGIN,
        f"{package}/model.py": MODEL, f"tests/test_{package}.py": TESTS,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values))
    return root
