"""The flat layout's import paths still work for a deprecation period, each with a warning naming the new path; and
nothing in convzoo itself imports an old one."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from convzoo._moved import MODULES, NAMES

CORE = Path(__file__).resolve().parents[1] / "core" / "convzoo"


@pytest.mark.parametrize("old", sorted(MODULES))
def test_an_old_module_path_is_the_new_module_with_a_warning(old, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=rf"^{old} moved to {MODULES[old]}; import it from there"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MODULES[old])


@pytest.mark.parametrize(("old", "name", "home"), [
    ("convzoo.registry", "Registry", "convzoo.registry.catalogue"),
    ("convzoo.data", "ImageSplits", "convzoo.data.splits"),
    ("convzoo.tracking", "TrackingUnavailable", "convzoo.tracking.active_run"),
    ("convzoo.tracking", "EpochLog", "convzoo.training.epoch_log"),
    ("convzoo.tracking", "log_setup", "convzoo.tracking.run_log"),
    ("convzoo.runs", "run_rows", "convzoo.tracking.listing"),
    ("convzoo.studies", "join_study", "convzoo.studies.optuna_studies"),
    ("convzoo.config", "resolve_config", "convzoo.runs.settings"),
    ("convzoo.vocabulary", "get_run", "convzoo.tracking.lookup"),
    ("convzoo.runs.training_run", "local_checkpoint", "convzoo.training.checkpoint"),
])
def test_an_old_name_is_found_where_it_went_with_a_warning(old, name, home):
    with pytest.warns(DeprecationWarning, match=rf"^{old}.{name} moved to {home}.{name}"):
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(home), name)


def test_a_name_that_never_existed_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'convzoo.tracking' has no attribute 'no_such_name'"):
        importlib.import_module("convzoo.tracking").no_such_name


def test_every_module_with_moved_names_delegates_to_the_table():
    for module in NAMES:
        assert importlib.import_module(module).__getattr__.__qualname__.startswith("moved_names")


@pytest.mark.slow
def test_convzoo_imports_no_old_path_of_its_own():
    modules = sorted("convzoo." + ".".join(path.relative_to(CORE).with_suffix("").parts).removesuffix(".__init__")
                     for path in CORE.rglob("*.py") if path.name != "__main__.py")
    script = ("import importlib, sys, warnings\nwarnings.simplefilter('always')\n"
              "with warnings.catch_warnings(record=True) as seen:\n"
              "    for name in sys.argv[1:]:\n        importlib.import_module(name)\n"
              "print([str(w.message) for w in seen if 'moved to' in str(w.message)])")
    done = subprocess.run([sys.executable, "-c", script, *modules], capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr
