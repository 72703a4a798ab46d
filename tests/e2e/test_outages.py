"""A full WaveSpeed outage while a real Airflow waits for paid predictions, with ``retries=0``.

20 deferred lipsyncs and 5 ``deferrable=False`` ones, in one DAG run, all submitted before the
emulator goes down for ``WAVESPEED_OUTAGE_SECONDS`` (default 180): every request answered 503, or
the listening socket closed (connections refused) and reopened on the same port. Every task must
succeed on its first try with one submit and one stored output, and notice its prediction's end
within one ``max_poll_interval`` of the outage's end.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from devstack.airflow_stack import LocalAirflow
from devstack.outages import processing_through, run_through_outage
from devstack.uploads import upload
from tests.e2e.conftest import requires_api_server
from tests.e2e.dags.e2e_outages import MAX_POLL_INTERVAL
from wavespeed_emulator.outage import OutageMode

pytestmark = [pytest.mark.e2e, pytest.mark.long_running, requires_api_server]

OUTAGE_SECONDS = float(os.environ.get("WAVESPEED_OUTAGE_SECONDS", "180"))
DEFERRED, ON_WORKER = 20, 5
# One check's own round trip (and the emulator reopening its socket) on a loaded two-core machine.
CHECK_LATENCY_ALLOWANCE = 3.0


@pytest.mark.parametrize("mode", [OutageMode.UNAVAILABLE, OutageMode.REFUSED])
def test_every_waiting_task_rides_out_a_full_outage_on_its_first_try(
    airflow: LocalAirflow, emulator: Any, media: Path, mode: OutageMode
):
    video, audio = upload(emulator, media / "interview.mp4"), upload(emulator, media / "interview.fr.wav")
    # A query of its own per task: a second submit by any task shows as a duplicate at the emulator.
    lasting = processing_through(OUTAGE_SECONDS)
    pairs = [
        {"video": f"{video}?outage={mode}&take={n}&{lasting}", "audio": audio} for n in range(DEFERRED + ON_WORKER)
    ]
    before = emulator.stats()

    run = run_through_outage(
        airflow,
        emulator,
        "e2e_outages",
        {"deferred": pairs[:DEFERRED], "on_worker": pairs[DEFERRED:]},
        {"deferred": DEFERRED, "on_worker": ON_WORKER},
        mode=mode,
        seconds=OUTAGE_SECONDS,
    )

    print(run.summary())
    after = emulator.stats()
    assert run.run_state == "success", run.summary()
    for task_id, count in (("deferred", DEFERRED), ("on_worker", ON_WORKER)):
        assert run.states[task_id] == dict.fromkeys(range(count), "success")
        assert set(run.tries[task_id].values()) == {1}, "no task needed a retry"
    assert after["submits"] - before["submits"] == DEFERRED + ON_WORKER
    assert after["duplicate_submits"] == before["duplicate_submits"]
    request_ids = {request_id for ids in run.request_ids.values() for request_id in ids.values()}
    assert len(request_ids) == DEFERRED + ON_WORKER
    stored = {path.stem for path in (media / "outage-outputs").iterdir()}
    assert request_ids <= stored, "every paid output is stored"
    assert run.failed_checks_logged == DEFERRED + ON_WORKER, "every wait met the outage and logged it"
    assert set(run.detection_seconds) == request_ids
    assert not any(run.faults_after_end.values()), "this emulator injects no fault besides the outage"
    late = run.noticed_late(MAX_POLL_INTERVAL, CHECK_LATENCY_ALLOWANCE)
    assert not late, f"completions noticed later than max_poll_interval={MAX_POLL_INTERVAL} s after the outage: {late}"
    assert min(run.detection_seconds.values()) >= 0, "nothing can be read during the outage"
