"""`devstack.clips`: the generated test media and the pure-Python length reader the render tests rely on."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from devstack.clips import make_audio, make_video, media_duration


def box(box_type: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + box_type + payload


def test_generated_clips_last_as_long_as_asked(tmp_path: Path) -> None:
    video = make_video(tmp_path / "nested" / "clip.mp4", 1.2, width=160, height=120, fps=10)
    wav = make_audio(tmp_path / "tone.wav", 1.25)
    m4a = make_audio(tmp_path / "tone.m4a", 1.25)

    assert video.read_bytes()[4:8] == b"ftyp"
    assert wav.read_bytes()[:4] == b"RIFF"
    assert media_duration(video) == pytest.approx(1.2, abs=0.01)
    assert media_duration(wav) == pytest.approx(1.25, abs=0.001)
    assert media_duration(str(m4a)) == pytest.approx(1.25, abs=0.03)


def test_media_duration_reads_a_version_1_mvhd_behind_a_64_bit_box_size(tmp_path: Path) -> None:
    mvhd = box(b"mvhd", bytes([1, 0, 0, 0]) + bytes(16) + struct.pack(">IQ", 600, 4500) + bytes(80))
    moov_payload = mvhd
    moov = struct.pack(">I4sQ", 1, b"moov", 16 + len(moov_payload)) + moov_payload
    path = tmp_path / "v1.mov"
    path.write_bytes(box(b"ftyp", b"qt  \x00\x00\x00\x00qt  ") + box(b"free", b"") + moov)

    assert media_duration(path) == 7.5


def test_media_duration_reads_a_wav_of_unknown_data_size_to_the_end_of_the_file(tmp_path: Path) -> None:
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    data = bytes(16000 * 3)
    path = tmp_path / "piped.wav"
    path.write_bytes(
        b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"LIST" + struct.pack("<I", 3) + b"abc\x00"
        + b"data" + struct.pack("<I", 0xFFFFFFFF) + data
    )  # fmt: skip

    assert media_duration(path) == 3.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not media at all", "neither an MP4"),
        (box(b"ftyp", b"isom\x00\x00\x02\x00") + box(b"free", b"placeholder"), "no moov/mvhd box"),
        (b"RIFF\x04\x00\x00\x00WAVE", "no data chunk"),
    ],
)
def test_media_duration_refuses_files_without_a_length(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "file"
    path.write_bytes(content)

    with pytest.raises(ValueError, match=message):
        media_duration(path)
