"""The pieces of "never pay twice, upload once": the path rule, fingerprints, container sniffing, the cache."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from airflow_provider_wavespeed.content import MediaContent, read_media_content, sniff_container
from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook
from airflow_provider_wavespeed.outputs import InputsDescription, describe_inputs, plan_output
from airflow_provider_wavespeed.uploads import UploadCache, upload_once

BASE = "https://api.wavespeed.test"


# -- the path rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "is_directory"),
    [
        ("{tmp}/dubbed/", True),  # a trailing slash: a directory, created on the first output
        ("{tmp}", True),  # an existing directory
        ("{tmp}/dubbed/talk.fr.mp4", False),  # anything else is the file itself
        ("file://{tmp}/talk.fr.mp4", False),
        ("file://{tmp}/dubbed/", True),
    ],
)
def test_output_path_is_a_directory_only_with_a_slash_or_when_it_exists(tmp_path, written, is_directory):
    plan = plan_output(written.format(tmp=tmp_path))

    assert plan is not None
    assert plan.is_directory is is_directory


def test_a_path_that_is_neither_a_directory_nor_a_file_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="neither an existing directory nor written with a trailing '/'") as raised:
        plan_output(f"{tmp_path}/dubbed")

    assert f"'{tmp_path}/dubbed/'" in str(raised.value)
    assert f"'{tmp_path}/dubbed.mp4'" in str(raised.value)


def test_no_output_path_plans_nothing():
    assert plan_output(None) is None
    assert plan_output("") is None


def test_a_relative_and_an_absolute_spelling_of_one_file_are_one_claim(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative, absolute = plan_output("out/talk.mp4"), plan_output(f"file://{tmp_path}/out/talk.mp4")

    assert relative is not None and absolute is not None
    assert relative.file_key == absolute.file_key


# -- fingerprints -----------------------------------------------------------------------------------


def content(sha256: str, source: str) -> MediaContent:
    return MediaContent(sha256=sha256, size=10, source=source)


def test_the_fingerprint_follows_content_not_where_it_was_read_from_or_uploaded_to():
    inputs = {"video": "s3://a/talk.mp4", "audio": "s3://a/talk.fr.wav", "sync_mode": "remap"}
    here = describe_inputs(
        "sync/lipsync-1.9.0-beta",
        inputs,
        {"video": content("v1", "s3://a/talk.mp4"), "audio": content("a1", "s3://a/talk.fr.wav")},
        ("video", "audio"),
    )
    moved = describe_inputs(
        "sync/lipsync-1.9.0-beta",
        {**inputs, "video": "/elsewhere/copy.mp4"},
        {"video": content("v1", "/elsewhere/copy.mp4"), "audio": content("a1", "s3://a/talk.fr.wav")},
        ("video", "audio"),
    )
    corrected = describe_inputs(
        "sync/lipsync-1.9.0-beta",
        inputs,
        {"video": content("v1", "s3://a/talk.mp4"), "audio": content("a2", "s3://a/talk.fr.wav")},
        ("video", "audio"),
    )

    assert here.fingerprint == moved.fingerprint
    assert here.fingerprint != corrected.fingerprint
    assert corrected.changes_since({"model": here.model, "inputs": here.inputs}) == [
        "audio content a1 -> a2 (s3://a/talk.fr.wav)"
    ]


def test_options_and_the_model_are_part_of_the_fingerprint():
    def described(model: str, sync_mode: str) -> InputsDescription:
        return describe_inputs(model, {"video": "https://v", "sync_mode": sync_mode}, {}, ("video",))

    base = described("sync/lipsync-1.9.0-beta", "remap")

    assert base.fingerprint != described("sync/lipsync-1.9.0-beta", "loop").fingerprint
    assert base.fingerprint != described("sync/lipsync-2", "remap").fingerprint
    assert described("sync/lipsync-2", "remap").changes_since(base.to_json()) == [
        "model 'sync/lipsync-1.9.0-beta' -> 'sync/lipsync-2'"
    ]
    assert InputsDescription.from_json(base.to_json()).fingerprint == base.fingerprint


# -- what a file holds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "container"),
    [
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", "mp4"),
        (b"\x00\x00\x00\x18ftypM4A \x00\x00\x02\x00", "m4a"),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00", "mov"),
        (b"\x1a\x45\xdf\xa3\x01\x00", "matroska"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"),
        (b"RIFF\x24\x00\x00\x00AVI LIST", "avi"),
        (b"ID3\x04\x00", "mp3/aac"),
        (b"\xff\xfb\x90\x00", "mp3/aac"),
        (b"fLaC\x00\x00", "flac"),
        (b"OggS\x00\x02", "ogg"),
        (b"\x89PNG\r\n\x1a\n", "png image"),
        (b"hello, world\n", None),
    ],
)
def test_containers_are_told_by_their_magic_bytes(head, container):
    assert sniff_container(head) == container


def test_an_m4a_is_audio_not_video(tmp_path):
    path = tmp_path / "dub.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypM4A \x00\x00\x02\x00" + b"\x00" * 100)

    with pytest.raises(ValueError, match="holds m4a, not video"):
        read_media_content(str(path), field="video")
    assert read_media_content(str(path), field="audio").size == path.stat().st_size


def test_the_content_hash_covers_every_byte(tmp_path):
    import hashlib

    path = tmp_path / "big.wav"
    data = b"RIFF\x24\x00\x00\x00WAVE" + bytes(range(256)) * 10_000
    path.write_bytes(data)

    found = read_media_content(str(path), field="audio")

    assert found.sha256 == hashlib.sha256(data).hexdigest()
    assert found.size == len(data)


# -- the upload cache -------------------------------------------------------------------------------


class Variables:
    """Airflow Variables, in memory."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: str, description: str = "") -> None:
        self.values[key] = value


@pytest.fixture
def variables(monkeypatch) -> Variables:
    store = Variables()
    monkeypatch.setattr("airflow.providers.common.compat.sdk.Variable", store)
    return store


@pytest.fixture
def hook(wavespeed_connection) -> WaveSpeedHook:
    wavespeed_connection(host=BASE)
    return WaveSpeedHook()


VIDEO = content("a" * 64, "/media/talk.mp4")


def test_a_cached_upload_still_served_is_reused_without_uploading(hook, variables, requests_mock):
    cache = UploadCache(BASE)
    cache.remember(VIDEO, "https://cdn.test/u/talk.mp4")
    requests_mock.head("https://cdn.test/u/talk.mp4", status_code=200)

    assert upload_once(hook, "/media/talk.mp4", VIDEO, cache) == "https://cdn.test/u/talk.mp4"
    assert "Authorization" not in requests_mock.last_request.headers, "the key went to the media host"


@pytest.mark.parametrize("answer", [{"status_code": 404}, {"status_code": 403}, {"exc": requests.ConnectionError}])
def test_a_cached_upload_no_longer_served_is_uploaded_again(hook, variables, requests_mock, monkeypatch, answer):
    cache = UploadCache(BASE)
    cache.remember(VIDEO, "https://cdn.test/u/talk.mp4")
    requests_mock.head("https://cdn.test/u/talk.mp4", **answer)
    uploaded: list[Any] = []

    def upload(source: Any) -> str:
        uploaded.append(source)
        return "https://cdn.test/u/new.mp4"

    monkeypatch.setattr(hook, "upload", upload)

    assert upload_once(hook, "/media/talk.mp4", VIDEO, cache) == "https://cdn.test/u/new.mp4"
    assert uploaded == ["/media/talk.mp4"]
    assert cache.recall(VIDEO) is not None and cache.recall(VIDEO)[0] == "https://cdn.test/u/new.mp4"  # type: ignore[index]


def test_an_entry_older_than_the_ttl_is_not_trusted(variables):
    cache = UploadCache(BASE, ttl=timedelta(hours=24))
    cache.remember(VIDEO, "https://cdn.test/u/talk.mp4")
    (key,) = variables.values
    entry = json.loads(variables.values[key])
    entry["uploaded_at"] = (datetime.now(UTC) - timedelta(hours=25)).isoformat()
    variables.values[key] = json.dumps(entry)

    assert cache.recall(VIDEO) is None


def test_the_cache_is_per_api_origin(variables):
    UploadCache("http://127.0.0.1:8099").remember(VIDEO, "http://127.0.0.1:8099/media/talk.mp4")

    assert UploadCache(BASE).recall(VIDEO) is None


def test_a_cache_that_cannot_be_written_costs_an_upload_not_a_failure(hook, monkeypatch, requests_mock):
    class Broken:
        @staticmethod
        def get(key: str, default: Any = None) -> Any:
            raise RuntimeError("no Variable API here")

        @staticmethod
        def set(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("no Variable API here")

    monkeypatch.setattr("airflow.providers.common.compat.sdk.Variable", Broken)
    monkeypatch.setattr(hook, "upload", lambda source: "https://cdn.test/u/talk.mp4")

    assert upload_once(hook, "/media/talk.mp4", VIDEO, UploadCache(BASE)) == "https://cdn.test/u/talk.mp4"


def test_is_served_sends_the_key_only_to_the_api_origin(hook, requests_mock):
    requests_mock.head(f"{BASE}/media/uploads/x/talk.mp4", status_code=200)

    assert hook.is_served(f"{BASE}/media/uploads/x/talk.mp4")
    assert requests_mock.last_request.headers["Authorization"].startswith("Bearer ")
