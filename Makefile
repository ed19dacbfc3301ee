# keybimp — everything a fresh clone needs is installed from here.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export KEYBIMP_DATA ?= $(CURDIR)/data

.PHONY: install test demo ui emulate bench lint lock clean browser-test

$(BIN)/uv:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check uv

$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

install: $(VENV)/.installed
	@mkdir -p $(DAGSTER_HOME) $(KEYBIMP_DATA)
	@cp -n dagster.yaml $(DAGSTER_HOME)/dagster.yaml 2>/dev/null || true

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider keybimp_pipeline_tests

demo: install
	$(BIN)/python -m keybimp_pipeline.demo_run

# Run from $(DAGSTER_HOME): `dagster dev` warns about any dagster.yaml in its working folder that is not the
# instance's (the one here is the template `install` copies there).  The settings file is named explicitly, as
# the folder no longer says which one applies: integrations.yaml if there is one, else the shipped example.
UI_CONFIG = $(or $(KEYBIMP_CONFIG),$(if $(wildcard integrations.yaml),$(CURDIR)/integrations.yaml,$(CURDIR)/integrations.example.yaml))
ui: install
	cd $(DAGSTER_HOME) && KEYBIMP_CONFIG=$(abspath $(UI_CONFIG)) PYTHONWARNINGS='ignore:Function `dev_command` is superseded' \
	  $(CURDIR)/$(BIN)/dagster dev -w $(CURDIR)/workspace.yaml -h 127.0.0.1 -p $(or $(UI_PORT),3000)

# The UI as a person sees it: Debian's Chromium (apt) driven by playwright-core (npm, lock file committed).
# Needs apt (as root), so CI runs it from .ci/run after `make test`, never inside it.  Its own emulators,
# DAGSTER_HOME and data in a temporary folder, free ports; screenshots in screenshots/ (git-ignored).
APT_PACKAGES := $(if $(wildcard /usr/bin/chromium),,chromium) $(if $(shell command -v npm),,nodejs npm)
browser-test: install
	@if [ -n "$(strip $(APT_PACKAGES))" ]; then apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; fi
	cd e2e-browser && npm ci --no-audit --no-fund --loglevel=error
	cd e2e-browser && node --test --test-reporter=spec ui.test.mjs

# Fresh emulators with both demo shops (KeyCRM 8801 and 8803, Bimp 8802); RESET=1 also removes data/'s sync
# state, which names records of an earlier Bimp.
emulate: install
	$(BIN)/keybimp emulate --demo --shops 2 $(if $(RESET),--reset-data)

# All five benchmarks (~25 min on a quiet machine, 30-35 under load, ~5 more the first time; dlt and the other benchmark-only tools from the lock's `bench` group);
# `make bench BENCH_ONLY=transform,requests` runs a subset, the others keep their last figures.
bench: install
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements-bench.lock
	$(BIN)/python -m benchmarks.run_all $(if $(BENCH_ONLY),--only $(BENCH_ONLY))

lint: install
	$(BIN)/ruff check keybimp_pipeline keybimp_pipeline_tests benchmarks

lock: | $(BIN)/uv
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra test --extra bench --python-version 3.11 -o requirements-bench.lock

clean:
	rm -rf $(VENV) .dagster_home data
