# edoc — the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.edoc-installed

.PHONY: install system-deps system-deps-demo demo test test-postgresql lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## system-deps: the Debian packages the tests use (apt-get when root and missing)
system-deps:
	scripts/system-deps.sh test

system-deps-demo:
	scripts/system-deps.sh demo

## demo: set up, then init -> ingest samples -> search -> verify -> tamper -> verify catches it
demo: $(STAMP) system-deps-demo
	$(PY) scripts/demo.py

## test: set up, lint (ruff + mypy --strict + import contracts), then the whole test suite
test: $(STAMP) system-deps lint
	$(PY) -m pytest -q
	$(MAKE) test-postgresql

## test-postgresql: the integration suites and a representative CLI subset again, every
## archive's catalog in PostgreSQL (a server the suite starts itself; tests/postgres.py).
## Left out: suites with no catalog in play (fuzz, bench smoke), the SQLite 0.1.0 fixture,
## and the PostgreSQL-only suites (already run above).
PG_CLI_SUBSET := tests/cli/test_spine.py tests/cli/test_records.py tests/cli/test_lifecycle.py \
	tests/cli/test_einvoice_ingest.py tests/cli/test_verify_workers.py
test-postgresql: $(STAMP) system-deps
	$(PY) -m pytest -q --catalog-backend postgresql tests/integration $(PG_CLI_SUBSET) \
	  --ignore=tests/integration/test_fuzz.py --ignore=tests/integration/test_bench_smoke.py \
	  --ignore=tests/integration/test_legacy_archive.py \
	  --ignore=tests/integration/test_pg_coordination.py \
	  --ignore=tests/integration/test_pg_catalog_moves.py

lint: $(STAMP)
	$(VENV)/bin/ruff check edoc cli.py tests scripts bench
	$(VENV)/bin/mypy --strict edoc
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache demo-archive
