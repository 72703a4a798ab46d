from __future__ import annotations

import pytest

from devstack.clips import make_audio, make_video
from tests.emulator.helpers import Api, Clips
from wavespeed_emulator import WaveSpeedEmulator


@pytest.fixture
def api(emulator: WaveSpeedEmulator) -> Api:
    return Api(emulator)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    directory = tmp_path_factory.mktemp("clips")
    return Clips(
        video_2s=make_video(directory / "video-2s.mp4", 2),
        video_3s=make_video(directory / "video-3s.mp4", 3),
        audio_2s=make_audio(directory / "audio-2s.wav", 2),
        audio_3s=make_audio(directory / "audio-3s.wav", 3),
    )
