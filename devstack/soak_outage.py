"""The soak's full API outage: lipsync tasks with ``retries=0`` waiting through every request failing.

Alongside the soak's main run (whose tasks meet the outage too, with their retries), a second DAG,
``tests/soak/dags/wavespeed_soak_outage.py``, runs ``predictions`` lipsyncs with ``retries=0``.
Once all of them wait, the emulator answers every request 503 for ``seconds``
(:func:`devstack.outages.run_through_outage`). Each must succeed on its first try, once paid, with
its output stored, and notice its prediction's end within one ``max_poll_interval`` of the outage's end.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devstack.outages import OutageRun, processing_through, run_through_outage
from wavespeed_emulator.catalog import find_model
from wavespeed_emulator.outage import OutageMode
from wavespeed_emulator.stats import input_key

if TYPE_CHECKING:
    from pathlib import Path

    from devstack.airflow_stack import LocalAirflow

DAG_ID = "wavespeed_soak_outage"
TASK_ID = "lipsync"
MAX_POLL_INTERVAL = 10.0
"""The outage DAG's ``max_poll_interval``: the bound on noticing a completion after the outage."""
# One check's own round trip on a loaded two-core machine, on top of that bound.
CHECK_LATENCY_ALLOWANCE = 3.0
OUTPUT_ENV = "WAVESPEED_SOAK_OUTAGE_OUTPUT"


@dataclass(frozen=True)
class OutagePhasePlan:
    predictions: int
    seconds: float


class OutagePhase(threading.Thread):
    """Runs the outage DAG through an outage, next to the soak's main run; ``result`` when done."""

    def __init__(
        self, airflow: LocalAirflow, emulator: Any, plan: OutagePhasePlan, media_urls: tuple[str, str]
    ) -> None:
        super().__init__(name="soak-outage", daemon=True)
        self._airflow, self._emulator, self.plan = airflow, emulator, plan
        video, audio = media_urls
        lasting = processing_through(plan.seconds)
        self.pairs = [{"video": f"{video}?outage_take={n}&{lasting}", "audio": audio} for n in range(plan.predictions)]
        model = find_model("sync/lipsync-1.9.0-beta")
        self.keys = [input_key(model.path, model.validate(pair)) for pair in self.pairs]
        self.result: OutageRun | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = run_through_outage(
                self._airflow,
                self._emulator,
                DAG_ID,
                {"pairs": self.pairs},
                {TASK_ID: self.plan.predictions},
                mode=OutageMode.UNAVAILABLE,
                seconds=self.plan.seconds,
                submitted_timeout=900.0,
                run_timeout=self.plan.seconds + 1200.0,
            )
        # Reported as a failure of the soak, not lost in a thread.
        except Exception as error:  # noqa: BLE001
            self.error = error

    def submits(self, stats: dict[str, Any]) -> int:
        """The emulator's submits of this phase's inputs."""
        by_input = stats["submits_by_input"]
        return sum(by_input[key]["count"] for key in self.keys if key in by_input)

    def failures(self, stats: dict[str, Any], output: Path) -> list[str]:
        """Every requirement of the phase this run did not meet."""
        n = self.plan.predictions
        run = self.result
        if run is None:
            return [f"the outage phase did not run to its end: {self.error!r}"]
        problems = []
        states = run.states.get(TASK_ID, {})
        if run.run_state != "success" or sorted(states.values()) != ["success"] * n:
            problems.append(f"outage phase: {run.summary()}")
        if set(run.tries.get(TASK_ID, {}).values()) != {1}:
            problems.append(f"outage phase: tries {run.tries}, but retries=0")
        if self.submits(stats) != n:
            problems.append(f"outage phase: {self.submits(stats)} submits for {n} tasks")
        request_ids = set(run.request_ids.get(TASK_ID, {}).values())
        stored = {path.stem for path in output.iterdir()} if output.exists() else set()
        if len(request_ids) != n or not request_ids <= stored:
            problems.append(f"outage phase: outputs missing for {sorted(request_ids - stored)}")
        late = run.noticed_late(MAX_POLL_INTERVAL, CHECK_LATENCY_ALLOWANCE)
        if late or set(run.detection_seconds) != request_ids:
            problems.append(f"outage phase: completions noticed late after the outage: {late}")
        return problems

    def rows(self) -> list[tuple[str, str]]:
        run = self.result
        if run is None:
            return [("full API outage (retries=0)", f"did not complete: {self.error!r}")]
        delays = sorted(run.detection_seconds.values())
        detection = f"{delays[0]:.1f}-{delays[-1]:.1f} s" if delays else "none measured"
        struck = sum(1 for count in run.faults_after_end.values() if count)
        detection += f"; {struck} met one of the soak's faults after the end"
        succeeded = sum(1 for state in run.states.get(TASK_ID, {}).values() if state == "success")
        return [
            (
                "full API outage (503, retries=0)",
                f"{run.seconds:.0f} s: {succeeded}/{self.plan.predictions} succeeded on their first try",
            ),
            ("  completion noticed after its end", f"{detection} (max_poll_interval {MAX_POLL_INTERVAL:.0f} s)"),
        ]
