# The two entry commands (see README):
#   make run   - set up a fresh machine and run the main job
#   make test  - set up a fresh machine, run the linters (make lint) and every test
SHELL := /bin/bash
PY := .venv/bin/python
PIP := $(PY) -m pip
export RAY_TMPDIR := /tmp/ray
export MPLCONFIGDIR := $(CURDIR)/.runtime/mpl
export PYTHONHASHSEED := 0
export RAY_AUTH_MODE := disabled
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: run test setup lint bench clean

setup: .venv/.installed

.venv/.installed: requirements.lock pyproject.toml
	test -x $(PY) || python3.11 -m venv .venv || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0   # the CPU wheel first, so nothing pulls CUDA builds
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps -e .
	touch $@

run: setup
	$(PY) -m experiments.quickstart

test: lint
	$(PY) -m pytest -n 2 --dist loadgroup

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: setup
	$(PY) benchmarks/engine.py
	$(PY) benchmarks/rl_env.py

clean:
	rm -rf .venv outputs multirun .runtime
