"""In a real Airflow: clearing a finished day of dubs uploads and pays for nothing, except what changed.

Counted with the emulator's own counters: an upload is one ``upload_ticket`` request, a paid
prediction one accepted submit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.airflow_stack import LocalAirflow
from devstack.clips import make_audio, make_video
from tests.e2e.conftest import requires_api_server, run_to_the_end

pytestmark = [pytest.mark.e2e, requires_api_server]

DAG_ID = "example_dubbing_pipeline"
DAY = "2026-11-21"
LANGUAGES = ("de", "es", "fr", "it", "ja")


def counts(emulator: Any) -> tuple[int, int]:
    stats = emulator.stats()
    return stats["requests"].get("upload_ticket", 0), stats["submits"]


def clear_and_rerun(airflow: LocalAirflow, run_id: str) -> str:
    airflow.api(
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        json={"dag_run_id": run_id, "dry_run": False, "only_failed": False, "reset_dag_runs": True},
    )
    return airflow.wait_for_run(DAG_ID, run_id)


def stored(directory: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in directory.glob("*.mp4*")}


def test_clearing_a_day_of_five_dubs_uploads_and_pays_nothing_then_only_for_a_corrected_dub(
    airflow: LocalAirflow, emulator: Any, media: Path
):
    incoming = media / "incoming" / DAY
    make_video(incoming / "talk.mp4", 1.2)  # content of its own: the emulator's uploads outlive other tests
    for number, language in enumerate(LANGUAGES):
        make_audio(incoming / f"talk.{language}.wav", 1.1 + number / 10)
    dubbed = media / "dubbed" / DAY
    uploads, submits = counts(emulator)

    run_id, state, _ = run_to_the_end(airflow, DAG_ID, logical_date=f"{DAY}T00:00:00Z")

    assert state == "success", airflow.component_logs()[-5000:]
    assert counts(emulator) == (uploads + 6, submits + 5)
    first = stored(dubbed)
    assert len(first) == 10, first  # five outputs, five provenance records

    assert clear_and_rerun(airflow, run_id) == "success"
    assert counts(emulator) == (uploads + 6, submits + 5), "the cleared run uploaded or paid again"
    assert stored(dubbed) == first, "the cleared run touched a stored output"
    assert "from the same inputs" in airflow.task_log(DAG_ID, run_id, "lipsync", try_number=2, map_index=0)

    make_audio(incoming / "talk.fr.wav", 2.4)  # a corrected dub
    assert clear_and_rerun(airflow, run_id) == "success"
    assert counts(emulator) == (uploads + 7, submits + 6)
    now = stored(dubbed)
    assert {name for name in now if now[name] != first[name]} == {"talk.fr.mp4", "talk.fr.mp4.wavespeed.json"}
