"""Real lipsync outputs: a playable MP4 of the uploaded video re-timed to the uploaded audio.

Inputs go through the emulator's upload flow, since only its own files can be read. Lengths are
read from the output's ``mvhd`` box by `devstack.clips.media_duration`, which shares no code with
the emulator's ffmpeg probe; pictures and sound are compared by decoding with the same ffmpeg.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.clips import media_duration
from tests.emulator.helpers import Api, Clips, lipsync_inputs
from tests.emulator_fixtures import EmulatorFactory, fast_emulator_config
from wavespeed_emulator import WaveSpeedEmulator, render
from wavespeed_emulator.catalog import SYNC_MODES
from wavespeed_emulator.render import RENDER_CONCURRENCY, Renderer, ffmpeg_executable

FPS = 25
TOLERANCE_SECONDS = 0.15
EXPECTED_SECONDS = {
    # mode: (2 s video with 3 s audio, 3 s video with 2 s audio)
    "cut_off": (2.0, 2.0),
    "loop": (3.0, 2.0),
    "bounce": (3.0, 2.0),
    "remap": (3.0, 2.0),
    "silence": (3.0, 3.0),
}
CASES = [
    pytest.param(mode, video, audio, expected, id=f"{mode}-{video}s-video-{audio}s-audio")
    for mode, lengths in EXPECTED_SECONDS.items()
    for (video, audio), expected in zip(((2, 3), (3, 2)), lengths, strict=True)
]
Rendered = dict[tuple[str, int, int], Path]


def ffmpeg(*arguments: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [ffmpeg_executable(), "-nostdin", "-v", "error", *arguments], capture_output=True, check=False
    )


@pytest.fixture
def api(emulator_factory: EmulatorFactory) -> Api:
    """An emulator whose predictions end as soon as their outputs exist (or fail)."""
    return Api(emulator_factory(queue_seconds=0.0, prediction_seconds=(0.0, 0.0)))


def upload_bytes(api: Api, tmp_path: Path, filename: str, content: bytes) -> str:
    path = tmp_path / filename
    path.write_bytes(content)
    return api.upload(path)


@pytest.fixture(scope="module")
def rendered(clips: Clips, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    """Every sync_mode with both length mismatches, submitted at once to one emulator and downloaded."""
    config = fast_emulator_config(data_dir=tmp_path_factory.mktemp("render-emulator"))
    with WaveSpeedEmulator(config) as emulator:
        api = Api(emulator)
        videos = {2: api.upload(clips.video_2s), 3: api.upload(clips.video_3s)}
        audios = {2: api.upload(clips.audio_2s), 3: api.upload(clips.audio_3s)}
        submitted = {
            (mode, video, audio): api.submit_ok({"video": videos[video], "audio": audios[audio], "sync_mode": mode})[
                "id"
            ]
            for mode in EXPECTED_SECONDS
            for video, audio in ((2, 3), (3, 2))
        }
        outputs_dir = tmp_path_factory.mktemp("rendered")
        outputs: Rendered = {}
        for (mode, video, audio), prediction_id in submitted.items():
            data = api.wait_for(prediction_id, timeout=60)
            assert data["status"] == "completed", data
            outputs[mode, video, audio] = path = outputs_dir / f"{mode}-{video}-{audio}.mp4"
            path.write_bytes(api.download(data["outputs"][0]))
        yield outputs


@pytest.mark.parametrize(("mode", "video_seconds", "audio_seconds", "expected_seconds"), CASES)
def test_output_is_a_playable_mp4_as_long_as_the_sync_mode_says(
    rendered: Rendered, mode: str, video_seconds: int, audio_seconds: int, expected_seconds: float
) -> None:
    output = rendered[mode, video_seconds, audio_seconds]

    assert output.read_bytes()[4:8] == b"ftyp"
    assert media_duration(output) == pytest.approx(expected_seconds, abs=TOLERANCE_SECONDS)
    decoded = ffmpeg("-i", str(output), "-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-")
    assert (decoded.returncode, decoded.stderr) == (0, b""), "both streams decode without a single error"


def gray_frames(path: Path, at: float | None = None) -> list[bytes]:
    """Every frame, or the one shown ``at`` seconds, as 64x48 grey pixels: enough to tell frames apart."""
    size = 64 * 48
    seek, count = ((), ()) if at is None else (("-ss", str(at)), ("-frames:v", "1"))
    scaled = ("-vf", "scale=64:48", "-f", "rawvideo", "-pix_fmt", "gray", "-")
    raw = ffmpeg(*seek, "-i", str(path), *count, *scaled).stdout
    return [raw[start : start + size] for start in range(0, len(raw), size)]


def source_seconds_of(output: Path, at: float, source: Path) -> float:
    """Which moment of ``source`` the output shows at ``at`` seconds: the closest-looking source frame."""
    [shown] = gray_frames(output, at)
    frames = gray_frames(source)
    closest = min(range(len(frames)), key=lambda i: sum(abs(a - b) for a, b in zip(frames[i], shown, strict=True)))
    return closest / FPS


@pytest.mark.parametrize(
    ("mode", "at", "shows"),
    [
        pytest.param("cut_off", 1.0, 1.0, id="cut_off-plays-as-is"),
        pytest.param("loop", 2.5, 0.5, id="loop-restarts"),
        pytest.param("bounce", 2.5, 1.46, id="bounce-plays-backward"),
        pytest.param("remap", 1.5, 1.0, id="remap-slows-down"),
        pytest.param("silence", 2.5, 1.96, id="silence-holds-the-last-frame"),
    ],
)
def test_the_picture_follows_the_sync_mode_when_the_audio_is_longer(
    rendered: Rendered, clips: Clips, mode: str, at: float, shows: float
) -> None:
    assert source_seconds_of(rendered[mode, 2, 3], at, clips.video_2s) == pytest.approx(shows, abs=2 / FPS)


def peak_sample(path: Path, start: float, seconds: float) -> int:
    raw = ffmpeg("-ss", str(start), "-t", str(seconds), "-i", str(path), "-f", "s16le", "-ac", "1", "-").stdout
    return max(abs(int.from_bytes(raw[i : i + 2], "little", signed=True)) for i in range(0, len(raw), 2))


def test_silence_pads_the_shorter_audio_with_silence(rendered: Rendered) -> None:
    output = rendered["silence", 3, 2]

    assert peak_sample(output, 0.5, 1.0) > 3000, "the tone plays"
    assert peak_sample(output, 2.2, 0.7) < 100, "then silence"


@pytest.mark.parametrize(
    ("field", "filename", "content", "problem"),
    [
        pytest.param("video", "garbage.mp4", b"not a video " * 100, "is not decodable media", id="garbage-video"),
        pytest.param("audio", "garbage.wav", b"not audio " * 100, "is not decodable media", id="garbage-audio"),
        pytest.param("video", "speech.wav", None, "has no video stream", id="audio-as-the-video"),
        pytest.param("audio", "silent.mp4", None, "has no audio stream", id="silent-video-as-the-audio"),
    ],
)
def test_an_uploaded_input_that_is_not_usable_media_fails_the_prediction(
    api: Api, clips: Clips, tmp_path: Path, field: str, filename: str, content: bytes | None, problem: str
) -> None:
    stand_in = {"video": clips.audio_2s, "audio": clips.video_2s}[field]
    bad_url = upload_bytes(api, tmp_path, filename, stand_in.read_bytes() if content is None else content)
    inputs = {"video": api.upload(clips.video_2s), "audio": api.upload(clips.audio_2s), field: bad_url}

    failed = api.wait_for(api.submit_ok(inputs)["id"])

    assert (failed["status"], failed["code"], failed["outputs"]) == ("failed", 1403, [])
    assert failed["error"].startswith(f"Task execution failed: the {field} input {problem}")
    assert failed["error"].endswith(f": {bad_url}")
    if content is not None:
        assert "Invalid data found when processing input" in failed["error"]
        assert str(tmp_path) not in failed["error"] and "/media/uploads/" in failed["error"]


def test_a_garbage_upload_fails_even_beside_a_url_the_emulator_cannot_fetch(api: Api, tmp_path: Path) -> None:
    video_url = upload_bytes(api, tmp_path, "garbage.mp4", b"\x00\x00\x00\x18ftypisom" + bytes(1000))

    failed = api.wait_for(api.submit_ok(lipsync_inputs(video=video_url))["id"])

    assert (failed["status"], failed["code"]) == ("failed", 1403)
    assert failed["error"].startswith("Task execution failed: the video input is not decodable media (")


def test_urls_the_emulator_cannot_fetch_still_get_the_deterministic_placeholder(api: Api) -> None:
    inputs = [lipsync_inputs(video="https://media.example/v.mp4", sync_mode=mode) for mode in SYNC_MODES]

    ids = [api.submit_ok(each)["id"] for each in inputs]

    for prediction_id, each in zip(ids, inputs, strict=True):
        output = api.download(api.wait_for(prediction_id, "completed")["outputs"][0])
        assert output[4:8] == b"ftyp"
        assert output.endswith(
            b"WaveSpeed emulator placeholder output for " + json.dumps(each, sort_keys=True).encode()
        )


def test_without_imageio_ffmpeg_outputs_fall_back_after_one_warning(
    emulator_factory: EmulatorFactory,
    clips: Clips,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=render.__name__)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # `import imageio_ffmpeg` now fails
    render.find_ffmpeg.cache_clear()
    try:
        api = Api(emulator_factory(queue_seconds=0.0, prediction_seconds=(0.0, 0.0)))
        audio = api.upload(clips.audio_3s)
        garbage = b"not a video " * 10
        results = [
            api.wait_for(api.submit_ok({"video": video, "audio": audio, "sync_mode": "loop"})["id"])
            for video in (api.upload(clips.video_2s), upload_bytes(api, tmp_path, "garbage.mp4", garbage))
        ]
        placeholder = api.wait_for(api.submit_ok()["id"])
    finally:
        render.find_ffmpeg.cache_clear()

    outputs = [api.download(data["outputs"][0]) for data in (*results, placeholder)]
    assert outputs[:2] == [clips.video_2s.read_bytes(), garbage], "the uploaded video, unchecked and unchanged"
    assert b"WaveSpeed emulator placeholder output" in outputs[2]
    [warning] = [record.getMessage() for record in caplog.records if record.name == render.__name__]
    assert "writes placeholders instead" in warning
    assert "pip install 'wavespeed-emulator[render]'" in warning


def test_completed_waits_for_a_render_that_outlasts_the_prediction_time(
    emulator_factory: EmulatorFactory, clips: Clips, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_render = Renderer.render

    async def slow_render(self: Renderer, *args: Any) -> None:
        await asyncio.sleep(0.5)
        await real_render(self, *args)

    monkeypatch.setattr(Renderer, "render", slow_render)
    api = Api(emulator_factory(queue_seconds=0.0, prediction_seconds=(0.0, 0.0)))
    inputs = {"video": api.upload(clips.video_3s), "audio": api.upload(clips.audio_2s), "sync_mode": "cut_off"}

    prediction_id = api.submit_ok(inputs)["id"]
    time.sleep(0.3)
    still_rendering = api.result(prediction_id)
    polled = api.wait_for(prediction_id, "completed")
    in_sync_mode = api.submit({**inputs, "enable_sync_mode": True}).json()["data"]

    assert (still_rendering["status"], still_rendering["outputs"]) == ("processing", [])
    for data in (polled, in_sync_mode):
        assert data["status"] == "completed"
        output = tmp_path / f"{data['id']}.mp4"
        output.write_bytes(api.download(data["outputs"][0]))
        assert media_duration(output) == pytest.approx(2.0, abs=TOLERANCE_SECONDS)


def test_at_most_two_ffmpeg_processes_run_at_once(
    emulator_factory: EmulatorFactory, clips: Clips, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = peak = 0
    real_run = render._run

    async def counted_run(*args: str) -> tuple[int, str]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.1)  # long enough for every submit to arrive first
            return await real_run(*args)
        finally:
            running -= 1

    monkeypatch.setattr(render, "_run", counted_run)
    api = Api(emulator_factory(queue_seconds=0.0, prediction_seconds=(0.0, 0.0)))
    video, audio = api.upload(clips.video_2s), api.upload(clips.audio_2s)

    ids = [api.submit_ok({"video": video, "audio": audio, "sync_mode": mode})["id"] for mode in SYNC_MODES[:3]]

    assert [api.wait_for(prediction_id)["status"] for prediction_id in ids] == ["completed"] * 3
    assert peak == RENDER_CONCURRENCY == 2
