"""The WaveSpeed view (Airflow 3.1+) in a real api-server, through HTTP: data, media, permissions."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from devstack.airflow_stack import ADMIN_USER, LocalAirflow
from tests.e2e.conftest import FIVE_DUBS, OUTSIDER, OUTSIDER_DAGS, VIEWER, requires_api_server

pytestmark = [pytest.mark.e2e, requires_api_server]
DAG_ID = "example_dubbing_pipeline"


def get(airflow: LocalAirflow, path: str, user: str | None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {airflow.token_of(user)}"} if user else {}
    return requests.get(f"{airflow.url}{path}", headers={**headers, **kwargs.pop("headers", {})}, timeout=60, **kwargs)


def board_path(run_id: str, *, api: bool = True) -> str:
    return f"/wavespeed{'/api' if api else ''}/runs/{DAG_ID}/{quote(run_id, safe='')}"


def test_airflow_lists_the_plugin_with_its_two_views(airflow: LocalAirflow):
    plugins = {plugin["name"]: plugin for plugin in airflow.api("GET", "/plugins")["plugins"]}
    views = {view["destination"]: view["href"] for view in plugins["wavespeed"]["external_views"]}
    assert views == {
        "task_instance": "/wavespeed/task-instances/{DAG_ID}/{RUN_ID}/{TASK_ID}/{MAP_INDEX}",
        "dag_run": "/wavespeed/runs/{DAG_ID}/{RUN_ID}",
    }
    assert airflow.api("GET", "/plugins/importErrors")["import_errors"] == []


def test_five_mapped_dubs_have_five_distinct_labels_in_the_rest_api(airflow: LocalAirflow, five_dubs_run: str):
    instances = [ti for ti in airflow.task_instances(DAG_ID, five_dubs_run) if ti["task_id"] == "lipsync"]
    assert sorted(ti["rendered_map_index"] for ti in instances) == list(FIVE_DUBS)


def test_the_board_lists_every_dub_with_its_stored_output(airflow: LocalAirflow, five_dubs_run: str, media: Path):
    board = get(airflow, board_path(five_dubs_run), ADMIN_USER).json()

    dubs = {record["label"]: record for record in board["task_instances"]}
    assert sorted(dubs) == list(FIVE_DUBS)
    for label, record in dubs.items():
        assert record["state"] == "success"
        assert record["request_id"]
        (output,) = record["outputs"]
        assert Path(output["stored"]) == media / "dubbed" / "2026-11-23" / f"{label}.mp4"
        assert output["stored_is_readable"] is True
        assert [step["status"] for step in record["timeline"]] == ["submitted", "processing", "completed"]
        assert all(step["at"] for step in record["timeline"])
        assert record["inputs"]["audio"].endswith(f"{label}.wav")
    priced = [record["price"] for record in board["task_instances"] if record["price"] is not None]
    assert board["priced"] == len(priced)
    assert board["total_price"] == pytest.approx(sum(priced))


def test_the_player_gets_the_stored_file_with_range_support(airflow: LocalAirflow, five_dubs_run: str, media: Path):
    path = f"/wavespeed/media/{DAG_ID}/{quote(five_dubs_run, safe='')}/lipsync/0/0"
    stored = (media / "dubbed" / "2026-11-23" / f"{FIVE_DUBS[0]}.mp4").read_bytes()

    whole = get(airflow, path, VIEWER)
    part = get(airflow, path, VIEWER, headers={"Range": "bytes=0-99"})

    assert whole.status_code == 200
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.content == stored
    assert part.status_code == 206
    assert part.content == stored[:100]


def test_the_mapped_tasks_links_open_the_stored_copy_and_wavespeeds(airflow: LocalAirflow, five_dubs_run: str):
    links = airflow.api(
        "GET", f"/dags/{DAG_ID}/dagRuns/{five_dubs_run}/taskInstances/lipsync/links", params={"map_index": 0}
    )["extra_links"]
    assert links["Stored output"].endswith(f"/dubbed/2026-11-23/{FIVE_DUBS[0]}.mp4")
    assert links["Stored output"].startswith("file:///")
    assert links["WaveSpeed copy (deleted after 7 days)"].startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    "path",
    [
        "/wavespeed/runs/{dag}/{run}",
        "/wavespeed/api/runs/{dag}/{run}",
        "/wavespeed/task-instances/{dag}/{run}/lipsync/0",
        "/wavespeed/media/{dag}/{run}/lipsync/0/0",
    ],
)
def test_anonymous_and_users_without_access_to_the_dag_are_refused(airflow: LocalAirflow, five_dubs_run: str, path):
    url = path.format(dag=DAG_ID, run=quote(five_dubs_run, safe=""))

    assert get(airflow, url, None).status_code == 401
    assert get(airflow, url, OUTSIDER).status_code == 403
    assert get(airflow, url, VIEWER).status_code == 200


def test_a_scoped_user_reads_the_dags_of_their_scope(airflow: LocalAirflow):
    board = get(airflow, f"/wavespeed/api/runs/{OUTSIDER_DAGS[0]}/no-such-run", OUTSIDER)
    assert board.status_code == 200
    assert board.json()["task_instances"] == []


def test_the_outsider_is_refused_by_airflow_itself_too(airflow: LocalAirflow, five_dubs_run: str):
    """The view refuses exactly whom Airflow's own task-instance API refuses."""
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(five_dubs_run, safe='')}/taskInstances"
    assert get(airflow, path, OUTSIDER).status_code == 403
    assert get(airflow, path, VIEWER).status_code == 200
