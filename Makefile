# multiverse-etl — every command the README names lives here.
#   make demo   set up everything on a fresh machine, then run the pipeline end to end locally
#   make test   set up everything, then run the test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VENV4 := .venv-spark4
PY := $(VENV)/bin/python
PY4 := $(VENV4)/bin/python
IVY := .cache/ivy
PYTEST_ARGS ?=

.PHONY: setup jars demo demo-s3 lint test test-spark4 smoke local-s3 wrk bench chaos clean

setup: $(VENV)/.installed jars

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

# Delta + hadoop-aws jars from Maven Central, resolved once by Spark's Ivy into .cache/ivy.
jars: $(VENV)/.installed
	$(PY) scripts/resolve_jars.py --ivy-dir $(IVY)

$(VENV4)/.installed: setup.py
	$(PYTHON) -m venv $(VENV4)
	$(VENV4)/bin/pip install -q --upgrade pip
	$(VENV4)/bin/pip install -q -e '.[test]' 'pyspark==4.1.1' 'delta-spark==4.2.0'
	touch $@

demo: setup
	scripts/demo.sh local

demo-s3: setup
	scripts/demo.sh local-s3

smoke: setup
	$(PY) jobs/smoke.py --env local

# ruff (lint + format check) on lib, tests, bench, jobs and sample_api, mypy on lib/; settings in pyproject.toml (CI runs `make test`, so these too).
lint: setup
	$(VENV)/bin/ruff check lib tests bench jobs sample_api
	$(VENV)/bin/ruff format --check lib tests bench jobs sample_api
	$(VENV)/bin/mypy

# Two pytest-xdist workers: every test that uses the SparkSession in one of them (one session, its fixtures built
# once: tests/support/spark_worker.py), all the others beside it. `make test SUITE_WORKERS=` runs in one process.
SUITE_WORKERS ?= -n 2
test: setup lint
	$(PY) -m pytest $(SUITE_WORKERS) $(PYTEST_ARGS)

# The Spark tests again on the Spark 4 line (Glue 6.0 / EMR 8.0: ANSI mode on by default).
test-spark4: $(VENV4)/.installed
	$(PY4) scripts/resolve_jars.py --ivy-dir $(IVY)
	$(PY4) -m pytest -m spark $(PYTEST_ARGS)

# Benchmarks print tables; they are not tests. wrk (Debian) is the HTTP load baseline.
wrk:
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

bench: setup wrk
	$(PY) bench/sample_api_wrk.py
	$(PY) bench/extract.py
	$(PY) bench/transform.py

# The reliability suite at a larger scale (20,000 apprenticeships): prints the chaos table.
chaos: setup
	$(PY) bench/chaos.py

local-s3: setup
	$(PY) -m multiverse_etl.devtools.local_s3 --port 5055

clean:
	rm -rf lake demo-lake spark-warehouse metastore_db derby.log .pytest_cache
