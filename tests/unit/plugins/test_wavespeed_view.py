"""The WaveSpeed view's pages, from records of what tasks stored (no database, no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_provider_wavespeed.plugins import pages
from airflow_provider_wavespeed.plugins.records import (
    PredictionRecord,
    RunBoard,
    _outputs,
    _timeline,
    readable_stored_output,
)

COMPLETED_AT = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)


def record(label: str, result: dict[str, Any], **overrides: Any) -> PredictionRecord:
    fields: dict[str, Any] = {
        "dag_id": "dubbing",
        "run_id": "manual__2026-11-23T00:00:00+00:00",
        "task_id": "lipsync",
        "map_index": 0,
        "label": label,
        "state": "success",
        "try_number": 1,
        "start_date": None,
        "end_date": None,
        "duration_seconds": 42.0,
        "request_id": result.get("request_id"),
        "result": result,
        "inputs": {"video": "/m/interview.mp4"},
        "outputs": _outputs(result),
        **overrides,
    }
    return PredictionRecord(**fields)


def test_the_timeline_derives_processing_from_wavespeeds_inference_time():
    result = {"status": "completed", "created_at": "2026-11-23T10:00:00+00:00", "inference_ms": 90_000}

    steps = _timeline(result, None, COMPLETED_AT, "success")

    assert [(step.status, step.at) for step in steps] == [
        ("submitted", datetime(2026, 11, 23, 10, 0, tzinfo=UTC)),
        ("processing", COMPLETED_AT - timedelta(seconds=90)),
        ("completed", COMPLETED_AT),
    ]
    assert "inference time" in steps[1].note


def test_a_deferred_prediction_shows_submitted_and_waiting():
    submitted = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    steps = _timeline({}, submitted, None, "deferred")
    assert [(step.status, step.at) for step in steps] == [
        ("submitted", submitted),
        ("processing", None),
        ("completed", None),
    ]
    assert steps[1].note == "waiting for WaveSpeed"


def test_the_player_uses_the_stored_copy_when_readable_else_wavespeeds(tmp_path: Path):
    stored = tmp_path / "interview.fr.mp4"
    stored.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    readable = record("interview.fr", {"outputs": ["https://cdn.test/a.mp4"], "stored_outputs": [str(stored)]})
    gone = record("interview.de", {"outputs": ["https://cdn.test/b.mp4"], "stored_outputs": [str(tmp_path / "x.mp4")]})

    assert readable_stored_output(f"file://{stored}")
    assert not readable_stored_output("nosuchscheme://bucket/x.mp4")
    assert pages.media_url("/wavespeed", readable, readable.outputs[0]) == (
        "/wavespeed/media/dubbing/manual__2026-11-23T00%3A00%3A00%2B00%3A00/lipsync/0/0"
    )
    assert pages.media_url("/wavespeed", gone, gone.outputs[0]) == "https://cdn.test/b.mp4"


def test_the_board_totals_the_priced_dubs_and_says_how_many_were_priced():
    board = RunBoard(
        dag_id="dubbing",
        run_id="r",
        records=[
            record("interview.fr", {"price": 0.25, "currency": "USD"}),
            record("interview.de", {"price": 0.5, "currency": "USD"}),
            record("interview.es", {}),
        ],
    )

    html = pages.board_page("/wavespeed", board, "/wavespeed/task-instances/{dag_id}/{run_id}/{task_id}/{map_index}")

    assert board.total_price == 0.75
    assert "Run total: 0.7500 USD" in html
    assert "(2 of 3 priced)" in html
    assert html.count('data-testid="dub"') == 3
    assert board.as_json()["priced"] == 2


def test_labels_and_inputs_are_escaped():
    hostile = record('<img src=x onerror="alert(1)">', {}, inputs={"audio": "<script>alert(1)</script>"})

    html = pages.task_instance_page("/wavespeed", hostile)

    assert "<script>" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;" in html
