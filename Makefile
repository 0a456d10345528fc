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

.PHONY: run test setup lint bench clean contracts

setup: .venv/.installed node_modules/.installed

# npm packages pinned in package-lock.json: the solc compiler, OpenZeppelin and anvil (binary inside the package)
node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

# Solidity artifacts into build/contracts/ (rebuilt whenever a source changes)
contracts: setup
	$(PY) -m contracts.build

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
	$(PY) -m contracts.build
	$(PY) -m pytest -n 2 --dist loadgroup

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: setup   # the README's performance tables: python -m experiments.readme_tables --write
	$(PY) -m benchmarks.engine --out outputs/bench/engine.json
	$(PY) benchmarks/rl_env.py --sizes 8 --markets 1 5 16 21 --steps 1008 --repeats 4 --out outputs/bench/rl_env.json

clean:
	rm -rf .venv outputs multirun .runtime node_modules build

# --- live node stack: a Docker engine and static busybox for the module images (see README "Live node stack") ---
.PHONY: live-deps live-stop bench-live
setup: live-deps
live-deps: .venv/.installed  # installs Debian's docker.io and busybox-static when missing (as root); idempotent
	$(PY) -m live.docker_engine install
live-stop:  # stop the engine the project started, if any (before `clean` removes its data)
	-test -x $(PY) && $(PY) -m live.docker_engine stop
clean: live-stop
bench: bench-live
bench-live: setup
	$(PY) benchmarks/live_docker.py --out outputs/bench/live_docker.json

# --- the live main job: anvil + Docker engine, example modules, a deployed mechanism, a small network of services
.PHONY: live
live: setup contracts
	$(PY) -m live.main $(ARGS)
