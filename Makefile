# Two commands on a fresh machine with python3 and pip: `make reports` and `make test`.
# Both create .venv if it is missing and install the workbench with the exact versions of constraints.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOMES := $(CURDIR)/.cache/home

# Jupyter, IPython and matplotlib write under $HOME; keep them inside the checkout.
export MPLCONFIGDIR := $(HOMES)/matplotlib
export IPYTHONDIR := $(HOMES)/ipython
export JUPYTER_RUNTIME_DIR := $(HOMES)/jupyter-runtime
export JUPYTER_DATA_DIR := $(HOMES)/jupyter-data
export JUPYTER_CONFIG_DIR := $(HOMES)/jupyter-config

.PHONY: install browser reports test lint lab doctor clean-reports

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	mkdir -p $(MPLCONFIGDIR) $(IPYTHONDIR) $(JUPYTER_RUNTIME_DIR) $(JUPYTER_DATA_DIR) $(JUPYTER_CONFIG_DIR)
	touch $(STAMP)

## Regenerate every report: execute all notebooks with papermill into reports/ (PROFILE=quick|full|paper: the
## parameter sets in notebooks/profiles/; quick, the notebooks' own defaults, when unset). A report whose inputs
## have not changed (workbench/fingerprint.py) is kept; FORCE=1 executes every notebook regardless.
reports: $(STAMP)
	$(BIN)/workbench run $(if $(PROFILE),--profile $(PROFILE)) $(if $(FORCE),--force)

## Headless Chromium for the report site's test (tests/test_site.py): Debian's chromium and chromium-driver,
## installed with apt-get when missing (as root, or through sudo).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

## Literature validation, unit tests on two processes (pytest-xdist), then nbval with two notebooks at a time
## (--dist loadfile keeps each notebook's cells in order in one process). On a clean clone: 9 min 51 s in all,
## install included (unit tests 104 s, nbval 398 s); where the time went: README, "Tests, and what nbval checks".
test: $(STAMP) browser
	$(BIN)/workbench lit validate
	$(BIN)/python -m pytest tests -q -n 2
	$(BIN)/python -m pytest --nbval --nbval-current-env notebooks -q -n 2 --dist loadfile

## Damaged records and cache entries, leftovers of killed runs; `make doctor FIX=1` removes them.
doctor: $(STAMP)
	$(BIN)/workbench doctor $(if $(FIX),--fix)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check workbench tests

## Open JupyterLab on the notebooks with the workbench's kernel (the venv's python3); as root with --allow-root.
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks $(if $(filter 0,$(shell id -u)),--allow-root)
