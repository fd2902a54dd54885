"""Fixtures that build real plugin distributions (wheels) and run the real ``convzoo`` command."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import pytest
import workers

workers.pin_this_worker()  # before torch loads (through helpers and convzoo): OpenMP counts its cores then

from helpers import MlflowServer, process_store  # noqa: E402

from convzoo.registry import plugins  # noqa: E402
from convzoo.registry.scaffold import PYPROJECT  # noqa: E402


# What makes a test slow (seconds to minutes): a fixture that trains or starts servers, or a module of end-to-end
# tests whose every test starts real convzoo, mlflow or torchrun processes.
SLOW_FIXTURES = {"short_run", "trained_vgg", "two_runs", "store", "world_store", "mlflow_server", "postgres",
                 "run_convzoo", "folder_run"}
SLOW_MODULES = {"test_benchmarks", "test_compare", "test_distributed", "test_durable_runs", "test_mlproject",
                "test_new_plugin", "test_server_faults", "test_suite", "test_sweep", "test_team_server"}


def module_name(item) -> str:
    return item.module.__name__.rpartition(".")[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if module_name(item) in SLOW_MODULES or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: workers.schedule_order(workers.group_of(module_name(item))))


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's: pytest without it runs the suite in one process
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope``: one work unit per group of test files (tests/workers.py)."""
    return workers.group_scheduling(config, log) if config.getvalue("dist") == "loadscope" else None

TINY_PLUGIN = '''
from convzoo import hookimpl


def build(in_channels, num_classes, *, input_size, width):
    from torch import nn

    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


def load(data_dir=None):
    import torch

    from convzoo.data.splits import ImageSplits

    images = torch.zeros(8, 1, 8, 8, dtype=torch.uint8)
    labels = torch.arange(8) % 2
    return ImageSplits("blank-squares", images, labels, images, labels, source="generated", digest="0")


@hookimpl
def register_architectures(register):
    register(name="tinynet", build=build, description="A tiny third-party network", input_size=28,
             min_input_size=1, options={"width": 8}, recipes={"seed": {"epochs": 1, "batch_size": 32, "lr": 0.01}})
    register(name="exploding", build=build_exploding, description="Raises in forward", input_size=28,
             recipes={"seed": {"epochs": 1, "batch_size": 32, "lr": 0.01}})
    register(name="unexportable", build=build_unexportable, description="Trains, but its export disagrees",
             input_size=28, recipes={"seed": {"epochs": 1, "batch_size": 32, "lr": 0.01}})


def build_unexportable(in_channels, num_classes, *, input_size):
    import torch

    class Unexportable(torch.nn.Sequential):
        def forward(self, x):  # exported, it answers the opposite: the ONNX parity check fails
            return -super().forward(x) if torch.compiler.is_exporting() else super().forward(x)

    return Unexportable(torch.nn.Flatten(), torch.nn.Linear(in_channels * input_size * input_size, num_classes))


def build_exploding(in_channels, num_classes, *, input_size):
    from torch import nn

    class Exploding(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(in_channels, num_classes)

        def forward(self, x):
            raise RuntimeError("exploding on purpose")

    return Exploding()


@hookimpl
def register_datasets(register):
    register(name="blank-squares", load=load, description="Eight blank 8x8 images", in_channels=1,
             num_classes=2, class_names=("even", "odd"))
'''

BROKEN_PLUGIN = 'raise ImportError("boom: this plugin is broken on purpose")\n'

DUPLICATE_PLUGIN = '''
from convzoo import hookimpl


@hookimpl
def register_architectures(register):
    register(name="alexnet", build="convzoo_alexnet.model:build", description="A second alexnet", input_size=224)
    register(name="dup-only", build="convzoo_alexnet.model:build", description="Unique to this plugin",
             input_size=224, min_input_size=67, options={"hidden_layers": 1})
'''

MISSPELT_HOOK_PLUGIN = '''
from convzoo import hookimpl


@hookimpl
def register_architecture(register):
    register(name="never-seen", build=print, description="never registered", input_size=1)
'''

SLOW_PLUGIN = '''
from convzoo import hookimpl


def build(in_channels, num_classes, *, input_size, delay, crash_on_rank):
    """Conv, dropout and a fixed pause per training step: a kill can land mid-epoch at a known pace. Under torchrun,
    rank ``crash_on_rank`` raises in its fourth training step."""
    import time

    import torch
    from torch import nn

    class SlowNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                                        nn.Flatten(), nn.Dropout(0.5), nn.Linear(128, num_classes))
            self.steps = 0

        def forward(self, x):
            if self.training:
                time.sleep(delay)
                self.steps += 1
                if (self.steps == 4 and torch.distributed.is_initialized()
                        and torch.distributed.get_rank() == crash_on_rank):
                    raise RuntimeError(f"rank {crash_on_rank} crashed on purpose")
            return self.layers(x)

    return SlowNet()


@hookimpl
def register_architectures(register):
    register(name="slownet", build=build, description="A small network that pauses on every training step",
             input_size=28, options={"delay": 0.05, "crash_on_rank": -1},
             recipes={"seed": {"epochs": 2, "batch_size": 32, "lr": 0.01, "augment": True}})
'''

FAULTY_BUILDS_PLUGIN = '''
from convzoo import OptionError, hookimpl


def build_raising(in_channels, num_classes, *, input_size):
    raise RuntimeError("the builder has a bug")


def build_picky(in_channels, num_classes, *, input_size, width):
    """Takes even widths only, and says so the documented way."""
    from torch import nn

    if width % 2:
        raise OptionError(f"option width must be even, got {width}")
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * input_size * input_size, width),
                         nn.Linear(width, num_classes))


@hookimpl
def register_architectures(register):
    register(name="raising", build=build_raising, description="Its builder raises", input_size=28)
    register(name="misnamed", build="convzoo_faultybuilds:no_such_builder", description="A typo", input_size=28,
             recipes={"seed": {"epochs": 1, "batch_size": 32, "lr": 0.01}})
    register(name="picky", build=build_picky, description="Even widths only", input_size=28, options={"width": 4})
    for _ in range(2):
        register(name="twice", build=build_picky, description="Registered twice", input_size=28,
                 options={"width": 4})
'''

NO_HOOKS_PLUGIN = '''
def register_architectures(register):
    """A hook without @hookimpl: pluggy never calls it."""
    register(name="never-registered", build=print, description="never registered", input_size=1)
'''

INCOMPLETE_PLUGIN = '''
from convzoo import hookimpl


@hookimpl
def register_datasets(register):
    register(name="half-done", description="registered without its loader")
'''

TEST_PLUGINS = {
    "convzoo-tinynet": ("convzoo_tinynet", TINY_PLUGIN),
    "convzoo-broken": ("convzoo_broken", BROKEN_PLUGIN),
    "convzoo-dup": ("convzoo_dup", DUPLICATE_PLUGIN),
    "convzoo-misspelt": ("convzoo_misspelt", MISSPELT_HOOK_PLUGIN),
    "convzoo-slownet": ("convzoo_slownet", SLOW_PLUGIN),
    "convzoo-faultybuilds": ("convzoo_faultybuilds", FAULTY_BUILDS_PLUGIN),
    "convzoo-nohooks": ("convzoo_nohooks", NO_HOOKS_PLUGIN),
    "convzoo-incomplete": ("convzoo_incomplete", INCOMPLETE_PLUGIN),
}


def build_wheel(root: Path, dist_name: str, module: str, source: str) -> Path:
    """Write a one-module plugin distribution (with new-plugin's pyproject) under ``root`` and build its wheel."""
    project = root / dist_name
    (project / module).mkdir(parents=True)
    (project / module / "__init__.py").write_text(source)
    (project / "README.md").write_text(f"# {dist_name}\n")
    name = dist_name.removeprefix("convzoo-")
    (project / "pyproject.toml").write_text(PYPROJECT.substitute(name=name, package=module, kind="plugin"))
    out = root / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), str(project)],
        check=True,
    )
    return next(out.glob(f"{dist_name.replace('-', '_')}-*.whl"))


@pytest.fixture(scope="session", autouse=True)
def measured_peaks():
    """This machine's peak FLOP/s measured (or read from its cache) before any run, as a user's first run would:
    otherwise only a fresh machine's first run prints the line that says it measures."""
    import torch

    from convzoo.training.peak import peak

    return [peak(torch.device("cpu"), precision) for precision in ("fp32", "bf16")]


@pytest.fixture(scope="session")
def plugin_wheels(tmp_path_factory) -> dict[str, Path]:
    """Real wheels of the test plugins, by distribution name."""
    root = tmp_path_factory.mktemp("plugin-src")
    return {dist: build_wheel(root, dist, module, source) for dist, (module, source) in TEST_PLUGINS.items()}


@pytest.fixture(scope="session")
def plugin_sites(plugin_wheels, tmp_path_factory) -> dict[str, Path]:
    """Each test plugin pip-installed (``--target``) into a folder of its own, by distribution name."""
    sites = {}
    for dist, wheel in plugin_wheels.items():
        site = tmp_path_factory.mktemp(f"site-{dist}")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                       check=True)
        sites[dist] = site
    return sites


@pytest.fixture
def load_with(plugin_sites, monkeypatch):
    """Load plugins in this process as if the named test plugins were installed too."""

    def load(*dists: str, **env: str):
        for dist in dists:
            monkeypatch.syspath_prepend(str(plugin_sites[dist]))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return plugins.load()

    return load


@pytest.fixture
def run_convzoo(plugin_sites):
    """Run the real ``convzoo`` command in a fresh process, optionally with test plugins on its path."""

    def run(*args: str, with_plugins: tuple[str, ...] = (), env: dict[str, str] | None = None):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CONVZOO_")}
        environment["PYTHONPATH"] = os.pathsep.join(str(plugin_sites[d]) for d in with_plugins)
        environment.update(env or {})
        return subprocess.run([sys.executable, "-m", "convzoo", *args], capture_output=True, text=True, env=environment)

    return run


@pytest.fixture
def whole_machine():
    """Every core for this test and the processes it starts, as if it ran alone (under xdist each worker has a share):
    for tests that compare thread counts."""
    if not workers.ALL_CORES:
        yield
        return
    share = os.sched_getaffinity(0)
    os.sched_setaffinity(0, workers.ALL_CORES)
    try:
        yield
    finally:
        os.sched_setaffinity(0, share)


@pytest.fixture
def private_environment(tmp_path) -> Path:
    """The Python of a new virtual environment that sees every package of this one but installs into its own
    site-packages: a test's pip installs and uninstalls there leave the suite's environment (and the tests running
    beside it) alone."""
    import sysconfig

    folder = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    # an "import" line of a .pth file runs at start-up: this environment's site-packages, .pth files included
    Path(own, "suite-environment.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    return python


@pytest.fixture
def private_tempdir(tmp_path, monkeypatch):
    """An empty folder as this process's temp dir during the test, to check what is left in it."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def tracking_store(tmp_path, monkeypatch):
    """A real MLflow SQLite tracking store (and artifact folder) in a temp dir, as the default for this test."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture(scope="session")
def session_store(tmp_path_factory):
    """One MLflow store for runs that several tests inspect."""
    folder = tmp_path_factory.mktemp("mlflow-session")
    return folder, f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture
def in_session_store(session_store, monkeypatch):
    folder, uri = session_store
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture(scope="session")
def _short_runs():
    return {}


@pytest.fixture
def short_run(in_session_store, _short_runs, monkeypatch):
    """``short_run(arch)``: a real 2-epoch, 2-batch run of ``arch`` (with ONNX export and parity on the whole test
    set), made once per session, at the architecture's smallest input size (at least 32): its registered size is
    exported and compared by the conformance checks, and parity on 10,000 images at 224 px costs minutes."""
    from convzoo.runs.settings import resolve_config
    from convzoo.registry.plugins import get_registry
    from convzoo.runs.training_run import train

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")

    def run(name: str):
        if name not in _short_runs:
            size = max(32, get_registry().get_architecture(name).min_input_size)
            config, arch, dataset = resolve_config(get_registry(), name, limit_train_batches=2, limit_eval_batches=2,
                                                   overrides={"epochs": 2, "batch_size": 8, "resize": size})
            lines: list[str] = []
            _short_runs[name] = (config, train(config, arch, dataset, echo=lines.append), lines)
        return _short_runs[name]

    return run


@pytest.fixture(scope="session")
def trained_vgg(session_store):
    """A small VGG trained for real (300 batches of 64 at 64x64, about 0.85 test accuracy), with its ONNX model."""
    from convzoo.runs.settings import resolve_config
    from convzoo.registry.plugins import get_registry
    from convzoo.runs.training_run import train

    folder, uri = session_store
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        config, arch, dataset = resolve_config(get_registry(), "vgg", overrides={"epochs": 1, "resize": 64},
                                               limit_train_batches=300)
        result = train(config, arch, dataset, echo=lambda line: None)
        return types.SimpleNamespace(run_id=result.run_id, model=result.model, size=config.hyper.resize)


@pytest.fixture(scope="session")
def decompression_bomb(tmp_path_factory) -> Path:
    """A 388 KB PNG that claims 20000 x 20000 pixels (400 MB once decoded)."""
    from PIL import Image

    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("L", (20000, 20000)).save(path)
    return path


@pytest.fixture
def store(tmp_path, plugin_sites, monkeypatch):
    """A new SQLite store, a checkpoint folder, the slownet plugin and fast heartbeats, for processes and this one."""
    made = process_store(tmp_path, plugin_sites["convzoo-slownet"])
    for name, value in made.settings.items():
        monkeypatch.setenv(name, value)
    return made


@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow_server(auth=False, backend=None, admin_password=...)``: a started ``convzoo server``, stopped (whole process group) after
    the test."""
    servers = []

    def make(auth: bool = False, backend: str | None = None, **settings) -> MlflowServer:
        folder = tmp_path / f"server-{len(servers)}"
        folder.mkdir()
        servers.append(MlflowServer(folder, auth, backend, **settings))
        servers[-1].start()
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session (``postgres.create_database(name)`` gives a URL); removed after."""
    from helpers import PostgresServer

    server = PostgresServer()
    server.start()
    yield server
    server.remove()
