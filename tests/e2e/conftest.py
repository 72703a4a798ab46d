"""One real Airflow and one emulator process for every end-to-end module (starting them costs ~30 s).

The emulator writes its log, an access line per request, to a file the secret-hygiene test reads.
Besides ``wavespeed_default``, Airflow has ``wavespeed_wrong_key`` (a key the emulator refuses),
and ``WAVESPEED_API_KEY``/``WAVESPEED_BASE_URL`` in every component's environment, for tasks whose
connection does not exist.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from devstack.airflow_stack import HARNESS_UNAVAILABLE, LocalAirflow
from devstack.clips import make_audio, make_video
from tests.conftest import EXAMPLE_DAGS
from tests.emulator_fixtures import fast_emulator_config
from wavespeed_emulator import WaveSpeedEmulator

E2E_DAGS = str(Path(__file__).parent / "dags")
DUBBING_DATE = "2026-11-20"
# A day with one video dubbed into five languages: the UI's labels, board and player are checked on it.
FIVE_DUBS_DATE = "2026-11-23"
FIVE_DUBS = ("interview.de", "interview.es", "interview.fr", "interview.ja", "interview.pt")
WRONG_KEY_CONNECTION = "wavespeed_wrong_key"
# Characters that URL- and base64-encoding change, so that the encoded forms searched for differ.
WRONG_API_KEY = f"wsk-wrong+{secrets.token_hex(8)}/key="
# Users for the permission checks: a viewer of every DAG, and one who may read example_lipsync only.
VIEWER = "viewer"
OUTSIDER = "outsider"
OUTSIDER_DAGS = ["example_lipsync"]

requires_api_server = pytest.mark.skipif(HARNESS_UNAVAILABLE is not None, reason=HARNESS_UNAVAILABLE or "")


@pytest.fixture(scope="package")
def emulator_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulator") / "emulator.log"


@pytest.fixture(scope="package")
def emulator(emulator_log: Path) -> Iterator[Any]:
    # Long enough that the task is seen deferred, short enough for a quick suite.
    config = fast_emulator_config(api_key=f"wsk-e2e+{secrets.token_hex(8)}/key=", prediction_seconds=(6.0, 6.0))
    process = WaveSpeedEmulator.spawn(config, log_file=emulator_log)
    yield process
    process.terminate()


@pytest.fixture(scope="package")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    # Real media: the emulator renders uploads, and fails those that are not media.
    make_video(root / "interview.mp4", 2)
    make_audio(root / "interview.fr.wav", 3)
    incoming = root / "incoming" / DUBBING_DATE
    make_video(incoming / "talk.mp4", 1)
    for name in ("talk.fr.wav", "talk.de.wav"):
        make_audio(incoming / name, 1)
    five = root / "incoming" / FIVE_DUBS_DATE
    make_video(five / "interview.mp4", 2)
    for label in FIVE_DUBS:
        make_audio(five / f"{label}.wav", 2)
    return root


@pytest.fixture(scope="package")
def airflow(emulator: Any, media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAirflow]:
    bundles = [
        {"name": name, "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {"path": path}}
        for name, path in (("example-dags", EXAMPLE_DAGS), ("e2e-dags", E2E_DAGS))
    ]
    stack = LocalAirflow(
        home=tmp_path_factory.mktemp("airflow-home"),
        dags_folder=Path(EXAMPLE_DAGS),
        extra_env={
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
            "WAVESPEED_EXAMPLE_MEDIA": str(media),
            "WAVESPEED_EXAMPLE_STORAGE": f"file://{media}",
            "WAVESPEED_OUTAGE_OUTPUT": f"{media}/outage-outputs/",
            # A two-core machine starting many tasks at once parses DAG files slowly.
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
            "WAVESPEED_API_KEY": emulator.api_key,
            "WAVESPEED_BASE_URL": emulator.base_url,
            "AIRFLOW__CORE__AUTH_MANAGER": "tests.e2e.dag_scoped_auth.DagScopedAuthManager",
            "WAVESPEED_TEST_DAG_SCOPES": json.dumps({OUTSIDER: OUTSIDER_DAGS}),
            # The connection form's Test button (Airflow 3 disables it by default).
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        },
        extra_users={VIEWER: "viewer", OUTSIDER: "viewer"},
    )
    try:
        stack.start()
        for connection_id, key in (("wavespeed_default", emulator.api_key), (WRONG_KEY_CONNECTION, WRONG_API_KEY)):
            stack.create_connection(
                {
                    "connection_id": connection_id,
                    "conn_type": "wavespeed",
                    "host": emulator.base_url,
                    # Stored as Airflow 3.3.2's Test button sends it (see docs/connection.md).
                    "port": urlsplit(emulator.base_url).port,
                    "password": key,
                }
            )
        yield stack
    finally:
        stack.stop()


def run_to_the_end(
    airflow: LocalAirflow, dag_id: str, *, on_poll: Any = None, **trigger: Any
) -> tuple[str, str, set[str]]:
    """Trigger ``dag_id``; return its run id, final state, and every task state seen meanwhile."""
    airflow.wait_for_dag(dag_id)
    run_id = airflow.trigger(dag_id, **trigger)
    seen: set[str] = set()

    def poll(instances: list[dict[str, Any]]) -> None:
        seen.update(str(ti["state"]) for ti in instances)
        if on_poll is not None:
            on_poll(instances)

    state = airflow.wait_for_run(dag_id, run_id, on_poll=poll)
    return run_id, state, seen


@pytest.fixture(scope="package")
def five_dubs_run(airflow: LocalAirflow) -> str:
    """The run id of example_dubbing_pipeline over one video and five dubs, run to success."""
    run_id, state, _ = run_to_the_end(airflow, "example_dubbing_pipeline", logical_date=f"{FIVE_DUBS_DATE}T00:00:00Z")
    assert state == "success", airflow.component_logs()[-5000:]
    return run_id
