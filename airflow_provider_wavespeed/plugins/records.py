"""What the WaveSpeed view shows, read only from what the tasks stored in Airflow's database.

The api-server holds no WaveSpeed API key and calls no WaveSpeed endpoint: a task's XComs (its
``request_id`` pushed at submit, its result dict at the end), its rendered template fields (the
inputs) and its task instance row (state, times, label) say everything shown.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_wavespeed.media import local_path_of, path_text
from airflow_provider_wavespeed.xcoms import REQUEST_ID_XCOM_KEY, RESULT_XCOM_KEY

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# Task types whose instances are WaveSpeed predictions even before they pushed a request id.
WAVESPEED_TASK_TYPES = frozenset({"LipsyncOperator", "WaveSpeedRunModelOperator", "PredictionSensor"})
log = logging.getLogger(__name__)
_INPUT_FIELDS = ("model", "video", "audio", "sync_mode", "inputs", "request_id", "output_path")


@dataclass
class TimelineStep:
    """One step of a prediction's life: ``at`` is None for a step not reached (yet)."""

    status: str
    at: datetime | None
    note: str = ""


@dataclass
class OutputVideo:
    """One output: where it is stored, WaveSpeed's URL, and what the browser plays."""

    index: int
    stored: str | None
    wavespeed_url: str | None
    stored_is_readable: bool

    @property
    def source(self) -> str:
        """Which copy the player uses: the stored one where the api-server can read it."""
        return "stored copy" if self.stored_is_readable else "WaveSpeed's copy (deleted after 7 days)"


@dataclass
class PredictionRecord:
    """A WaveSpeed task instance as the view shows it."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    label: str
    state: str
    try_number: int
    start_date: datetime | None
    end_date: datetime | None
    duration_seconds: float | None
    request_id: str | None
    result: dict[str, Any]
    inputs: dict[str, Any]
    timeline: list[TimelineStep] = field(default_factory=list)
    outputs: list[OutputVideo] = field(default_factory=list)

    @property
    def price(self) -> float | None:
        price = self.result.get("price")
        return float(price) if isinstance(price, (int, float)) and not isinstance(price, bool) else None

    @property
    def currency(self) -> str:
        return str(self.result.get("currency") or "USD")

    def as_json(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "map_index": self.map_index,
            "label": self.label,
            "state": self.state,
            "try_number": self.try_number,
            "duration_seconds": self.duration_seconds,
            "request_id": self.request_id,
            "model": self.result.get("model") or self.inputs.get("model"),
            "status": self.result.get("status"),
            "price": self.price,
            "currency": self.currency if self.price is not None else None,
            "inputs": self.inputs,
            "timeline": [
                {"status": step.status, "at": step.at.isoformat() if step.at else None, "note": step.note}
                for step in self.timeline
            ],
            "outputs": [
                {
                    "index": output.index,
                    "stored": output.stored,
                    "wavespeed_url": output.wavespeed_url,
                    "stored_is_readable": output.stored_is_readable,
                }
                for output in self.outputs
            ],
        }


@dataclass
class RunBoard:
    """Every WaveSpeed task instance of one DAG run, and what they cost together."""

    dag_id: str
    run_id: str
    records: list[PredictionRecord]

    @property
    def total_price(self) -> float:
        return round(sum(record.price or 0.0 for record in self.records), 6)

    @property
    def priced(self) -> int:
        return sum(record.price is not None for record in self.records)

    @property
    def currencies(self) -> set[str]:
        return {record.currency for record in self.records if record.price is not None}

    def as_json(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "total_price": self.total_price,
            "currency": ", ".join(sorted(self.currencies)) or None,
            "priced": self.priced,
            "task_instances": [record.as_json() for record in self.records],
        }


def read_prediction(dag_id: str, run_id: str, task_id: str, map_index: int, *, session: Session) -> PredictionRecord:
    """The task instance ``(dag_id, run_id, task_id, map_index)``; raises LookupError if there is none."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    ti = session.scalar(
        select(TaskInstance).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index,
        )
    )
    if ti is None:
        raise LookupError(f"No task instance {task_id} (map index {map_index}) in run {run_id} of {dag_id}")
    xcoms = _xcoms(dag_id, run_id, session=session, task_ids={task_id})
    return _record(ti, xcoms.get((task_id, map_index), {}), _rendered_inputs(ti, session=session))


def read_board(dag_id: str, run_id: str, *, session: Session) -> RunBoard:
    """Every task instance of the run that is a WaveSpeed prediction (by type, or by its request id)."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    instances = list(
        session.scalars(
            select(TaskInstance)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .order_by(TaskInstance.task_id, TaskInstance.map_index)
        )
    )
    xcoms = _xcoms(dag_id, run_id, session=session)
    records = [
        _record(ti, xcoms.get((ti.task_id, ti.map_index), {}), _rendered_inputs(ti, session=session))
        for ti in instances
        if ti.operator in WAVESPEED_TASK_TYPES or REQUEST_ID_XCOM_KEY in xcoms.get((ti.task_id, ti.map_index), {})
    ]
    return RunBoard(dag_id=dag_id, run_id=run_id, records=records)


def readable_stored_output(stored: str) -> bool:
    """Whether this api-server can read ``stored`` (a local file, or object storage it has access to)."""
    local = local_path_of(stored)
    if local is not None:
        return local.is_file() and os.access(local, os.R_OK)
    try:
        from airflow_provider_wavespeed.media import object_storage_path

        return bool(object_storage_path(stored).is_file())
    # No filesystem for the scheme, no credentials on the api-server, a network error: all mean
    # "play WaveSpeed's copy instead", never a failed page.
    except Exception:
        log.info("The api-server cannot read the stored output %s; showing WaveSpeed's copy", stored, exc_info=True)
        return False


def _record(ti: Any, xcoms: dict[str, tuple[Any, datetime]], inputs: dict[str, Any]) -> PredictionRecord:
    result_value, completed_at = xcoms.get(RESULT_XCOM_KEY, (None, None))
    result = result_value if isinstance(result_value, dict) else {}
    request_value, submitted_at = xcoms.get(REQUEST_ID_XCOM_KEY, (None, None))
    request_id = result.get("request_id") or (request_value if isinstance(request_value, str) else None)
    state = str(ti.state.value if hasattr(ti.state, "value") else ti.state or "none")
    end = ti.end_date
    duration = ti.duration
    if duration is None and ti.start_date is not None and end is None:
        duration = (datetime.now(ti.start_date.tzinfo) - ti.start_date).total_seconds()
    return PredictionRecord(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        map_index=ti.map_index,
        label=ti.rendered_map_index or (ti.task_id if ti.map_index < 0 else f"{ti.task_id} [{ti.map_index}]"),
        state=state,
        try_number=ti.try_number,
        start_date=ti.start_date,
        end_date=end,
        duration_seconds=duration,
        request_id=request_id,
        result=result,
        inputs=inputs,
        timeline=_timeline(result, submitted_at, completed_at, state),
        outputs=_outputs(result),
    )


def _timeline(
    result: dict[str, Any], submitted_at: datetime | None, completed_at: datetime | None, state: str
) -> list[TimelineStep]:
    """Submitted, processing, completed, with the times the stored records give.

    WaveSpeed's ``created_at`` is the submit time when the result has it, else the time the task
    recorded the request id. Processing started ``inference_ms`` before completion; that is
    WaveSpeed's own measure of the model's run, so the start is shown as derived from it.
    """
    created = _parse_time(result.get("created_at")) or submitted_at
    status = result.get("status")
    finished = completed_at if result else None
    inference_ms = result.get("inference_ms")
    processing_at = None
    note = ""
    if finished is not None and isinstance(inference_ms, (int, float)) and inference_ms > 0:
        processing_at = finished - timedelta(milliseconds=float(inference_ms))
        note = f"model ran {float(inference_ms) / 1000:.1f} s (WaveSpeed's inference time)"
    elif created is not None and finished is None and state in ("deferred", "running", "up_for_reschedule"):
        note = "waiting for WaveSpeed"
    return [
        TimelineStep("submitted", created),
        TimelineStep("processing", processing_at, note),
        TimelineStep(str(status or "completed"), finished),
    ]


def _outputs(result: dict[str, Any]) -> list[OutputVideo]:
    wavespeed = [str(url) for url in result.get("outputs") or []]
    stored = [str(path_text(path) or path) for path in result.get("stored_outputs") or []]
    return [
        OutputVideo(
            index=index,
            stored=stored[index] if index < len(stored) else None,
            wavespeed_url=wavespeed[index] if index < len(wavespeed) else None,
            stored_is_readable=index < len(stored) and readable_stored_output(stored[index]),
        )
        for index in range(max(len(wavespeed), len(stored)))
    ]


def _xcoms(
    dag_id: str, run_id: str, *, session: Session, task_ids: set[str] | None = None
) -> dict[tuple[str, int], dict[str, tuple[Any, datetime]]]:
    """``{(task_id, map_index): {key: (value, timestamp)}}`` for the keys the view reads."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    query = select(XComModel).where(
        XComModel.dag_id == dag_id,
        XComModel.run_id == run_id,
        XComModel.key.in_((RESULT_XCOM_KEY, REQUEST_ID_XCOM_KEY)),
    )
    if task_ids is not None:
        query = query.where(XComModel.task_id.in_(task_ids))
    found: dict[tuple[str, int], dict[str, tuple[Any, datetime]]] = {}
    for row in session.scalars(query):
        found.setdefault((row.task_id, row.map_index), {})[row.key] = (XComModel.deserialize_value(row), row.timestamp)
    return found


def _rendered_inputs(ti: Any, *, session: Session) -> dict[str, Any]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields

    try:
        rendered = RenderedTaskInstanceFields.get_templated_fields(ti, session=session) or {}
    # A task that has not rendered its fields yet (still queued) simply has no inputs to show.
    except Exception:
        log.info("No rendered fields for %s", ti, exc_info=True)
        rendered = {}
    return {name: rendered[name] for name in _INPUT_FIELDS if rendered.get(name) not in (None, "", {}, [])}


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
