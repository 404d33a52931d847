# One-command setup, run and test. Every target creates the virtualenv it needs.
# The first Python >= 3.11 found (override with `make PYTHON=/path/to/python ...`).
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXAMPLE ?= examples/reference

.PHONY: setup run test test-fast lint bench compat contracts clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "need Python >= 3.11 on PATH (or: make PYTHON=/path/to/python3.11 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/hmr serve --base-path var/primary --seed-from $(EXAMPLE)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check service tests bench
	$(VENV)/bin/ruff format --check service tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/run.py

compat: $(STAMP)
	$(PY) bench/compat_check.py

contracts: $(STAMP)
	$(PY) -m horde_model_reference.contracts contracts/

clean:
	rm -rf $(VENV) .venv-ref .venv-ref-http .venv-compat .venv-compat-ref var bench/results
