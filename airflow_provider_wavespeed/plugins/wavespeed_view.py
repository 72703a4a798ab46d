"""The WaveSpeed view: a task instance's prediction, and a board of every prediction of a DAG run.

Airflow's api-server mounts the FastAPI app at :data:`URL_PREFIX`, and its UI shows the two pages as
tabs of a task instance and of a DAG run (``external_views``). Every route is guarded by Airflow's
own authorization, as reading the DAG's task instances is: the auth manager decides, per DAG.
Nothing here holds a WaveSpeed API key or calls WaveSpeed (see :mod:`.records`).

Airflow 3.0 and 2.11 have no external views: there the ``airflow.plugins`` entry point names no
plugin (:data:`entry_point_plugin` is None), so Airflow loads nothing.
"""

from __future__ import annotations

from typing import Any

from airflow import __version__ as _airflow_version
from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/wavespeed"
TASK_INSTANCE_PATH = "/task-instances/{dag_id}/{run_id}/{task_id}/{map_index}"
BOARD_PATH = "/runs/{dag_id}/{run_id}"
MEDIA_PATH = "/media/{dag_id}/{run_id}/{task_id}/{map_index}/{index}"


def _map_index(value: str) -> int:
    """The UI fills ``{MAP_INDEX}`` only for a mapped task; an unfilled placeholder means -1."""
    try:
        return int(value)
    except ValueError:
        return -1


def create_app() -> Any:
    """The FastAPI app; every route needs read access to the DAG's task instances."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from airflow.utils.session import create_session
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse

    from airflow_provider_wavespeed.media import local_path_of, object_storage_path
    from airflow_provider_wavespeed.plugins import pages, records

    app = FastAPI(
        title="WaveSpeed view",
        description="WaveSpeed predictions of Airflow task instances, from what the tasks stored.",
        dependencies=[Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE))],
    )

    def prediction(dag_id: str, run_id: str, task_id: str, map_index: str) -> records.PredictionRecord:
        with create_session() as session:
            try:
                return records.read_prediction(dag_id, run_id, task_id, _map_index(map_index), session=session)
            except LookupError as error:
                raise HTTPException(status_code=404, detail=str(error)) from None

    def board(dag_id: str, run_id: str) -> records.RunBoard:
        with create_session() as session:
            return records.read_board(dag_id, run_id, session=session)

    @app.get(TASK_INSTANCE_PATH, response_class=HTMLResponse)
    def task_instance_view(dag_id: str, run_id: str, task_id: str, map_index: str) -> str:
        return pages.task_instance_page(URL_PREFIX, prediction(dag_id, run_id, task_id, map_index))

    @app.get(BOARD_PATH, response_class=HTMLResponse)
    def board_view(dag_id: str, run_id: str) -> str:
        return pages.board_page(URL_PREFIX, board(dag_id, run_id), URL_PREFIX + TASK_INSTANCE_PATH)

    @app.get("/api" + TASK_INSTANCE_PATH)
    def task_instance_json(dag_id: str, run_id: str, task_id: str, map_index: str) -> JSONResponse:
        return JSONResponse(prediction(dag_id, run_id, task_id, map_index).as_json())

    @app.get("/api" + BOARD_PATH)
    def board_json(dag_id: str, run_id: str) -> JSONResponse:
        return JSONResponse(board(dag_id, run_id).as_json())

    @app.get(MEDIA_PATH, response_model=None)
    def stored_output(
        dag_id: str, run_id: str, task_id: str, map_index: str, index: int
    ) -> FileResponse | StreamingResponse:
        """The stored copy of an output, only ever a file the task itself recorded as its output."""
        record = prediction(dag_id, run_id, task_id, map_index)
        output = next((output for output in record.outputs if output.index == index), None)
        if output is None or output.stored is None or not output.stored_is_readable:
            raise HTTPException(status_code=404, detail="This task instance has no readable stored output there")
        local = local_path_of(output.stored)
        if local is not None:
            return FileResponse(local, media_type="video/mp4")  # answers Range requests, so the player can seek
        stream = object_storage_path(output.stored).open("rb")
        return StreamingResponse(iter(lambda: stream.read(1 << 20), b""), media_type="video/mp4")

    return app


class _AppOnFirstRequest:
    """The ASGI app, built at its first request: every Airflow component imports plugins (the
    scheduler, the dag-processor, each task), and only the api-server needs FastAPI and its routes."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = create_app()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return f"{__name__}.create_app()"


class WaveSpeedViewPlugin(AirflowPlugin):
    """Adds the WaveSpeed tab to task instances and the WaveSpeed board to DAG runs."""

    name = "wavespeed"
    fastapi_apps = [{"app": _AppOnFirstRequest(), "url_prefix": URL_PREFIX, "name": "WaveSpeed view"}]
    external_views = [
        {
            "name": "WaveSpeed",
            "href": URL_PREFIX + "/task-instances/{DAG_ID}/{RUN_ID}/{TASK_ID}/{MAP_INDEX}",
            "destination": "task_instance",
            "url_route": "wavespeed",
        },
        {
            "name": "WaveSpeed board",
            "href": URL_PREFIX + "/runs/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "wavespeed-board",
        },
    ]


def _airflow_has_external_views() -> bool:
    major, minor = (int(part) for part in _airflow_version.split(".")[:2])
    return (major, minor) >= (3, 1)


entry_point_plugin: type[WaveSpeedViewPlugin] | None = WaveSpeedViewPlugin if _airflow_has_external_views() else None
"""What the ``airflow.plugins`` entry point loads: the plugin on Airflow 3.1+, else nothing."""
