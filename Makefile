# Every README command is a target here; `make` or `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON := .venv/bin/python
STAMP := .venv/.stamp-requirements
RUN_STAMP := .venv/.stamp-run
PORT ?= 8000
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/tdm

.PHONY: help venv run test test-postgres test-multihost lint check-deploy clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(PYTHON):
	python3 -m venv .venv

# Re-install only when a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt | $(PYTHON)
	$(PYTHON) -m pip install -r requirements-dev.txt
	@touch $(STAMP)

# Running needs only requirements.txt (its own stamp; `make test` installs the dev tools).
$(RUN_STAMP): requirements.txt | $(PYTHON)
	$(PYTHON) -m pip install -r requirements.txt
	@touch $(RUN_STAMP)

venv: $(STAMP) ## Create .venv and install requirements-dev.txt (re-runs when requirements change)

run: $(RUN_STAMP) ## Migrate, load the demo data, serve on http://127.0.0.1:$PORT (8000) with a worker; Ctrl-C stops both
	DEBUG=1 $(PYTHON) manage.py migrate --no-input
	DEBUG=1 $(PYTHON) manage.py seed_demo
	@echo ""
	@echo "  Demo login:  username 'demo'  password 'demo-clinic-2026'"
	@echo "  Open http://127.0.0.1:$(PORT)/   (Ctrl-C stops the web server and the worker)"
	@echo ""
	DEBUG=1 PORT=$(PORT) $(PYTHON) bin/devserver

test: venv ## Run the whole test suite on SQLite (installs Debian chromium for browser tests if possible)
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian chromium for the browser tests..."; \
	    apt-get update && apt-get install -y chromium \
	      || echo "apt-get could not install chromium: the browser tests will be skipped"; \
	  else \
	    echo "chromium not found: install it (Debian/Ubuntu: sudo apt-get install chromium)"; \
	    echo "or skip the browser tests with: .venv/bin/pytest -m 'not browser'"; \
	  fi; \
	fi
	.venv/bin/pytest

test-postgres: venv ## Run the test suite on PostgreSQL at 127.0.0.1:5432 (pytest-django creates test_tdm)
	DATABASE_URL=$(POSTGRES_URL) .venv/bin/pytest

test-multihost: venv ## Two gunicorn nodes, haproxy, PgBouncer and a worker on this machine (docs/deployment.md); installs haproxy and pgbouncer when root
	@if ! { command -v haproxy || [ -x /usr/sbin/haproxy ]; } >/dev/null 2>&1 \
	    || ! { command -v pgbouncer || [ -x /usr/sbin/pgbouncer ]; } >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian haproxy and pgbouncer for the multihost test..."; \
	    apt-get update && apt-get install -y haproxy pgbouncer \
	      || echo "apt-get could not install haproxy and pgbouncer: the multihost test will be skipped"; \
	  else \
	    echo "haproxy or pgbouncer not found: install them (Debian/Ubuntu: sudo apt-get install haproxy pgbouncer)"; \
	  fi; \
	fi
	.venv/bin/pytest -m multihost tests/multihost

lint: venv ## ruff check and ruff format --check
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

check-deploy: venv ## manage.py check --deploy with production-like settings (fails on any warning)
	DEBUG=0 \
	SECRET_KEY="$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" \
	ALLOWED_HOSTS=tdm.example.org \
	$(PYTHON) manage.py check --deploy --fail-level WARNING

clean: ## Remove caches, collected static files and test output (keeps .venv and db.sqlite3)
	rm -rf staticfiles .pytest_cache .ruff_cache test-results
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +

# bench/ is also a directory: without .PHONY make would call the target up to date.
.PHONY: bench bench-quick bench-load bench-import
BENCH_STAMP := .venv/.stamp-bench

$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(PYTHON) -m pip install -r requirements-bench.txt
	@touch $(BENCH_STAMP)

bench: venv ## Benchmarks on SQLite and PostgreSQL at 50/500/5,000 patients; writes docs/performance.md
	$(PYTHON) -m bench.run

bench-quick: venv ## Quick benchmark look: 50 and 500 patients on SQLite, table printed only
	$(PYTHON) -m bench.run --quick

bench-import: venv ## Levels import alone: 100,000 rows at 5,000 patients and a 200,000-row preview, SQLite and PostgreSQL
	$(PYTHON) -m bench.imports

bench-load: $(BENCH_STAMP) ## Load test: gunicorn (4 workers) on PostgreSQL, 50 locust users for 60 s; writes docs/performance.md
	$(PYTHON) -m bench.load
