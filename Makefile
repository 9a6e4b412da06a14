# Every target bootstraps what it needs: a fresh clone needs only `make test` (or `make demo`).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= eu-west-1
# SAM and the tests run with the venv first on PATH, so `sam build` finds python3.13 there.
export PATH := $(CURDIR)/$(BIN):$(PATH)

# Lambda runs python3.13; the venv uses the same version so tests see what Lambda sees and
# `sam build` (which needs exactly the runtime's version) works. Found on PATH or in pyenv.
PYTHON313 ?= $(shell for p in "$$(command -v python3.13 2>/dev/null)" $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3.13; do \
	[ -n "$$p" ] && [ -x "$$p" ] && "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { echo "$$p"; break; }; done)

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: python313
python313:
	@if [ -z "$(PYTHON313)" ]; then \
	  echo "error: python3.13 not found. Lambda's runtime is python3.13 and 'sam build' needs exactly that version." >&2; \
	  echo "       Install it (e.g. 'pyenv install 3.13.0'), put it on PATH, or run 'make PYTHON313=/path/to/python3.13 ...'." >&2; \
	  exit 1; fi

$(BIN)/.installed: requirements.lock pyproject.toml | python313
	@echo "==> bootstrapping $(VENV) with $(PYTHON313)"
	@[ -x $(BIN)/python ] || "$(PYTHON313)" -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	@$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes requirements.lock
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

.PHONY: venv
venv: $(BIN)/.installed ## create .venv with the pinned packages and the `deployer` command

.PHONY: lock
lock: venv ## re-pin requirements.lock and the layer's requirements.txt
	$(BIN)/uv pip compile requirements-dev.in -o requirements.lock --python-version 3.13 --generate-hashes --no-header -q
	$(BIN)/uv pip compile layers/deployer/requirements.in -c requirements.lock -o layers/deployer/requirements.txt \
	  --python-version 3.13 --python-platform aarch64-manylinux_2_28 --no-header --no-annotate -q

.PHONY: lint
lint: venv ## ruff (lint and format check), mypy strict on the three packages, import-linter's boundaries
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

.PHONY: format
format: venv ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: validate
validate: venv ## sam validate --lint (cfn-lint) on template.yaml
	$(BIN)/sam validate --lint

TOOLS := .venv-tools
$(TOOLS)/.installed: requirements-checkov.lock | $(BIN)/.installed
	@echo "==> bootstrapping $(TOOLS) (checkov) with $(PYTHON313)"
	@[ -x $(TOOLS)/bin/python ] || "$(PYTHON313)" -m venv $(TOOLS)
	@$(BIN)/uv pip sync --quiet --python $(TOOLS)/bin/python --require-hashes requirements-checkov.lock
	@touch $@

.PHONY: checkov
checkov: $(TOOLS)/.installed ## checkov on template.yaml (its own venv: checkov pins an old boto3)
	$(TOOLS)/bin/checkov --config-file .checkov.yaml

.PHONY: lock-tools
lock-tools: venv ## re-pin requirements-checkov.lock, requirements-ecs-deploy.lock and requirements-cli.lock
	$(BIN)/uv pip compile requirements-checkov.in -o requirements-checkov.lock --python-version 3.13 --generate-hashes --no-header -q
	$(BIN)/uv pip compile requirements-ecs-deploy.in -o requirements-ecs-deploy.lock --python-version 3.13 --generate-hashes --no-header -q
	$(BIN)/uv pip compile requirements-cli.in -c requirements.lock -o requirements-cli.lock --python-version 3.13 --generate-hashes --no-header -q

# ecs-deploy (PyPI), which `make bench` compares with `deployer deploy`: its own venv, as it pins
# its own boto3 and click.
ECS_DEPLOY_VENV := .venv-ecs-deploy
$(ECS_DEPLOY_VENV)/.installed: requirements-ecs-deploy.lock | $(BIN)/.installed
	@echo "==> bootstrapping $(ECS_DEPLOY_VENV) (ecs-deploy) with $(PYTHON313)"
	@[ -x $(ECS_DEPLOY_VENV)/bin/python ] || "$(PYTHON313)" -m venv $(ECS_DEPLOY_VENV)
	@$(BIN)/uv pip sync --quiet --python $(ECS_DEPLOY_VENV)/bin/python --require-hashes requirements-ecs-deploy.lock
	@touch $@

# `deployer deploy` as `make bench` runs it beside ecs-deploy: a venv holding only what the one-shot
# commands import (botocore, requirements-cli.lock) and the deployer package, installed as a user
# installs it (not editable); reinstalled when the package changes.
CLI_VENV := .venv-cli
$(CLI_VENV)/.installed: requirements-cli.lock pyproject.toml $(shell find layers/deployer/deployer cli/deployer_cli local/deployer_local -name '*.py') | $(BIN)/.installed
	@echo "==> bootstrapping $(CLI_VENV) (botocore and the deployer package) with $(PYTHON313)"
	@[ -x $(CLI_VENV)/bin/python ] || "$(PYTHON313)" -m venv --without-pip $(CLI_VENV)
	@$(BIN)/uv pip sync --quiet --python $(CLI_VENV)/bin/python --require-hashes requirements-cli.lock
	@$(BIN)/uv pip install --quiet --python $(CLI_VENV)/bin/python --no-deps --reinstall-package ecs-deployer .
	@touch $@

.PHONY: build
build: venv ## sam build (the layer for arm64 and every function)
	$(BIN)/sam build

# The test tiers, named for what a test touches (tests/conftest.py assigns and guards them; README,
# "Tests and benchmarks", has each one's figure).
.PHONY: unit
unit: venv ## unit tier: nothing outside the process (no moto, socket or subprocess), AWS in memory; under a minute
	$(BIN)/pytest -m unit

.PHONY: functional
functional: venv ## functional tier: moto in process (and local servers in the test's own process)
	$(BIN)/pytest -m functional

.PHONY: integration
integration: venv build ## integration tier: other processes: moto server over HTTP, the built functions, subprocesses
	$(BIN)/pytest -m integration

.PHONY: e2e
e2e: venv build browser ## e2e tier: the whole flow on the local stack, and the real browser
	$(BIN)/pytest -m e2e

.PHONY: browser
browser: ## Debian's chromium and chromedriver for the browser test (apt-get, as root)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	  echo "note: chromium/chromedriver are missing and apt-get cannot run here: the browser test will say it was skipped and why" >&2; exit 0; fi; \
	echo "==> installing chromium and chromium-driver (apt-get)"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
	  || echo "warning: apt-get could not install chromium: the browser test will say it was skipped and why" >&2

.PHONY: test
test: lint validate checkov build browser ## everything CI runs: lint, sam validate, sam build, chromium, every tier
	$(BIN)/pytest

.PHONY: demo
demo: venv build ## one release end to end on the local stack (push, build, dev, approval, prod), then stop; SOURCE=github|gitlab pushes through a webhook
	$(BIN)/python -m deployer_local.demo --source $(or $(SOURCE),codecommit)

.PHONY: demo-click
demo-click: venv build ## the same, but waits for you to open the approval link and click
	$(BIN)/python -m deployer_local.demo --wait-for-click

.PHONY: demo-services
demo-services: venv build ## the demo with two services per stage: web and worker deploy in one step, complete together; BEFORE=1 adds prod's before-task (service: web)
	$(BIN)/python -m deployer_local.demo --several-services $(if $(BEFORE),--before,)

.PHONY: demo-bluegreen
demo-bluegreen: venv build ## the demo with prod BLUE_GREEN: ECS pauses after test traffic, the approval page continues it
	$(BIN)/python -m deployer_local.demo --blue-green

.PHONY: demo-before
demo-before: venv build ## the demo with a before-task on prod (migrate, SIMULATED RunTask); FAIL=1 makes it exit 1
	$(BIN)/python -m deployer_local.demo --before $(if $(FAIL),--fail-before prod,)

.PHONY: bench
bench: venv build $(ECS_DEPLOY_VENV)/.installed $(CLI_VENV)/.installed ## benchmarks: print a summary and rewrite BENCHMARKS.md
	$(BIN)/python -m bench

.PHONY: clean
clean: ## remove the venv and build output
	rm -rf $(VENV) $(TOOLS) $(ECS_DEPLOY_VENV) $(CLI_VENV) .aws-sam .mypy_cache .ruff_cache .pytest_cache .hypothesis
