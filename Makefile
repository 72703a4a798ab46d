# Every target creates the pinned environment first, so each works on a fresh clone.
VENV ?= .venv
PY := $(VENV)/bin/python
AIRFLOW_LINE ?= 3.3

.PHONY: env demo bench soak test test-unit test-long test-matrix matrix-envs print-matrix lint typecheck lock docs check-package

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

# The fault-injection soak, ~10 min a run: 200 mapped lipsync predictions in a real, distributed
# Airflow (PostgreSQL, Celery, two triggerers) under injected faults and kills (docs/reliability.md);
# prints the report, fails on a miss. `make soak SOAK_ARGS="--runs 3"` repeats it,
# `SOAK_ARGS="--topology embedded"` runs it on SQLite and LocalExecutor; `make test-long` runs both short.
soak: env
	$(PY) -m devstack.soak $(SOAK_ARGS)

test: env lint typecheck
	$(PY) -m pytest -q -m "not long_running"

# The inner loop: the unit tests alone (recorded answers, no Airflow started, no emulator).
test-unit: env
	$(PY) -m pytest -q tests/unit

# Tests of minutes of wall time each, not part of make test: the real-Airflow outages (20 deferred and 5
# worker-side lipsyncs through a full API outage, WAVESPEED_OUTAGE_SECONDS long, 180 by default) and the
# fail-over of a killed triggerer and a killed Celery worker on the distributed topology.
test-long: env
	$(PY) -m pytest -q -m long_running

# The suite on the newest patch of every other supported Airflow line (Python 3.11), and on the newest
# Airflow with Python 3.12 and 3.13, each in its own venv (.venv-<env>, kept between runs). Lint and
# types are checked once, against 3.3, by `make test`.
MATRIX ?= 2.11 3.0 3.1 3.2 3.3-py3.12 3.3-py3.13
# What runs once, in make test, rather than in every matrix environment (CI's time on 2 cores): the
# outages, soaks, browser and distributed tests, the benchmarks' smoke run, and tests/e2e, which the
# matrix runs on 3.1 only (the basic tests and the WaveSpeed view's: the oldest line with UI plugins).
# On Python 3.12 the Airflow is make test's own (3.3), and 3.13 runs the dag.test() runs of
# tests/integration on the same Airflow: 3.12 runs the rest (unit, emulator, the official SDK's).
# The emulator never imports Airflow, so tests/emulator runs once per Python (make test, 3.12, 3.13),
# not again on each Airflow line of Python 3.11.
MATRIX_PYTEST_ARGS ?= -m "not long_running and not soak and not distributed and not browser" --ignore=tests/benchmarks

matrix-envs:
	set -e; for env in $(MATRIX); do \
		case $$env in *-py*) line=$${env%-py*}; python=$${env#*-py};; *) line=$$env; python=3.11;; esac; \
		AIRFLOW_LINE=$$line PYTHON_VERSION=$$python VENV=.venv-$$env scripts/bootstrap; \
	done

print-matrix:
	@echo $(MATRIX)

test-matrix: matrix-envs
	set -e; for env in $(MATRIX); do \
		echo "== Airflow $$env"; \
		case $$env in \
			3.1) e2e="--ignore=tests/e2e/test_secret_hygiene.py --ignore=tests/e2e/test_budget_approval.py --ignore=tests/e2e/test_rerun_pays_nothing.py --ignore=tests/e2e/test_recovery.py --ignore=tests/emulator";; \
			3.3-py3.12) e2e="--ignore=tests/e2e --ignore=tests/integration";; \
			3.3-py*) e2e="--ignore=tests/e2e";; \
			*) e2e="--ignore=tests/e2e --ignore=tests/emulator";; \
		esac; \
		.venv-$$env/bin/python -m pytest -q $(MATRIX_PYTEST_ARGS) $$e2e; \
	done

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: env
	$(VENV)/bin/mypy

# Regenerate the pinned environments (needs PyPI): the newest patch of every supported Airflow line
# on Python 3.11, and the newest Airflow on Python 3.12 and 3.13 (requirements/airflow-<line>[-py<x.y>].txt).
# Airflow 3.0 sets no upper bounds (3.0.6 still declares fastapi>=0.115.0 and universal-pathlib>=0.2.2),
# and later releases of two of its dependencies break it:
# universal-pathlib 0.3 (ObjectStoragePath) and FastAPI past 0.115 (with the cadwyn it allows, the
# in-process Execution API fails to import or answers 422). Airflow 3.2.2's dag.test() fails on every
# task with the newest svcs (26: its registry never reaches the Execution API's request state) and with
# FastAPI past 0.156.0 (the Execution API's TITerminalStatePayload no longer builds its schema).
lock: COMPILE = UV_PYTHON_DOWNLOADS=never $(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra docs --extra openlineage --no-header
lock: env
	$(COMPILE) --python-version 3.11 -P apache-airflow==2.11.2 -o requirements/airflow-2.11.txt
	$(COMPILE) --python-version 3.11 -P apache-airflow==3.0.6 -P 'universal-pathlib<0.3' -P 'fastapi<0.116' -o requirements/airflow-3.0.txt
	$(COMPILE) --python-version 3.11 -P apache-airflow==3.1.8 -o requirements/airflow-3.1.txt
	$(COMPILE) --python-version 3.11 -P apache-airflow==3.2.2 -P 'svcs<26' -P 'fastapi<0.156.1' -o requirements/airflow-3.2.txt
	$(COMPILE) --python-version 3.11 -P apache-airflow==3.3.2 -o requirements/airflow-3.3.txt
	$(COMPILE) --python-version 3.12 -P apache-airflow==3.3.2 -o requirements/airflow-3.3-py3.12.txt
	$(COMPILE) --python-version 3.13 -P apache-airflow==3.3.2 -o requirements/airflow-3.3-py3.13.txt

# The docs site, warnings as errors (-n: every reference must resolve); -E rereads every page, so a
# warning is never hidden by an earlier build. Open docs/_build/html/index.html.
docs: env
	$(VENV)/bin/sphinx-build -q -E -W -n --keep-going -b html docs docs/_build/html

# Build the provider's and the emulator's sdist and wheel and check their metadata and contents (no
# emulator in the provider's wheel), then install the emulator's wheel alone in a fresh venv, without
# Airflow, and let it answer a request (needs PyPI or uv's cache for setuptools and aiohttp).
check-package: env
	$(PY) scripts/check_package.py
