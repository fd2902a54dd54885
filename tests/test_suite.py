"""The test suite itself: `make test-fast` for development, the whole suite for CI."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def collected(*args):
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True)
    return {line.split("::")[0] for line in done.stdout.splitlines() if "::" in line}


def test_make_test_fast_leaves_out_the_slow_tests_and_make_test_runs_everything():
    dry = subprocess.run(["make", "-n", "test-fast", "test"], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    commands = [line for line in dry.stdout.splitlines() if "-m pytest" in line]
    workers = ".venv/bin/python -m pytest -n auto --dist loadscope --no-loadscope-reorder"
    assert commands == [f'{workers} -m "not slow"', workers]
    files = ["tests/test_distributed.py", "tests/test_pipeline.py", "tests/test_training.py"]
    assert collected("-m", "not slow", *files) == {"tests/test_pipeline.py", "tests/test_training.py"}
    assert collected("-m", "slow", *files) == {"tests/test_distributed.py", "tests/test_training.py"}
