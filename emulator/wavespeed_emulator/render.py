"""Real lipsync outputs: the input video re-timed to the input audio as ``sync_mode`` says.

The emulator has no lipsync model, but its output is a real, playable MP4 (H.264 + AAC,
``+faststart``) whose length and picture follow sync.so's ``sync_mode`` semantics, made by one
ffmpeg run per prediction. ffmpeg comes from the optional ``imageio-ffmpeg`` wheel, which ships
the binary (``pip install 'wavespeed-emulator[render]'``): no system package, nothing
downloaded at run time. `find_ffmpeg` also honours ``IMAGEIO_FFMPEG_EXE``.

With ``V`` the video's length and ``A`` the audio's, the output lasts:

=========  =============  =================================================================
mode       length         picture
=========  =============  =================================================================
cut_off    ``min(V, A)``  both inputs trimmed to the shorter
loop       ``A``          the video restarts (``-stream_loop``) until the audio ends
bounce     ``A``          the video plays forward then backward (``reverse``), repeating
remap      ``A``          the video's speed changes (``setpts``) to last exactly ``A``
silence    ``max(V, A)``  the last frame is held (``tpad``) and the audio padded (``apad``)
=========  =============  =================================================================

Every mode ends the same way: the video holds its last frame and the audio pads with silence
indefinitely, and the output is cut at the target length, so it lasts that length to the frame.
``bounce`` keeps the video's decoded frames in memory (``reverse`` needs them all; past two
lengths, ``loop`` replays the forward-backward period), which is fine for the short clips the
emulator is for.

Each input is probed first by decoding its first frame (``-frames 1``): an input that is not
decodable media, or lacks the stream its field needs, raises `UnrenderableInputError`, and the
prediction fails. At most `RENDER_CONCURRENCY` probes and renders run at once, each an ffmpeg
child process awaited on the event loop (never blocking it) at a lower CPU priority, so the
emulator keeps answering its pollers meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from wavespeed_emulator.catalog import SYNC_MODES

if TYPE_CHECKING:
    from pathlib import Path

logger = logging.getLogger(__name__)

RENDER_CONCURRENCY = 2
"""ffmpeg runs at once; each uses every core, so more only queue for the CPU."""
RENDER_NICENESS = 10
"""ffmpeg's scheduling priority: below the emulator's, whose pollers come first on a busy machine."""

StreamKind = Literal["video", "audio"]

_DURATION = re.compile(r"^\s*Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", re.MULTILINE)
_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: (Video|Audio):", re.MULTILINE)
_MAX_LOOP_FRAMES = 32767
"""The ``loop`` filter's largest ``size``: the frames of one forward-backward ``bounce`` period."""
_ENCODE = (
    *("-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-fps_mode", "cfr"),
    *("-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-f", "mp4"),
)


class FfmpegUnavailableError(RuntimeError):
    """No ffmpeg: the ``imageio-ffmpeg`` package is not installed (and none is configured)."""


class UnrenderableInputError(Exception):
    """An input the emulator holds is not media it can use; the prediction fails (code 1403).

    ``field`` is the input at fault (None when the render itself failed) and ``problem`` what is
    wrong with it, phrased to follow "the <field> input".
    """

    def __init__(self, field: str | None, problem: str) -> None:
        super().__init__(f"the {field} input {problem}" if field else problem)
        self.field = field
        self.problem = problem


def ffmpeg_executable() -> str:
    """The ffmpeg binary of the ``imageio-ffmpeg`` wheel (or ``IMAGEIO_FFMPEG_EXE``); never downloads.

    Raises `FfmpegUnavailableError` saying how to install it.
    """
    try:
        import imageio_ffmpeg  # optional: the emulator works without it
    except ImportError:
        raise FfmpegUnavailableError(
            "imageio-ffmpeg is not installed: pip install 'wavespeed-emulator[render]'"
        ) from None
    try:
        configured = str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as error:
        raise FfmpegUnavailableError(str(error)) from None
    executable = shutil.which(configured)
    if executable is None:  # IMAGEIO_FFMPEG_EXE is taken as given
        raise FfmpegUnavailableError(f"{configured} is not an executable ffmpeg (check IMAGEIO_FFMPEG_EXE)")
    return executable


@functools.cache
def find_ffmpeg() -> str | None:
    """`ffmpeg_executable`, or None after one warning: outputs then fall back to placeholders."""
    try:
        return ffmpeg_executable()
    except FfmpegUnavailableError as error:
        logger.warning("The emulator cannot render lipsync outputs and writes placeholders instead: %s", error)
        return None


@dataclass(frozen=True)
class RenderPlan:
    """One ffmpeg run: its arguments between the binary and the output path, and the output length."""

    seconds: float
    arguments: tuple[str, ...]


def output_seconds(sync_mode: str, video_seconds: float, audio_seconds: float) -> float:
    """The length of a lipsync output under ``sync_mode``, from sync.so's documentation."""
    if sync_mode == "cut_off":
        return min(video_seconds, audio_seconds)
    if sync_mode == "silence":
        return max(video_seconds, audio_seconds)
    if sync_mode in ("loop", "bounce", "remap"):
        return audio_seconds
    raise ValueError(f"Unknown sync_mode {sync_mode!r}; expected one of {', '.join(SYNC_MODES)}")


def plan_lipsync(video: Path, video_seconds: float, audio: Path, audio_seconds: float, sync_mode: str) -> RenderPlan:
    """The ffmpeg arguments that render ``video`` re-timed to ``audio`` under ``sync_mode``."""
    seconds = output_seconds(sync_mode, video_seconds, audio_seconds)
    video_input: tuple[str, ...] = ("-i", str(video))
    shape = ""
    longer_audio = audio_seconds > video_seconds
    if sync_mode == "loop" and longer_audio:
        video_input = ("-stream_loop", "-1", *video_input)
    elif sync_mode == "bounce" and longer_audio:
        shape = "split[forward][backward];[backward]reverse[reversed];[forward][reversed]concat=n=2:v=1:a=0,"
        if audio_seconds > 2 * video_seconds:
            shape += f"loop=loop=-1:size={_MAX_LOOP_FRAMES},"
    elif sync_mode == "remap":
        shape = f"setpts=PTS*{audio_seconds / video_seconds!r},"
    graph = (
        f"[0:v:0]{shape}scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p,tpad=stop=-1:stop_mode=clone[video];"
        "[1:a:0]apad[audio]"
    )
    arguments = (
        *video_input,
        *("-i", str(audio)),
        *("-filter_complex", graph, "-map", "[video]", "-map", "[audio]"),
        *("-t", f"{seconds:.6f}", *_ENCODE),
    )
    return RenderPlan(seconds, arguments)


class Renderer:
    """Probes inputs and renders lipsync outputs with ffmpeg child processes, a few at a time."""

    def __init__(self, concurrency: int = RENDER_CONCURRENCY) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._ffmpeg: str | None = None
        self._resolved = False
        self._lengths: dict[tuple[Path, StreamKind], float] = {}

    async def ffmpeg(self) -> str | None:
        """The ffmpeg binary, or None when imageio-ffmpeg is missing (resolved once, off the loop)."""
        if not self._resolved:
            self._ffmpeg = await asyncio.to_thread(find_ffmpeg)
            self._resolved = True
        return self._ffmpeg

    async def probe(self, ffmpeg: str, field: str, path: Path, kind: StreamKind) -> float:
        """The length in seconds of ``path``, after decoding the first frame of its ``kind`` stream.

        Raises `UnrenderableInputError` naming ``field`` when it is not decodable media, has no
        such stream or no known length.
        """
        selector = "v" if kind == "video" else "a"
        async with self._slots:
            code, log = await _run(
                ffmpeg, "-hide_banner", "-i", str(path), "-map", f"0:{selector}:0", f"-frames:{selector}", "1",
                "-f", "null", "-",
            )  # fmt: skip
        has_input = "Input #0" in log
        if code != 0 and has_input and kind.capitalize() not in _STREAM.findall(log):
            raise UnrenderableInputError(field, f"has no {kind} stream")
        if code != 0:
            raise UnrenderableInputError(field, f"is not decodable media ({_last_line(log, path)})")
        match = _DURATION.search(log)
        seconds = 0.0 if match is None else int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])
        if seconds <= 0:
            raise UnrenderableInputError(field, f"has no known {kind} length")
        return seconds

    async def length(self, ffmpeg: str, field: str, path: Path, kind: StreamKind) -> float:
        """`probe`, remembered per file: uploads never change, and a price and a render both need it."""
        known = self._lengths.get((path, kind))
        if known is None:
            known = self._lengths[(path, kind)] = await self.probe(ffmpeg, field, path, kind)
        return known

    async def render(self, ffmpeg: str, plan: RenderPlan, target: Path) -> None:
        """Write the planned output to ``target``, atomically: a failed or cancelled run leaves nothing."""
        partial = target.with_name(target.name + ".part")
        try:
            async with self._slots:
                code, log = await _run(ffmpeg, "-loglevel", "error", "-y", *plan.arguments, str(partial))
            if code != 0:
                raise UnrenderableInputError(None, f"ffmpeg could not render the output ({_last_line(log, partial)})")
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)


async def _run(ffmpeg: str, *arguments: str) -> tuple[int, str]:
    """Run ffmpeg without stdin and return its exit code and stderr; cancelling kills it."""
    process = await asyncio.create_subprocess_exec(
        ffmpeg,
        "-nostdin",
        *arguments,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    # Set from here, not in the child (preexec_fn is unsafe with threads), before ffmpeg starts its threads.
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, process.pid, RENDER_NICENESS)
    try:
        _, stderr = await process.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stderr.decode(errors="replace")


def _last_line(log: str, path: Path) -> str:
    """ffmpeg's last message, without the server-side path of the file."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    message = lines[-1] if lines else "no output from ffmpeg"
    return message.replace(str(path), path.name)
