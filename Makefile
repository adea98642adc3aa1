# Every developer command lives here. `make serve` and `make test` also install
# everything they need into .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install serve test test-fast fuzz lint format types bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Start the server on the embedded default (SQLite in ./convmem-data).
serve: $(STAMP)
	$(VENV)/bin/convmem serve

## Lint, type-check and run the whole test suite (SQLite + PostgreSQL when reachable).
test: $(STAMP)
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

## A long spec-fuzzing run (schemathesis) against live servers on both backends.
fuzz: $(STAMP)
	CONVMEM_FUZZ_EXAMPLES=$${CONVMEM_FUZZ_EXAMPLES:-300} $(PY) -m pytest -q tests/test_fuzz.py

test-fast: $(STAMP)
	$(PY) -m pytest -q -x -k "not postgresql"

lint: $(STAMP)
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

types: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/profiles.py
	$(PY) bench/scale.py
	$(PY) bench/concurrency.py
	$(PY) bench/contention.py
	$(PY) bench/imports.py
	$(PY) bench/sync.py
	$(PY) bench/recall_quality.py
	$(PY) bench/recall.py

clean:
	rm -rf $(VENV) convmem-data .pytest_cache .mypy_cache .ruff_cache
