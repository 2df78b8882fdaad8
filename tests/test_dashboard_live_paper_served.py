"""The live paper view as people meet it: served, in a browser, started and stopped by hand."""

from __future__ import annotations

import re
import time

import panel as pn
import pytest

from tests.served import (
    PANEL, browser_page, clean_env, free_port, running, server_errors, tasks_named, wait_for,
    wait_until_up,
)  # fmt: skip
from workbench.data.sources.simulated import SimulatedMarket
from workbench.ui.live_paper import EQUITY_CLASS, PRICE_CLASS, STATUS_CLASS, LivePaperView

# A fixed simulated present, at which the default strategy (a long-only 10/30 moving-average
# cross) buys both symbols on the first bar: the equity then moves with every tick.
NOW = "2024-03-01 12:30"
APP = f"""
import panel as pn

from workbench.data.sources.simulated import SimulatedMarket
from workbench.ui.live_paper import LivePaperView

pn.extension("tabulator")
market = SimulatedMarket(seed=7, now="{NOW}")
LivePaperView(market, symbols=["BTC/USDT", "ETH/USDT"], speed=60).servable(title="Live paper")
"""
NUMBER = re.compile(r"[-+]?[\d,]+(?:\.\d+)?")


def shown(page, css_class: str) -> str:
    """The big number a Number indicator shows (its title, then its value, inside the
    indicator's shadow root, which Playwright's CSS locators pierce)."""
    text = page.locator(f".{css_class} div").last.inner_text().strip()
    assert NUMBER.fullmatch(text), text
    return text


def samples(page, seconds: float, every: float = 0.25) -> list[tuple[str, str]]:
    """(last price, equity) as the page shows them, read every ``every`` s for ``seconds``."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.append((shown(page, PRICE_CLASS), shown(page, EQUITY_CLASS)))
        page.wait_for_timeout(every * 1000)
    return seen


@pytest.mark.served
def test_the_live_view_moves_after_start_and_stands_still_after_stop(tmp_path, artifacts):
    app = tmp_path / "live_paper_app.py"
    app.write_text(APP)
    port = free_port()
    url = f"http://localhost:{port}"
    log = tmp_path / "serve.log"
    env = clean_env(WORKBENCH_DATA_DIR=str(tmp_path / "data"))
    command = [
        PANEL, "serve", str(app), "--index", "live_paper_app",
        "--port", str(port), "--address", "127.0.0.1",
    ]  # fmt: skip
    with running(command, log, env) as proc:
        wait_until_up(url, proc, log)
        with browser_page(url, {"width": 1400, "height": 1300}) as watched:
            page = watched.page
            start = page.get_by_role("button", name="Start")
            start.wait_for(timeout=60_000)
            page.wait_for_selector("canvas", timeout=30_000)
            before = samples(page, 1.5)
            assert len(set(before)) == 1, f"it moved before Start: {before}"
            assert shown(page, EQUITY_CLASS) == "10,000.00"

            start.click()
            status = page.locator(f".{STATUS_CLASS}")
            status.get_by_text("running").wait_for(timeout=10_000)
            running_for = samples(page, 6.0)
            prices = {price for price, _ in running_for}
            equities = {equity for _, equity in running_for}
            assert len(prices) >= 3, f"the last price hardly changed: {running_for}"
            assert len(equities) >= 3, f"the equity hardly changed: {running_for}"
            assert running_for[-1][1] != "10,000.00"
            page.wait_for_timeout(500)
            page.screenshot(path=str(artifacts / "live_paper.png"), full_page=True)

            page.get_by_role("button", name="Stop").click()
            status.get_by_text("stopped").wait_for(timeout=10_000)
            page.wait_for_timeout(1_000)  # a redraw already on its way may still land
            after = samples(page, 3.0)
            assert len(set(after)) == 1, f"it kept moving after Stop: {after}"
            assert page.get_by_role("button", name="Restart").is_enabled()
            assert page.get_by_role("button", name="Pause").is_disabled()
            page.screenshot(path=str(artifacts / "live_paper_stopped.png"), full_page=True)
            assert not watched.errors, watched.errors
            assert not watched.external, f"the page reached beyond the server: {watched.external}"
    assert not server_errors(log.read_text(errors="replace"))


@pytest.mark.served
def test_closing_the_page_stops_its_paper_session():
    """A session started from the page runs on the server's loop until the page goes."""
    port = free_port()
    server = pn.serve(
        lambda: LivePaperView(SimulatedMarket(seed=7, now=NOW), speed=60),
        port=port, address="127.0.0.1", threaded=True, show=False, verbose=False,
        unused_session_lifetime_milliseconds=500, check_unused_sessions_milliseconds=200,
    )  # fmt: skip

    def sessions() -> int:
        return tasks_named(server, "PaperSession._run")

    try:
        assert wait_for(lambda: hasattr(server, "asyncio_loop"))
        url = f"http://localhost:{port}"
        with browser_page(url, {"width": 1200, "height": 900}) as watched:
            second = watched.page.context.browser.new_page()
            second.goto(url)
            for page in (watched.page, second):
                start = page.get_by_role("button", name="Start")
                start.wait_for(timeout=60_000)
                start.click()
            assert wait_for(lambda: sessions() == 2), sessions()
            assert not watched.errors, watched.errors
        assert wait_for(lambda: sessions() == 0), sessions()
    finally:
        server.stop()
