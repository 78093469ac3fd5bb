# Madina: `make run` brings the city up, `make test` runs every test. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
PROTOS := $(shell find proto -name '*.proto')
export MADINA_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: install run test test-unit test-integration proto proto-check lint bench bench-deps system-deps clean help
.DEFAULT_GOAL := help

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

install: $(VENV)/.installed madina_proto/.generated ## create .venv from the lock files and generate contracts

$(VENV)/.installed: requirements.lock requirements-dev.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install --quiet uv==$(UV_VERSION)
	VIRTUAL_ENV=$(VENV) $(UV) pip sync --quiet requirements.lock requirements-dev.lock
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --no-deps -e .
	@touch $@

madina_proto/.generated: $(VENV)/.installed $(PROTOS) tools/gen_proto.py
	$(PY) tools/gen_proto.py > /dev/null
	@touch $@

proto: $(VENV)/.installed ## regenerate protobuf and gRPC code
	$(PY) tools/gen_proto.py > /dev/null
	@touch madina_proto/.generated

proto-check: install ## fail if generated code is stale; buf lint when buf is available
	@rm -rf .make/proto-check && mkdir -p .make && $(PY) tools/gen_proto.py --out .make/proto-check > /dev/null
	@diff -r -x __pycache__ -x .generated madina_proto .make/proto-check > /dev/null || \
	  { echo "madina_proto is stale: did you forget to run 'make proto'?"; exit 1; }
	@if $(MAKE) -s node_modules/.installed >/dev/null 2>&1 && command -v buf >/dev/null; then \
	  (cd proto && buf lint) && echo "buf lint: ok"; \
	else echo "buf lint: skipped (npm could not install @bufbuild/buf)"; fi
	@echo "proto-check: generated code is current"

# Node tooling from package-lock.json (buf, ESLint); again only when the lock changes.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	@touch $@

system-deps: ## Debian packages the tests need (headless chromium; postgresql and mosquitto, which the tests start privately)
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	[ -z "$$missing" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }

lint: install node_modules/.installed ## ruff, mypy on madina/ and services/, ESLint on the dashboard's JavaScript
	$(VENV)/bin/ruff check madina services tests bench tools
	$(VENV)/bin/mypy madina services
	eslint .

# pytest: one worker per core (at most 4), since most integration tests wait on brokers and processes
# rather than compute; whole files per worker, so a module's fixtures start once and its tests share state.
test: install system-deps proto-check ## every test: unit, integration, e2e (Docker-only tests skip with a reason)
	node --test --test-reporter=spec tests/js/*.test.mjs
	$(PY) -m pytest -ra --durations=15 --numprocesses=auto --maxprocesses=4 --dist=loadfile

test-unit: install ## unit tests only
	$(PY) -m pytest -q tests/unit

KAFKA ?= embedded
# The living city plans a waste collection round per depot every 10 minutes, so the map has routes.
run: install ## the whole city on this machine: broker, services, simulator, dashboard (KAFKA=apache: Apache Kafka)
	MADINA_WASTE_ROUND_INTERVAL_S=$${MADINA_WASTE_ROUND_INTERVAL_S:-600} $(PY) -m madina up --kafka $(KAFKA)

bench-deps: ## Debian packages the benchmarks use (kcat: a C librdkafka consumer)
	@command -v kcat >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null; }

bench: install bench-deps ## benchmarks under bench/ (results in bench/results/; BENCH_ARGS=--quick for a smoke run)
	$(PY) -m bench $(BENCH_ARGS)

clean: ## remove local state (data/) and build leftovers
	rm -rf data .make .pytest_cache .mypy_cache .ruff_cache
