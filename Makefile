# OpenFuse - every target works on a fresh machine of the kind described in README.md.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WEB_DEPS := web/node_modules/.package-lock.json
export OPENFUSE_HOME ?= $(CURDIR)/.openfuse

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt deployments/local/install-system-deps.sh
	@bash deployments/local/install-system-deps.sh
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(STAMP)

# The dashboard's npm packages, exactly as web/package-lock.json pins them (npm ci writes
# node_modules/.package-lock.json, the stamp).
$(WEB_DEPS): web/package.json web/package-lock.json deployments/local/install-system-deps.sh
	@bash deployments/local/install-system-deps.sh --web
	@command -v npm >/dev/null 2>&1 || { echo "npm (Node.js 20.9+) is needed for the dashboard in web/" >&2; exit 1; }
	cd web && npm ci --no-audit --no-fund
	@touch $(WEB_DEPS)

install: $(STAMP) $(WEB_DEPS) ## Create .venv and install OpenFuse with test extras (pinned by constraints.txt), and web/'s npm packages

demo: $(STAMP) ## Run the bundled demo pipeline on the embedded defaults (no server needed)
	$(BIN)/python -m openfuse_connectors.demo

services: ## Make sure PostgreSQL, Redis and MariaDB are up (starts them when they are down)
	@bash deployments/local/ensure-services.sh

test: install services ## Run the whole test suite
	$(BIN)/python -m pytest -q

lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install ## Format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install services ## Run the PostgreSQL -> PostgreSQL benchmark (see bench/README.md)
	@bash deployments/local/install-system-deps.sh --bench
	$(BIN)/python bench/pg_to_pg.py

lock: ## Re-resolve constraints.txt from pyproject.toml in a scratch venv
	rm -rf /tmp/openfuse-lock && $(PY) -m venv /tmp/openfuse-lock
	/tmp/openfuse-lock/bin/pip install --quiet '.[test]'
	/tmp/openfuse-lock/bin/pip freeze --exclude openfuse | grep -v '^-e' > constraints.txt

clean: ## Remove the virtualenv and local state
	rm -rf $(VENV) .openfuse .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install demo services test lint fmt bench lock clean
