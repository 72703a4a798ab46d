from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.emulator.helpers import Api
from tests.emulator_fixtures import fast_emulator_config
from wavespeed_emulator import WaveSpeedEmulator

BOUNDARY = "emulator-test-boundary"
MIB = 1024 * 1024


def multipart_stream(filename: str, chunks: Iterator[bytes], content_type: str = "video/mp4") -> Iterator[bytes]:
    """A multipart body with one ``file`` part, produced lazily: requests sends it chunked."""
    yield (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="note"\r\n\r\nignored\r\n'
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    yield from chunks
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def post_streamed_multipart(api: Api, filename: str, chunks: Iterator[bytes]) -> requests.Response:
    return api.post(
        "/api/v3/media/upload/binary",
        data=multipart_stream(filename, chunks),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )


def test_binary_upload_describes_and_serves_the_file(api: Api) -> None:
    content = os.urandom(300_000)

    response = api.post("/api/v3/media/upload/binary", files={"file": ("my clip.MOV", content)})

    data = response.json()["data"]
    assert response.json()["code"] == 200
    assert (data["type"], data["filename"], data["size"]) == ("video", "my_clip.MOV", len(content))
    assert re.fullmatch(rf"{api.base_url}/media/uploads/[0-9a-f]{{32}}/my_clip.MOV", data["download_url"])
    assert api.download(data["download_url"]) == content


@pytest.mark.parametrize(
    ("filename", "content_type", "media_type"),
    [
        ("face.png", None, "image"),
        ("voice.m4a", None, "audio"),
        ("voice.webm", "audio/webm", "audio"),
        ("clip.webm", "video/webm", "video"),
        ("no-extension", "audio/wav", "audio"),
    ],
)
def test_upload_type_comes_from_extension_then_content_type(
    api: Api, filename: str, content_type: str | None, media_type: str
) -> None:
    file_field = (filename, b"x") if content_type is None else (filename, b"x", content_type)

    response = api.post("/api/v3/media/upload/binary", files={"file": file_field})

    assert response.json()["data"]["type"] == media_type


def test_streamed_chunked_multipart_upload_is_stored_whole(api: Api) -> None:
    pieces = [os.urandom(100_000) for _ in range(5)]

    response = post_streamed_multipart(api, "streamed.mp4", iter(pieces))

    data = response.json()["data"]
    assert response.status_code == 200
    assert data["size"] == 500_000
    assert api.download(data["download_url"]) == b"".join(pieces)


@pytest.mark.parametrize(
    ("request_kwargs", "message"),
    [
        ({"files": {"other": ("a.mp4", b"x")}}, "Missing multipart field: file"),
        ({"json": {"file": "a.mp4"}}, "Expected a multipart/form-data body with a 'file' field"),
        ({"files": {"file": ("notes.txt", b"x", "text/plain")}}, "Unsupported file type: notes.txt"),
    ],
)
def test_binary_upload_rejects_bad_bodies(api: Api, request_kwargs: dict[str, object], message: str) -> None:
    response = api.post("/api/v3/media/upload/binary", **request_kwargs)

    assert response.status_code == 400
    assert response.json()["message"].startswith(message)


def create_ticket(api: Api, filename: str, size: int, **extra: object) -> dict[str, object]:
    response = api.post("/api/v3/media/uploads", json={"filename": filename, "size": size, **extra})
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()["data"]
    return data


def put(api: Api, upload: dict[str, object], body: bytes | Iterator[bytes], **headers: str) -> requests.Response:
    """The storage PUT exactly as the official SDK sends it: the ticket's headers, no Bearer key."""
    assert isinstance(upload["url"], str) and isinstance(upload["headers"], dict)
    return api.anonymous.put(upload["url"], data=body, headers={**upload["headers"], **headers}, timeout=30)


def test_direct_upload_ticket_then_put_serves_the_file(api: Api) -> None:
    content = os.urandom(50_000)

    ticket = create_ticket(api, "speech.wav", len(content))
    upload = ticket["upload"]
    assert isinstance(upload, dict)
    response = put(api, upload, content)

    assert response.status_code == 200
    assert (ticket["type"], ticket["filename"], ticket["size"]) == ("audio", "speech.wav", len(content))
    assert upload["method"] == "PUT"
    assert upload["headers"] == {"Content-Type": "audio/x-wav"}
    assert urlsplit(str(upload["url"])).path.startswith("/_storage/put/")
    assert api.download(str(ticket["download_url"])) == content


def test_direct_upload_uses_the_declared_content_type(api: Api) -> None:
    ticket = create_ticket(api, "clip.bin", 1, content_type="video/quicktime")

    assert ticket["type"] == "video"
    assert ticket["upload"]["headers"] == {"Content-Type": "video/quicktime"}  # type: ignore[index]


def test_put_of_a_different_size_is_a_400_and_the_ticket_stays_usable(api: Api) -> None:
    ticket = create_ticket(api, "clip.mp4", 10)
    upload = ticket["upload"]
    assert isinstance(upload, dict)

    shorter = put(api, upload, b"123456789")
    longer_streamed = put(api, upload, iter([b"12345", b"678901"]))
    exact = put(api, upload, b"0123456789")

    assert (shorter.status_code, longer_streamed.status_code, exact.status_code) == (400, 400, 200)
    assert "differs from the declared size of 10 bytes" in shorter.text
    assert api.download(str(ticket["download_url"])) == b"0123456789"


def test_put_with_a_used_unknown_or_forged_url_is_forbidden(api: Api) -> None:
    ticket = create_ticket(api, "clip.mp4", 3)
    upload = ticket["upload"]
    assert isinstance(upload, dict)
    assert put(api, upload, b"abc").status_code == 200
    url = str(upload["url"])
    key = urlsplit(url).path.rsplit("/", 1)[-1]

    reused = put(api, upload, b"abc")
    unknown = api.anonymous.put(url.replace(key, "f" * 32), data=b"abc", timeout=10)
    forged = api.anonymous.put(re.sub(r"signature=\w+", "signature=00", url), data=b"abc", timeout=10)

    assert (reused.status_code, unknown.status_code, forged.status_code) == (403, 403, 403)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"size": 3}, "Missing required parameter: filename"),
        ({"filename": "a.mp4"}, "Missing required parameter: size"),
        ({"filename": "a.mp4", "size": -1}, "Invalid parameter: size must not be negative"),
        ({"filename": "a.mp4", "size": "3"}, "Invalid parameter: size must be of type integer, got string"),
        ({"filename": "a.exe", "size": 3}, "Unsupported file type: a.exe"),
    ],
)
def test_upload_ticket_rejects_bad_declarations(api: Api, body: dict[str, object], message: str) -> None:
    response = api.post("/api/v3/media/uploads", json=body)

    assert response.status_code == 400
    assert response.json()["message"].startswith(message)


def test_served_files_support_range_requests(api: Api) -> None:
    content = bytes(range(256)) * 64
    data = api.post("/api/v3/media/upload/binary", files={"file": ("a.mp4", content)}).json()["data"]

    response = api.anonymous.get(data["download_url"], headers={"Range": "bytes=100-199"}, timeout=10)

    assert response.status_code == 206
    assert response.content == content[100:200]


def test_upload_filenames_cannot_escape_the_media_directory(api: Api, emulator: WaveSpeedEmulator) -> None:
    data = api.post("/api/v3/media/upload/binary", files={"file": ("../../evil.mp4", b"x")}).json()["data"]

    assert data["filename"] == "evil.mp4"
    assert emulator.config.data_dir is not None
    assert not (emulator.config.data_dir.parent / "evil.mp4").exists()


def peak_rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1)) * 1024


def repeated_chunks(chunk: bytes, count: int, digest: hashlib._Hash) -> Iterator[bytes]:
    for _ in range(count):
        digest.update(chunk)
        yield chunk


def served_digest(api: Api, url: str) -> str:
    digest = hashlib.sha256()
    with api.anonymous.get(url, stream=True, timeout=60) as response:
        for block in response.iter_content(MIB):
            digest.update(block)
    return digest.hexdigest()


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads peak RSS from /proc")
def test_large_uploads_stream_to_disk_without_growing_the_emulator_memory() -> None:
    file_mib = 200
    chunk = os.urandom(MIB)
    with WaveSpeedEmulator.spawn(fast_emulator_config()) as process:
        api = Api(process)
        baseline = peak_rss_bytes(process.pid)

        multipart_digest = hashlib.sha256()
        multipart = post_streamed_multipart(api, "big.mp4", repeated_chunks(chunk, file_mib, multipart_digest))
        ticket = create_ticket(api, "big.mov", file_mib * MIB)
        put_digest = hashlib.sha256()
        assert isinstance(ticket["upload"], dict)
        direct = put(api, ticket["upload"], repeated_chunks(chunk, file_mib, put_digest))

        growth = peak_rss_bytes(process.pid) - baseline
        assert multipart.status_code == 200 and direct.status_code == 200
        assert multipart.json()["data"]["size"] == file_mib * MIB
        assert served_digest(api, multipart.json()["data"]["download_url"]) == multipart_digest.hexdigest()
        assert served_digest(api, str(ticket["download_url"])) == put_digest.hexdigest()
        assert growth < 48 * MIB, f"peak RSS grew by {growth / MIB:.0f} MiB for {file_mib} MiB uploads"


def test_expired_uploads_are_no_longer_served_as_after_seven_days(api: Api) -> None:
    response = api.post("/api/v3/media/upload/binary", files={"file": ("clip.mp4", b"\x00" * 1000)})
    url = response.json()["data"]["download_url"]
    assert requests.head(url, timeout=10).status_code == 200

    expired = requests.post(f"{api.base_url}/_emulator/uploads/expire", timeout=10)

    assert expired.json() == {"expired": 1}
    assert requests.head(url, timeout=10).status_code == 404
