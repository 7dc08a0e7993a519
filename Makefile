# bptt-toolkit. A fresh clone needs two commands: `make experiments` and `make test`.
# Both bootstrap .venv (pip install -e .[dev]) when it is missing or pyproject.toml is newer.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SCALE  ?= default
JOBS   ?= 0
BACKEND ?= loky
SCHEDULER ?=

.PHONY: all test test-slow test-lowest experiments lint bench clean venv

all: test

# The venv's Python must be >= 3.11: checked before .venv is made (and a .venv made by an older
# Python is replaced); a failed install removes .venv, so the next `make` starts clean.
PY_OK := import sys; sys.exit(sys.version_info < (3, 11))

$(STAMP): pyproject.toml
	@if ! $(PYTHON) -c '$(PY_OK)' >/dev/null 2>&1; then \
	  echo "make: bptt-toolkit needs Python >= 3.11, and PYTHON=$(PYTHON) is" \
	    "$$($(PYTHON) --version 2>&1 || echo 'not found'). Name a newer one, e.g." \
	    "make $(or $(MAKECMDGOALS),test) PYTHON=python3.11" >&2; exit 2; fi
	@if [ -e $(PY) ] && ! $(PY) -c '$(PY_OK)' >/dev/null 2>&1; then \
	  echo "make: removing $(VENV), made by $$($(PY) --version 2>&1 || echo 'a broken Python')" >&2; \
	  rm -rf $(VENV); fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip && $(PY) -m pip install --quiet -e '.[dev]' \
	  || { rm -rf $(VENV); echo "make: installing into $(VENV) failed (above); $(VENV) was" \
	    "removed so that the next make starts clean" >&2; exit 1; }
	@touch $(STAMP)

venv: $(STAMP)

# make test: the suite, then the tests that follow an optimizer's path (marker `trajectory`)
# again with the kernels compiled for AVX2, as a CPU without AVX-512 runs them. Both passes
# run in TEST_JOBS pytest-xdist workers, a test file per worker at a time (its module fixtures
# once: the smoke suite's run is shared by its tests); TEST_JOBS=0 runs in one process.
TEST_JOBS ?= 2
XDIST := $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile)
test: $(STAMP)
	$(PY) -m pytest -q $(XDIST)
	$(PY) tests/avx2.py -q -m trajectory $(XDIST)

# make test-slow: the long checks (marker `slow`), then the whole suite compiled for AVX2.
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow
	$(PY) tests/avx2.py -q -m "not slow"

# make test-lowest: the suite on the lowest versions pyproject.toml admits
# (constraints/lowest.txt), in its own venv, so that the lower bounds stay true.
LOWEST := .venv-lowest
test-lowest: $(STAMP)
	@test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet -c constraints/lowest.txt -e '.[dev]'
	NUMBA_CACHE_DIR=$(LOWEST)/numba-cache $(LOWEST)/bin/python -m pytest -q -p no:cacheprovider

# SCALE and BACKEND are checked before anything else: one line naming the allowed values
SCALES   := smoke default paper
BACKENDS := loky dask
ifneq ($(filter experiments,$(MAKECMDGOALS)),)
ifneq ($(words $(SCALE)) $(filter $(SCALE),$(SCALES)),1 $(SCALE))
$(error SCALE='$(SCALE)' is not one of: $(SCALES))
endif
ifneq ($(words $(BACKEND)) $(filter $(BACKEND),$(BACKENDS)),1 $(BACKEND))
$(error BACKEND='$(BACKEND)' is not one of: $(BACKENDS))
endif
endif

experiments: $(STAMP)
	$(PY) -m toolkit experiments --scale $(SCALE) --jobs $(JOBS) --backend $(BACKEND) $(if $(SCHEDULER),--scheduler $(SCHEDULER),)

lint: $(STAMP)
	$(PY) -m ruff check toolkit tests benchmarks
	$(PY) -m ruff format --check toolkit tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(LOWEST) .numba-avx2-cache build *.egg-info toolkit/__pycache__ tests/__pycache__ .pytest_cache .ruff_cache
	find . -name '__pycache__' -type d -prune -exec rm -rf {} +
