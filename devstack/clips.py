"""Test and demo media, generated at run time so that no binary media is committed.

`make_video` writes a moving test pattern and `make_audio` a tone, with the ffmpeg binary of the
``imageio-ffmpeg`` wheel (the ``emulator`` and ``dev`` extras; nothing is downloaded).
`media_duration` reads a file's length from its container header in pure Python, like
``ffprobe -show_entries format=duration`` would (imageio-ffmpeg ships no ffprobe): the ``mvhd``
box of an MP4/MOV, the header of a WAV.

It is deliberately not the emulator's probe (which asks ffmpeg, for any format WaveSpeed
accepts): tests check the emulator's outputs with it, so it shares no code with what it checks.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path
from typing import BinaryIO

from wavespeed_emulator.render import ffmpeg_executable

_BOX_HEADER = struct.Struct(">I4s")
_CHUNK_HEADER = struct.Struct("<4sI")
_UNKNOWN_32 = 0xFFFFFFFF
_TONE = "0.4*sin(2*PI*220*t)*(0.55+0.45*sin(2*PI*3*t))"
"""A 220 Hz tone whose loudness rises and falls three times a second, like syllables."""


def make_video(path: Path | str, seconds: float, *, width: int = 320, height: int = 240, fps: int = 25) -> Path:
    """Write an H.264 (yuv420p, ``+faststart``) MP4 of ffmpeg's moving ``testsrc2`` pattern, without sound."""
    return _ffmpeg(
        path,
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
    )  # fmt: skip


def make_audio(path: Path | str, seconds: float) -> Path:
    """Write a mono 44.1 kHz tone: 16-bit PCM for a ``.wav`` path, else AAC in MP4 (``.m4a``)."""
    codec = ("-c:a", "pcm_s16le") if Path(path).suffix.lower() == ".wav" else ("-c:a", "aac", "-f", "mp4")
    return _ffmpeg(path, "-f", "lavfi", "-i", f"aevalsrc={_TONE}:s=44100:d={seconds}", *codec)


def media_duration(path: Path | str) -> float:
    """The length in seconds of an MP4/MOV (its ``mvhd`` box) or a WAV file (its header).

    Raises ValueError for any other file, or one whose header does not say its length.
    """
    with Path(path).open("rb") as file:
        head = file.read(12)
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return _wav_seconds(file, path)
        if head[4:8] == b"ftyp":
            return _mp4_seconds(file, path)
    raise ValueError(f"{path}: neither an MP4 (ISO BMFF with ftyp) nor a WAV file")


def _ffmpeg(path: Path | str, *arguments: str) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [ffmpeg_executable(), "-nostdin", "-loglevel", "error", "-y", *arguments, str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not write {target}: {result.stderr.strip()}")
    return target


def _boxes(file: BinaryIO, start: int, end: int) -> dict[bytes, tuple[int, int]]:
    """The ISO BMFF boxes between ``start`` and ``end``: type -> (payload start, payload end), first of each."""
    found: dict[bytes, tuple[int, int]] = {}
    position = start
    while position + _BOX_HEADER.size <= end:
        file.seek(position)
        size, box_type = _BOX_HEADER.unpack(file.read(_BOX_HEADER.size))
        header = _BOX_HEADER.size
        if size == 1:  # a 64-bit size follows the type
            (size,) = struct.unpack(">Q", file.read(8))
            header += 8
        elif size == 0:  # the box runs to the end of its parent
            size = end - position
        if size < header:
            raise ValueError(f"corrupt box {box_type!r} at offset {position}")
        found.setdefault(box_type, (position + header, min(position + size, end)))
        position += size
    return found


def _mp4_seconds(file: BinaryIO, path: Path | str) -> float:
    end = file.seek(0, 2)
    moov = _boxes(file, 0, end).get(b"moov")
    mvhd = None if moov is None else _boxes(file, *moov).get(b"mvhd")
    if mvhd is None:
        raise ValueError(f"{path}: no moov/mvhd box, so no length")
    file.seek(mvhd[0])
    version = file.read(4)[0]
    if version == 1:
        timescale, duration = struct.unpack(">16xIQ", file.read(28))
    else:
        timescale, duration = struct.unpack(">8xII", file.read(16))
    if timescale == 0 or duration in (_UNKNOWN_32, 2**64 - 1):
        raise ValueError(f"{path}: the mvhd box does not give a length")
    return float(duration / timescale)


def _wav_seconds(file: BinaryIO, path: Path | str) -> float:
    end = file.seek(0, 2)
    position = 12
    byte_rate = 0
    while position + _CHUNK_HEADER.size <= end:
        file.seek(position)
        chunk_id, size = _CHUNK_HEADER.unpack(file.read(_CHUNK_HEADER.size))
        payload = position + _CHUNK_HEADER.size
        if chunk_id == b"fmt ":
            (byte_rate,) = struct.unpack("<8xI", file.read(12))
        elif chunk_id == b"data":
            if byte_rate == 0:
                raise ValueError(f"{path}: no fmt chunk before the data")
            # A WAV written to a pipe leaves the size unknown: the data then runs to the end.
            data_bytes = end - payload if size == _UNKNOWN_32 else min(size, end - payload)
            return data_bytes / byte_rate
        position = payload + size + (size & 1)
    raise ValueError(f"{path}: no data chunk, so no length")
