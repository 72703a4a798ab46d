"""``example_lipsync`` as it is, against the real WaveSpeed API: one paid prediction.

The media are generated clips (a moving test pattern and a tone) unless
``WAVESPEED_SYSTEM_TEST_VIDEO`` and ``WAVESPEED_SYSTEM_TEST_AUDIO`` name others (a path, an
object-storage URI or a public URL). WaveSpeed does not document whether Sync Lipsync accepts a
video without a face; if it refuses the test pattern, the failure carries WaveSpeed's code and
message, and a video with a face in those variables is the way round it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devstack.clips import make_audio, make_video, media_duration
from tests.integration.dag_runs import run_example, xcom

pytestmark = [pytest.mark.system, pytest.mark.usefixtures("airflow_db", "wavespeed_default")]

VIDEO_SECONDS = 3.0
AUDIO_SECONDS = 4.0


def test_example_lipsync_against_wavespeed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WAVESPEED_EXAMPLE_MEDIA", str(tmp_path))
    video = os.environ.get("WAVESPEED_SYSTEM_TEST_VIDEO") or str(make_video(tmp_path / "interview.mp4", VIDEO_SECONDS))
    audio = os.environ.get("WAVESPEED_SYSTEM_TEST_AUDIO") or str(
        make_audio(tmp_path / "interview.fr.wav", AUDIO_SECONDS)
    )
    output_dir = tmp_path / "lipsynced"

    dag_run = run_example(
        "example_lipsync",
        {"video": video, "audio": audio, "sync_mode": "cut_off", "output_path": f"{output_dir}/"},
    )

    result = xcom(dag_run, "lipsync")
    assert str(dag_run.state) == "success", f"the run failed; its lipsync result was {result!r}"
    assert result["status"] == "completed"
    assert result["request_id"]
    assert result["outputs"], "a completed prediction names its outputs"
    (stored,) = result["stored_outputs"]
    assert Path(stored).parent == output_dir
    assert Path(stored).stat().st_size > 0
    if "WAVESPEED_SYSTEM_TEST_VIDEO" not in os.environ and "WAVESPEED_SYSTEM_TEST_AUDIO" not in os.environ:
        # cut_off: the output is as long as the shorter input.
        assert media_duration(stored) == pytest.approx(min(VIDEO_SECONDS, AUDIO_SECONDS), abs=0.5)
