# onemap — the two commands: `make up` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
ONEMAP := $(VENV)/bin/onemap

# Python 3.12+: pyenv's 3.12 (its shim refuses unless selected), else any python3.12/3.13.
PYENV_ROOT_DIR := $(shell pyenv root 2>/dev/null)
PYTHON ?= $(or $(lastword $(wildcard $(PYENV_ROOT_DIR)/versions/3.12.*/bin/python3.12)),\
                $(shell command -v python3.12 2>/dev/null),\
                $(shell command -v python3.13 2>/dev/null))

# Debian packages the project needs: PostgreSQL 15 with PostGIS 3 and pgRouting;
# GDAL's command-line tools, the real OGC API client the tests drive (ogrinfo, ogr2ogr);
# Chromium and a small CJK font for the browser tests (tests/web drives it with playwright-core);
# DejaVu, from which the map's Latin glyphs are made (spatial/glyphs.py).
APT_PACKAGES := postgresql-15-postgis-3 postgresql-15-pgrouting gdal-bin \
                chromium fonts-wqy-zenhei fonts-dejavu-core

.PHONY: help up test down install system-deps lint typecheck bench clean

help:
	@echo "make up     install, start the database, load the demo city, serve at http://127.0.0.1:$${PORT:-8000}"
	@echo "make test   the same set-up, then the whole test suite"
	@echo "make down   stop the embedded PostgreSQL cluster"
	@echo "make lint   ruff and mypy"
	@echo "make bench  the tile benchmark (onemap vs pygeoapi vs tipg vs raw SQL)"

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ -n "$$DATABASE_URL$$PGHOST$$PGSERVICE" ]; then \
	    echo "external database configured; not installing$$missing"; \
	  elif [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "error: missing Debian packages:$$missing"; \
	    echo "       run as root, or: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
	  echo "error: Python 3.12 or newer not found (tried pyenv versions/3.12.*, python3.12, python3.13)"; \
	  echo "       install it (e.g. 'pyenv install 3.12') or run: make PYTHON=/path/to/python3.12"; exit 1; \
	fi
	@"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 12))' || \
	  { echo "error: $(PYTHON) is older than 3.12"; exit 1; }
	@test -x $(PY) || "$(PYTHON)" -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

# The browser side's npm packages (maplibre-gl served by onemap, playwright-core for
# tests/web), again whenever the lock file is newer than the install.
web/node_modules/.package-lock.json: web/package-lock.json web/package.json | system-deps
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then echo "installing nodejs npm"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  else echo "error: npm is missing: sudo apt-get install nodejs npm"; exit 1; fi; }
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	@touch $@

install: $(VENV)/.installed system-deps web/node_modules/.package-lock.json

up: install
	$(ONEMAP) setup
	$(ONEMAP) serve

# pytest exits 5 when it collects no test: say so instead of failing obscurely.
test: install
	$(ONEMAP) setup
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

# The tile benchmark, full run (~20 min): onemap, pygeoapi, tipg and raw SQL side by side.
# `$(ONEMAP) bench tiles --quick` is the two-minute version. Figures: var/bench/tiles-*.json.
bench: install
	$(ONEMAP) setup
	$(ONEMAP) bench tiles $(BENCH_ARGS)

down:
	@test -x $(ONEMAP) && $(ONEMAP) db stop || true

lint: install
	$(VENV)/bin/ruff check spatial tiles scenarios server democity tests bench
	$(VENV)/bin/mypy

clean: down
	rm -rf var
