"""What a media file holds: its content hash, and whether it is the kind of media its field needs.

Both are read in one streamed pass before anything is uploaded or paid for. The hash is the
file's identity for the upload cache and for the inputs fingerprint of a stored output (a
re-upload gets a new URL, the same bytes keep their hash). The container check sniffs the magic
bytes of the first few KiB, so an audio file passed as ``video``, or a text file as ``audio``,
fails at once instead of after WaveSpeed charged for a prediction that cannot work.

WaveSpeed does not document which containers Sync Lipsync accepts; the lists below are the
common video and audio containers ffmpeg reads (inferred). An http(s) input is never read here:
WaveSpeed fetches it, and it is identified by its URL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_wavespeed.media import open_media

if TYPE_CHECKING:
    from airflow_provider_wavespeed.media import MediaSource

_HEAD_BYTES = 4096
_CHUNK_BYTES = 1024 * 1024

_AUDIO_ONLY_MP4_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "})
# QuickTime files written before the ftyp box existed start with one of these atoms instead.
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


def sniff_container(head: bytes) -> str | None:
    """The container format the first bytes of a file announce, or None if none is recognised."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "m4a" if head[8:12] in _AUDIO_ONLY_MP4_BRANDS else "mp4"
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"  # .mkv and .webm, video or audio
    if head.startswith((b"RIFF", b"RF64")) and len(head) >= 12:
        return {b"AVI ": "avi", b"WAVE": "wav", b"WEBP": "webp"}.get(head[8:12])
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "asf"  # .wmv and .wma
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg-ps"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "mpeg-ts"
    if head.startswith(b"\x06\x0e\x2b\x34"):
        return "mxf"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3/aac"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head.startswith(b"#!AMR"):
        return "amr"
    if head.startswith(b"caff"):
        return "caf"
    for magic, name in _OTHER_FORMATS:
        if head.startswith(magic):
            return name
    return None


_OTHER_FORMATS = (
    (b"\x89PNG", "png image"),
    (b"\xff\xd8\xff", "jpeg image"),
    (b"GIF8", "gif image"),
    (b"%PDF", "pdf document"),
    (b"PK\x03\x04", "zip archive"),
)

_VIDEO_CONTAINERS = frozenset({"mp4", "mov", "matroska", "avi", "flv", "asf", "ogg", "mpeg-ps", "mpeg-ts", "mxf"})
# A video container may carry the audio track (the model reads the audio stream of any container).
_AUDIO_CONTAINERS = frozenset({"wav", "mp3/aac", "flac", "ogg", "m4a", "aiff", "amr", "caf"} | _VIDEO_CONTAINERS)
_IMAGE_CONTAINERS = frozenset({"png image", "jpeg image", "gif image", "webp"})

ACCEPTED_CONTAINERS = {"video": _VIDEO_CONTAINERS, "audio": _AUDIO_CONTAINERS, "image": _IMAGE_CONTAINERS}
"""The containers each kind of media input accepts; an input named otherwise is not sniffed."""

_EXAMPLES = {"video": "MP4, MOV, WebM/MKV, AVI", "audio": "WAV, MP3, AAC, FLAC, OGG, M4A", "image": "PNG, JPEG, WebP"}


@dataclass(frozen=True)
class MediaContent:
    """A media file's identity: the sha256 and size of its bytes, and where it was read from."""

    sha256: str
    size: int
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "source": self.source}


def read_media_content(source: MediaSource, *, field: str) -> MediaContent:
    """Hash ``source`` in one streamed pass; raise a ValueError naming ``field`` if it cannot be that media.

    :raises ValueError: the file is empty, or its first bytes are not a container ``field`` accepts
        (only for the fields of :data:`ACCEPTED_CONTAINERS`).
    """
    shown = str(source)
    digest = hashlib.sha256()
    size = 0
    with open_media(source, field=field) as media:
        head = media.stream.read(_HEAD_BYTES)
        if not head:
            raise ValueError(f"{field}: {shown!r} is empty (0 bytes); pass the media file itself")
        _check_container(field, shown, head)
        digest.update(head)
        size = len(head)
        while chunk := media.stream.read(_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return MediaContent(sha256=digest.hexdigest(), size=size, source=shown)


def _check_container(field: str, shown: str, head: bytes) -> None:
    accepted = ACCEPTED_CONTAINERS.get(field)
    if accepted is None:
        return
    found = sniff_container(head)
    if found in accepted:
        return
    if found is None:
        found = "text" if _looks_like_text(head) else "no known media container"
    raise ValueError(
        f"{field}: {shown!r} holds {found}, not {field} (its first bytes announce no {field} container such as "
        f"{_EXAMPLES[field]}); pass {'an' if field[0] in 'aeiou' else 'a'} {field} file. Nothing was uploaded or "
        "submitted."
    )


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(character.isprintable() or character in "\r\n\t" for character in text)
