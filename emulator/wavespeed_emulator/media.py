"""Files the emulator stores and serves: uploads and prediction outputs.

Everything under ``<data dir>/media`` is served at ``<base>/media/...`` without auth, like a CDN.
Uploads arrive as streams and are written to disk chunk by chunk (a 1 GiB upload never sits in
memory), first under ``<data dir>/incoming`` and then moved into place, so a half-written file is
never served. Output files are produced by `render_output`, the one place that decides what an
output is: a real render (see `render`), a copy of the input video, or a placeholder.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import mimetypes
import re
import secrets
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from wavespeed_emulator.catalog import OutputKind
from wavespeed_emulator.render import Renderer, StreamKind, plan_lipsync

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Mapping

CHUNK_BYTES = 256 * 1024
MEDIA_PREFIX = "/media/"
STORAGE_PUT_PREFIX = "/_storage/put/"

_EXTENSION_TYPES = {
    **dict.fromkeys((".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"), "image"),
    **dict.fromkeys((".mp4", ".avi", ".mov", ".wmv", ".flv", ".mkv", ".3gp", ".ogv"), "video"),
    **dict.fromkeys((".mp3", ".wav", ".ogg", ".aac", ".flac", ".m4a", ".opus"), "audio"),
}
"""The formats WaveSpeed's upload page lists; ``.webm`` (video or audio) is decided by content type."""

_OUTPUT_NAMES = {OutputKind.VIDEO: "output.mp4", OutputKind.IMAGE: "output.png"}
_LIPSYNC_STREAMS: dict[str, StreamKind] = {"video": "video", "audio": "audio"}
"""The lipsync inputs and the stream each must have."""


class UploadSizeMismatchError(Exception):
    """The uploaded body is not the size the upload ticket declared."""


class InvalidTicketError(Exception):
    """A storage PUT names no open upload ticket: unknown, already used, or wrongly signed."""


def media_type(filename: str, content_type: str | None) -> str | None:
    """``image``, ``video`` or ``audio`` from the extension, else the content type; None if neither says."""
    by_extension = _EXTENSION_TYPES.get(Path(filename).suffix.lower())
    if by_extension is not None:
        return by_extension
    major = (content_type or mimetypes.guess_type(filename)[0] or "").partition("/")[0]
    return major if major in ("image", "video", "audio") else None


def safe_filename(name: str) -> str:
    """The file's base name reduced to characters that are safe in a path and a URL."""
    base = re.split(r"[\\/]", name)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")[-200:]
    return cleaned or "upload"


@dataclass(frozen=True)
class StoredFile:
    """An uploaded file and where it is served."""

    url_path: str
    filename: str
    size: int
    media_type: str

    def describe(self, base_url: str) -> dict[str, Any]:
        """The upload endpoints' ``data`` object."""
        return {
            "type": self.media_type,
            "download_url": base_url + self.url_path,
            "filename": self.filename,
            "size": self.size,
        }


@dataclass(frozen=True)
class UploadTicket:
    """A promise to accept one PUT of ``size`` bytes, as a presigned storage URL grants."""

    key: str
    filename: str
    size: int
    content_type: str
    media_type: str

    def stored_file(self) -> StoredFile:
        """The file this ticket's PUT will create."""
        return StoredFile(
            MediaStore.upload_url_path(self.key, self.filename), self.filename, self.size, self.media_type
        )


class MediaStore:
    """Uploads, outputs and the presigned-style PUT URLs of the two-step upload."""

    def __init__(self, data_dir: Path) -> None:
        self.media_root = data_dir / "media"
        self._uploads = self.media_root / "uploads"
        self._outputs = self.media_root / "outputs"
        self._incoming = data_dir / "incoming"
        for directory in (self._uploads, self._outputs, self._incoming):
            directory.mkdir(parents=True, exist_ok=True)
        self._signing_key = secrets.token_bytes(32)
        self._tickets: dict[str, UploadTicket] = {}
        self.renderer = Renderer()

    @staticmethod
    def upload_url_path(key: str, filename: str) -> str:
        return f"{MEDIA_PREFIX}uploads/{key}/{filename}"

    @staticmethod
    def output_url_path(prediction_id: str, name: str) -> str:
        return f"{MEDIA_PREFIX}outputs/{prediction_id}/{name}"

    async def store_upload(self, filename: str, media_type: str, chunks: AsyncIterable[bytes]) -> StoredFile:
        """Stream a one-step (multipart) upload to disk and serve it."""
        return await self._save(_new_key(), filename, media_type, chunks, expected_size=None)

    async def _save(
        self,
        key: str,
        filename: str,
        media_type: str,
        chunks: AsyncIterable[bytes],
        expected_size: int | None,
    ) -> StoredFile:
        """Stream ``chunks`` to disk and serve them; raise `UploadSizeMismatchError` on a wrong size.

        Writes go straight from the event loop: a 256 KiB write to the page cache takes far less
        than a thread hand-off would add per chunk.
        """
        partial = self._incoming / f"{key}-{secrets.token_hex(4)}.part"
        size = 0
        try:
            with partial.open("wb") as file:
                async for chunk in chunks:
                    size += len(chunk)
                    if expected_size is not None and size > expected_size:
                        raise UploadSizeMismatchError(f"Body is larger than the declared {expected_size} bytes")
                    file.write(chunk)
            if expected_size is not None and size != expected_size:
                raise UploadSizeMismatchError(f"Body has {size} bytes, the upload declared {expected_size}")
            target = self._uploads / key / filename
            target.parent.mkdir(exist_ok=True)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return StoredFile(self.upload_url_path(key, filename), filename, size, media_type)

    def create_ticket(self, filename: str, size: int, content_type: str, media_type: str) -> UploadTicket:
        ticket = UploadTicket(_new_key(), filename, size, content_type, media_type)
        self._tickets[ticket.key] = ticket
        return ticket

    def put_url_path(self, key: str) -> str:
        """The presigned-style storage URL path of a ticket: the signature is its only credential."""
        return f"{STORAGE_PUT_PREFIX}{key}?signature={self._signature(key)}"

    async def fulfil_ticket(
        self, key: str, signature: str, declared_length: int | None, chunks: AsyncIterable[bytes]
    ) -> StoredFile:
        """Store the body of one storage PUT against its ticket, which is then used up.

        Raises `InvalidTicketError`, or `UploadSizeMismatchError` when the body (or its declared
        Content-Length) differs from the ticket's size; after a failed PUT the ticket stays open so
        the client can retry, as a presigned URL would allow.
        """
        ticket = self._tickets.pop(key, None) if hmac.compare_digest(signature, self._signature(key)) else None
        if ticket is None:
            raise InvalidTicketError(key)
        try:
            if declared_length is not None and declared_length != ticket.size:
                raise UploadSizeMismatchError(
                    f"Content-Length {declared_length} differs from the declared size of {ticket.size} bytes"
                )
            return await self._save(key, ticket.filename, ticket.media_type, chunks, expected_size=ticket.size)
        except BaseException:
            self._tickets[key] = ticket
            raise

    def _signature(self, key: str) -> str:
        return hmac.new(self._signing_key, key.encode(), hashlib.sha256).hexdigest()

    def local_file(self, url: str, base_url: str) -> Path | None:
        """The path behind ``url`` when it is one of the emulator's own media URLs, existing or not."""
        parts, base = urlsplit(url), urlsplit(base_url)
        prefix = base.path.rstrip("/") + MEDIA_PREFIX
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc) or not parts.path.startswith(prefix):
            return None
        root = self.media_root.resolve()
        path = (root / unquote(parts.path.removeprefix(prefix))).resolve()
        return path if path.is_relative_to(root) else None

    async def write_output(
        self,
        prediction_id: str,
        kind: OutputKind,
        inputs: Mapping[str, Any],
        local_inputs: Mapping[str, Path],
    ) -> str:
        """Produce a prediction's output file off the event loop and return its name.

        Raises `UnrenderableInputError` when an input of the emulator's own is not usable media.
        """
        name = _OUTPUT_NAMES[kind]
        target = self._outputs / prediction_id / name
        await render_output(kind, inputs, local_inputs, target, self.renderer)
        return name

    async def read_base64(self, prediction_id: str, name: str) -> str:
        """An output file as naked base64, what ``enable_base64_output`` returns instead of a URL."""
        path = self._outputs / prediction_id / name
        return await asyncio.to_thread(lambda: base64.b64encode(path.read_bytes()).decode("ascii"))

    def remove_outputs(self, prediction_id: str) -> None:
        shutil.rmtree(self._outputs / prediction_id, ignore_errors=True)

    def expire_uploads(self) -> int:
        """Delete every uploaded file; their URLs then answer 404. Returns how many there were."""
        expired = sum(1 for path in self._uploads.rglob("*") if path.is_file())
        shutil.rmtree(self._uploads, ignore_errors=True)
        self._uploads.mkdir(exist_ok=True)
        return expired

    def clear_outputs(self) -> None:
        shutil.rmtree(self._outputs, ignore_errors=True)
        self._outputs.mkdir(exist_ok=True)


def _new_key() -> str:
    return secrets.token_hex(16)


async def render_output(
    kind: OutputKind,
    inputs: Mapping[str, Any],
    local_inputs: Mapping[str, Path],
    target: Path,
    renderer: Renderer,
) -> None:
    """Write a prediction's output file to ``target``, never blocking the event loop.

    ``local_inputs`` maps the input fields that name the emulator's own files to their paths; the
    emulator has no network, so those are the only inputs it can read. An image output is a tiny
    valid PNG whose colour comes from the prompt. A lipsync output is:

    - when ffmpeg is there (the ``render`` extra) and both ``video`` and ``audio`` are the
      emulator's own files: a real MP4 of the video re-timed to the audio under ``sync_mode``
      (see `render`);
    - when an input is a URL the emulator cannot fetch, or ffmpeg is missing (logged once): a copy
      of the input video when it is the emulator's own file (a streamed copy, so size does not
      matter), otherwise a small deterministic placeholder, MP4-shaped but without frames.

    With ffmpeg, every input of the emulator's own is decoded first, whichever output follows:
    one that is not decodable media, or lacks its stream, raises `UnrenderableInputError`, and the
    prediction fails as the real API fails on such an input.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if kind is OutputKind.IMAGE:
        await asyncio.to_thread(target.write_bytes, _png_from_prompt(str(inputs.get("prompt", ""))))
        return
    ffmpeg = await renderer.ffmpeg()
    if ffmpeg is not None:
        seconds = {
            field: await renderer.length(ffmpeg, field, local_inputs[field], stream)
            for field, stream in _LIPSYNC_STREAMS.items()
            if field in local_inputs
        }
        if seconds.keys() == _LIPSYNC_STREAMS.keys():
            plan = plan_lipsync(
                local_inputs["video"],
                seconds["video"],
                local_inputs["audio"],
                seconds["audio"],
                str(inputs.get("sync_mode", "cut_off")),
            )
            await renderer.render(ffmpeg, plan, target)
            return
    if "video" in local_inputs:
        await asyncio.to_thread(shutil.copyfile, local_inputs["video"], target)
    else:
        await asyncio.to_thread(target.write_bytes, _placeholder_mp4(inputs))


def _placeholder_mp4(inputs: Mapping[str, Any]) -> bytes:
    """An ISO-BMFF ``ftyp`` box followed by a ``free`` box naming the inputs: MP4-shaped, no frames."""
    brands = b"isom" + struct.pack(">I", 0x200) + b"isom" + b"mp41"
    note = b"WaveSpeed emulator placeholder output for " + json.dumps(inputs, sort_keys=True).encode()
    return _box(b"ftyp", brands) + _box(b"free", note)


def _png_from_prompt(prompt: str) -> bytes:
    """An 8x8 single-colour RGB PNG, the colour taken from the prompt's hash."""
    red, green, blue = hashlib.sha256(prompt.encode()).digest()[:3]
    width = height = 8
    row = b"\x00" + bytes((red, green, blue)) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(row * height))
        + _png_chunk(b"IEND", b"")
    )


def _box(box_type: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + box_type + payload


def _png_chunk(chunk_type: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(chunk_type + payload)
    return struct.pack(">I", len(payload)) + chunk_type + payload + struct.pack(">I", crc)
