# dblogpack: `make run` starts the service on its embedded default; `make test` checks everything.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The interpreter the venv is made from: Debian's CPython 3.11, built with PGO and LTO and
# linked statically. The engine's scans run Python between C-speed passes, and that build runs
# them 10-35% faster than a plain `./configure --enable-shared` build such as pyenv's default
# (docs/benchmarks.md, "The interpreter"). Any CPython 3.11+ works: BASE_PYTHON=python3.
BASE_PYTHON ?= /usr/bin/python3.11
# Debian packages the tests and benchmarks start for real, the venv's interpreter, and what builds
# the engine's compiled parts (src/dblogpack/formats/_scan.c, src/dblogpack/_heap.c, and
# src/dblogpack/_sha256.c with OpenSSL's header).
APT_PACKAGES := postgresql-15 openssh-server openssh-client isal time chromium python3.11-venv \
	gcc python3.11-dev libssl-dev
DATA_DIR ?= ./dblogpack-data
HOST ?= 127.0.0.1
PORT ?= 8080
# The tour: a demo PostgreSQL and MongoDB cluster beside the server (docs/demo.md); DEMO=0 turns it off.
DEMO ?= 1

.PHONY: install apt-packages run test lint typecheck bench clean

# Named after the interpreter, so changing BASE_PYTHON installs anew.
INSTALLED := $(VENV)/.installed-$(subst /,_,$(BASE_PYTHON))

install: apt-packages $(INSTALLED)

apt-packages:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The editable install builds the compiled parts in place: a change to them installs anew.
$(INSTALLED): pyproject.toml setup.py src/dblogpack/formats/_scan.c src/dblogpack/_sha256.c \
		src/dblogpack/_heap.c
	@# A venv made from another interpreter (an older checkout's `python3`) is made anew.
	@grep -qsx "executable = $$(readlink -f "$$(command -v $(BASE_PYTHON))")" $(VENV)/pyvenv.cfg || \
		{ rm -rf $(VENV) && $(BASE_PYTHON) -m venv $(VENV); }
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[dev]'
	@# The venv's own setuptools (from ensurepip) is needed by nothing installed: pip builds the
	@# project in an isolated environment. Its distutils-precedence.pth imports _distutils_hack
	@# at every start of the venv's Python, ~0.9 ms of each `dblogpack pack` (a 1-hour window
	@# must take < 50 ms as a whole process).
	@$(PY) -m pip uninstall -q -y setuptools
	@touch $@

run: install
	$(VENV)/bin/dblogpack --data-dir $(DATA_DIR) serve --host $(HOST) --port $(PORT) --demo $(DEMO)

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy

test: install lint typecheck
	$(VENV)/bin/pytest

bench: install
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
