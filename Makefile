# Every target creates the pinned environment first, so each works on a fresh clone.
VENV ?= .venv
PY := $(VENV)/bin/python
AIRFLOW_LINE ?= 3.3

.PHONY: env test lint typecheck lock

env:
	AIRFLOW_LINE=$(AIRFLOW_LINE) VENV=$(VENV) scripts/bootstrap

test: env lint typecheck
	$(PY) -m pytest -q

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: env
	$(VENV)/bin/mypy

# Regenerate the pinned environments (needs PyPI).
lock: env
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev -p 3.11 --no-header -P apache-airflow==3.3.2 -o requirements/airflow-3.3.txt
