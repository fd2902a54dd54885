"""Every hook is documented and tested (datasette's meta-tests), and observer hooks are isolated."""
import re
from pathlib import Path

import pytest

from convzoo import hookimpl
from convzoo.registry import hookspecs
from convzoo.training.observers import RunContext, notify
from convzoo.registry.plugins import load

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "convzoo_spec"))


def test_the_hook_list_is_what_plugins_can_implement():
    assert HOOKS == ["on_epoch_end", "on_exception", "on_run_end", "on_run_start",
                     "register_architectures", "register_datasets"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    assert re.search(rf"^### {hook}$", (ROOT / "docs" / "plugin-hooks.md").read_text(), flags=re.MULTILINE)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    sources = "".join(path.read_text() for path in (ROOT / "tests").glob("test_*.py"))
    assert f"def test_hook_{hook}" in sources


def test_hook_register_architectures(load_with):
    _, registry = load_with("convzoo-tinynet")
    arch = registry.get_architecture("tinynet")
    assert (arch.plugin, arch.plugin_version, arch.input_size, dict(arch.options)) == ("convzoo-tinynet", "0.1.0", 28, {"width": 8})
    assert arch.recipes["seed"].batch_size == 32
    assert arch.create(1, 10, width=4)[0].out_channels == 4


def test_hook_register_datasets(load_with):
    _, registry = load_with("convzoo-tinynet")
    dataset = registry.get_dataset("blank-squares")
    assert (dataset.plugin, dataset.in_channels, dataset.num_classes, dataset.class_names) == (
        "convzoo-tinynet", 1, 2, ("even", "odd"))
    assert registry.get_dataset("fashion-mnist").plugin == "convzoo"


class Recorder:
    """An observer plugin that records every call."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def on_run_start(self, run):
        self.calls.append(("on_run_start", run.arch))

    @hookimpl
    def on_epoch_end(self, run, epoch, metrics):
        self.calls.append(("on_epoch_end", epoch, metrics["test_acc"]))

    @hookimpl
    def on_run_end(self, run, status):
        self.calls.append(("on_run_end", status))

    @hookimpl
    def on_exception(self, error):
        self.calls.append(("on_exception", type(error).__name__))


class Faulty:
    """An observer plugin whose every hook raises."""

    @hookimpl
    def on_run_start(self, run):
        raise RuntimeError("observer bug")

    @hookimpl
    def on_epoch_end(self, run, epoch, metrics):
        raise RuntimeError("observer bug")

    @hookimpl
    def on_run_end(self, run, status):
        raise RuntimeError("observer bug")

    @hookimpl
    def on_exception(self, run, error):
        raise RuntimeError("observer bug")


@pytest.fixture
def observed():
    pm, _ = load()
    faulty, recorder = Faulty(), Recorder()
    pm.register(faulty, name="faulty")
    pm.register(recorder, name="recorder")
    return pm, recorder


RUN = RunContext(arch="alexnet", dataset="fashion-mnist", config={"epochs": 1}, device="cpu")


def test_hook_on_run_start(observed, capsys):
    pm, recorder = observed
    notify(pm, "on_run_start", run=RUN)
    assert recorder.calls == [("on_run_start", "alexnet")]
    assert capsys.readouterr().err == (
        "convzoo: plugin faulty failed in on_run_start: RuntimeError: observer bug (the run goes on)\n")


def test_hook_on_epoch_end(observed, capsys):
    pm, recorder = observed
    failures = notify(pm, "on_epoch_end", run=RUN, epoch=1, metrics={"test_acc": 0.5})
    assert recorder.calls == [("on_epoch_end", 1, 0.5)]
    assert failures == ["plugin faulty failed in on_epoch_end: RuntimeError: observer bug"]
    assert "failed in on_epoch_end" in capsys.readouterr().err


def test_hook_on_run_end(observed, capsys):
    pm, recorder = observed
    notify(pm, "on_run_end", run=RUN, status="FINISHED")
    assert recorder.calls == [("on_run_end", "FINISHED")]
    assert "failed in on_run_end" in capsys.readouterr().err


def test_hook_on_exception(observed, capsys):
    pm, recorder = observed
    notify(pm, "on_exception", run=RUN, error=KeyboardInterrupt())
    assert recorder.calls == [("on_exception", "KeyboardInterrupt")]
    assert "failed in on_exception" in capsys.readouterr().err


def test_observers_after_a_failing_one_still_run_once(capsys):
    """pluggy calls the last registered first: the recorder registered before the faulty one runs after it."""
    pm, _ = load()
    first, last = Recorder(), Recorder()
    pm.register(first, name="first")
    pm.register(Faulty(), name="faulty")
    pm.register(last, name="last")
    notify(pm, "on_epoch_end", run=RUN, epoch=3, metrics={"test_acc": 0.25})
    assert first.calls == last.calls == [("on_epoch_end", 3, 0.25)]


class Wrapper:
    """A ``wrapper=True`` hookimpl: pluggy runs it around the other implementations."""

    def __init__(self):
        self.calls = []

    @hookimpl(wrapper=True)
    def on_epoch_end(self, epoch):
        self.calls.append(("before", epoch))
        result = yield
        self.calls.append(("after", epoch))
        return result


def test_wrapper_hookimpls_wrap_the_observers():
    pm, _ = load()
    recorder, wrapper = Recorder(), Wrapper()
    pm.register(recorder, name="recorder")
    pm.register(wrapper, name="wrapper")
    notify(pm, "on_epoch_end", run=RUN, epoch=2, metrics={"test_acc": 0.5})
    assert wrapper.calls == [("before", 2), ("after", 2)]
    assert recorder.calls == [("on_epoch_end", 2, 0.5)]


def test_strict_mode_raises_an_observers_error(observed, monkeypatch):
    pm, _ = observed
    monkeypatch.setenv("CONVZOO_STRICT_PLUGINS", "1")
    with pytest.raises(RuntimeError, match="observer bug"):
        notify(pm, "on_run_start", run=RUN)
