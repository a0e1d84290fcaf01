# Entry points (see README): `make render STACK=staging`, `make test`.
# Both create .venv with the pinned dependencies first (once; again when a requirements file changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= staging

.PHONY: setup render policy test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt policies/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

render: setup
	$(BIN)/python -m tools.render --stack $(STACK) --out build/$(STACK)

policy: render
	$(BIN)/python -m policies.offline build/$(STACK)/resources.json

lint: setup
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m bench.render

clean:
	rm -rf build $(VENV)
