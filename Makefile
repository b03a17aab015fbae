# paystream — developer commands. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
ENV         ?= local
BACKEND     ?= embedded
STAMP       := $(VENV)/.installed
# checkov has its own virtualenv: its dependencies conflict with requirements/dev.lock (see requirements/checkov.in).
CHECKOV_VENV  := $(VENV)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: help install lock package local-up local-down local-status logs demo test test-unit test-integration test-e2e plan apply stripe-listen bench chaos docs openapi clean

help: ## list the commands
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(STAMP): requirements/dev.lock layers/deps/requirements.txt pyproject.toml
	@$(PYTHON_BOOT) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "paystream needs Python >= 3.11 (found %s)" % sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements/dev.lock
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

$(CHECKOV_STAMP): requirements/checkov.lock
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON_BOOT) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q -r requirements/checkov.lock
	@touch $(CHECKOV_STAMP)

install: $(STAMP) $(CHECKOV_STAMP) ## create .venv with the locked dependencies (and .venv/checkov)

lock: $(STAMP) ## re-lock requirements (layers/deps/requirements.txt, requirements/dev.lock, requirements/checkov.lock)
	cd layers/deps && ../../$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.txt requirements.in
	cd requirements && ../$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o dev.lock dev.in
	cd requirements && ../$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o checkov.lock checkov.in

package: $(STAMP) ## build function zips and layers into build/ (deterministic)
	$(PY) -m localdev package

local-up: $(STAMP) ## start the local platform (BACKEND=embedded|localstack); idempotent
	$(PY) -m localdev up --backend $(BACKEND)

local-down: $(STAMP) ## stop what local-up started
	$(PY) -m localdev down

local-status: $(STAMP) ## show what is running
	$(PY) -m localdev status

logs: $(STAMP) ## follow the local functions' logs
	$(PY) -m localdev logs

demo: $(STAMP) ## one payment end to end against the local stack (starts it if needed)
	$(PY) -m localdev demo

test: $(STAMP) $(CHECKOV_STAMP) ## the whole suite (what CI runs): unit, integration, e2e (brings its own stack up and down)
	$(PY) -m pytest tests/unit tests/integration tests/e2e

test-unit: $(STAMP) $(CHECKOV_STAMP) ## unit tests only (no network, no servers)
	$(PY) -m pytest tests/unit

.PHONY: checkov
checkov: $(CHECKOV_STAMP) ## checkov over the prod configuration (.checkov.yaml): passed/failed/skipped counts, failures listed
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml --quiet

test-integration: $(STAMP) ## integration tests (their own emulator on free ports)
	$(PY) -m pytest tests/integration

test-e2e: $(STAMP) ## e2e tests (their own stack; PAYSTREAM_E2E_OUTPUTS=.local/outputs.json to use a running one)
	$(PY) -m pytest tests/e2e

plan: $(STAMP) ## terraform plan for ENV=local|dev|staging|prod (packages first: both function architectures)
	$(PY) -m localdev package --architecture x86_64 --architecture arm64
	$(PY) -m localdev terraform plan --env $(ENV)

apply: $(STAMP) ## terraform apply for ENV (prod needs CONFIRM_PROD=yes)
	$(PY) -m localdev package --architecture x86_64 --architecture arm64
	$(PY) -m localdev terraform apply --env $(ENV)

docs: $(STAMP) ## regenerate module READMEs' input/output tables
	$(PY) -m localdev tfdocs

openapi: $(STAMP) ## regenerate docs/openapi.json (the HTTP API's OpenAPI document) from the code
	$(PY) -m localdev.openapi

stripe-listen: $(STAMP) ## forward real Stripe test-mode webhooks to the local API
	$(PY) -m localdev stripe-listen

bench: $(STAMP) ## measurements into bench/ (BENCH_OUTPUTS=.local/outputs.json to use a running stack): local platform, payments in-process, then on one stack cold starts, AWS requests and cost per payment, webhooks, fraud, load with the zero-loss audit, rebuild; then bench/results.json, RESULTS.md and plots
	$(PY) -m localdev bench
	$(PY) -m localdev.bench_payments
	$(PY) -m localdev.bench_all $(if $(BENCH_OUTPUTS),--outputs $(BENCH_OUTPUTS))
	$(PY) -m localdev.bench_report

chaos: $(STAMP) ## faults under load (Stripe restart, killed workers, PutEvents failures, DynamoDB throttling, duplicate/shuffled webhooks), each followed by the zero-loss audit: bench/chaos.json (BENCH_OUTPUTS=... to use a running stack)
	$(PY) -m localdev.chaos $(if $(BENCH_OUTPUTS),--outputs $(BENCH_OUTPUTS),--own-stack)

clean: ## remove build outputs and local state (stops the stack first)
	-$(PY) -m localdev down
	rm -rf build .local
