# Two commands set everything up on a fresh machine:
#   make run    installs into ./.venv and runs the main job: `mlflow run . -P arch=alexnet` (quick recipe on a CPU)
#   make test   installs into ./.venv and runs the test suite (what CI runs)
# make test-fast: unit tests and the command line's error paths, under a minute (leaves out tests marked slow)
# make docs: build the documentation site (docs/, mkdocs.yml) strictly and serve it at http://127.0.0.1:8000
# Benchmarks: make bench-train, make bench-inference, make bench-startup, make bench-folder, make bench-checkpoint, make bench-sweep,
#   make bench-dp, make bench-profile, make bench-accuracy, make bench-budget, make bench-serving, make bench-denormals
# (see README); make server starts a team tracking server
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH := torch==2.14.1 torchvision==0.29.1
PLUGINS := $(sort $(wildcard plugins/convzoo-*))
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_DATA := /usr/share/datasets/fashion-mnist
ARCH ?= alexnet
WORKERS ?= auto

.PHONY: install data postgres browser run test test-fast docs ui server bench-train bench-inference bench-startup bench-folder bench-checkpoint bench-sweep bench-dp bench-profile bench-accuracy bench-budget bench-serving bench-denormals clean

install: $(STAMP)

$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install --no-build-isolation -e '.[test]' $(addprefix -e ,$(PLUGINS))
	touch $@

# Fashion-MNIST from Debian's package where apt is available; convzoo also looks elsewhere (see README).
data:
	@if [ -d $(DEBIAN_DATA) ]; then :; \
	elif command -v apt-get >/dev/null; then $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; \
	else echo "no apt-get: set CONVZOO_DATA_DIR to a folder with the four Fashion-MNIST IDX files"; fi

# PostgreSQL's server programs for the sweep tests, which start throwaway servers of their own (Debian's package)
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null; then $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q postgresql; \
	else echo "no apt-get: install PostgreSQL (initdb, pg_ctl) for the tests marked postgres"; fi

# Debian's chromium for the test marked browser, which drives it headless against the MLflow UI (no browser download)
browser:
	@if command -v chromium >/dev/null; then :; \
	elif command -v apt-get >/dev/null; then $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; \
	else echo "no apt-get: install chromium (on PATH) for the test marked browser"; fi

run: install data
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow run . -P arch=$(ARCH) --env-manager local

# The MLflow UI on the store `make run` wrote to (MLflow's default: ./mlflow.db, artifacts in ./mlruns)
ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

# one worker per core (tests/workers.py gives each its own cores); WORKERS=0 runs the suite in one process
PYTEST := $(BIN)/python -m pytest -n $(WORKERS) --dist loadscope --no-loadscope-reorder

test: install data postgres browser
	$(PYTEST)

test-fast: install data
	$(PYTEST) -m "not slow"

docs: install
	$(BIN)/python -m convzoo.cli.reference
	$(BIN)/mkdocs build --strict
	$(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:8000

# A team tracking server (see README, "Sweeps across machines"); SERVER_ARGS="--backend-store-uri postgresql://..."
server: install
	$(BIN)/convzoo server $(SERVER_ARGS)

# Benchmarks (figures and ratios in one run; JSON under benchmarks/results/); BENCH_ARGS="--steps 50" and so on
bench-train: install data
	$(BIN)/python benchmarks/train_throughput.py $(BENCH_ARGS)

bench-inference: install data
	$(BIN)/python benchmarks/inference.py $(BENCH_ARGS)

bench-checkpoint: install data
	$(BIN)/python benchmarks/checkpoint_cost.py $(BENCH_ARGS)

bench-sweep: install data postgres
	$(BIN)/python benchmarks/sweep_throughput.py $(BENCH_ARGS)

bench-dp: install data
	$(BIN)/python benchmarks/data_parallel.py $(BENCH_ARGS)

bench-profile: install data
	$(BIN)/python benchmarks/step_profile.py $(BENCH_ARGS)

bench-accuracy: install data
	$(BIN)/python benchmarks/time_to_accuracy.py $(BENCH_ARGS)

# every seed architecture's fast recipe in a 2-minute budget: how far each run overran it
bench-budget: install data
	$(BIN)/python benchmarks/time_to_accuracy.py --budget 2m --seeds 1 --json benchmarks/results/budget_2m.json $(BENCH_ARGS)

bench-serving: install data
	$(BIN)/python benchmarks/serving.py $(BENCH_ARGS)

bench-denormals: install data  # BENCH_ARGS="--checkpoint last.pt": a long run's checkpoint
	$(BIN)/python benchmarks/denormals.py $(BENCH_ARGS)

bench-startup: install
	$(BIN)/python benchmarks/startup.py $(BENCH_ARGS)

bench-folder: install
	$(BIN)/python benchmarks/folder_cache.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build core/*.egg-info plugins/*/*.egg-info plugins/*/build
