"""Cost against the emulator: quotes in every result, caps that stop before paying, a budget per run.

The emulator charges a lipsync ``price_per_second`` per second of the output its ``sync_mode``
makes, from the real clips these tests upload, and keeps a ledger (``charges`` in its stats).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_provider_wavespeed.exceptions import WaveSpeedCostError, WaveSpeedInsufficientBalanceError
from airflow_provider_wavespeed.operators.lipsync import LipsyncOperator
from devstack.clips import make_audio, make_video
from tests.helpers.airflow_context import StateStore, make_context
from tests.integration.dag_runs import run_example, task_states, use_emulator, xcom
from wavespeed_emulator import WaveSpeedEmulator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

RATE = 0.025
"""The emulator's default price of one second of lipsync output (USD)."""
DUBBING_DAY = pendulum.datetime(2026, 11, 20, tz="UTC")


@pytest.fixture
def clips(tmp_path: Path) -> dict[str, Path]:
    return {
        "video": make_video(tmp_path / "video-2s.mp4", 2),
        "audio": make_audio(tmp_path / "audio-3s.wav", 3),
    }


@pytest.fixture
def dubbing_media(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A day of the dubbing example: two videos, three dubs of 1, 2 and 3 seconds."""
    monkeypatch.setenv("WAVESPEED_EXAMPLE_MEDIA", str(tmp_path))
    monkeypatch.delenv("WAVESPEED_EXAMPLE_STORAGE", raising=False)
    incoming = tmp_path / "incoming" / DUBBING_DAY.to_date_string()
    incoming.mkdir(parents=True)
    make_video(incoming / "talk.mp4", 1)
    make_video(incoming / "keynote.mp4", 2)
    make_audio(incoming / "talk.fr.wav", 1)
    make_audio(incoming / "talk.de.wav", 2)
    make_audio(incoming / "keynote.ja.wav", 3)
    return tmp_path


def lipsync(clips: dict[str, Path], **kwargs: Any) -> LipsyncOperator:
    return LipsyncOperator(
        task_id="lipsync",
        video=str(clips["video"]),
        audio=str(clips["audio"]),
        deferrable=False,
        poll_interval=0.1,
        max_poll_interval=0.2,
        timeout=30,
        **kwargs,
    )


def test_a_lipsync_result_carries_the_price_it_was_quoted_and_charged(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, clips: dict[str, Path]
):
    emulator = use_emulator(monkeypatch, emulator_factory(discount_rate=0.2), retry_delay=0)
    context = make_context()

    result = lipsync(clips, sync_mode="loop").execute(context)

    # loop: the output lasts the audio's 3 s; 20% off the list price.
    assert result["list_price"] == pytest.approx(3 * RATE, abs=0.001)
    assert result["price"] == pytest.approx(3 * RATE * 0.8, abs=0.001)
    assert result["currency"] == "USD"
    stats = emulator.stats()
    assert stats["charges"] == {result["request_id"]: result["price"]}
    assert stats["balance"] == pytest.approx(100.0 - result["price"], abs=1e-9)
    pushed = {call.kwargs["key"]: call.kwargs["value"] for call in context["ti"].xcom_push.call_args_list}
    assert pushed["price"]["discounted_price"] == result["price"]


def test_max_price_below_the_quote_submits_nothing_and_names_the_quote(
    lipsync_emulator: WaveSpeedEmulator, clips: dict[str, Path]
):
    with pytest.raises(WaveSpeedCostError) as raised:
        lipsync(clips, sync_mode="silence", max_price=0.05).execute(make_context())

    message = str(raised.value)
    # silence: the longer input, the audio's 3 s.
    assert "quotes 0.0750 USD" in message
    assert "max_price=0.05" in message
    assert "sync_mode='silence'" in message and "as long as the longer of the video and the audio" in message
    assert raised.value.price == pytest.approx(0.075)
    assert lipsync_emulator.stats()["submits"] == 0
    assert lipsync_emulator.stats()["charges"] == {}


def test_a_balance_below_the_quote_submits_nothing_with_min_balance_after(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, clips: dict[str, Path]
):
    emulator = use_emulator(monkeypatch, emulator_factory(balance=0.06), retry_delay=0)

    with pytest.raises(WaveSpeedCostError) as raised:
        lipsync(clips, sync_mode="cut_off", min_balance_after=0.02).execute(make_context())

    # cut_off: the shorter input, 2 s = 0.05 USD; 0.06 - 0.05 leaves 0.01 < 0.02.
    assert "balance is 0.0600 USD" in str(raised.value)
    assert "min_balance_after=0.02" in str(raised.value)
    assert emulator.stats()["submits"] == 0


def test_a_refusal_for_lack_of_funds_is_one_request_and_a_typed_error(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, clips: dict[str, Path]
):
    emulator = use_emulator(monkeypatch, emulator_factory(balance=0.01), retry_delay=0)
    store = StateStore()

    with pytest.raises(WaveSpeedInsufficientBalanceError) as raised:
        lipsync(clips).execute(make_context(store))

    assert "Top up" in str(raised.value) and "HTTP 402" in str(raised.value)
    stats = emulator.stats()
    assert stats["requests"]["submit"] == 1, "refused for funds: never retried"
    assert stats["submits"] == 0 and stats["charges"] == {}
    assert store.values == {}, "a refusal leaves no uncertain submit behind"


@pytest.mark.parametrize(
    ("status", "message"),
    [(400, "Your balance is not enough for this task"), (403, "Insufficient credits"), (500, "insufficient balance")],
)
def test_a_refusal_whose_message_says_the_balance_is_short_is_typed_whatever_its_status(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, clips: dict[str, Path], status: int, message: str
):
    emulator = use_emulator(
        monkeypatch,
        emulator_factory(balance=0.0, insufficient_balance_status=status, insufficient_balance_message=message),
        retry_delay=0,
    )

    with pytest.raises(WaveSpeedInsufficientBalanceError):
        lipsync(clips).execute(make_context())

    assert emulator.stats()["requests"]["submit"] == 1


def test_the_dubbing_run_quotes_every_dub_and_the_ledger_agrees_to_the_cent(
    lipsync_emulator: WaveSpeedEmulator, dubbing_media: Path
):
    dag_run = run_example("example_dubbing_pipeline", logical_date=DUBBING_DAY)

    assert str(dag_run.state) == "success"
    cost = xcom(dag_run, "quote_dubs", key="cost")
    # remap: each dub lasts its audio, 1 + 2 + 3 s.
    assert cost["total"] == pytest.approx(6 * RATE, abs=0.0001)
    assert cost["within_budget"] is True and cost["count"] == 3
    results = [xcom(dag_run, "lipsync", map_index=index) for index in range(3)]
    assert all(result["currency"] == "USD" and result["price"] > 0 for result in results), [
        (r["price"], r["currency"]) for r in results
    ]
    ledger = lipsync_emulator.stats()["charges"]
    assert sorted(ledger) == sorted(result["request_id"] for result in results)
    assert round(sum(ledger.values()), 2) == round(sum(result["price"] for result in results), 2)
    assert round(sum(ledger.values()), 2) == round(cost["total"], 2)
    assert lipsync_emulator.stats()["requests"]["upload_ticket"] == 5, "each file uploaded once, by the quote"


def test_the_dubbing_run_over_budget_stops_before_any_submit(lipsync_emulator: WaveSpeedEmulator, dubbing_media: Path):
    dag_run = run_example("example_dubbing_pipeline", {"budget": 0.1}, logical_date=DUBBING_DAY)

    states = task_states(dag_run)
    assert states[("quote_dubs", -1)] == "failed"
    assert "success" not in {state for (task_id, _), state in states.items() if task_id == "lipsync"}
    assert lipsync_emulator.stats()["submits"] == 0
    assert lipsync_emulator.stats()["requests"].get("submit", 0) == 0
