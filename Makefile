# Two commands set everything up on a fresh machine:
#   make run    installs into ./.venv and runs the main job
#   make test   installs into ./.venv and runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH := torch==2.14.1 torchvision==0.29.1
PLUGINS := $(sort $(wildcard plugins/convzoo-*))
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_DATA := /usr/share/datasets/fashion-mnist

.PHONY: install data run test clean

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

run: install data
	$(BIN)/convzoo archs

test: install data
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build core/*.egg-info plugins/*/*.egg-info plugins/*/build
