# One gate for people and CI. `make test` is what CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck pytest run bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check app hal tests bench
	$(BIN)/ruff format --check app hal tests bench

typecheck: $(STAMP)
	$(BIN)/mypy app hal

pytest: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

run: $(STAMP)
	$(BIN)/python -m app.lab.demo

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
