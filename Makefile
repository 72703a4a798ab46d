# Every target creates the pinned environment first, so each works on a fresh clone.
VENV ?= .venv
PY := $(VENV)/bin/python
AIRFLOW_LINE ?= 3.3

.PHONY: env demo bench soak test test-matrix lint typecheck lock docs

env:
	AIRFLOW_LINE=$(AIRFLOW_LINE) VENV=$(VENV) scripts/bootstrap

# The demo: a real Airflow lip-syncs a generated clip against the local emulator.
# `make demo DEMO_ARGS=--exit-after-run` (or WAVESPEED_DEMO_EXIT=1) stops once the run ends.
demo: env
	$(PY) -m devstack.demo $(DEMO_ARGS)

# The benchmarks (issue 5), ~7 min: prints the report and writes benchmarks/results/latest.json.
# `make bench BENCH_ARGS="--only parse_cost"` runs some sections; `--smoke` checks they all still run.
bench: env
	$(PY) -m benchmarks $(BENCH_ARGS)

# The fault-injection soak (issue 6), ~5 min a run: 200 mapped lipsync predictions in a real Airflow
# under injected faults, two triggerer SIGKILLs and one killed task; prints the report, fails on a
# miss. `make soak SOAK_ARGS="--runs 3"` repeats it; `make test` runs the short version.
soak: env
	$(PY) -m devstack.soak $(SOAK_ARGS)

test: env lint typecheck
	$(PY) -m pytest -q

# The suite on the oldest supported release of the other Airflow lines, each in its own venv
# (lint and types are checked once, against 3.3, by `make test`).
MATRIX ?= 2.11 3.0
test-matrix:
	set -e; for line in $(MATRIX); do \
		echo "== Airflow $$line"; \
		AIRFLOW_LINE=$$line VENV=.venv-$$line scripts/bootstrap; \
		.venv-$$line/bin/python -m pytest -q; \
	done

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: env
	$(VENV)/bin/mypy

# Regenerate the pinned environments (needs PyPI), one per supported Airflow line.
# 3.0.2 is the oldest 3.0 whose dag.test() runs tasks through the Task SDK, as the tests need.
# Airflow 3.0 sets no upper bounds, and later releases of two of its dependencies break it:
# universal-pathlib 0.3 (ObjectStoragePath) and FastAPI past 0.115 (with the cadwyn it allows, the
# in-process Execution API fails to import or answers 422).
lock: COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra docs --extra openlineage -p 3.11 --no-header
lock: env
	$(COMPILE) -P apache-airflow==2.11.2 -o requirements/airflow-2.11.txt
	$(COMPILE) -P apache-airflow==3.0.2 -P 'universal-pathlib<0.3' -P 'fastapi<0.116' -o requirements/airflow-3.0.txt
	$(COMPILE) -P apache-airflow==3.3.2 -o requirements/airflow-3.3.txt

# The docs site, warnings as errors (-n: every reference must resolve); -E rereads every page, so a
# warning is never hidden by an earlier build. Open docs/_build/html/index.html.
docs: env
	$(VENV)/bin/sphinx-build -q -E -W -n --keep-going -b html docs docs/_build/html
