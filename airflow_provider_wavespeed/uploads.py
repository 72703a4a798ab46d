"""Upload each media file once: a content-keyed cache of WaveSpeed upload URLs in Airflow Variables.

The cache lives in the Airflow metadata database (one Variable per file content and API origin,
``wavespeed_upload__<sha256>__<origin>``), because that is the one store every worker of a
distributed deployment (Celery workers on several machines included) can read and write through
Airflow's own API on every supported Airflow line. An entry is trusted for
:data:`UPLOAD_CACHE_TTL`, well inside the 7 days WaveSpeed documents keeping uploads, and its URL
is checked with a free ``HEAD`` before use: a file WaveSpeed no longer serves is uploaded again
instead of failing a paid prediction.

Tasks that start at the same moment with the same new file each miss the cache and each upload
it (uploads are not charged, only transferred); an explicit upload step before the fan-out,
:func:`upload_each_once`, makes it exactly once. See docs/outputs.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from airflow_provider_wavespeed.content import read_media_content
from airflow_provider_wavespeed.media import is_http_url

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow_provider_wavespeed.content import MediaContent
    from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook
    from airflow_provider_wavespeed.media import MediaSource

log = logging.getLogger(__name__)

UPLOAD_CACHE_TTL = timedelta(hours=24)
"""How long a cached upload URL is reused. A day covers every task of a daily run and its re-runs;
six of WaveSpeed's seven days stay in reserve for clocks, retention changes and long runs. The
official WaveSpeed MCP server caches uploads by content hash for the same 24 h."""

VARIABLE_PREFIX = "wavespeed_upload__"


class UploadCache:
    """Upload URLs by file content, for one API origin, shared by every worker through Airflow Variables.

    Every failure to read or write the cache is logged and costs an upload, never a wrong URL.
    """

    def __init__(self, base_url: str, *, ttl: timedelta = UPLOAD_CACHE_TTL) -> None:
        self._origin = hashlib.sha256(base_url.encode()).hexdigest()[:12]
        self._ttl = ttl

    def key(self, content: MediaContent) -> str:
        return f"{VARIABLE_PREFIX}{content.sha256}__{self._origin}"

    def recall(self, content: MediaContent) -> tuple[str, str] | None:
        """(url, uploaded_at) of an upload of this content younger than the TTL, if there is one."""
        from airflow.providers.common.compat.sdk import Variable

        try:
            raw = Variable.get(self.key(content), None)
            if not raw:
                return None
            entry = json.loads(raw)
            uploaded_at = datetime.fromisoformat(entry["uploaded_at"])
            url = str(entry["url"])
        except Exception:  # a cache that cannot be read only costs an upload
            log.warning("Could not read the upload cache entry %s; uploading", self.key(content), exc_info=True)
            return None
        if datetime.now(UTC) - uploaded_at > self._ttl:
            return None
        return url, entry["uploaded_at"]

    def remember(self, content: MediaContent, url: str) -> None:
        from airflow.providers.common.compat.sdk import Variable

        entry = {
            "url": url,
            "uploaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "size": content.size,
            "source": content.source,
        }
        try:
            Variable.set(
                self.key(content),
                json.dumps(entry),
                description=(
                    f"WaveSpeed upload of {content.source} (sha256 {content.sha256}), reused by tasks for "
                    f"{self._ttl.total_seconds() / 3600:g} h (airflow-provider-wavespeed); safe to delete."
                ),
            )
        except Exception:  # outside a task (no Variable API) or a database hiccup: the next task uploads again
            log.warning("Could not record the upload of %s in the upload cache", content.source, exc_info=True)


def upload_once(hook: WaveSpeedHook, source: MediaSource, content: MediaContent, cache: UploadCache) -> str:
    """The URL of ``content`` at WaveSpeed: a cached upload WaveSpeed still serves, else a new upload."""
    cached = cache.recall(content)
    if cached is not None:
        url, uploaded_at = cached
        if hook.is_served(url):
            log.info(
                "Not uploading %s: the same content (sha256 %s) was uploaded at %s and WaveSpeed still serves it: %s",
                content.source,
                content.sha256[:16],
                uploaded_at,
                url,
            )
            return url
        log.info(
            "The cached upload of %s (%s) is no longer served by WaveSpeed; uploading it again", content.source, url
        )
    url = hook.upload(source)
    cache.remember(content, url)
    return url


def upload_each_once(sources: Iterable[MediaSource], *, wavespeed_conn_id: str = "wavespeed_default") -> dict[str, str]:
    """Upload every distinct file of ``sources`` once (through the cache); return each source's URL.

    Call it in a task before a fan-out, with every media file the mapped tasks will use: they then
    find each file in the cache and upload nothing. http(s) URLs are passed through.
    """
    from airflow_provider_wavespeed.hooks.wavespeed import WaveSpeedHook

    hook = WaveSpeedHook(wavespeed_conn_id)
    cache = UploadCache(hook.base_url)
    urls: dict[str, str] = {}
    by_content: dict[str, str] = {}
    for source in sources:
        shown = str(source)
        if shown in urls:
            continue
        if is_http_url(shown):
            urls[shown] = shown
            continue
        content = read_media_content(source, field="media")
        if content.sha256 not in by_content:
            by_content[content.sha256] = upload_once(hook, source, content, cache)
        urls[shown] = by_content[content.sha256]
    return urls
