"""OpenLineage facets of the WaveSpeed operators, extracted by the OpenLineage provider's own code.

The provider's ``ExtractorManager`` calls the operator's methods as its listener does: on start,
then on complete or on failure. After a deferral that happens on a new operator object whose only
knowledge is what ``execute_complete`` re-derived from the trigger's event, which these tests
reproduce by building a fresh operator for the resumed execution.
"""

from __future__ import annotations

import builtins
import json
import subprocess
import sys
from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath
from airflow.providers.openlineage.extractors.manager import ExtractorManager
from airflow.utils.state import TaskInstanceState

from airflow_provider_wavespeed.exceptions import PredictionFailedError
from airflow_provider_wavespeed.openlineage import EXTERNAL_QUERY_SOURCE, dataset_of
from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator, WaveSpeedRunModelOperator
from airflow_provider_wavespeed.resume import STATE_KEY

VIDEO = "s3://aws_default@media/incoming/talk.mp4"
AUDIO = "https://cdn.example.com/dubs/talk.fr.wav?X-Amz-Signature=presigned-secret"
INPUT_NAMES = [("s3://media", "incoming/talk.mp4"), ("https://cdn.example.com", "dubs/talk.fr.wav")]
COMPLETED = {
    "id": "req-ol-1",
    "model": "sync/lipsync-1.9.0-beta",
    "status": "completed",
    "outputs": ["https://cdn.wavespeed.test/outputs/req-ol-1.mp4?token=output-secret"],
    "has_nsfw_contents": [False],
    "urls": {"get": "https://api.wavespeed.test/api/v3/predictions/req-ol-1/result"},
    "created_at": "2026-11-23T10:00:00.000Z",
    "error": "",
}


class StateStore(dict):
    """What Airflow 3.3 puts in context["task_state_store"]."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


def lipsync(**kwargs: Any) -> LipsyncOperator:
    return LipsyncOperator(**{"task_id": "lipsync", "video": VIDEO, "audio": AUDIO, **kwargs})


def resumed_context() -> Any:
    ti = mock.MagicMock(dag_id="dubbing", run_id="run-1", task_id="lipsync", map_index=-1)
    return {"ti": ti, "task_state_store": StateStore({STATE_KEY: "req-ol-1"})}


def extract(operator: WaveSpeedRunModelOperator, state: TaskInstanceState) -> Any:
    """What the OpenLineage listener extracts from ``operator`` for a task instance in ``state``."""
    dag_run = mock.MagicMock(run_id="run-1")
    task_instance = mock.MagicMock(task_id=operator.task_id, map_index=-1)
    return ExtractorManager().extract_metadata(dag_run, operator, state, task_instance)


def named(media: Any) -> tuple[str, str]:
    dataset = dataset_of(media)
    assert dataset is not None, f"no dataset for {media!r}"
    return dataset.namespace, dataset.name


def names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(dataset.namespace, dataset.name) for dataset in datasets]


@pytest.fixture
def hook():
    with mock.patch.object(WaveSpeedRunModelOperator, "hook", new_callable=mock.PropertyMock) as prop:
        prop.return_value = mock.MagicMock()
        yield prop.return_value


@pytest.mark.parametrize(
    ("media", "namespace", "name"),
    [
        ("s3://aws_default@media/incoming/talk.mp4", "s3://media", "incoming/talk.mp4"),
        ("s3://media/incoming/talk.mp4", "s3://media", "incoming/talk.mp4"),
        ("gcs://bucket/dub%20fr.wav", "gs://bucket", "dub fr.wav"),
        ("/data/talk.mp4", "file", "/data/talk.mp4"),
        ("file:///data/talk.mp4", "file", "/data/talk.mp4"),
        ("https://user:pw@cdn.example.com:8443/a/b.wav?sig=secret#frag", "https://cdn.example.com:8443", "a/b.wav"),
    ],
)
def test_media_are_named_by_openlineage_conventions_without_credentials(media, namespace, name):
    dataset_name = named(media)

    assert dataset_name == (namespace, name)
    assert "secret" not in json.dumps(dataset_name)
    assert "pw" not in dataset_name[0]


def test_a_relative_path_is_named_by_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    assert named("clips/talk.mp4") == ("file", str(tmp_path / "clips" / "talk.mp4"))


def test_an_object_storage_path_uses_its_own_namespace():
    assert named(ObjectStoragePath("s3://aws_default@media/incoming/talk.mp4")) == ("s3://media", "incoming/talk.mp4")


@pytest.mark.parametrize("media", [None, "", "   ", 42])
def test_no_dataset_for_what_names_no_file(media):
    assert dataset_of(media) is None


def test_on_start_reports_the_video_and_the_audio_as_inputs():
    lineage = extract(lipsync(), TaskInstanceState.RUNNING)

    assert names(lineage.inputs) == [
        ("s3://media", "incoming/talk.mp4"),
        ("https://cdn.example.com", "dubs/talk.fr.wav"),
    ]
    assert lineage.outputs == []
    assert lineage.run_facets == {}


def test_on_start_with_a_bad_input_reports_nothing_rather_than_failing():
    # The task itself fails on the bad sync_mode, with its own message, before paying.
    lineage = extract(lipsync(sync_mode="{{ params.mode }}"), TaskInstanceState.RUNNING)

    assert lineage is None or lineage.inputs == []


def test_after_deferral_the_resumed_operator_reports_the_stored_output_and_the_request_id(hook, tmp_path):
    hook.download.return_value = str(tmp_path / "req-ol-1.mp4")
    resumed = lipsync(output_path=f"{tmp_path}/")  # a new object, as the resumed execution gets
    event = {"status": "success", "request_id": "req-ol-1", "prediction": COMPLETED}

    resumed.execute_complete(resumed_context(), event)
    lineage = extract(resumed, TaskInstanceState.SUCCESS)

    assert names(lineage.outputs) == [("file", str(tmp_path / "req-ol-1.mp4"))]
    assert names(lineage.inputs) == [
        ("s3://media", "incoming/talk.mp4"),
        ("https://cdn.example.com", "dubs/talk.fr.wav"),
    ]
    external = lineage.run_facets["externalQuery"]
    assert (external.externalQueryId, external.source) == ("req-ol-1", EXTERNAL_QUERY_SOURCE)


def test_without_output_path_the_output_is_wavespeeds_url_without_its_query(hook):
    resumed = lipsync()
    resumed.execute_complete(
        resumed_context(), {"status": "success", "request_id": "req-ol-1", "prediction": COMPLETED}
    )

    lineage = extract(resumed, TaskInstanceState.SUCCESS)

    assert names(lineage.outputs) == [("https://cdn.wavespeed.test", "outputs/req-ol-1.mp4")]


def test_a_prediction_that_failed_after_deferral_reports_its_id_and_an_error_message(hook):
    resumed = lipsync()
    failed = {**COMPLETED, "status": "failed", "outputs": [], "error": "input URL unreachable", "code": 1402}
    with pytest.raises(PredictionFailedError):
        resumed.execute_complete(
            resumed_context(), {"status": "failed", "request_id": "req-ol-1", "prediction": failed}
        )

    lineage = extract(resumed, TaskInstanceState.FAILED)

    assert lineage.run_facets["externalQuery"].externalQueryId == "req-ol-1"
    error = lineage.run_facets["errorMessage"]
    assert error.programmingLanguage == "python"
    assert "req-ol-1" in error.message
    assert "PredictionSensor(request_id='req-ol-1')" in error.message
    assert lineage.outputs == []
    hook.get_prediction.assert_not_called()


def test_a_failure_before_any_submit_reports_no_request_id(hook):
    lineage = extract(lipsync(), TaskInstanceState.FAILED)

    assert "externalQuery" not in lineage.run_facets
    assert "no WaveSpeed request id" in lineage.run_facets["errorMessage"].message


def test_the_generic_operator_reports_only_its_media_inputs():
    operator = WaveSpeedRunModelOperator(
        task_id="talking_head",
        model="wavespeed-ai/infinitetalk",
        inputs={"image": "/data/presenter.png", "audio": "s3://media/intro.wav", "prompt": "/not/a/file"},
        media_inputs=("image", "audio"),
    )

    lineage = extract(operator, TaskInstanceState.RUNNING)

    assert names(lineage.inputs) == [("file", "/data/presenter.png"), ("s3://media", "intro.wav")]


def test_without_the_openlineage_provider_the_facet_methods_say_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def without_openlineage(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("airflow.providers.openlineage"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_openlineage)

    with pytest.raises(ImportError, match=r"airflow-provider-wavespeed\[openlineage\]"):
        lipsync().get_openlineage_facets_on_start()


NOT_INSTALLED = """
import importlib.abc
import importlib.metadata
import sys

HIDDEN = ("openlineage", "airflow.providers.openlineage")


def hidden(name):
    return name in HIDDEN or name.startswith(tuple(f"{prefix}." for prefix in HIDDEN))


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if hidden(name):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def without_openlineage(distributions):
    def installed(**kwargs):
        return [dist for dist in distributions(**kwargs) if "openlineage" not in (dist.metadata["Name"] or "").lower()]

    return installed


# Neither importable nor listed as a distribution, so Airflow's provider discovery does not see it.
importlib.metadata.distributions = without_openlineage(importlib.metadata.distributions)
try:
    import importlib_metadata
except ImportError:
    pass
else:
    importlib_metadata.distributions = without_openlineage(importlib_metadata.distributions)
sys.meta_path.insert(0, NotInstalled())
"""


def run_without_openlineage(code: str) -> list[str]:
    """Run ``code`` in a child interpreter in which the OpenLineage packages are not installed."""
    done = subprocess.run(
        [sys.executable, "-c", NOT_INSTALLED + code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


def test_without_openlineage_installed_the_operators_import_and_the_methods_name_the_extra():
    lines = run_without_openlineage(
        """
from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator

operator = LipsyncOperator(task_id="lipsync", video="/data/v.mp4", audio="/data/a.wav")
try:
    operator.get_openlineage_facets_on_start()
except ImportError as error:
    print("ImportError:", error)
print(sorted(name for name in sys.modules if hidden(name)))
"""
    )

    assert lines[-2].startswith("ImportError: OpenLineage facets need the OpenLineage provider")
    assert "airflow-provider-wavespeed[openlineage]" in lines[-2]
    assert lines[-1] == "[]"


def test_importing_the_operators_imports_no_openlineage_code():
    script = (
        "import sys; import airflow_provider_wavespeed.operators.lipsync; "
        "print(sorted(name for name in sys.modules if 'openlineage' in name))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)

    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"')))
    # Only what Airflow's own provider discovery imports of every installed provider.
    assert loaded <= {"airflow.providers.openlineage", "airflow.providers.openlineage.get_provider_info"}
