"""The bad-input matrix: every bad input, or bad answer, fails with a helpful error.

One table. Each case runs a LipsyncOperator or a PredictionSensor the way a worker does
(``execute`` with a task context) against the emulator, which counts every request it gets. A few
answers the emulator never gives (a 403, an unknown status, ``completed`` without outputs) are
recorded responses that stand in for one of its routes. Every case asserts:

- the exact error type, and fragments of its message that name the field or value and say what
  to do;
- that neither the connection's API key nor the emulator's appears in the error or its causes;
- exactly which API requests the task made (so 401/403 were not retried, a submit was never sent
  twice), how many of them were paid (accepted submits and uploads), and that nothing was stored.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests_mock as requests_mock_module
from airflow.exceptions import AirflowException

from airflow_provider_wavespeed.exceptions import (
    PredictionFailedError,
    PredictionOutputError,
    PredictionWaitTimeoutError,
    StoredOutputError,
    WaveSpeedAuthError,
    WaveSpeedInputSchemaError,
    WaveSpeedMalformedResponseError,
    WaveSpeedNotFoundError,
    WaveSpeedServerError,
    WaveSpeedSubmissionUncertainError,
)
from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook
from airflow_provider_wavespeed.operators.lipsync import LIPSYNC_MODEL, LipsyncOperator
from airflow_provider_wavespeed.sensors.prediction import PredictionSensor
from airflow_provider_wavespeed.version_compat import AIRFLOW_V_3_0_PLUS
from devstack.clips import make_audio, make_video
from tests.helpers.airflow_context import StateStore, make_context
from wavespeed_emulator import WaveSpeedEmulator
from wavespeed_emulator.faults import FaultConfig

pytestmark = pytest.mark.integration

VIDEO = "https://media.example/talk.mp4"
AUDIO = "https://media.example/talk.fr.wav"
WRONG_KEY = "wsk-wrong-0123456789abcdef"
RETRY_LIMIT = 2
QUOTED = {"models": 1, "price": 1}
"""What a lipsync asks before it submits: the model catalog once, and the price of its inputs."""
"""The connection's retry_limit here: a retried read is sent 1 + RETRY_LIMIT times."""
ANY = -1
"""An expected request count that depends on timing: at least one."""
# Airflow 2 reports a missing operator argument as an AirflowException, Airflow 3 as a TypeError.
MISSING_ARGUMENT_ERROR: type[Exception] = TypeError if AIRFLOW_V_3_0_PLUS else AirflowException


@dataclass
class Peer:
    """What a case runs against: the emulator, a scratch directory, the prediction a sensor waits for."""

    emulator: WaveSpeedEmulator
    tmp_path: Path
    request_id: str = ""

    @property
    def out_dir(self) -> Path:
        return self.tmp_path / "out"


@dataclass(frozen=True)
class Recorded:
    """A recorded answer standing in for one emulator route."""

    route: str  # "submit" or "result"
    status: int
    json: Any


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[Peer], Any]
    error: type[BaseException]
    fragments: tuple[str, ...]
    calls: dict[str, int] = field(default_factory=dict)
    """API requests by route name, exactly; ANY for a count that depends on timing."""
    paid: int = 0
    """Accepted submits and uploads the task caused (1 only where WaveSpeed must run it to tell)."""
    faults: FaultConfig | None = None
    recorded: tuple[Recorded, ...] = ()
    api_key: str | None = None
    """The connection's key when it is not the emulator's."""
    waits_for_a_prediction: bool = False
    needs_file_modes: bool = False


def lipsync(**kwargs: Any) -> Callable[[Peer], Any]:
    """Run a LipsyncOperator on a worker (not deferred); ``kwargs`` may be callables of the peer."""

    def run(peer: Peer) -> Any:
        arguments = {
            "video": VIDEO,
            "audio": AUDIO,
            "output_path": f"{peer.out_dir}/",
            "deferrable": False,
            "poll_interval": 0.1,
            "max_poll_interval": 0.2,
            "timeout": 30,
            **kwargs,
        }
        resolved = {name: value(peer) if callable(value) else value for name, value in arguments.items()}
        return LipsyncOperator(task_id="lipsync", **resolved).execute(make_context())

    return run


def lipsync_without(argument: str) -> Callable[[Peer], Any]:
    def run(peer: Peer) -> Any:
        arguments = {"video": VIDEO, "audio": AUDIO}
        del arguments[argument]
        return LipsyncOperator(task_id="lipsync", **arguments).execute(make_context())

    return run


def sense(request_id: str | None = None) -> Callable[[Peer], Any]:
    """Run a PredictionSensor in poke mode for ``request_id`` (default: the prepared prediction)."""

    def run(peer: Peer) -> Any:
        sensor = PredictionSensor(
            task_id="wait", request_id=request_id or peer.request_id, poke_interval=0.1, timeout=30
        )
        return sensor.execute(make_context())

    return run


def poll() -> Callable[[Peer], Any]:
    """One status check through the hook (its retries included) of the prepared prediction.

    Not a wait: a wait rides such answers out as an outage, until its timeout (tests/unit).
    """

    def run(peer: Peer) -> Any:
        return WaveSpeedHook().get_prediction(peer.request_id)

    return run


def local_video(peer: Peer) -> str:
    return str(make_video(peer.tmp_path / "talk.mp4", 1))


def unreadable_audio(peer: Peer) -> str:
    path = peer.tmp_path / "locked.wav"
    path.write_bytes(b"RIFF")
    path.chmod(0)
    return str(path)


def empty_video(peer: Peer) -> str:
    path = peer.tmp_path / "empty.mp4"
    path.write_bytes(b"")
    return str(path)


def local_audio(peer: Peer) -> str:
    return str(make_audio(peer.tmp_path / "voice.wav", 1))


def text_as_audio(peer: Peer) -> str:
    path = peer.tmp_path / "notes.wav"
    path.write_text("Interview notes: the French dub is in the other folder.\n")
    return str(path)


def read_only_directory(peer: Peer) -> str:
    directory = peer.tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(0o500)
    return f"{directory}/dubbed/"


def under_a_file(peer: Peer) -> str:
    (peer.tmp_path / "taken").write_bytes(b"x")
    return f"{peer.tmp_path}/taken/dubbed/talk.mp4"


def existing_output(peer: Peer) -> str:
    path = peer.tmp_path / "kept" / "talk.mp4"
    path.parent.mkdir()
    path.write_bytes(b"an earlier output")
    return str(path)


def poll_faults(**rates: Any) -> FaultConfig:
    return FaultConfig(routes=("result",), after_accept_rate=0.0, **rates)


def submit_faults(**rates: Any) -> FaultConfig:
    """Faults on the submit that strike after WaveSpeed accepted it: the prediction exists."""
    return FaultConfig(routes=("submit",), after_accept_rate=1.0, **rates)


def recorded_prediction(status: str, **fields: Any) -> dict[str, Any]:
    data = {
        "id": "req-recorded",
        "model": LIPSYNC_MODEL,
        "status": status,
        "outputs": [],
        "has_nsfw_contents": [],
        "urls": {"get": "https://api.wavespeed.test/api/v3/predictions/req-recorded/result"},
        "created_at": "2026-11-23T10:00:00.000Z",
        "error": "",
        "timings": {"inference": 0},
        **fields,
    }
    return {"code": 200, "message": "success", "data": data}


MATRIX = [
    # -- arguments: refused before any request ----------------------------------------------------
    Case(
        "sync_mode-invalid",
        lipsync(sync_mode="fast"),
        ValueError,
        ("sync_mode='fast'", "use one of bounce, loop, cut_off, silence, remap"),
    ),
    Case("sync_mode-empty", lipsync(sync_mode=""), ValueError, ("sync_mode=''", "use one of", "cut_off")),
    Case("video-missing", lipsync_without("video"), MISSING_ARGUMENT_ERROR, ("missing keyword argument 'video'",)),
    Case("audio-missing", lipsync_without("audio"), MISSING_ARGUMENT_ERROR, ("missing keyword argument 'audio'",)),
    Case("video-none", lipsync(video=None), ValueError, ("video is required", "http(s) URL, a local path")),
    Case("audio-empty", lipsync(audio=""), ValueError, ("audio is required", "http(s) URL, a local path")),
    Case("audio-blank", lipsync(audio="  "), ValueError, ("audio is required",)),
    Case(
        "video-path-does-not-exist",
        lipsync(video=lambda peer: f"{peer.tmp_path}/nothing.mp4"),
        ValueError,
        ("video: local file '", "nothing.mp4' does not exist", "pass an existing file or a URL"),
    ),
    Case(
        "video-file-uri-does-not-exist",
        lipsync(video="file:///no/such/dir/talk.mp4"),
        ValueError,
        ("video: local file '/no/such/dir/talk.mp4' does not exist",),
    ),
    Case(
        "video-path-is-a-directory",
        lipsync(video=lambda peer: str(peer.tmp_path)),
        ValueError,
        ("video: '", "is not a regular file (a directory?)", "pass a media file"),
    ),
    Case(
        "audio-path-unreadable",
        lipsync(audio=unreadable_audio),
        ValueError,
        ("audio: local file '", "locked.wav' is not readable by this process", "fix its mode"),
        needs_file_modes=True,
    ),
    Case(
        "audio-scheme-unsupported",
        lipsync(audio="gopher://media.example/talk.wav"),
        ValueError,
        ("audio='gopher://media.example/talk.wav'", "unsupported scheme 'gopher://'", "use http(s), file"),
    ),
    Case(
        "video-scheme-without-a-filesystem",
        lipsync(video="data:video/mp4;base64,AAAA"),
        ValueError,
        ("video='data:video/mp4;base64,AAAA'", "'data://'", "install"),
    ),
    Case(
        "audio-object-storage-not-installed-after-a-local-video",
        lipsync(video=local_video, audio="s3://media/talk.fr.wav"),
        ValueError,
        ("audio='s3://media/talk.fr.wav'", "'s3://'", "install the Airflow provider"),
    ),
    Case("video-url-without-host", lipsync(video="https://"), ValueError, ("video='https://'", "no host")),
    # -- media content and output_path: checked before any upload ---------------------------------
    Case(
        "video-file-empty",
        lipsync(video=empty_video),
        ValueError,
        ("video: '", "empty.mp4' is empty (0 bytes)", "pass the media file itself"),
    ),
    Case(
        "audio-file-as-video",
        lipsync(video=local_audio, audio=local_audio),
        ValueError,
        ("video: '", "voice.wav' holds wav, not video", "MP4, MOV", "pass a video file", "Nothing was uploaded"),
    ),
    Case(
        "text-file-as-audio-after-a-local-video",
        lipsync(video=local_video, audio=text_as_audio),
        ValueError,
        ("audio: '", "notes.wav' holds text, not audio", "WAV, MP3", "pass an audio file"),
    ),
    Case(
        "output_path-not-writable",
        lipsync(output_path=read_only_directory),
        ValueError,
        ("read-only/dubbed/'", "this process cannot write to '", "make it writable", "choose another output_path"),
        needs_file_modes=True,
    ),
    Case(
        "output_path-below-a-file",
        lipsync(output_path=under_a_file),
        ValueError,
        ("taken/dubbed/talk.mp4'", "taken' is a file, so the directory", "choose another output_path"),
    ),
    Case(
        "output_path-directory-without-its-slash",
        lipsync(output_path=lambda peer: f"{peer.tmp_path}/dubbed"),
        ValueError,
        ("is neither an existing directory nor written with a trailing '/'", "no file extension", "dubbed/'"),
    ),
    Case(
        "output_path-taken-with-if_output_exists-fail",
        lipsync(output_path=existing_output, if_output_exists="fail"),
        StoredOutputError,
        ("kept/talk.mp4 exists", "no provenance record", "if_output_exists='fail'", "nothing was uploaded"),
    ),
    Case(
        "if_output_exists-unknown",
        lipsync(if_output_exists="skip"),
        ValueError,
        ("if_output_exists='skip' is not a policy", "skip_if_same_inputs, overwrite, fail"),
    ),
    # -- WaveSpeed refuses the request: nothing accepted, nothing retried ------------------------
    Case(
        "model-not-in-the-catalog",
        lipsync(model="sync/no-such-model"),
        WaveSpeedInputSchemaError,
        ("'sync/no-such-model'", "does not list", "nothing was uploaded or paid", "allow_unlisted_model=True"),
        calls={"models": 1},
    ),
    Case(
        "model-unknown-404-with-allow_unlisted_model",
        lipsync(model="sync/no-such-model", allow_unlisted_model=True),
        WaveSpeedNotFoundError,
        ("'sync/no-such-model'", "Model not found", "nothing was submitted", "Check the model path"),
        calls={"models": 1, "price": 1},
    ),
    Case(
        "key-rejected-401",
        lipsync(),
        WaveSpeedAuthError,
        ("HTTP 401", "API Key", "'wavespeed_default'"),
        calls={"models": 1},
        api_key=WRONG_KEY,
    ),
    Case(
        "key-rejected-401-before-an-upload",
        lipsync(video=local_video),
        WaveSpeedAuthError,
        ("HTTP 401", "API Key", "'wavespeed_default'"),
        calls={"models": 1},
        api_key=WRONG_KEY,
    ),
    Case(
        "account-forbidden-403",
        lipsync(),
        WaveSpeedAuthError,
        ("HTTP 403", "Account suspended", "API Key", "'wavespeed_default'", "not suspended"),
        calls={**QUOTED, "submit": 1},
        recorded=(Recorded("submit", 403, {"code": 403, "message": "Account suspended", "data": None}),),
    ),
    Case(
        "sensor-unknown-request-id",
        sense("no-such-prediction"),
        WaveSpeedNotFoundError,
        ("no prediction 'no-such-prediction'", "check the request id", "connection's key"),
        calls={"result": 1},
    ),
    # -- WaveSpeed ran the prediction and it failed or is unusable: paid once, never twice --------
    Case(
        "media-unreachable-1402",
        lipsync(video="https://media.invalid/private.mp4"),
        PredictionFailedError,
        ("[code 1402]", "video", "https://media.invalid/private.mp4", "must be publicly reachable"),
        calls={**QUOTED, "submit": 1, "result": ANY},
        paid=1,
    ),
    Case(
        "nsfw-flagged-with-fail_on_nsfw",
        lipsync(video=f"{VIDEO}?emulator_nsfw=1", fail_on_nsfw=True),
        PredictionOutputError,
        ("as NSFW", "has_nsfw_contents=[True]", "fail_on_nsfw=True", "set fail_on_nsfw=False", "PredictionSensor"),
        calls={**QUOTED, "submit": 1, "result": ANY},
        paid=1,
    ),
    Case(
        "completed-without-outputs",
        sense("req-recorded"),
        PredictionOutputError,
        ("req-recorded", "'completed' but returned no outputs", "dashboard"),
        calls={"result": 1},
        recorded=(Recorded("result", 200, recorded_prediction("completed")),),
    ),
    Case(
        "status-unknown",
        lipsync(timeout=0.3),
        PredictionWaitTimeoutError,
        ("req-recorded", "'queued_for_review'", "does not know", "resumes that prediction without paying again"),
        calls={**QUOTED, "submit": 1, "result": ANY},
        paid=1,
        recorded=(
            Recorded("submit", 200, recorded_prediction("created")),
            Recorded("result", 200, recorded_prediction("queued_for_review")),
        ),
    ),
    # -- answers that are not the documented envelope ---------------------------------------------
    Case(
        "html-502-page-on-a-poll",
        poll(),
        WaveSpeedServerError,
        ("HTTP 502", "HTML page", "gateway", "502 Bad Gateway", "retry later"),
        calls={"result": 1 + RETRY_LIMIT},
        faults=poll_faults(rate_502=1.0),
        waits_for_a_prediction=True,
    ),
    Case(
        "html-502-page-on-the-submit",
        lipsync(),
        WaveSpeedSubmissionUncertainError,
        (
            "'sync/lipsync-1.9.0-beta'",
            "may have created a paid prediction",
            "HTML page",
            "looks in WaveSpeed's history",
        ),
        calls={**QUOTED, "submit": 1},
        paid=1,
        faults=submit_faults(rate_502=1.0),
    ),
    Case(
        "truncated-json-on-a-poll",
        poll(),
        WaveSpeedMalformedResponseError,
        ("HTTP 200", "not valid JSON (truncated or garbled)", "retry later"),
        calls={"result": 1 + RETRY_LIMIT},
        faults=poll_faults(rate_malformed=1.0, malformed_kinds=("truncated_json",)),
        waits_for_a_prediction=True,
    ),
    Case(
        "envelope-code-500-under-http-200",
        poll(),
        WaveSpeedServerError,
        ("HTTP 200, code 500", "Internal server error", "retry later"),
        calls={"result": 1 + RETRY_LIMIT},
        faults=poll_faults(rate_malformed=1.0, malformed_kinds=("error_code",)),
        waits_for_a_prediction=True,
    ),
    Case(
        "missing-data-id-on-a-poll",
        poll(),
        WaveSpeedMalformedResponseError,
        ("no prediction id ('data.id' is None)", "retry later"),
        # A read of a garbled answer is repeated, like any malformed answer, then fails.
        calls={"result": 1 + RETRY_LIMIT},
        faults=poll_faults(rate_malformed=1.0, malformed_kinds=("missing_id",)),
        waits_for_a_prediction=True,
    ),
    Case(
        "missing-data-id-on-the-submit",
        lipsync(),
        WaveSpeedSubmissionUncertainError,
        ("'sync/lipsync-1.9.0-beta'", "may have created a paid prediction", "'data.id' is None", "history"),
        calls={**QUOTED, "submit": 1},
        paid=1,
        faults=submit_faults(rate_malformed=1.0, malformed_kinds=("missing_id",)),
    ),
]


@pytest.fixture
def peer(emulator: WaveSpeedEmulator, tmp_path: Path, wavespeed_connection: Callable[..., None], request: Any) -> Peer:
    case: Case = request.node.callspec.params["case"]
    wavespeed_connection(
        host=emulator.base_url, password=case.api_key or emulator.api_key, extra={"retry_limit": RETRY_LIMIT}
    )
    peer = Peer(emulator, tmp_path)
    if case.waits_for_a_prediction:
        peer.request_id = WaveSpeedHook().submit(LIPSYNC_MODEL, {"video": VIDEO, "audio": AUDIO}).id
    if case.faults is not None:
        emulator.set_faults(case.faults)
    return peer


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in MATRIX])
def test_bad_input_fails_with_a_helpful_error_before_anything_is_paid(case: Case, peer: Peer):
    if case.needs_file_modes and ignores_file_modes(peer.tmp_path):
        pytest.skip("this process reads files whatever their mode (root); it runs as any other user")
    before = peer.emulator.stats()

    with (
        recorded_answers(peer.emulator.base_url, case.recorded) as recorded,
        pytest.raises(BaseException) as raised,  # noqa: PT011 - the exact type is asserted below
    ):
        case.run(peer)

    error = raised.value
    assert type(error) is case.error, f"{type(error).__name__}: {error}"
    message = str(error)
    for fragment in case.fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    for key in {peer.emulator.api_key, case.api_key or ""} - {""}:
        assert not any(key in text for text in messages_of(error)), "the API key is in the error"
    after = peer.emulator.stats()
    calls = {**api_requests(before, after), **recorded.calls()}
    assert calls.keys() == case.calls.keys(), calls
    for route, expected in case.calls.items():
        assert calls[route] >= 1 if expected == ANY else calls[route] == expected, calls
    assert paid_calls(before, after) + recorded.paid() == case.paid
    assert not peer.out_dir.exists() or not any(peer.out_dir.iterdir()), "an output was stored"


def ignores_file_modes(directory: Path) -> bool:
    probe = directory / "mode-probe"
    probe.write_bytes(b"")
    probe.chmod(0)
    try:
        return os.access(probe, os.R_OK)
    finally:
        probe.unlink()


def messages_of(error: BaseException) -> Iterator[str]:
    """The text of an error and of every error it was raised from."""
    seen: BaseException | None = error
    while seen is not None:
        yield str(seen)
        yield repr(seen.args)
        seen = seen.__cause__ or seen.__context__


def api_requests(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    counts = {route: count - before["requests"].get(route, 0) for route, count in after["requests"].items()}
    return {route: count for route, count in counts.items() if count and route != "media"}


def paid_calls(before: dict[str, Any], after: dict[str, Any]) -> int:
    """Accepted submits, and uploads that stored a file."""

    def accepted(stats: dict[str, Any], route: str) -> int:
        return int(stats["responses_by_route"].get(route, {}).get("200", 0))

    uploads = sum(accepted(after, route) - accepted(before, route) for route in ("upload", "storage_put"))
    return after["submits"] - before["submits"] + uploads


class RecordedAnswers:
    """Recorded answers standing in for some routes; every other request still reaches the emulator."""

    def __init__(self) -> None:
        self._matchers: dict[str, tuple[Recorded, Any]] = {}

    def add(self, answer: Recorded, matcher: Any) -> None:
        self._matchers[answer.route] = (answer, matcher)

    def calls(self) -> dict[str, int]:
        return {route: matcher.call_count for route, (_, matcher) in self._matchers.items() if matcher.call_count}

    def paid(self) -> int:
        if "submit" not in self._matchers:
            return 0
        answer, matcher = self._matchers["submit"]
        return int(matcher.call_count) if answer.status < 300 else 0


@contextlib.contextmanager
def recorded_answers(base_url: str, answers: tuple[Recorded, ...]) -> Iterator[RecordedAnswers]:
    recorded = RecordedAnswers()
    with requests_mock_module.Mocker(real_http=True) as mocker:
        for answer in answers:
            if answer.route == "submit":
                url: Any = f"{base_url}/api/v3/{LIPSYNC_MODEL}"
                recorded.add(answer, mocker.post(url, status_code=answer.status, json=answer.json))
            else:
                url = re.compile(rf"{re.escape(base_url)}/api/v3/predictions/[^/]+/result")
                recorded.add(answer, mocker.get(url, status_code=answer.status, json=answer.json))
        yield recorded


def test_a_retry_after_an_unusable_output_submits_anew(
    emulator: WaveSpeedEmulator, tmp_path: Path, wavespeed_connection
):
    """Resumed, the completed prediction would fail the retry the same way (or ignore new inputs)."""
    wavespeed_connection(host=emulator.base_url, password=emulator.api_key)
    store = StateStore()
    flagged = LipsyncOperator(
        task_id="lipsync", video=f"{VIDEO}?emulator_nsfw=1", audio=AUDIO, fail_on_nsfw=True, poll_interval=0.1
    )
    with pytest.raises(PredictionOutputError):
        flagged.execute(make_context(store))

    accepted = LipsyncOperator(task_id="lipsync", video=f"{VIDEO}?emulator_nsfw=1", audio=AUDIO, poll_interval=0.1)
    result = accepted.execute(make_context(store))  # the retry, after fail_on_nsfw was turned off

    assert result["has_nsfw_contents"] == [True]
    assert emulator.stats()["submits"] == 2
