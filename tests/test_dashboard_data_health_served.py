"""The Data health page as people meet it: served, in a browser, over a pre-filled store."""

from __future__ import annotations

import pytest

from tests.served import WORKBENCH, browser_page, clean_env, free_port, running, wait_until_up
from workbench.config import load_settings
from workbench.data.importer import import_files
from workbench.data.store import MarketStore

BARS = "binance-spot/5m"


@pytest.mark.served
def test_data_health_page_shows_the_stores_gaps(tmp_path, shared_data, artifacts):
    data_dir = tmp_path / "data"
    with MarketStore.from_settings(load_settings(data_dir=data_dir)) as store:
        import_files(
            store, [shared_data / BARS / "ADA_BTC.parquet", shared_data / BARS / "ETH_BTC.parquet"]
        )
    port = free_port()
    url = f"http://localhost:{port}"
    log = tmp_path / "serve.log"
    env = clean_env(WORKBENCH_DATA_DIR=str(data_dir))
    with running([WORKBENCH, "serve", "--port", str(port)], log, env) as proc:
        wait_until_up(url, proc, log)
        with browser_page(url, {"width": 1400, "height": 1000}) as watched:
            page = watched.page
            page.get_by_text("Data health", exact=True).click()
            ada = page.locator(".tabulator-row", has_text="ADA/BTC")
            ada.wait_for(timeout=60_000)
            assert ada.locator('[tabulator-field="missing"]').inner_text() == "40"
            assert "outlier_returns:2" in ada.inner_text()
            ada.locator('[tabulator-field="symbol"]').click()
            page.get_by_text("2018-01-15 12:00:00").first.wait_for(timeout=30_000)
            page.wait_for_timeout(1_500)  # the chart's canvas draws after its data
            page.screenshot(path=str(artifacts / "dashboard_data_health.png"), full_page=True)
            assert not watched.errors, watched.errors
            assert not watched.external, f"the page reached beyond the server: {watched.external}"
