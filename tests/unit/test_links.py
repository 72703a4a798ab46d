"""The UI's view of a lipsync: the default map index label and the extra links."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pendulum
import pytest
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_wavespeed.links import StoredOutputLink, WaveSpeedOutputLink, browsable_url
from airflow_provider_wavespeed.operators.lipsync import (
    DEFAULT_MAP_INDEX_TEMPLATE,
    LipsyncOperator,
    WaveSpeedRunModelOperator,
)
from airflow_provider_wavespeed.sensors.prediction import PredictionSensor
from airflow_provider_wavespeed.version_compat import AIRFLOW_V_3_0_PLUS
from tests.helpers.airflow_context import make_context
from tests.helpers.wavespeed_tasks import parsed, replaced_hook


@pytest.fixture
def hook():
    yield from replaced_hook(WaveSpeedRunModelOperator)


@pytest.fixture
def sensor_hook():
    yield from replaced_hook(PredictionSensor)


@pytest.mark.parametrize(
    ("video", "audio", "label"),
    [
        ("/media/incoming/interview.mp4", "/media/incoming/interview.fr.wav", "interview.fr"),
        ("s3://aws_default@bucket/in/talk.mp4", "s3://aws_default@bucket/in/talk.de.wav", "talk.de"),
        ("https://cdn.test/clip.mp4?sig=1", "https://cdn.test/voice.wav?sig=2", "clip+voice"),
        ("file:///m/interview.mp4", "file:///m/interviewer.wav", "interview+interviewer"),
    ],
)
def test_media_label_names_the_video_and_its_dub(video, audio, label):
    assert LipsyncOperator(task_id="lipsync", video=video, audio=audio).media_label == label


def test_media_label_follows_an_output_file_named_after_the_pair_even_for_uploaded_media():
    uploaded = {"video": "https://cdn.test/u/8f3a.mp4", "audio": "https://cdn.test/u/91bc.wav"}
    named = LipsyncOperator(task_id="lipsync", output_path="s3://b/dubbed/talk.ja.mp4", **uploaded)
    into_folder = LipsyncOperator(task_id="lipsync", output_path="s3://b/dubbed/", **uploaded)
    assert named.media_label == "talk.ja"
    assert into_folder.media_label == "8f3a+91bc"


def test_the_default_map_index_template_applies_to_mapped_tasks_and_can_be_overridden():
    with DAG("labels", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        mapped = LipsyncOperator.partial(task_id="lipsync").expand_kwargs(
            [{"video": "/m/a.mp4", "audio": "/m/a.fr.wav"}]
        )
        custom = LipsyncOperator.partial(task_id="custom", map_index_template="{{ task.audio }}").expand(
            video=["/m/a.mp4"], audio=["/m/a.fr.wav"]
        )

    assert mapped.map_index_template == DEFAULT_MAP_INDEX_TEMPLATE
    assert custom.map_index_template == "{{ task.audio }}"
    assert LipsyncOperator(task_id="single", video="v", audio="a").map_index_template == DEFAULT_MAP_INDEX_TEMPLATE


@pytest.mark.parametrize(
    ("stored", "url"),
    [
        ("/data/dubbed/talk.fr.mp4", "file:///data/dubbed/talk.fr.mp4"),
        ("file:///data/dubbed/talk%20fr.mp4", "file:///data/dubbed/talk%20fr.mp4"),
        (
            "s3://media/dubbed/talk.fr.mp4",
            "https://s3.console.aws.amazon.com/s3/object/media?prefix=dubbed/talk.fr.mp4",
        ),
        (
            "s3://aws_default@media/dubbed/talk.fr.mp4",
            "https://s3.console.aws.amazon.com/s3/object/media?prefix=dubbed/talk.fr.mp4",
        ),
        ("gs://media/d/t.mp4", "https://console.cloud.google.com/storage/browser/_details/media/d/t.mp4"),
        ("abfs://container/d/t.mp4", "abfs://container/d/t.mp4"),
    ],
)
def test_a_stored_output_links_to_somewhere_a_person_can_open_it(stored, url):
    assert browsable_url(stored) == url


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Airflow 2 computes links in the webserver, from XCom")
def test_links_come_from_the_operator_that_ran_without_any_xcom_lookup(hook, tmp_path: Path):
    hook.submit.return_value = parsed("created")
    hook.wait_for_prediction.return_value = parsed("completed")
    hook.get_prediction.return_value = parsed("processing")
    hook.download.return_value = str(tmp_path / "req-1.mp4")
    operator = LipsyncOperator(
        task_id="lipsync", video="https://m.test/v.mp4", audio="https://m.test/a.wav", output_path=f"{tmp_path}/"
    )
    key = mock.sentinel.ti_key
    with mock.patch("airflow.providers.common.compat.sdk.XCom") as xcom:
        # Deferring (or before the end), there is nothing to link yet, and nothing is looked up.
        assert StoredOutputLink().get_link(operator, ti_key=key) == ""
        assert WaveSpeedOutputLink().get_link(operator, ti_key=key) == ""
        operator.execute(make_context())
        assert StoredOutputLink().get_link(operator, ti_key=key) == (tmp_path / "req-1.mp4").as_uri()
        assert WaveSpeedOutputLink().get_link(operator, ti_key=key) == "https://cdn.test/out.mp4"
    xcom.get_value.assert_not_called()


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Airflow 2 computes links in the webserver, from XCom")
def test_the_sensor_links_wavespeeds_copy_once_completed(sensor_hook):
    sensor_hook.get_prediction.return_value = parsed("completed")
    sensor = PredictionSensor(task_id="wait", request_id="req-1")
    assert WaveSpeedOutputLink().get_link(sensor, ti_key=mock.sentinel.ti_key) == ""
    sensor.execute(make_context())
    assert WaveSpeedOutputLink().get_link(sensor, ti_key=mock.sentinel.ti_key) == "https://cdn.test/out.mp4"


@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="Airflow 3 computes links on the worker")
def test_on_airflow_2_links_come_from_the_result_in_xcom():
    result = {"outputs": ["https://cdn.test/out.mp4"], "stored_outputs": ["/data/out.mp4"]}
    operator = LipsyncOperator(task_id="lipsync", video="v", audio="a")
    with mock.patch("airflow.providers.common.compat.sdk.XCom") as xcom:
        xcom.get_value.return_value = result
        assert StoredOutputLink().get_link(operator, ti_key=mock.sentinel.ti_key) == "file:///data/out.mp4"
        assert WaveSpeedOutputLink().get_link(operator, ti_key=mock.sentinel.ti_key) == "https://cdn.test/out.mp4"
        xcom.get_value.return_value = None  # not finished yet
        assert StoredOutputLink().get_link(operator, ti_key=mock.sentinel.ti_key) == ""
