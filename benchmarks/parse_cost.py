"""Section 3: what importing ``LipsyncOperator`` adds to parsing a DAG file.

Every DAG file that uses the operator imports its module at every parse, in the dag-processor and
on every worker. Each sample is a fresh interpreter (a warm one would have everything cached) that
times ``import airflow.sdk`` and then the operator's module, and lists which of the modules that
must wait for a task to run (HTTP clients, the emulator) are loaded by then.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import REPO, SectionResult, Table, Target, fmt, median, vs

OPERATOR_MODULE = "airflow_provider_wavespeed.operators.lipsync"
NOT_AT_PARSE_TIME = ("requests", "aiohttp", "wavespeed_emulator")
"""Modules a DAG file must not pay for: only a running task needs them."""

# Runs with `python -c` so that nothing but these imports happens before the clock starts.
_PROBE = """
import json, sys, time
clock = time.perf_counter
watched = {watched!r}
def loaded():
    return sorted(name for name in watched if any(m == name or m.startswith(name + ".") for m in sys.modules))
started = clock()
import airflow.sdk
sdk_done = clock()
by_sdk = loaded()
import {module}
done = clock()
print("{mark}" + json.dumps({{"sdk": sdk_done - started, "operator": done - sdk_done,
    "loaded_by_sdk": by_sdk, "loaded_after_operator": loaded()}}))
"""
_MARK = "@@parse-cost "


@dataclass(frozen=True)
class Scale:
    interpreters: int = 15


FULL = Scale()
SMOKE = Scale(interpreters=1)


def sample() -> dict[str, Any]:
    """One fresh interpreter's import times (seconds) and the watched modules it had loaded."""
    probe = _PROBE.format(watched=NOT_AT_PARSE_TIME, module=OPERATOR_MODULE, mark=_MARK)
    finished = subprocess.run(  # noqa: S603 - this interpreter, our own probe
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )
    for line in finished.stdout.splitlines():
        if line.startswith(_MARK):
            result: dict[str, Any] = json.loads(line[len(_MARK) :])
            return result
    raise RuntimeError(f"The import probe failed ({finished.returncode}):\n{finished.stderr[-3000:]}")


def run(scale: Scale = FULL) -> SectionResult:
    started = time.monotonic()
    samples = [sample() for _ in range(scale.interpreters)]
    sdk_ms = median(s["sdk"] for s in samples) * 1000
    added_ms = median(s["operator"] for s in samples) * 1000
    both_ms = median((s["sdk"] + s["operator"]) for s in samples) * 1000
    by_sdk = sorted({name for s in samples for name in s["loaded_by_sdk"]})
    by_operator = sorted({name for s in samples for name in s["loaded_after_operator"]} - set(by_sdk))
    table = Table(["import", "median time (vs airflow.sdk alone)"])
    table.rows.append(["airflow.sdk alone (the baseline)", vs(sdk_ms, sdk_ms, "ms", 0)])
    table.rows.append([f"airflow.sdk, then {OPERATOR_MODULE}", vs(both_ms, sdk_ms, "ms", 0)])
    table.rows.append([f"added by {OPERATOR_MODULE}", vs(added_ms, sdk_ms, "ms", 1)])
    return SectionResult(
        key="parse_cost",
        title="3. DAG parse cost: importing the module that defines LipsyncOperator",
        method=(
            f"median of {scale.interpreters} fresh interpreters, each timing `import airflow.sdk` and then "
            f"`import {OPERATOR_MODULE}` (perf_counter around each); the modules that must not load at parse "
            f"time ({', '.join(NOT_AT_PARSE_TIME)}) are checked in sys.modules after each import."
        ),
        table=table,
        targets=[
            Target(
                "importing the operator's module adds <= 30 ms over airflow.sdk alone",
                f"{fmt(added_ms, 'ms', 1)} ({added_ms / sdk_ms:.1%} of airflow.sdk's {fmt(sdk_ms, 'ms', 0)})",
                added_ms <= 30,
            ),
            Target(
                f"{', '.join(NOT_AT_PARSE_TIME)} are not imported at parse time",
                f"loaded by the operator: {', '.join(by_operator) or 'none'}; already by airflow.sdk: "
                f"{', '.join(by_sdk) or 'none'}",
                not by_operator and not by_sdk,
                why="airflow.sdk itself loads them" if by_sdk and not by_operator else "",
            ),
        ],
        figures={
            "airflow_sdk_ms": sdk_ms,
            "operator_added_ms": added_ms,
            "both_ms": both_ms,
            "added_ratio_to_sdk": added_ms / sdk_ms,
            "loaded_by_sdk": by_sdk,
            "loaded_by_operator": by_operator,
            "samples": samples,
        },
        wall_seconds=time.monotonic() - started,
    )
