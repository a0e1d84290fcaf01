# Entry points (see README): `make render STACK=staging`, `make test`;
# operations (docs/deploy.md, docs/rollback.md): `make deploy|rollback|history STACK=prod [TO=<version>]`.
# Both create .venv with the pinned dependencies first (once; again when a requirements file changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# checkov, the peer scanner of the policy pack, needs its own virtualenv (its pins conflict with pulumi's).
CHECKOV_VENV := .venv-checkov
STACK ?= staging

.PHONY: setup checkov-setup toolchain toolchain-for-tests render policy policy-config test lint bench bench-redis bench-policy \
	bench-preview bench-keycloak clean deploy rollback history

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt policies/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

checkov-setup: $(CHECKOV_VENV)/.installed

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

# The real Pulumi CLI, language host and provider plugins, built with the Go client into a cache outside
# the checkout keyed by toolchain/versions.toml (README "Toolchain"); a no-op once built. Under
# `make test` a machine without Go gets a warning and skipped end-to-end tests, except with CI=true.
toolchain:
	$(PYTHON) -m tools.toolchain build

toolchain-for-tests:
	$(PYTHON) -m tools.toolchain build --optional

render: setup
	$(BIN)/python -m tools.render --stack $(STACK) --out build/$(STACK)

# The render also writes build/<stack>/policy-config.json, which the runner picks up.
policy: render
	$(BIN)/python -m policies.aiwfe_policies.offline build/$(STACK)/resources.json --config build/$(STACK)/policy-config.json

# For `pulumi preview --policy-pack policies --policy-pack-config build/<stack>/policy-config.json`.
policy-config: setup
	$(BIN)/python -m stacks.policy_config --stack $(STACK)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

test: setup checkov-setup toolchain-for-tests lint
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

# The policy pack vs checkov and kube-score over both stacks' rendered manifests, per stack, and the
# peers' findings table (exit 1 if the pack is not faster than checkov).
bench-policy: setup checkov-setup toolchain
	$(BIN)/python -m bench.policy

# Real `pulumi preview` of prod vs a flat program registering the same resources, and prod + N services.
bench-preview: setup toolchain
	$(BIN)/python -m bench.preview

# The real Keycloak (make toolchain fetches it) on loopback: logins/s and grants/s per vCPU vs the
# capacity rule's assumption (exit 1 if the rule would under-size Keycloak). Needs PostgreSQL 15.
bench-keycloak: setup toolchain
	$(BIN)/python -m bench.keycloak

clean:
	rm -rf build $(VENV) $(CHECKOV_VENV)
