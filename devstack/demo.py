"""`make demo`: a real Airflow lip-syncs a generated clip through the provider, against the emulator.

It generates a talking-head-sized test clip and a longer "dubbed" audio track, starts the WaveSpeed
emulator and a real Airflow 3 (api-server, scheduler, triggerer, dag-processor on loopback, SQLite),
creates the ``wavespeed_default`` connection, triggers ``example_lipsync``, waits for it, and prints
where the lip-synced video is and how to open the Airflow UI. Airflow stays up until Ctrl-C, unless
``--exit-after-run`` (or ``WAVESPEED_DEMO_EXIT=1``) is given, for scripts and CI.

Everything lives in ``.demo/`` (recreated on every run); nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

from airflow_provider_wavespeed.emulator import EmulatorConfig, WaveSpeedEmulator
from devstack.airflow_stack import ADMIN_USER, LocalAirflow
from devstack.clips import make_audio, make_video, media_duration

REPO = Path(__file__).resolve().parent.parent
DEMO_DAG = "example_lipsync"
VIDEO_SECONDS = 6.0
AUDIO_SECONDS = 8.0
# Long enough to watch the task sit in "deferred" in the UI; a real lipsync takes minutes.
PREDICTION_SECONDS = 15.0


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--exit-after-run",
        action="store_true",
        default=os.environ.get("WAVESPEED_DEMO_EXIT", "") not in ("", "0"),
        help="stop Airflow once the DAG run ends (also WAVESPEED_DEMO_EXIT=1)",
    )
    parser.add_argument("--state-dir", type=Path, default=REPO / ".demo", help="where everything is kept")
    args = parser.parse_args(argv)

    state = args.state_dir.resolve()
    shutil.rmtree(state, ignore_errors=True)
    media = state / "media"
    media.mkdir(parents=True)

    say(f"Generating a {VIDEO_SECONDS:.0f} s test video and an {AUDIO_SECONDS:.0f} s audio track in {media}")
    make_video(media / "interview.mp4", VIDEO_SECONDS)
    make_audio(media / "interview.fr.wav", AUDIO_SECONDS)

    emulator = WaveSpeedEmulator.spawn(
        EmulatorConfig(
            api_key=f"demo-{secrets.token_hex(12)}",
            data_dir=state / "emulator",
            prediction_seconds=(PREDICTION_SECONDS, PREDICTION_SECONDS),
        )
    )
    airflow = LocalAirflow(
        home=state / "airflow", dags_folder=REPO / "example_dags", extra_env={"WAVESPEED_EXAMPLE_MEDIA": str(media)}
    )
    try:
        say(f"WaveSpeed emulator on {emulator.base_url}")
        say("Starting Airflow (api-server, scheduler, triggerer, dag-processor); about 30 s")
        airflow.start()
        airflow.create_connection(
            {
                "connection_id": "wavespeed_default",
                "conn_type": "wavespeed",
                "description": "The local WaveSpeed emulator started by `make demo`",
                "host": emulator.base_url,
                "password": emulator.api_key,
            }
        )
        airflow.wait_for_dag(DEMO_DAG)
        run_id = airflow.trigger(DEMO_DAG)
        say(f"Triggered {DEMO_DAG}: {airflow.url}/dags/{DEMO_DAG}/runs/{run_id}")
        started = time.monotonic()
        reported: set[str] = set()

        def report(task_instances: list[dict[str, object]]) -> None:
            for instance in task_instances:
                state_now = str(instance["state"])
                if state_now not in reported and state_now != "None":
                    reported.add(state_now)
                    say(f"  {instance['task_id']}: {state_now} ({time.monotonic() - started:.0f} s)")

        final_state = airflow.wait_for_run(DEMO_DAG, run_id, on_poll=report)
        if final_state != "success":
            say(f"The run ended '{final_state}'. The task's log:")
            print(airflow.task_log(DEMO_DAG, run_id, "lipsync"))
            return 1
        result = airflow.xcom(DEMO_DAG, run_id, "lipsync")
        output = Path(result["stored_outputs"][0])
        say(
            f"Done: WaveSpeed prediction {result['request_id']} lip-synced the video "
            f"(sync_mode cut_off: {media_duration(output):.1f} s, the shorter input)."
        )
        say(f"Output video: {output}")
        say(f"Airflow UI:   {airflow.url}  (login: {ADMIN_USER} / {airflow.admin_password})")
        if args.exit_after_run:
            return 0
        say("Airflow keeps running; trigger more runs in the UI. Press Ctrl-C to stop.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        say("Stopping")
        return 0
    finally:
        airflow.stop()
        emulator.terminate()


if __name__ == "__main__":
    sys.exit(main())
