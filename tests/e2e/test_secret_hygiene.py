"""The API key appears nowhere Airflow or the emulator keeps a record of a run.

One run of ``e2e_secret_hygiene`` meets the key in every way a task can (a deferred success, a
failed prediction, a 401 from a wrong key, a mistyped connection id while ``WAVESPEED_API_KEY`` is
set); then every place is
searched for the two keys in use, in each form they could plausibly take. Each search first proves
it read something real (a request id, a traceback, an access line), so an empty or unread source
can never pass for a clean one.

This module runs after ``test_real_airflow`` on the same stack, so its searches of logs, event
logs, XComs and the database also cover the example DAGs' runs.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.fernet import Fernet, InvalidToken

from devstack.airflow_stack import LocalAirflow
from tests.e2e.conftest import WRONG_API_KEY, requires_api_server, run_to_the_end

pytestmark = [pytest.mark.e2e, requires_api_server]

DAG_ID = "e2e_secret_hygiene"
DEFERRED_TASKS = ("lipsync", "unreachable_media")
EXPECTED_STATES = {
    "lipsync": "success",
    "unreachable_media": "failed",
    "wrong_key": "failed",
    "mistyped_connection": "failed",
}
FERNET_PREFIX = "gAAAAA"
# Where the key is meant to be: the connection's password, encrypted.
KEY_HOLDING_TABLES = frozenset({"connection"})


def encodings(secret: str) -> dict[str, str]:
    """The forms a key could plausibly take in a record: as is (``Bearer <key>`` included), URL-
    encoded, and base64 (as in a Basic or a logged raw header), aligned to where it would start."""

    def base64_prefix(text: str) -> str:
        encoded = base64.b64encode(text.encode()).decode()
        return encoded[: len(text.encode()) // 3 * 4]  # only the groups the secret fully determines

    return {
        "as is": secret,
        "URL-encoded": quote(secret, safe=""),
        "URL-encoded path": quote(secret),
        "base64": base64_prefix(secret),
        "base64url": base64_prefix(secret).replace("+", "-").replace("/", "_"),
        "base64 of the header": base64_prefix(f"Bearer {secret}"),
    }


def leaks(text: str, secrets: list[str]) -> list[str]:
    """Every (secret, form) found in ``text``, as readable labels; empty when clean."""
    return [
        f"{form} form of key #{number}"
        for number, secret in enumerate(secrets)
        for form, needle in encodings(secret).items()
        if needle in text
    ]


@pytest.fixture(scope="module")
def keys(emulator: Any) -> list[str]:
    return [emulator.api_key, WRONG_API_KEY]


def database(airflow: LocalAirflow) -> sqlite3.Connection:
    path = airflow.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)


def decrypted(fernet: Fernet, value: str) -> str | None:
    """``value`` decrypted with the stack's Fernet key, or None when it is not one of its tokens."""
    if not value.startswith(FERNET_PREFIX):
        return None
    try:
        return fernet.decrypt(value.encode()).decode()
    except InvalidToken:
        return None


@dataclass
class HygieneRun:
    run_id: str
    states: dict[str, str]
    request_ids: dict[str, str]
    # Trigger rows as they were while their tasks were deferred: id -> encrypted kwargs.
    triggers: dict[int, str] = field(default_factory=dict)
    # task_instance rows (next_method, next_kwargs, ...) seen during the run.
    deferred_task_rows: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def hygiene_run(airflow: LocalAirflow) -> HygieneRun:
    triggers: dict[int, str] = {}
    task_rows: set[str] = set()

    def capture(_instances: list[dict[str, Any]]) -> None:
        # A trigger row is deleted once it fires: read it while the task waits.
        with database(airflow) as db:
            triggers.update(db.execute("SELECT id, kwargs FROM trigger").fetchall())
            rows = db.execute("SELECT * FROM task_instance WHERE dag_id = ?", (DAG_ID,)).fetchall()
        task_rows.update(repr(row) for row in rows)

    run_id, _state, _seen = run_to_the_end(airflow, DAG_ID, on_poll=capture)
    states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG_ID, run_id)}
    request_ids = {task_id: airflow.xcom(DAG_ID, run_id, task_id, key="request_id") for task_id in DEFERRED_TASKS}
    return HygieneRun(run_id, states, request_ids, triggers, task_rows)


def test_the_search_finds_every_form_of_the_key_it_looks_for(keys: list[str]):
    for secret in keys:
        for form, needle in encodings(secret).items():
            assert leaks(f"noise {needle} noise", [secret]), form
        assert leaks(json.dumps({"Authorization": f"Bearer {secret}"}), [secret])
        assert leaks(base64.b64encode(f"Bearer {secret}".encode()).decode(), [secret])
        forms = encodings(secret)
        assert len({forms["as is"], forms["URL-encoded"], forms["URL-encoded path"], forms["base64"]}) == 4
    assert not leaks("nothing secret here", keys)


def test_the_run_met_the_key_in_every_planned_way(hygiene_run: HygieneRun):
    assert hygiene_run.states == EXPECTED_STATES
    assert all(hygiene_run.request_ids.values())


def test_no_log_file_on_disk_has_the_key(airflow: LocalAirflow, hygiene_run: HygieneRun, keys: list[str]):
    files = {path: path.read_text(errors="replace") for path in (airflow.home / "logs").rglob("*") if path.is_file()}
    # Read for real: each component's log, and the task logs of this run (written by workers and,
    # for the trigger's lines, by the triggerer).
    for component in ("api-server", "scheduler", "triggerer", "dag-processor"):
        assert files.get(airflow.home / "logs" / f"{component}.log"), f"{component}.log is missing or empty"
    run_logs = "\n".join(text for path, text in files.items() if f"dag_id={DAG_ID}" in str(path))
    for request_id in hygiene_run.request_ids.values():
        assert request_id in run_logs
    assert f"WaveSpeed prediction {hygiene_run.request_ids['lipsync']}: " in run_logs
    assert "PredictionFailedError" in run_logs and "WaveSpeedAuthError" in run_logs

    found = {str(path): leaks(text, keys) for path, text in files.items()}
    assert {path: forms for path, forms in found.items() if forms} == {}


def test_no_task_log_served_by_the_api_has_the_key(airflow: LocalAirflow, hygiene_run: HygieneRun, keys: list[str]):
    logs: dict[tuple[str, str, str, int], str] = {}
    for run in airflow.api("GET", "/dags/~/dagRuns", params={"limit": 1000})["dag_runs"]:
        for instance in airflow.task_instances(run["dag_id"], run["dag_run_id"]):
            for try_number in range(1, instance["try_number"] + 1):
                logs[(run["dag_id"], instance["task_id"], instance["map_index"], try_number)] = airflow.task_log(
                    run["dag_id"], run["dag_run_id"], instance["task_id"], try_number, instance["map_index"]
                )
    ours = {task_id: text for (dag_id, task_id, _, _), text in logs.items() if dag_id == DAG_ID}
    assert set(ours) >= set(EXPECTED_STATES)
    for task_id, request_id in hygiene_run.request_ids.items():
        assert request_id in ours[task_id]
    assert "-> completed" in ours["lipsync"], "the triggerer's lines are part of the log"

    assert {where: forms for where, text in logs.items() if (forms := leaks(text, keys))} == {}


def test_no_exception_message_has_the_key(airflow: LocalAirflow, hygiene_run: HygieneRun, keys: list[str]):
    failures = {
        task_id: airflow.task_log(DAG_ID, hygiene_run.run_id, task_id)
        for task_id in ("unreachable_media", "wrong_key", "mistyped_connection")
    }
    # The failures are in the logs with their type, message and traceback frames.
    assert "PredictionFailedError" in failures["unreachable_media"]
    assert "1402" in failures["unreachable_media"]
    assert "media.invalid" in failures["unreachable_media"]
    assert "WaveSpeedAuthError" in failures["wrong_key"]
    assert "HTTP 401" in failures["wrong_key"]
    # WAVESPEED_API_KEY is set in every component, and stands in only for the default connection.
    assert "no Airflow connection wavespeed_conn_id='wavespeed_mistyped'" in failures["mistyped_connection"]
    for text in failures.values():
        assert "frames" in text or "Traceback" in text

    assert {task_id: forms for task_id, text in failures.items() if (forms := leaks(text, keys))} == {}


def test_no_xcom_has_the_key(airflow: LocalAirflow, hygiene_run: HygieneRun, keys: list[str]):
    listing = airflow.api("GET", "/dags/~/dagRuns/~/taskInstances/~/xcomEntries", params={"limit": 1000})
    entries = listing["xcom_entries"]
    values = [
        airflow.api(
            "GET",
            f"/dags/{entry['dag_id']}/dagRuns/{entry['run_id']}/taskInstances/{entry['task_id']}"
            f"/xcomEntries/{entry['key']}",
            params={"map_index": entry["map_index"]},
        )
        for entry in entries
    ]
    text = json.dumps([listing, values])
    for request_id in hygiene_run.request_ids.values():
        assert request_id in text
    assert any(entry["dag_id"] == DAG_ID and entry["key"] == "return_value" for entry in entries)

    assert leaks(text, keys) == []


def test_no_rendered_template_has_the_key(airflow: LocalAirflow, hygiene_run: HygieneRun, keys: list[str]):
    served = {
        task_id: airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{hygiene_run.run_id}/taskInstances/{task_id}")[
            "rendered_fields"
        ]
        for task_id in EXPECTED_STATES
    }
    with database(airflow) as db:
        stored = db.execute("SELECT task_id, rendered_fields FROM rendered_task_instance_fields").fetchall()
    assert served["unreachable_media"]["audio"] == "https://media.invalid/interview.fr.wav"
    assert served["wrong_key"]["wavespeed_conn_id"] == "wavespeed_wrong_key"
    assert {task_id for task_id, _ in stored} >= set(EXPECTED_STATES)
    assert "media.invalid" in json.dumps(stored)

    assert leaks(json.dumps(served), keys) == []
    assert leaks(json.dumps(stored), keys) == []


def test_no_trigger_kwargs_have_the_key(airflow: LocalAirflow, hygiene_run: HygieneRun, keys: list[str]):
    fernet = Fernet(airflow.env["AIRFLOW__CORE__FERNET_KEY"].encode())
    stored = list(hygiene_run.triggers.values())
    # Airflow encrypts trigger kwargs with Fernet, except that 3.3's execution API stores those a
    # Task SDK worker sends as plain JSON (routes/task_instances.py: "assume it doesn't need to be"):
    # so whatever a trigger carries is readable in the database. Both forms are searched.
    plain = [kwargs if kwargs.startswith("{") else decrypted(fernet, kwargs) for kwargs in stored]
    assert stored and None not in plain, "every trigger row captured is JSON or a Fernet token of this stack"
    plain_text = json.dumps(plain)
    for task_id in DEFERRED_TASKS:
        assert hygiene_run.request_ids[task_id] in plain_text, f"the trigger of {task_id} was captured"

    assert leaks("\n".join(stored), keys) == []
    assert leaks(plain_text, keys) == []


def test_no_metadata_table_has_the_key(airflow: LocalAirflow, hygiene_run: HygieneRun, keys: list[str]):
    fernet = Fernet(airflow.env["AIRFLOW__CORE__FERNET_KEY"].encode())
    tables: dict[str, list[str]] = {}
    with database(airflow) as db:
        names = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for name in names:
            values: list[str] = []
            for row in db.execute(f'SELECT * FROM "{name}"'):  # noqa: S608 - names from sqlite_master
                for value in row:
                    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
                    values.append(text)
                    if (plain := decrypted(fernet, text)) is not None:
                        values.append(plain)
            tables[name] = values
    # The search reads encrypted values for real: it finds the key where it belongs.
    assert leaks("\n".join(tables["connection"]), keys)
    for name in ("task_instance", "xcom", "rendered_task_instance_fields", "log", "dag_run"):
        assert tables[name], f"table {name} is empty"
    assert hygiene_run.request_ids["lipsync"] in "\n".join(tables["xcom"])
    assert hygiene_run.deferred_task_rows

    found = {name: leaks("\n".join(values), keys) for name, values in tables.items() if name not in KEY_HOLDING_TABLES}
    assert {name: forms for name, forms in found.items() if forms} == {}
    assert leaks("\n".join(hygiene_run.deferred_task_rows), keys) == []


def test_no_event_log_has_the_key(airflow: LocalAirflow, hygiene_run: HygieneRun, keys: list[str]):
    events = airflow.api("GET", "/eventLogs", params={"limit": 1000})
    text = json.dumps(events)
    assert events["event_logs"]
    assert "post_connection" in text or "connection" in text, "creating the connections was recorded"

    assert leaks(text, keys) == []


def test_the_emulators_log_of_the_run_has_no_key(emulator_log: Path, hygiene_run: HygieneRun, keys: list[str]):
    log = emulator_log.read_text()
    assert '"POST /api/v3/media/uploads HTTP/1.1" 200' in log
    assert '"POST /api/v3/sync/lipsync-1.9.0-beta HTTP/1.1" 200' in log
    # The wrong key is refused at its first request: the catalog read that checks the inputs before paying.
    assert '"GET /api/v3/models HTTP/1.1" 401' in log, "the wrong key's catalog read"
    for request_id in hygiene_run.request_ids.values():
        assert f"GET /api/v3/predictions/{request_id}/result HTTP/1.1" in log

    assert leaks(log, keys) == []
