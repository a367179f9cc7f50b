# dblogpack: `make run` starts the service on its embedded default; `make test` checks everything.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the tests and benchmarks start for real.
APT_PACKAGES := postgresql-15 openssh-server openssh-client isal time chromium
DATA_DIR ?= ./dblogpack-data
HOST ?= 127.0.0.1
PORT ?= 8080
# The tour: a demo PostgreSQL and MongoDB cluster beside the server (docs/demo.md); DEMO=0 turns it off.
DEMO ?= 1

.PHONY: install apt-packages run test lint typecheck bench clean

install: apt-packages $(VENV)/.installed

apt-packages:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[dev]'
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
