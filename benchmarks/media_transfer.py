"""Section 4: moving 1 GiB through the hook, against ``curl`` on the same loopback, in one run.

The hook's upload (the direct-upload flow: a ticket, then a PUT) and download (to a local
``output_path`` directory, the operator's path for outputs) run in a child interpreter of their
own, so that its peak memory is the transfers' alone: after a small warm-up transfer (lazy
imports, the connection pool), the child resets its high-water mark (``/proc/self/clear_refs``)
before each transfer and reports VmHWM - VmRSS around it. ``curl`` moves the same file to and from
the same emulator, alternating with the hook.

A gigabyte over loopback on this kind of machine runs at 300 MiB/s one moment and 1.3 GiB/s the
next (the emulator's side, memory and the disk decide it, not the client), so each transfer is
repeated in rounds, hook and curl taking turns, and the fastest of each is compared: the round
least disturbed by anything else. The files live in RAM (``/dev/shm``) when it has room, so that
disk write-back cannot decide the race; otherwise on disk, with ``os.sync()`` before each timed
transfer so that none pays for flushing an earlier one's gigabyte. The source file is sparse:
reading it costs nothing, for the hook and curl alike. The download is of the uploaded file,
served by the emulator's ``/media/`` route (the one that serves outputs), so the figure does not
depend on how the emulator renders outputs.
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from benchmarks.harness import (
    GIB,
    MIB,
    ChildProcess,
    SectionResult,
    Table,
    Target,
    connection_env,
    fmt,
    median,
    peak_rss_bytes,
    receive_from_parent,
    reset_peak_rss,
    rss_bytes,
    send_to_parent,
    spawned_emulator,
    vs,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

CONN_ID = "wavespeed_bench"
CONTENT_TYPE = "video/mp4"
WARM_UP_BYTES = 256 * 1024
TRANSFER_TIMEOUT = 600
IN_MEMORY_ROOT = Path("/dev/shm")  # noqa: S108 - only ever the parent of a mkdtemp directory
DIRECTIONS = ("upload", "download")


@dataclass(frozen=True)
class Scale:
    size_bytes: int = GIB
    rounds: int = 3


FULL = Scale()
SMOKE = Scale(size_bytes=8 * MIB, rounds=1)


@contextlib.contextmanager
def scratch_space(size_bytes: int) -> Iterator[tuple[Path, bool]]:
    """A temporary directory in RAM when it has room for four copies, else on disk; and which it is."""
    in_memory = IN_MEMORY_ROOT.is_dir() and shutil.disk_usage(IN_MEMORY_ROOT).free > 4 * size_bytes
    with tempfile.TemporaryDirectory(
        prefix="wavespeed-bench-media-", dir=IN_MEMORY_ROOT if in_memory else None
    ) as scratch:
        yield Path(scratch), in_memory


def run(scale: Scale = FULL) -> SectionResult:
    started = time.monotonic()
    with scratch_space(scale.size_bytes) as (root, in_memory):
        source = root / "interview.mp4"
        with source.open("wb") as sparse:
            sparse.truncate(scale.size_bytes)
        warm_up = root / "warm-up.mp4"
        warm_up.write_bytes(b"\0" * WARM_UP_BYTES)
        data_dir = root / "emulator"
        with (
            spawned_emulator(data_dir=data_dir) as emulator,
            ChildProcess(__name__, env=connection_env(CONN_ID, emulator.base_url, emulator.api_key)) as hook,
        ):

            def ask_hook(job: dict[str, Any]) -> dict[str, Any]:
                _settle(in_memory)
                hook.send(job)
                return hook.receive(TRANSFER_TIMEOUT)

            ask_hook({"warm_up": str(warm_up), "output_path": f"{root}/warm-up/"})
            results: dict[str, dict[str, list[dict[str, Any]]]] = {
                direction: {"hook": [], "curl": []} for direction in DIRECTIONS
            }
            download_url = ""
            for _ in range(scale.rounds):
                upload = ask_hook({"upload": str(source)})
                _settle(in_memory)
                curl_upload = _curl_upload(emulator.base_url, emulator.api_key, source)
                results["upload"]["hook"].append(upload)
                results["upload"]["curl"].append(curl_upload)
                # Keep one upload to download; the others would only fill the scratch space.
                download_url = download_url or upload["url"]
                for url in (upload["url"], curl_upload.get("url", "")):
                    if url and url != download_url:
                        _forget_upload(data_dir, url)
                download = ask_hook({"download": download_url, "output_path": f"{root}/hook/"})
                Path(download["location"]).unlink()
                _settle(in_memory)
                results["download"]["hook"].append(download)
                results["download"]["curl"].append(_curl_download(download_url, root / "curl.mp4"))
            hook.finish()
    return _section(scale, results, in_memory, time.monotonic() - started)


def _settle(in_memory: bool) -> None:
    """Flush every dirty page now, so that the next timed transfer does not pay for an earlier one."""
    if not in_memory:
        os.sync()


def _forget_upload(data_dir: Path, url: str) -> None:
    """Delete an uploaded file from the emulator's store (served at ``/media/<path>``)."""
    relative = urlsplit(url).path.removeprefix("/media/")
    shutil.rmtree((data_dir / "media" / relative).parent, ignore_errors=True)


def _curl_upload(base_url: str, api_key: str, source: Path) -> dict[str, Any]:
    """The same direct upload as the hook's, by curl: a ticket (not timed), then the timed PUT."""
    import requests

    session = requests.Session()
    session.trust_env = False
    answer = session.post(
        f"{base_url}/api/v3/media/uploads",
        json={"filename": source.name, "size": source.stat().st_size, "content_type": CONTENT_TYPE},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30,
    )
    answer.raise_for_status()
    ticket = answer.json()["data"]
    headers = [f"{name}: {value}" for name, value in ticket["upload"]["headers"].items()]
    # An empty "Expect:" stops curl from waiting for a 100 Continue before a large body.
    arguments = ["-T", str(source), *[arg for header in [*headers, "Expect:"] for arg in ("-H", header)]]
    return {**_curl(arguments, ticket["upload"]["url"]), "url": ticket["download_url"]}


def _curl_download(url: str, target: Path) -> dict[str, Any]:
    try:
        return _curl(["-o", str(target)], url)
    finally:
        target.unlink(missing_ok=True)


def _curl(arguments: list[str], url: str) -> dict[str, Any]:
    """Run curl and return its own timing (``time_total``, so no process start-up is counted)."""
    curl = shutil.which("curl")
    if curl is None:
        return {"available": False}
    timing = "%{time_total} %{size_upload} %{size_download}"
    command = [curl, "-sS", "--fail", "--noproxy", "*", "-w", timing, *arguments, url]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=TRANSFER_TIMEOUT, check=False)  # noqa: S603
    if finished.returncode != 0:
        raise RuntimeError(f"curl {' '.join(arguments)} {url} failed ({finished.returncode}): {finished.stderr}")
    seconds, uploaded, downloaded = finished.stdout.split()[-3:]
    version = subprocess.run([curl, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    return {
        "available": True,
        "seconds": float(seconds),
        "bytes": max(float(uploaded), float(downloaded)),
        "version": version.stdout.partition("\n")[0],
    }


def _section(
    scale: Scale, results: dict[str, dict[str, list[dict[str, Any]]]], in_memory: bool, wall: float
) -> SectionResult:
    size = scale.size_bytes
    table = Table(
        [
            "transfer",
            f"throughput, best of {scale.rounds} (vs curl)",
            "median (vs curl)",
            "peak RSS growth (vs the 64 MiB budget)",
            "curl: best / median",
        ]
    )
    targets: list[Target] = []
    figures: dict[str, Any] = {"size_bytes": size, "rounds": scale.rounds, "files_in_memory": in_memory}
    for direction in DIRECTIONS:
        hook_rates = [size / transfer["seconds"] / MIB for transfer in results[direction]["hook"]]
        curl_runs = [transfer for transfer in results[direction]["curl"] if transfer["available"]]
        curl_rates = [transfer["bytes"] / transfer["seconds"] / MIB for transfer in curl_runs]
        curl_best = max(curl_rates, default=float("nan"))
        growth = max(transfer["peak_growth_bytes"] for transfer in results[direction]["hook"]) / MIB
        methods = sorted({transfer["peak_method"] for transfer in results[direction]["hook"]})
        table.rows.append(
            [
                f"{direction} {_size(size)} through the hook",
                vs(max(hook_rates), curl_best, "MiB/s", 0),
                vs(median(hook_rates), median(curl_rates), "MiB/s", 0),
                vs(growth, 64, "MiB", 1),
                f"{fmt(curl_best, 'MiB/s', 0)} / {fmt(median(curl_rates), 'MiB/s', 0)}"
                if curl_runs
                else "n/a (curl is not installed)",
            ]
        )
        share = max(hook_rates) / curl_best if curl_runs else float("nan")
        targets.append(
            Target(
                f"{direction}: peak RSS growth <= 64 MiB (streaming)", f"{growth:.1f} MiB ({methods[0]})", growth <= 64
            )
        )
        targets.append(
            Target(
                f"{direction}: throughput >= 50% of curl's",
                f"{share:.0%} of curl (best {max(hook_rates):.0f} vs {curl_best:.0f} MiB/s)"
                if curl_runs
                else "curl is not installed here",
                share >= 0.5 if curl_runs else None,
                why="" if curl_runs else "install curl (apt-get install -y curl) to measure the ratio",
            )
        )
        figures[direction] = {
            "hook_mib_per_s": hook_rates,
            "curl_mib_per_s": curl_rates,
            "hook": results[direction]["hook"],
            "curl": results[direction]["curl"],
            "peak_rss_growth_mib": growth,
        }
    return SectionResult(
        key="media_transfer",
        title=f"4. Media transfer: {_size(size)} up and down through the hook and the emulator",
        method=(
            f"{scale.rounds} rounds, the hook and curl taking turns on the same file and emulator (a PUT to the "
            "same kind of presigned URL, a GET of the same /media/ URL); the fastest round of each is compared, "
            "the median is beside it. The hook's upload(path) and download(url, output_path dir/) run in a child "
            "interpreter; throughput = bytes / wall time of the call (the upload's includes its ticket request); "
            "curl's from its own time_total. Peak RSS growth = VmHWM after a transfer - VmRSS before it, the "
            "high-water mark reset before each. Files in "
            + ("RAM (/dev/shm)." if in_memory else "the temp dir on disk, os.sync() before each timed transfer.")
        ),
        table=table,
        targets=targets,
        figures=figures,
        wall_seconds=wall,
    )


def _size(size: int) -> str:
    return f"{size / GIB:g} GiB" if size >= GIB else f"{size / MIB:g} MiB"


# -- the child: transfers through the hook, one per message ---------------------------------------


def child_main() -> None:
    from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook

    hook = WaveSpeedHook(CONN_ID)
    warm_up = receive_from_parent()
    assert warm_up is not None
    hook.download(hook.upload(warm_up["warm_up"]), warm_up["output_path"])
    send_to_parent({"ready": True})
    while (job := receive_from_parent()) is not None:  # until the parent closes the channel
        gc.collect()
        resettable = reset_peak_rss()
        before = rss_bytes()
        started = time.perf_counter()
        if "upload" in job:
            result: dict[str, Any] = {"url": hook.upload(job["upload"])}
        else:
            result = {"location": hook.download(job["download"], job["output_path"])}
        seconds = time.perf_counter() - started
        # Without a resettable high-water mark, the peak since start (imports included) is an upper bound.
        peak = peak_rss_bytes() if resettable else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        send_to_parent(
            {
                **result,
                "seconds": seconds,
                "rss_before_bytes": before,
                "peak_growth_bytes": max(0, peak - before),
                "peak_method": "VmHWM, reset before the transfer"
                if resettable
                else "ru_maxrss since start (an upper bound)",
            }
        )


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    child_main()
