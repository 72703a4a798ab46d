"""Every benchmark of ``make bench``, once, at a tiny size: so that none of them rots unnoticed.

These tests check that each benchmark runs end to end and reports well-formed figures under the
right keys. They never assert a time or a ratio: at these sizes, on a shared machine, the figures
mean nothing. The real Airflow that the worker-slot benchmark needs (~25 s to start) starts in the
background as soon as this module begins, while the other benchmarks run.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_wavespeed.version_compat import AIRFLOW_V_3_1_PLUS

if not AIRFLOW_V_3_1_PLUS:
    pytest.skip(
        "the benchmarks measure Airflow 3.1+ (airflow.sdk parse cost, the api-server harness)",
        allow_module_level=True,
    )

from benchmarks import __main__ as bench_cli
from benchmarks import first_admission, media_transfer, parse_cost, poll_schedule, triggerer_scale, worker_slot
from benchmarks.harness import SectionResult


class _BackgroundStart:
    """``WorkerSlotBench.start()`` in a thread; ``wait()`` re-raises whatever it raised."""

    def __init__(self, bench: worker_slot.WorkerSlotBench) -> None:
        self.bench = bench
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._start, name="smoke-airflow-start", daemon=True)
        self.thread.start()

    def _start(self) -> None:
        try:
            self.bench.start()
        except Exception as error:  # noqa: BLE001 - re-raised by wait(), in the test that needs Airflow
            self.error = error

    def wait(self) -> worker_slot.WorkerSlotBench:
        self.thread.join(timeout=300)
        assert not self.thread.is_alive(), "Airflow did not start within 300 s"
        if self.error is not None:
            raise self.error
        return self.bench


@pytest.fixture(scope="module", autouse=True)
def airflow_starting() -> Iterator[_BackgroundStart]:
    bench = worker_slot.WorkerSlotBench(worker_slot.SMOKE)
    starting = _BackgroundStart(bench)
    yield starting
    starting.thread.join(timeout=300)
    bench.close()


def assert_well_formed(result: SectionResult, key: str) -> dict[str, Any]:
    """The checks every section passes: a full table, judged targets, JSON without NaN."""
    assert result.key == key
    assert result.title and result.method
    assert result.table.rows
    for row in result.table.rows:
        assert len(row) == len(result.table.headers)
        assert all(isinstance(cell, str) for cell in row)
    assert result.targets
    for target in result.targets:
        assert target.requirement and target.measured
        assert target.met in (True, False, None)
    assert result.wall_seconds > 0
    document: dict[str, Any] = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert set(document) >= {"key", "title", "method", "table", "targets", "figures", "wall_seconds"}
    assert result.markdown().startswith(f"### {result.title}")
    return document["figures"]


def assert_number(value: Any, *, minimum: float = 0.0) -> None:
    assert isinstance(value, int | float) and not isinstance(value, bool), value
    assert math.isfinite(value) and value >= minimum, value


def test_triggerer_scale_runs_the_trigger_and_every_baseline():
    scale = triggerer_scale.SMOKE

    figures = assert_well_formed(triggerer_scale.run(scale), "triggerer_scale")

    runs = figures["runs"]
    expected = [(triggerer_scale.PROVIDER, size) for size in scale.sizes]
    expected += [(variant, scale.baseline_size) for variant in triggerer_scale.BASELINES]
    assert [(run["variant"], run["n"]) for run in runs] == expected
    for run in runs:
        assert run["errors"] == 0, run["error_examples"]
        assert run["polls"] >= run["n"]
        for name in ("cpu_per_poll_ms", "rss_per_trigger_kib", "emulator_cpu_share", "wall_seconds"):
            assert_number(run[name], minimum=-math.inf if name == "rss_per_trigger_kib" else 0.0)
        assert set(run["loop_lag_ms"]) == {"p50", "p99", "max", "count"}
        assert set(run["gc"]) >= {"collections", "full_collections", "full_max_ms", "total_ms"}
    for run in runs:
        if run["variant"] == triggerer_scale.PROVIDER:
            assert run["detection_delay_s"]["count"] == run["n"]
            assert_number(run["requests_per_prediction"], minimum=1.0)


def test_poll_schedule_through_the_command_line_writes_the_json(tmp_path):
    session_home = os.environ["AIRFLOW_HOME"]
    output = tmp_path / "latest.json"

    assert bench_cli.main(["--smoke", "--only", "poll_schedule", "--output", str(output)]) == 0

    assert os.environ["AIRFLOW_HOME"] == session_home  # the run's own home was temporary

    document = json.loads(output.read_text())
    assert set(document) == {"command", "commit", "dirty", "started_at", "wall_seconds", "machine", "sections"}
    assert document["command"] == "make bench (smoke)"
    section = document["sections"]["poll_schedule"]
    assert {target["verdict"] for target in section["targets"]} <= {"met", "MISSED", "not measured"}
    spread = section["figures"]["spread"]
    assert set(spread) == set(poll_schedule.SCHEDULES)
    for summary in spread.values():
        assert summary["predictions"] == poll_schedule.SMOKE.predictions
        assert_number(summary["requests_mean"], minimum=1.0)
        assert_number(summary["delay_share_median"])
    assert set(section["figures"]["by_duration"][poll_schedule.ADAPTIVE]) == {
        f"{landmark:g}" for landmark in poll_schedule.SMOKE.landmarks
    }


def test_parse_cost_times_fresh_interpreters():
    figures = assert_well_formed(parse_cost.run(parse_cost.SMOKE), "parse_cost")

    assert len(figures["samples"]) == parse_cost.SMOKE.interpreters
    for name in ("airflow_sdk_ms", "operator_added_ms", "both_ms"):
        assert_number(figures[name])
    assert isinstance(figures["loaded_by_operator"], list)


def test_first_admission_admits_the_first_triggers_in_each_fresh_interpreter():
    figures = assert_well_formed(first_admission.run(first_admission.SMOKE), "first_admission")

    assert set(figures["samples"]) == set(first_admission.VARIANTS)
    assert_number(figures["restart_max_lag_beyond_full_gc_ms"])
    for variant, samples in figures["samples"].items():
        assert [sample["status"] for sample in samples] == ["success"] * first_admission.SMOKE.interpreters
        assert_number(figures["max_lag_ms"][variant])
        assert_number(figures["admission_to_event_ms"][variant])


def test_media_transfer_moves_the_file_both_ways():
    figures = assert_well_formed(media_transfer.run(media_transfer.SMOKE), "media_transfer")

    for direction in media_transfer.DIRECTIONS:
        moved = figures[direction]
        assert len(moved["hook"]) == media_transfer.SMOKE.rounds
        for transfer in moved["hook"]:
            assert_number(transfer["seconds"])
            assert_number(transfer["peak_growth_bytes"])
        for transfer in moved["curl"]:
            if transfer["available"]:
                assert transfer["bytes"] == media_transfer.SMOKE.size_bytes


@pytest.mark.e2e
def test_worker_slot_reads_the_slots_of_all_three_tasks(airflow_starting):
    bench = airflow_starting.wait()

    figures = assert_well_formed(bench.measure(), "worker_slot")

    assert figures["run_state"] == "success"
    kinds = figures["kinds"]
    assert set(kinds) == {worker_slot.DEFERRABLE, worker_slot.POKE, worker_slot.NOOP}
    copies = worker_slot.SMOKE.copies
    assert kinds[worker_slot.DEFERRABLE]["executions"] == [2] * copies  # up to the deferral, then the resumption
    assert kinds[worker_slot.NOOP]["executions"] == [1] * copies
    assert kinds[worker_slot.POKE]["executions"] == [1]
    for summary in kinds.values():
        assert_number(summary["slot_seconds"])
        assert_number(summary["log_span_seconds"])
    assert all(task["state"] == "success" for task in figures["tasks"].values())
