# Two commands for a new user:  `make run`  (the portal, embedded)  and  `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench clean-var

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip<25"
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## run: embedded portal on http://$(HOST):$(PORT) — SQLite, in-process Celery, sample data, demo logins
run: $(VENV)/.installed
	DEBUG=1 $(PY) manage.py setup_demo
	DEBUG=1 $(PY) manage.py serve --host $(HOST) --port $(PORT)

## test: the whole suite against the real PostgreSQL and Redis on localhost
test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

## bench: every benchmark in bench/ (long; figures go to docs/benchmarks.md)
bench: $(VENV)/.installed
	for script in bench/*_bench.py; do $(PY) $$script || exit 1; done

clean-var:
	rm -rf var/

## browser-deps: headless Chromium + chromedriver for tests/browser (Debian packages; CI runs as root)
.PHONY: browser-deps
browser-deps:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; }
test: browser-deps
