"""``convzoo new-plugin``: writes a ready-to-install plugin package with an architecture that trains as it is, or
(``--kind dataset``) a data set that loads and trains as it is."""
from __future__ import annotations

import re
from dataclasses import dataclass
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
description = "The $name $kind for convzoo"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["convzoo"]

[project.entry-points.convzoo]
$name = "$package"

[tool.setuptools]
packages = ["$package"]
''')

# The module an entry point names: a hook calling ``register`` with what the kind registers (``fields``).
PLUGIN = Template('''\
"""convzoo plugin: $what. Importing this module must not import torch (the $work lives in $module)."""
from convzoo import hookimpl
$imports

@hookimpl
def $hook(register):
    register(
        name="$name",
$fields    )
''')

ARCHITECTURE_FIELDS = '''\
        build="$package.model:build",
        description="$name: two convolution blocks and a small classifier (replace with your network)",
        input_size=28,
        min_input_size=4,
        options={"width": 16},
        recipes={
            "seed": {"epochs": 5, "batch_size": 64, "lr": 0.001},
            "quick": {"epochs": 1, "batch_size": 64, "lr": 0.001},
        },
'''

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

ARCHITECTURE_TESTS = Template('''\
"""The conformance suite convzoo runs over every architecture, run on $name."""
from convzoo.testing import conformance_suite

test_conformance = conformance_suite("$name")
''')

ARCHITECTURE_README = Template('''\
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

DATASET_FIELDS = '''\
        load="$package.data:load",
        description="$name: striped 28x28 images in four orientations (replace with your data)",
        in_channels=1,
        num_classes=len(CLASS_NAMES),
        class_names=CLASS_NAMES,
'''

DATA = Template('''\
"""The $name data set. Edit freely: convzoo only calls ``load``. Keep its return value: uint8 N x C x H x W images,
int64 labels in [0, num_classes), and a digest that names the exact content."""
import hashlib

CLASS_NAMES = ("horizontal", "vertical", "diagonal", "antidiagonal")
SIZE, PERIOD = 28, 7


def striped_images(count: int, seed: int):
    """``count`` grey images of stripes at a random phase, one orientation per label, with pixel noise."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(len(CLASS_NAMES), (count,), generator=generator)
    rows, cols = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    coordinates = torch.stack([rows, cols, rows + cols, rows - cols + SIZE])[labels]
    phases = torch.randint(PERIOD, (count, 1, 1), generator=generator)
    stripes = (coordinates + phases) % PERIOD < PERIOD // 2
    noise = torch.randint(0, 56, (count, SIZE, SIZE), generator=generator)
    return (stripes * 200 + noise).to(torch.uint8).unsqueeze(1), labels


def load(data_dir=None):
    """The train and test splits; ``data_dir`` is ``--data-dir`` when given (where your files would be)."""
    from convzoo.data.splits import ImageSplits

    train_images, train_labels = striped_images(2000, seed=0)
    test_images, test_labels = striped_images(500, seed=1)
    tensors = (train_images, train_labels, test_images, test_labels)
    digest = ImageSplits.digest_of(hashlib.md5(tensor.numpy().tobytes()).hexdigest() for tensor in tensors)
    return ImageSplits("$name", *tensors, source="$package.data.striped_images", digest=digest)
''')

DATASET_TESTS = Template('''\
"""The checks convzoo runs over every data set, run on $name."""
from convzoo.testing import dataset_conformance_suite

test_dataset = dataset_conformance_suite("$name")
''')

DATASET_README = Template('''\
# convzoo-$name

A convzoo plugin that adds the `$name` data set.

```bash
convzoo install ./convzoo-$name                      # or: pip install -e ./convzoo-$name
convzoo datasets                                      # it is listed
pytest convzoo-$name/tests                            # dtypes, shapes, labels, class names, disjoint, deterministic
convzoo train vgg --option ratio=8 --dataset $name --resize 32
                                                      # a tracked MLflow run on it, with a verified ONNX model
```

Edit `$package/data.py` for the images (``load`` returns a `convzoo.data.splits.ImageSplits`) and
`$package/__init__.py` for its name, channels and class names. See convzoo's docs/writing-plugins.md,
"A dataset plugin".
''')

@dataclass(frozen=True)
class Kind:
    """What one kind of plugin is made of: its hook and what it registers, the module doing the work, test, README."""

    what: str
    hook: str
    fields: str
    module: str
    code: Template
    tests: Template
    readme: Template
    imports: str = ""

    def plugin(self) -> Template:
        """The entry-point module, still to be filled with the plugin's name and package."""
        return Template(PLUGIN.substitute(what=self.what, work=self.module.removesuffix(".py"), module=self.module,
                                          imports=self.imports, hook=self.hook, fields=self.fields, name="$name"))


KINDS = {
    "architecture": Kind("$name", "register_architectures", ARCHITECTURE_FIELDS, "model.py", MODEL,
                         ARCHITECTURE_TESTS, ARCHITECTURE_README),
    "dataset": Kind("the $name data set", "register_datasets", DATASET_FIELDS, "data.py", DATA, DATASET_TESTS,
                    DATASET_README, imports="\nfrom $package.data import CLASS_NAMES\n"),
}

NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


def new_plugin(name: str, directory: Path, kind: str = "architecture") -> Path:
    """Write ``convzoo-NAME`` (a plugin of ``kind``, one of ``KINDS``) under ``directory`` and return its folder;
    an existing folder is never touched."""
    if kind not in KINDS:
        raise ConvzooError(f"plugin kind {kind!r} is not known; use one of: {', '.join(KINDS)}")
    if not NAME.match(name):
        raise ConvzooError(f"plugin name {name!r} is not allowed: use lowercase letters and digits, "
                           f"separated by '-' or '_', starting with a letter (e.g. mynet)")
    root = directory / f"convzoo-{name}"
    if root.exists():
        raise ConvzooError(f"{root} already exists; choose another name or --dir")
    package = "convzoo_" + name.replace("-", "_")
    values = {"name": name, "package": package, "kind": kind,
              "cls": "".join(part.capitalize() for part in re.split(r"[-_]", name)) + "Net"}
    chosen = KINDS[kind]
    files = {
        "pyproject.toml": PYPROJECT, "README.md": chosen.readme, f"{package}/__init__.py": chosen.plugin(),
        f"{package}/{chosen.module}": chosen.code, f"tests/test_{package}.py": chosen.tests,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values))
    return root
