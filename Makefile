# One-command setup, run and test. Every target creates the virtualenv it needs.
# The first Python >= 3.11 found (override with `make PYTHON=/path/to/python ...`).
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXAMPLE ?= examples/reference
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup run test test-fast lint bench compat contracts clean

help: ## list the targets
	@echo "make TARGET (each target creates .venv first when needed):"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  \1\t\2/' | expand -t 14

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "need Python >= 3.11 on PATH (or: make PYTHON=/path/to/python3.11 ...)"; exit 1; }
	@echo "== creating $(VENV) with $(PYTHON) and installing the package and its dev tools (about a minute)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install --progress-bar on -e '.[dev]'
	touch $(STAMP)
	@echo "== $(VENV) is ready: \`source $(VENV)/bin/activate\` puts hmr on PATH"

setup: $(STAMP) ## create .venv and install the package with its dev tools

run: $(STAMP) ## serve the example catalog from var/primary (embedded NATS; Ctrl-C stops)
	$(VENV)/bin/hmr serve --base-path var/primary --seed-from $(EXAMPLE)

test: $(STAMP) ## run every test (real NATS and Redis: README "Tests")
	$(PY) -m pytest -q

test-fast: $(STAMP) ## the tests not marked slow
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff and mypy
	$(VENV)/bin/ruff check --no-cache service tests bench
	$(VENV)/bin/ruff format --no-cache --check service tests bench
	$(VENV)/bin/mypy

bench: $(STAMP) ## the benchmarks; options in ARGS="..." (bench/run.py --help)
	$(PY) bench/run.py $(ARGS)

compat: $(STAMP) ## horde-sdk's model-reference code paths here and with 8.6.2 (Python 3.12 venvs)
	$(PY) bench/compat_check.py $(ARGS)

contracts: $(STAMP) ## regenerate contracts/ (JSON Schema, AsyncAPI)
	$(PY) -m horde_model_reference.contracts contracts/

clean: ## remove .venv, the reference venvs, var/ and bench results
	rm -rf $(VENV) .venv-ref .venv-ref-http .venv-compat .venv-compat-ref var bench/results
