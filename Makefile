# One command runs what CI runs: `make test`.
PYTHON ?= python3
PORT   ?= 8080
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test test-prerequisites lint typecheck pytest asl js-test bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
	  { echo "eventpipe needs Python 3.11 or newer: $(PYTHON) is $$($(PYTHON) -V 2>&1 || echo missing); run make PYTHON=python3.12 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files: reinstall only when the project's metadata changes.
$(VENV)/.installed: $(BIN)/python pyproject.toml requirements.txt
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The whole pipeline on this machine with a generated stream; it prints the dashboard's URL.
# `make run PORT=8081` serves on another port.
run: $(VENV)/.installed
	$(BIN)/eventpipe up --demo --port $(PORT)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench scripts docs/azure
	$(BIN)/ruff format --check src tests bench scripts docs/azure

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# Node.js and npm, and Chromium for the dashboard test: installed where it can be, else named in one line.
test-prerequisites:
	@scripts/test_prerequisites.sh

pytest: test-prerequisites $(VENV)/.installed-dev node_modules/.installed
	$(BIN)/pytest -q

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

asl: node_modules/.installed
	npx --no-install asl-validator --json-path src/eventpipe/workflow/pipeline.asl.json

# The JavaScript tracker's own tests (clients/js), with node's built-in runner: no npm packages.
js-test:
	node --test clients/js/test/

test: test-prerequisites lint typecheck pytest asl js-test infra-check

include infrastructure/checks.mk

# The Lambda functions' Python (Runtime in infrastructure/template.yaml), when this machine has one
# that runs (on PATH or installed by pyenv), and a venv of what Lambda holds: requirements.txt and boto3.
LAMBDA_PYTHON ?= $(shell for py in python3.12 $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12; do \
  "$$py" -c 'import sys; assert sys.version_info[:2] == (3, 12); print(sys.executable)' 2>/dev/null && break; done)
LAMBDA_VENV := build/lambda-python3.12

# Each script prints its figures beside their baseline and target; the summary table comes last.
# Sizes and repeats are cut to what keeps each figure stable and the whole run under 10 minutes
# (docs/benchmark.md); run a script alone for its full-size defaults.
bench: export EVENTPIPE_BENCH_SUMMARY := $(CURDIR)/build/bench-summary.jsonl
bench: $(VENV)/.installed-dev
	$(BIN)/python bench/summary.py --start $(EVENTPIPE_BENCH_SUMMARY)
	$(BIN)/python bench/validators.py
	$(BIN)/python bench/run.py --events 100000 --baseline-events 10000 --memory-events 200000 --repeat 2 --no-lake --batch-events 2000,500
	$(BIN)/python bench/cold_start.py --repeat 5
	@if [ -z "$(LAMBDA_PYTHON)" ]; then \
	  echo "cold start on Python 3.12 (the functions' runtime): not measured, no python3.12 on this machine"; \
	elif [ $(LAMBDA_VENV)/.installed -nt requirements.txt ] || { rm -rf $(LAMBDA_VENV) && \
	  $(LAMBDA_PYTHON) -m venv $(LAMBDA_VENV) && \
	  $(LAMBDA_VENV)/bin/pip install --quiet -r requirements.txt boto3 && touch $(LAMBDA_VENV)/.installed; }; then \
	  $(BIN)/python bench/cold_start.py --repeat 5 --python $(LAMBDA_VENV)/bin/python; \
	else echo "cold start on Python 3.12: not measured, its venv could not be installed"; fi
	$(BIN)/python bench/http_load.py --burst-s 5 --fresh-s 10 --table-rates 25000 --table-sizes 100,10 --drain-s 20
	$(BIN)/python bench/lake.py --events 100000 --repeat 5
	$(BIN)/python bench/microbatch.py
	$(BIN)/python bench/dedup_store.py --stored 0,10000,1000000,10000000 --batches 100 --repeat 7
	$(BIN)/python bench/summary.py $(EVENTPIPE_BENCH_SUMMARY)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(SAM_VENV) build .eventpipe .mypy_cache .ruff_cache .pytest_cache
