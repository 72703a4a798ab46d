"""The one step that lets a task pay again after an uncertain submit, run as a person would run it.

Before Airflow 3.3 the record is an Airflow Variable, and the failure prints an
``airflow variables delete ...`` command: here it is copied out of the message and run through
Airflow's own CLI against the metadata database. (The Airflow 3.3 REST command is run against a
real Airflow in ``tests/e2e/test_recovery.py``.)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from unittest import mock

import pytest

from airflow_provider_wavespeed.resume import UNCERTAIN_STATE_KEY, SubmittedPredictionRecord
from tests.helpers.airflow_context import make_context

pytestmark = pytest.mark.integration


def test_the_printed_variables_delete_command_removes_the_record(airflow_db: None):
    from airflow.models import Variable

    context = make_context()
    del context["task_state_store"]  # Airflow < 3.3
    context["ti"].run_id = "scheduled__2026-11-20T00:00:00+00:00"
    context["ti"].map_index = 4
    record = SubmittedPredictionRecord(context)
    key = "__".join((UNCERTAIN_STATE_KEY, "dubbing", "scheduled__2026-11-20T00:00:00+00:00", "lipsync", "4"))
    # What the task wrote through the Task SDK, written here straight to the metadata database.
    Variable.set(key, json.dumps({"model": "sync/lipsync-1.9.0-beta", "submitted_at": "2026-11-20T10:00:00+00:00"}))
    with mock.patch("airflow.providers.common.compat.sdk.Variable", Variable):
        assert record.recall_uncertain() is not None

    step = record.how_to_forget()
    (command,) = re.findall(r"`(airflow variables delete [^`]+)`", step)
    completed = subprocess.run(
        [sys.executable, "-m", *shlex.split(command)], env=os.environ, capture_output=True, text=True, timeout=300
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    assert Variable.get(key, default_var=None) is None
