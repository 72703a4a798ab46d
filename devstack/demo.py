"""`make demo`: a real Airflow runs the example DAGs through the provider, against the emulator.

It generates a talking-head-sized test clip with a French dub for ``example_lipsync``, and the day's
media for ``example_dubbing_pipeline`` (one video, three dubs), starts the WaveSpeed emulator and a
real Airflow 3 (api-server, scheduler, triggerer, dag-processor on loopback, SQLite) with the
connection form's Test button enabled, creates the ``wavespeed_default`` connection, runs both DAGs,
and prints where to look in the UI: the labelled dubs, their links, the WaveSpeed board. Airflow
stays up until Ctrl-C (or SIGTERM / SIGHUP), unless ``--exit-after-run`` (or
``WAVESPEED_DEMO_EXIT=1``) is given, for scripts and CI.

Everything lives in ``.demo/`` (recreated on every run); nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import pendulum

from devstack.airflow_stack import ADMIN_USER, LocalAirflow
from devstack.clips import make_audio, make_video, media_duration
from wavespeed_emulator import EmulatorConfig, WaveSpeedEmulator

if TYPE_CHECKING:
    from wavespeed_emulator.server import EmulatorProcess

REPO = Path(__file__).resolve().parent.parent
LIPSYNC_DAG = "example_lipsync"
DUBBING_DAG = "example_dubbing_pipeline"
VIDEO_SECONDS = 6.0
AUDIO_SECONDS = 8.0
DUBS = ("fr", "de", "es")
# Long enough to watch the tasks sit in "deferred" in the UI; a real lipsync takes minutes.
PREDICTION_SECONDS = 15.0
HEARTBEAT_SECONDS = 5.0


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _stop_like_ctrl_c(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def seed_media(media: Path, day: str) -> None:
    """The clip ``example_lipsync`` uses, and ``example_dubbing_pipeline``'s incoming/<day>/ folder."""
    video = make_video(media / "interview.mp4", VIDEO_SECONDS)
    audio = make_audio(media / "interview.fr.wav", AUDIO_SECONDS)
    incoming = media / "incoming" / day
    incoming.mkdir(parents=True)
    shutil.copyfile(video, incoming / video.name)
    for language in DUBS:
        shutil.copyfile(audio, incoming / f"interview.{language}.wav")


class Heartbeat:
    """Prints what the demo waits for at most every ``HEARTBEAT_SECONDS``, with the time since start."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.last = started

    def __call__(self, what: str) -> None:
        now = time.monotonic()
        if now - self.last >= HEARTBEAT_SECONDS:
            self.last = now
            say(f"  ... waiting for {what} ({now - self.started:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--exit-after-run",
        action="store_true",
        default=os.environ.get("WAVESPEED_DEMO_EXIT", "") not in ("", "0"),
        help="stop Airflow once the DAG runs end (also WAVESPEED_DEMO_EXIT=1)",
    )
    parser.add_argument("--state-dir", type=Path, default=REPO / ".demo", help="where everything is kept")
    args = parser.parse_args(argv)
    started = time.monotonic()
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _stop_like_ctrl_c)

    state = args.state_dir.resolve()
    shutil.rmtree(state, ignore_errors=True)
    media = state / "media"
    media.mkdir(parents=True)
    day = pendulum.now("UTC").to_date_string()

    emulator: EmulatorProcess | None = None
    airflow: LocalAirflow | None = None
    # Encoding the clips takes a while on a busy machine: it happens while Airflow starts.
    seeder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seed-media")
    try:
        say(f"Generating a {VIDEO_SECONDS:.0f} s test video and its dubs in {media} (for {day})")
        seeding = seeder.submit(seed_media, media, day)
        emulator = spawned = WaveSpeedEmulator.spawn(
            EmulatorConfig(
                api_key=f"demo-{secrets.token_hex(12)}",
                data_dir=state / "emulator",
                prediction_seconds=(PREDICTION_SECONDS, PREDICTION_SECONDS),
            )
        )
        airflow = LocalAirflow(
            home=state / "airflow",
            dags_folder=REPO / "example_dags",
            extra_env={
                "WAVESPEED_EXAMPLE_MEDIA": str(media),
                # The connection form's Test button; Airflow 3 disables it by default.
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            },
        )
        say(f"WaveSpeed emulator on {spawned.base_url}")
        say("Starting Airflow (database, api-server, scheduler, triggerer, dag-processor)")

        def ui_is_up() -> None:
            say(f"Airflow UI:   {airflow.url}  (login: {ADMIN_USER} / {airflow.admin_password})")
            say(
                f"  up {time.monotonic() - started:.0f} s after the demo started; the scheduler, triggerer and "
                "dag-processor start now, then the DAGs run"
            )

        airflow.start(on_wait=Heartbeat(started), on_api_up=ui_is_up)
        airflow.create_connection(
            {
                "connection_id": "wavespeed_default",
                "conn_type": "wavespeed",
                "description": "The local WaveSpeed emulator started by `make demo`",
                "host": spawned.base_url,
                # Stored as Airflow 3.3.2's Test button sends it (see docs/connection.md).
                "port": urlsplit(spawned.base_url).port,
                "password": spawned.api_key,
            }
        )
        seeding.result()  # raises what went wrong, if anything
        return _run_examples(airflow, day, args.exit_after_run, Heartbeat(started))
    except KeyboardInterrupt as interrupt:
        say(f"Stopping ({interrupt.args[0] if interrupt.args else 'Ctrl-C'})")
        return 0
    finally:
        seeder.shutdown(cancel_futures=True)
        if airflow is not None:
            airflow.stop()
        if emulator is not None:
            emulator.terminate()


def _run_examples(airflow: LocalAirflow, day: str, exit_after_run: bool, heartbeat: Heartbeat) -> int:
    for dag_id in (LIPSYNC_DAG, DUBBING_DAG):
        airflow.wait_for_dag(dag_id)
    lipsync_run = airflow.trigger(LIPSYNC_DAG)
    dubbing_run = airflow.trigger(DUBBING_DAG, logical_date=f"{day}T00:00:00Z")
    runs = {LIPSYNC_DAG: lipsync_run, DUBBING_DAG: dubbing_run}
    for dag_id, run_id in runs.items():
        say(f"Triggered {dag_id}: {airflow.url}/dags/{dag_id}/runs/{quote(run_id, safe='')}")
    seen: set[tuple[str, str, str]] = set()
    started = time.monotonic()

    def report(dag_id: str) -> Any:
        def on_poll(task_instances: list[dict[str, object]]) -> None:
            for instance in task_instances:
                label = str(instance.get("rendered_map_index") or instance["task_id"])
                state_now = str(instance["state"])
                if state_now != "None" and (dag_id, label, state_now) not in seen:
                    seen.add((dag_id, label, state_now))
                    say(f"  {dag_id} {label}: {state_now} ({time.monotonic() - started:.0f} s)")
            heartbeat(f"the runs of {LIPSYNC_DAG} and {DUBBING_DAG}")

        return on_poll

    failed = [
        dag_id
        for dag_id, run_id in runs.items()
        if airflow.wait_for_run(dag_id, run_id, on_poll=report(dag_id)) != "success"
    ]
    for dag_id in failed:
        say(f"The run of {dag_id} did not succeed. Its task logs are in {airflow.home}/logs")
    if failed:
        return 1
    result = airflow.xcom(LIPSYNC_DAG, lipsync_run, "lipsync")
    output = Path(result["stored_outputs"][0])
    say(
        f"Done: WaveSpeed prediction {result['request_id']} lip-synced the video "
        f"(sync_mode cut_off: {media_duration(output):.1f} s, the shorter input): {output}"
    )
    run_path = f"{airflow.url}/dags/{DUBBING_DAG}/runs/{quote(dubbing_run, safe='')}"
    say("Where to look in the Airflow UI (log in first):")
    say(f"  The WaveSpeed board of the dubbing run (each dub, its player, the cost): {run_path}/plugin/wavespeed-board")
    say(f"  The dubs, labelled interview.<lang>: {run_path}/tasks/lipsync/mapped")
    say(f"  One dub's WaveSpeed tab (its video plays inline): {run_path}/tasks/lipsync/mapped/0/plugin/wavespeed")
    say("  Its extra links (Details): 'Stored output' and 'WaveSpeed copy (deleted after 7 days)'")
    say(f"  The connection form (Test works): {airflow.url}/connections")
    if exit_after_run:
        return 0
    say("Airflow keeps running; trigger more runs in the UI. Press Ctrl-C to stop.")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
