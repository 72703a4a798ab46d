"""Where media comes from and goes to: local paths, ``file://``, object storage, file objects.

The hook streams every byte through here, so nothing ever holds a whole video in memory. Object
storage (``s3://``, ``gs://``, ...) goes through Airflow's ``ObjectStoragePath``, imported only
when such a URI is actually used: DAG parsing must not pay for fsspec.
"""

from __future__ import annotations

import mimetypes
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from airflow_provider_wavespeed.exceptions import WaveSpeedConnectionError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from airflow.providers.common.compat.sdk import ObjectStoragePath


@runtime_checkable
class _StoragePathLike(Protocol):
    """What the provider needs of an ``ObjectStoragePath`` (Airflow 2's and 3's differ in class)."""

    @property
    def name(self) -> str: ...
    def open(self, mode: str = ...) -> Any: ...
    def stat(self) -> Any: ...


MediaSource = str | os.PathLike[str] | IO[bytes] | _StoragePathLike
"""A local path, a ``file://`` or object-storage URI, an ``ObjectStoragePath``, or a binary file object."""

MediaDestination = str | os.PathLike[str] | _StoragePathLike
"""A local path, a ``file://`` or object-storage URI, or an ``ObjectStoragePath``."""

HTTP_SCHEMES = frozenset({"http", "https"})


@dataclass(frozen=True)
class OpenedMedia:
    """A readable media stream with what an upload needs to announce it."""

    stream: BinaryIO
    filename: str
    size: int | None
    """Bytes left to read, or None for a stream that cannot tell (a pipe)."""


def url_scheme(value: str) -> str:
    """The URI scheme of ``value`` in lower case, or "" for a plain path (``C:\\x`` included)."""
    scheme = urlsplit(value).scheme.lower()
    return scheme if len(scheme) > 1 else ""


def is_http_url(value: object) -> bool:
    """True for an http(s) URL, which WaveSpeed fetches itself and is therefore never uploaded."""
    return isinstance(value, str) and url_scheme(value) in HTTP_SCHEMES


def path_text(value: object) -> str | None:
    """``value`` as a path or URI string if it is given as one: a str or a local ``os.PathLike``.

    None for an ``ObjectStoragePath``, which is used whole so that its connection and storage
    options are kept, and for a file object. With universal-pathlib < 0.3 (Airflow 2.11 and 3.0) an
    ObjectStoragePath is an ``os.PathLike`` too; its ``protocol`` tells it apart from a local path.
    """
    if isinstance(value, str) or (isinstance(value, os.PathLike) and not hasattr(value, "protocol")):
        return os.fspath(value)
    return None


def local_path_of(value: str) -> Path | None:
    """The local path a plain path or ``file://`` URI names; None for any other scheme."""
    scheme = url_scheme(value)
    if scheme == "file":
        return Path(unquote(urlsplit(value).path))
    return Path(value).expanduser() if not scheme else None


def check_readable_file(path: Path, *, field: str) -> None:
    """Raise a ValueError naming ``field`` unless ``path`` is an existing, readable regular file."""
    if not path.exists():
        raise ValueError(f"{field}: local file {str(path)!r} does not exist; pass an existing file or a URL")
    if not path.is_file():
        raise ValueError(f"{field}: {str(path)!r} is not a regular file (a directory?); pass a media file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{field}: local file {str(path)!r} is not readable by this process; fix its mode")


def check_storage_file(path: str | _StoragePathLike, *, field: str) -> None:
    """Raise a ValueError naming ``field`` unless ``path`` is a file in object storage Airflow can read.

    Checked before anything is uploaded, so that an ``s3://`` input without the Amazon provider, or
    a missing object, fails the task before another input was uploaded.
    """
    shown = path if isinstance(path, str) else str(path)
    try:
        storage = object_storage_path(path) if isinstance(path, str) else path
        storage.stat()  # what an upload reads first: it needs the filesystem, which is_file() may not
        is_file = getattr(storage, "is_file", None)
        exists = bool(is_file()) if callable(is_file) else True
    except (ImportError, ValueError) as error:  # no filesystem for the scheme, or it is not installed
        raise ValueError(
            f"{field}={shown!r} uses '{url_scheme(shown)}://', which this Airflow cannot read ({error}); "
            "install the Airflow provider for that storage (e.g. apache-airflow-providers-amazon for s3://, "
            "apache-airflow-providers-google for gs://), or pass an http(s) URL or a local path"
        ) from None
    except FileNotFoundError:
        exists = False
    if not exists:
        raise ValueError(
            f"{field}: {shown!r} is not a file in object storage (missing, or a directory); pass an existing media file"
        )


@contextmanager
def open_media(source: MediaSource, *, field: str = "source") -> Iterator[OpenedMedia]:
    """Open ``source`` for a streamed read; a file object the caller passed is left open.

    :param field: the argument's name, for error messages.
    :raises ValueError: an http(s) URL (nothing to upload), a missing or unreadable file.
    """
    text = path_text(source)
    if text is not None:
        if is_http_url(text):
            raise ValueError(
                f"{field}: {text!r} is already a URL that WaveSpeed can fetch; pass it as an input "
                "instead of uploading it"
            )
        local = local_path_of(text)
        if local is None:
            with _open_storage_path(object_storage_path(text)) as opened:
                yield opened
            return
        check_readable_file(local, field=field)
        with local.open("rb") as stream:
            yield OpenedMedia(stream=stream, filename=local.name, size=local.stat().st_size)
        return
    if isinstance(source, _StoragePathLike) and not hasattr(source, "read"):
        with _open_storage_path(source) as opened:
            yield opened
        return
    yield OpenedMedia(
        stream=source,  # type: ignore[arg-type]
        filename=os.path.basename(str(getattr(source, "name", "") or "")) or "upload",
        size=_remaining_size(source),  # type: ignore[arg-type]
    )


@contextmanager
def atomic_destination(destination: MediaDestination, filename: str) -> Iterator[tuple[BinaryIO, str]]:
    """Yield a writable stream and the final location; the file appears there only when complete.

    Bytes go to a hidden ``.part`` sibling first, renamed into place after the block exits without
    an error and deleted otherwise, so a failed or interrupted transfer never leaves a partial output
    that a downstream task could mistake for a result.

    :param destination: a directory (existing, or written with a trailing ``/``) to put ``filename``
        in, or the full target path; local, ``file://`` or object storage.
    """
    text = path_text(destination)
    local = local_path_of(text) if text is not None else None
    if local is not None:
        assert text is not None
        target = local / filename if text.endswith(("/", os.sep)) or local.is_dir() else local
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            with partial.open("wb") as stream:
                yield stream, str(target)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return
    storage = object_storage_path(text) if text is not None else destination
    assert isinstance(storage, _StoragePathLike)
    remote_target: Any = storage
    if (text or str(storage)).endswith("/") or _is_storage_dir(storage):
        remote_target = storage / filename  # type: ignore[operator]
    remote_partial = remote_target.with_name(f".{remote_target.name}.{uuid.uuid4().hex}.part")
    try:
        with remote_partial.open("wb") as stream:
            yield stream, str(remote_target)
        remote_partial.rename(remote_target)
    finally:
        if remote_partial.exists():
            remote_partial.unlink()


TRANSFER_CHUNK_BYTES = 1024 * 1024
"""What an upload or a download moves per read and write: large blocks keep a 1 GiB file near wire speed."""


class LargeBlockReader:
    """A file wrapper that hands ``http.client`` :data:`TRANSFER_CHUNK_BYTES` per read, not its 8 KiB.

    Fewer, larger writes move a large upload at loopback speed; ``__len__`` keeps requests from
    switching to chunked encoding, which presigned PUTs reject.
    """

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        self._size = size

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(max(size, TRANSFER_CHUNK_BYTES) if size >= 0 else -1)


def multipart_form(media: OpenedMedia) -> tuple[str, Iterator[bytes]]:
    """The Content-Type and streamed body of a ``multipart/form-data`` upload of ``media`` as ``file``.

    The body is a generator, sent chunked: a stream of unknown length can be read only once.
    """
    boundary = uuid.uuid4().hex
    content_type = mimetypes.guess_type(media.filename)[0] or "application/octet-stream"
    filename = media.filename.replace('"', "")

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        while chunk := media.stream.read(TRANSFER_CHUNK_BYTES):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    return f"multipart/form-data; boundary={boundary}", body()


def save_stream(
    chunks: Iterable[bytes],
    destination: MediaDestination,
    filename: str,
    *,
    expected_size: int | None,
    source: str,
) -> str:
    """Write ``chunks`` to ``destination`` through :func:`atomic_destination`; return where the file is.

    :param expected_size: the announced length; a transfer that ends short of it leaves no file and
        raises a :class:`WaveSpeedConnectionError`, which a retry repeats from the start.
    :param source: the URL the bytes come from, for the error.
    """
    with atomic_destination(destination, filename) as (target, location):
        written = 0
        for chunk in chunks:
            target.write(chunk)
            written += len(chunk)
        if expected_size is not None and written != expected_size:
            raise WaveSpeedConnectionError(
                f"Download of {source} was cut short: {written} of {expected_size} bytes",
                request_sent=True,
                url=source,
            )
    return location


def object_storage_path(uri: str) -> ObjectStoragePath:
    """Airflow's ObjectStoragePath for ``uri``; ``scheme://conn_id@bucket/key`` selects a connection."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    return ObjectStoragePath(uri)


@contextmanager
def _open_storage_path(path: _StoragePathLike) -> Iterator[OpenedMedia]:
    size = int(path.stat().st_size)
    with path.open("rb") as stream:
        yield OpenedMedia(stream=stream, filename=path.name or "upload", size=size)


def _is_storage_dir(path: _StoragePathLike) -> bool:
    is_dir = getattr(path, "is_dir", None)
    return bool(is_dir()) if callable(is_dir) else False


def _remaining_size(stream: IO[bytes]) -> int | None:
    """Bytes from the current position to the end, or None when the stream cannot seek."""
    try:
        if not stream.seekable():
            return None
        start = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(start)
    except (AttributeError, OSError, ValueError):
        return None
    return end - start
