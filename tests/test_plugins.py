"""Plugin loading with real installed distributions: isolation, switches, and third-party plugins."""
import json

import pytest

from convzoo.errors import ConvzooError
from convzoo.testing import CHECKS

SEED = {"alexnet", "vgg", "nin", "googlenet"}
BROKEN_MESSAGE = (
    "convzoo: plugin convzoo-broken 0.1.0 failed to load: ImportError: boom: this plugin is broken on purpose "
    "(disable it with CONVZOO_DISABLE_PLUGINS=convzoo-broken)"
)


def test_the_seed_plugins_are_separate_distributions(load_with):
    _, registry = load_with()
    owners = {name: registry.get_architecture(name).plugin for name in SEED}
    assert owners == {name: f"convzoo-{name}" for name in SEED}


def test_a_broken_plugin_is_reported_once_and_the_others_keep_working(run_convzoo):
    result = run_convzoo("archs", with_plugins=("convzoo-broken",))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("failed to load") == 1
    assert BROKEN_MESSAGE in result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines()[1:]}
    assert SEED <= listed


def test_plugins_json_lists_failures_with_their_error(run_convzoo):
    result = run_convzoo("plugins", "--json", with_plugins=("convzoo-broken",))
    report = json.loads(result.stdout)
    assert report["failed"] == [
        {"name": "convzoo-broken", "version": "0.1.0", "error": "ImportError: boom: this plugin is broken on purpose"}
    ]
    assert {p["name"] for p in report["plugins"]} >= {f"convzoo-{name}" for name in SEED}


def test_unknown_architecture_error_names_failed_plugins(load_with):
    _, registry = load_with("convzoo-broken")
    with pytest.raises(ConvzooError) as error:
        registry.get_architecture("resnet")
    assert "unknown architecture 'resnet'" in str(error.value)
    assert f"available: {', '.join(registry.list_architectures())};" in str(error.value)
    assert "plugins that failed to load: convzoo-broken (ImportError: boom" in str(error.value)


def test_a_duplicate_name_is_an_error_naming_both_distributions(load_with):
    _, registry = load_with("convzoo-dup")
    with pytest.raises(ConvzooError, match="'alexnet' is registered by both convzoo-alexnet 0.1.0 and convzoo-dup 0.1.0"):
        registry.get_architecture("alexnet")
    listed = set(registry.list_architectures())
    assert "alexnet" not in listed and {"dup-only", "googlenet", "nin", "vgg"} <= listed
    for name in ("vgg", "nin", "googlenet", "dup-only"):
        CHECKS[0](registry.get_architecture(name))


def test_disabling_the_duplicate_restores_the_seed_plugin(load_with):
    _, registry = load_with("convzoo-dup", "convzoo-broken", CONVZOO_DISABLE_PLUGINS="convzoo-dup, convzoo_broken")
    listed = set(registry.list_architectures())
    assert SEED <= listed and "dup-only" not in listed
    assert registry.get_architecture("alexnet").plugin == "convzoo-alexnet"
    assert registry.failures == [] and registry.warnings == []


def test_disabling_by_env_var_in_the_cli_silences_the_failure(run_convzoo):
    result = run_convzoo("plugins", with_plugins=("convzoo-broken",), env={"CONVZOO_DISABLE_PLUGINS": "convzoo-broken"})
    assert result.returncode == 0 and result.stderr == ""
    assert "convzoo-broken" not in result.stdout


def test_load_plugins_restricts_loading_to_a_list(load_with):
    _, registry = load_with("convzoo-tinynet", CONVZOO_LOAD_PLUGINS="convzoo-vgg,convzoo-tinynet")
    assert registry.list_architectures() == ["exploding", "tinynet", "unexportable", "vgg"]


def test_an_empty_load_list_loads_no_plugin_but_the_builtins(load_with):
    _, registry = load_with("convzoo-tinynet", CONVZOO_LOAD_PLUGINS="")
    assert registry.list_architectures() == []
    assert [p.name for p in registry.plugins] == ["convzoo"]
    assert registry.get_dataset("fashion-mnist").num_classes == 10


def test_strict_mode_reraises_the_plugin_error(load_with, run_convzoo):
    with pytest.raises(ImportError, match="broken on purpose"):
        load_with("convzoo-broken", CONVZOO_STRICT_PLUGINS="1")
    result = run_convzoo("plugins", with_plugins=("convzoo-broken",), env={"CONVZOO_STRICT_PLUGINS": "1"})
    assert result.returncode != 0 and "ImportError: boom" in result.stderr


def test_a_misspelt_hook_fails_that_plugin_with_the_known_hooks(load_with):
    _, registry = load_with("convzoo-misspelt")
    [failure] = registry.failures
    assert failure.name == "convzoo-misspelt"
    assert "unknown hook 'register_architecture'" in failure.error and "register_architectures" in failure.error
    assert "never-seen" not in registry.list_architectures()


def test_a_registration_missing_a_field_fails_that_plugin_naming_it(load_with):
    _, registry = load_with("convzoo-incomplete")
    [failure] = registry.failures
    assert (failure.name, failure.error) == ("convzoo-incomplete", "TypeError: plugin convzoo-incomplete registers "
                                             "dataset 'half-done' without load (register(..., load=...))")
    assert "half-done" not in registry.datasets.names()


def test_a_third_party_plugin_appears_without_changes_to_the_core(run_convzoo):
    archs = run_convzoo("archs", with_plugins=("convzoo-tinynet",))
    row = next(line for line in archs.stdout.splitlines() if line.startswith("tinynet"))
    assert row.split()[1:4] == ["convzoo-tinynet", "0.1.0", "170"]  # conv 8*9+8, linear 8*10+10
    plugins = json.loads(run_convzoo("plugins", "--json", with_plugins=("convzoo-tinynet",)).stdout)
    [info] = [p for p in plugins["plugins"] if p["name"] == "convzoo-tinynet"]
    assert info["architectures"] == ["tinynet", "exploding", "unexportable"] and info["datasets"] == ["blank-squares"]
    assert info["hooks"] == ["register_architectures", "register_datasets"]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_third_party_architectures_get_the_conformance_checks(load_with, check):
    _, registry = load_with("convzoo-tinynet")
    check(registry.get_architecture("tinynet"))


FAULTY = "convzoo-faultybuilds 0.1.0"


def test_broken_builders_are_listed_as_broken_and_the_others_still_listed(run_convzoo):
    result = run_convzoo("archs", with_plugins=("convzoo-faultybuilds",))
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:] if not line.startswith("BROKEN")}
    assert SEED | {"picky"} <= set(rows) and rows["raising"][3] == rows["misnamed"][3] == "broken"
    assert [line for line in result.stdout.splitlines() if line.startswith("BROKEN")] == [
        f"BROKEN misnamed: architecture misnamed ({FAULTY}) cannot import its builder "
        f"'convzoo_faultybuilds:no_such_builder': AttributeError: module 'convzoo_faultybuilds' has no attribute "
        f"'no_such_builder'",
        f"BROKEN raising: architecture raising ({FAULTY}) failed to build: RuntimeError: the builder has a bug",
    ]


@pytest.mark.parametrize("args, message", [
    (("summary", "raising"), f"architecture raising ({FAULTY}) failed to build: RuntimeError: the builder has a bug"),
    (("train", "misnamed", "--epochs", "1"), f"architecture misnamed ({FAULTY}) cannot import its builder "
     "'convzoo_faultybuilds:no_such_builder': AttributeError: module 'convzoo_faultybuilds' has no attribute "
     "'no_such_builder'"),
    (("summary", "picky", "--option", "width=3"), "option width must be even, got 3"),
    (("train", "raising"), "architecture raising has no recipe to train with; its plugin registers recipes="
     "{'seed': {'epochs': ..., 'batch_size': ..., 'lr': ...}} with it"),
])
def test_a_builder_error_is_one_line_naming_the_plugin_or_the_builders_own_words(run_convzoo, tmp_path, args,
                                                                                  message):
    result = run_convzoo(*args, with_plugins=("convzoo-faultybuilds",),
                         env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert (result.returncode, result.stderr.splitlines()[-1]) == (1, f"Error: {message}")
    assert "Traceback" not in result.stderr


def test_a_name_registered_twice_by_one_plugin_says_so(load_with):
    _, registry = load_with("convzoo-faultybuilds")
    with pytest.raises(ConvzooError) as error:
        registry.get_architecture("twice")
    assert str(error.value) == (f"architecture 'twice' is registered 2 times by {FAULTY}; it is unusable until that "
                                f"plugin registers it once")


def test_a_plugin_without_hookimpl_gets_a_warning(run_convzoo):
    result = run_convzoo("plugins", with_plugins=("convzoo-nohooks",))
    assert result.returncode == 0, result.stderr
    warning = ("plugin convzoo-nohooks 0.1.0 implements no convzoo hook, so it adds nothing: mark its hook functions "
               "with @convzoo.hookimpl (known hooks: ")
    assert f"WARNING {warning}" in result.stdout and f"convzoo: {warning}" in result.stderr
