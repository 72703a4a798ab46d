"""LipsyncOperator: lip-sync a video to an audio track with Sync Lipsync.

The generic operator it builds on, :class:`~airflow_provider_wavespeed.operators.run_model.WaveSpeedRunModelOperator`,
is importable from here too. DAG files import this module at every parse, so it imports no HTTP
client: the hook and the trigger are imported when a task runs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_wavespeed.media import path_text
from airflow_provider_wavespeed.operators.run_model import WaveSpeedRunModelOperator

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["LIPSYNC_MODEL", "SYNC_MODES", "LipsyncOperator", "WaveSpeedRunModelOperator"]

LIPSYNC_MODEL = "sync/lipsync-1.9.0-beta"
SYNC_MODES = ("bounce", "loop", "cut_off", "silence", "remap")
"""How the model reconciles a video and an audio of different lengths (see the README)."""

# A mapped lipsync is labelled in the UI with what it dubs (``interview.fr``), not a bare index.
DEFAULT_MAP_INDEX_TEMPLATE = "{{ task.media_label }}"


def _is_templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


class LipsyncOperator(WaveSpeedRunModelOperator):
    """Lip-sync a video to an audio track with Sync Lipsync (``sync/lipsync-1.9.0-beta`` by default).

    :param video: the video: an http(s) URL WaveSpeed can fetch, or a local path, ``file://`` or
        object-storage URI that is uploaded first. Templated.
    :param audio: the audio track, in the same forms as ``video``. Templated.
    :param sync_mode: what to do when their lengths differ: ``cut_off`` (default: the shorter
        length), ``loop`` / ``bounce`` / ``remap`` (the audio's length), ``silence`` (the longer
        length). Templated; a literal value is checked when the DAG is parsed.
    :param model: another model path with the same inputs, e.g. ``sync/lipsync-2``.

    Every other argument is :class:`WaveSpeedRunModelOperator`'s.
    """

    template_fields: Sequence[str] = (
        "video",
        "audio",
        "sync_mode",
        "model",
        "output_path",
        "webhook",
        "wavespeed_conn_id",
    )

    def __init__(
        self,
        *,
        video: Any,
        audio: Any,
        sync_mode: str = "cut_off",
        model: str = LIPSYNC_MODEL,
        map_index_template: str | None = DEFAULT_MAP_INDEX_TEMPLATE,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            model=model,
            inputs={},
            media_inputs=("video", "audio"),
            map_index_template=map_index_template,
            **kwargs,
        )
        if not _is_templated(sync_mode):
            _check_sync_mode(sync_mode)
        self.video = video
        self.audio = audio
        self.sync_mode = sync_mode

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """``partial()`` with this class's label template: Airflow 2's ignores ``__init__``'s defaults."""
        kwargs.setdefault("map_index_template", DEFAULT_MAP_INDEX_TEMPLATE)
        return super().partial(**kwargs)

    def rendered_inputs(self) -> dict[str, Any]:
        _check_sync_mode(self.sync_mode)
        return {"video": self.video, "audio": self.audio, "sync_mode": self.sync_mode}

    def cost_basis(self, inputs: Mapping[str, Any]) -> str:
        return (
            f"lipsync is priced by the output's length (inferred), and sync_mode={inputs.get('sync_mode')!r} makes the "
            f"output {_OUTPUT_LENGTH[str(inputs.get('sync_mode'))]}: video={inputs.get('video')!r}, "
            f"audio={inputs.get('audio')!r}"
        )

    @property
    def media_label(self) -> str:
        """What this task lip-syncs, for the UI: ``interview.fr`` for ``interview.mp4`` + ``interview.fr.wav``.

        An ``output_path`` naming a file gives its name (it is named after the pair, and stays so when
        an upstream task has already uploaded the media and passes their URLs). Otherwise a dub named
        after its video keeps its own name, and any other pair reads ``<video>+<audio>``.
        """
        output = path_text(self.output_path) if self.output_path else None
        if output and not output.endswith("/"):
            return _media_name(output)
        video, audio = _media_name(self.video), _media_name(self.audio)
        return audio if audio.startswith(f"{video}.") else f"{video}+{audio}"


_OUTPUT_LENGTH = {
    "cut_off": "as long as the shorter of the video and the audio",
    "loop": "as long as the audio",
    "bounce": "as long as the audio",
    "remap": "as long as the audio",
    "silence": "as long as the longer of the video and the audio",
}


def _media_name(media: Any) -> str:
    """A media file's name without its extension: ``interview.fr`` for ``s3://b/in/interview.fr.wav``."""
    text = path_text(media)
    name = os.path.basename(urlsplit(text).path if text is not None else str(getattr(media, "path", media)))
    return os.path.splitext(name)[0] or str(media)


def _check_sync_mode(sync_mode: Any) -> None:
    if sync_mode not in SYNC_MODES:
        raise ValueError(
            f"sync_mode={sync_mode!r} is not a Sync Lipsync mode; use one of {', '.join(SYNC_MODES)} "
            "(cut_off keeps the shorter length, loop/bounce/remap the audio's, silence the longer)"
        )
