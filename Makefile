# Entry points (see README): `make render STACK=staging`, `make test`;
# operations (docs/deploy.md, docs/rollback.md): `make deploy|rollback|history STACK=prod [TO=<version>]`.
# Both create .venv with the pinned dependencies first (once; again when a requirements file changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= staging

.PHONY: setup render policy test lint bench bench-redis clean deploy rollback history

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

# Operations: the Pulumi CLI must be installed and logged in (tools/deploy.py drives it).
# YES=1 skips the confirmation; ROLLBACK_ON_FAILURE=1 returns to the last good update when up fails.
deploy: setup
	$(BIN)/python -m tools.deploy deploy --stack $(STACK) $(if $(YES),--yes) $(if $(ROLLBACK_ON_FAILURE),--rollback-on-failure)

rollback: setup
	$(BIN)/python -m tools.deploy rollback --stack $(STACK) $(if $(TO),--to $(TO)) $(if $(YES),--yes)

history: setup
	$(BIN)/python -m tools.deploy history --stack $(STACK)

bench: setup
	$(BIN)/python -m bench.render

# Needs redis-server, redis-cli and redis-benchmark (apt-get install redis-server redis-tools).
bench-redis: setup
	$(BIN)/python -m bench.redis

clean:
	rm -rf build $(VENV)
