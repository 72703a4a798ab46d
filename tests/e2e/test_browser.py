"""The Airflow UI in headless Chromium (Debian's, driven by Playwright): what a person sees.

Each test writes a screenshot to ``artifacts/screenshots/`` (CI keeps the folder; docs/img/ holds
the chosen ones). Without Debian's chromium the tests skip, saying how to install it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from devstack.airflow_stack import ADMIN_USER, LocalAirflow
from tests.e2e.conftest import FIVE_DUBS, OUTSIDER, requires_api_server

pytestmark = [pytest.mark.e2e, pytest.mark.browser, requires_api_server]

CHROMIUM = Path("/usr/bin/chromium")
# No network but loopback here: without these, Chromium keeps trying to reach Google's services.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
DUBBING_DAG = "example_dubbing_pipeline"
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed: run scripts/install-browser (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser: Any, airflow: LocalAirflow) -> Iterator[Any]:
    """``open_page(user)``: a page in a new browser context logged in as ``user`` (None: anonymous).

    Every context is closed after the test: an open Airflow page keeps polling the api-server.
    """
    contexts: list[Any] = []

    def open_as(user: str | None = ADMIN_USER) -> Any:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        if user is not None:
            log_in(page, airflow, user)
        return page

    yield open_as
    for context in contexts:
        context.close()


def log_in(page: Any, airflow: LocalAirflow, user: str, *, screenshot: str | None = None) -> None:
    """Log in through Airflow's own login page."""
    page.goto(f"{airflow.url}/", wait_until="domcontentloaded")
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(airflow.password_of(user))
    if screenshot:
        page.screenshot(path=SCREENSHOTS / screenshot)
    page.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(rf"^{re.escape(airflow.url)}/(?!auth)"), wait_until="domcontentloaded")


def run_url(airflow: LocalAirflow, run_id: str) -> str:
    return f"{airflow.url}/dags/{DUBBING_DAG}/runs/{quote(run_id, safe='')}"


def test_logging_in_shows_the_dags(open_page: Any, airflow: LocalAirflow):
    page = open_page(None)
    log_in(page, airflow, ADMIN_USER, screenshot="login.png")

    page.goto(f"{airflow.url}/dags", wait_until="domcontentloaded")
    page.get_by_text(DUBBING_DAG).first.wait_for()
    page.screenshot(path=SCREENSHOTS / "dags.png")


def test_the_connection_form_offers_wavespeed_with_its_labels(open_page: Any, airflow: LocalAirflow):
    page = open_page()
    page.goto(f"{airflow.url}/connections", wait_until="domcontentloaded")
    row = page.get_by_role("row").filter(has_text="wavespeed_default")
    row.wait_for()

    test_button = row.get_by_role("button", name="Test Connection")
    assert test_button.is_enabled(), "AIRFLOW__CORE__TEST_CONNECTION=Enabled enables the Test button"
    row.get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("WaveSpeed").first.wait_for()
    for label in ("Base URL", "API Key"):
        dialog.get_by_text(label, exact=True).first.wait_for()
    dialog.get_by_text("Extra Fields", exact=True).first.click()
    for label in ("Connect timeout (s)", "Read timeout (s)", "Retry limit", "Retry delay (s)"):
        dialog.get_by_text(label, exact=True).first.wait_for()
    page.screenshot(path=SCREENSHOTS / "connection-form.png", full_page=True)


def test_the_connection_test_button_reports_success(open_page: Any, airflow: LocalAirflow):
    page = open_page()
    page.goto(f"{airflow.url}/connections", wait_until="domcontentloaded")
    row = page.get_by_role("row").filter(has_text="wavespeed_default")
    row.wait_for()
    with page.expect_response(lambda response: response.url.endswith("/api/v2/connections/test")) as answer:
        row.get_by_role("button", name="Test Connection").click()
    result = answer.value.json()
    sent = answer.value.request.post_data
    assert answer.value.status == 200 and result.get("status") is True, f"the test of {sent} answered {result}"
    page.get_by_text("Test Connection Successful").first.wait_for()
    page.screenshot(path=SCREENSHOTS / "connection-test.png")


def test_the_dubbing_runs_mapped_tasks_show_their_labels(open_page: Any, airflow: LocalAirflow, five_dubs_run: str):
    page = open_page()
    page.goto(f"{run_url(airflow, five_dubs_run)}/tasks/lipsync/mapped", wait_until="domcontentloaded")

    for label in FIVE_DUBS:
        page.get_by_text(label, exact=True).first.wait_for()
    page.screenshot(path=SCREENSHOTS / "mapped-labels.png", full_page=True)
    page.goto(run_url(airflow, five_dubs_run), wait_until="domcontentloaded")
    page.get_by_text("lipsync").first.wait_for()
    page.screenshot(path=SCREENSHOTS / "grid.png")


def test_the_task_instance_view_plays_the_dub(open_page: Any, airflow: LocalAirflow, five_dubs_run: str):
    page = open_page()
    page.goto(
        f"{run_url(airflow, five_dubs_run)}/tasks/lipsync/mapped/0/plugin/wavespeed", wait_until="domcontentloaded"
    )

    frame = page.frame_locator("iframe")
    frame.get_by_text(f"WaveSpeed prediction: {FIVE_DUBS[0]}").wait_for()
    video = frame.locator("video").first
    video.wait_for()
    ready = video.evaluate(
        """video => new Promise(resolve => {
            if (video.readyState >= 2) return resolve(video.readyState);
            video.addEventListener("loadeddata", () => resolve(video.readyState));
            video.addEventListener("error", () => resolve(-(video.error ? video.error.code : 1)));
            video.load();
        })"""
    )
    assert ready >= 2, f"the video did not load (readyState/error {ready})"
    assert video.evaluate("video => video.videoWidth") > 0
    assert video.get_attribute("data-source") == "stored copy"
    frame.locator("[data-testid=request-id]").wait_for()
    page.screenshot(path=SCREENSHOTS / "task-instance-view.png", full_page=True)


def test_the_board_lists_every_dub_and_the_total_cost(open_page: Any, airflow: LocalAirflow, five_dubs_run: str):
    page = open_page()
    page.goto(f"{run_url(airflow, five_dubs_run)}/plugin/wavespeed-board", wait_until="domcontentloaded")

    frame = page.frame_locator("iframe")
    frame.locator("[data-testid=total]").wait_for()
    rows = frame.locator("[data-testid=dub]")
    rows.nth(len(FIVE_DUBS) - 1).wait_for()
    assert rows.count() == len(FIVE_DUBS)
    assert sorted(rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())) == list(FIVE_DUBS)
    board = airflow_board(airflow, five_dubs_run)
    total = frame.locator("[data-testid=total]").inner_text()
    assert f"Run total: {board['total_price']:.4f}" in total
    assert f"({board['priced']} of {len(FIVE_DUBS)} priced)" in total
    page.screenshot(path=SCREENSHOTS / "board.png", full_page=True)


def test_a_user_without_access_to_the_dag_sees_no_board(open_page: Any, airflow: LocalAirflow, five_dubs_run: str):
    page = open_page(OUTSIDER)
    response = page.goto(f"{airflow.url}/wavespeed/runs/{DUBBING_DAG}/{quote(five_dubs_run, safe='')}")

    assert response is not None
    assert response.status == 403
    assert "lipsync" not in page.content()
    page.screenshot(path=SCREENSHOTS / "board-forbidden.png")


def test_an_anonymous_visitor_sees_no_board(open_page: Any, airflow: LocalAirflow, five_dubs_run: str):
    page = open_page(None)
    response = page.goto(f"{airflow.url}/wavespeed/runs/{DUBBING_DAG}/{quote(five_dubs_run, safe='')}")

    assert response is not None
    assert response.status == 401


def airflow_board(airflow: LocalAirflow, run_id: str) -> dict[str, Any]:
    import requests

    answer = requests.get(
        f"{airflow.url}/wavespeed/api/runs/{DUBBING_DAG}/{quote(run_id, safe='')}",
        headers={"Authorization": f"Bearer {airflow.token_of(ADMIN_USER)}"},
        timeout=60,
    )
    answer.raise_for_status()
    return dict(answer.json())
