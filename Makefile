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

.PHONY: all test test-slow experiments lint bench clean venv

all: test

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

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
	rm -rf $(VENV) build *.egg-info toolkit/__pycache__ tests/__pycache__ .pytest_cache .ruff_cache
	find . -name '__pycache__' -type d -prune -exec rm -rf {} +
