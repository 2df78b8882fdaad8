"""The Strategy lab as people meet it: served, in a browser, a backtest run from its button."""

from __future__ import annotations

import re
import pytest

from tests.served import (
    server_errors,
    WORKBENCH,
    browser_page,
    clean_env,
    free_port,
    running,
    wait_until_up,
)
from workbench.ui.strategy_lab import STATS_CLASS

NUMBER = re.compile(r"^-?[\d,]+\.\d+%?$")
# The result's chart has arrived: a data source of equity (the Market page has none).
EQUITY_JS = """() => [...Bokeh.documents[0].all_models].some(m => {
  const e = m.data && (m.data instanceof Map ? m.data.get("equity") : m.data.equity);
  return e && e.length > 10;
})"""


@pytest.mark.served
def test_running_a_backtest_fills_the_stats_table(tmp_path, artifacts):
    port = free_port()
    url = f"http://localhost:{port}"
    log = tmp_path / "serve.log"
    env = clean_env(WORKBENCH_DATA_DIR=str(tmp_path / "data"))
    with running([WORKBENCH, "serve", "--port", str(port)], log, env) as proc:
        wait_until_up(url, proc, log)
        with browser_page(url, {"width": 1500, "height": 1900}) as watched:
            page = watched.page
            page.get_by_text("Strategy lab", exact=True).click()
            run = page.get_by_role("button", name="Run backtest")
            run.wait_for(timeout=60_000)
            assert not page.locator(f".{STATS_CLASS} .tabulator-row").count()
            run.click()

            sharpe = page.locator(f".{STATS_CLASS} .tabulator-row", has_text="sharpe")
            sharpe.wait_for(timeout=30_000)
            value = sharpe.locator('[tabulator-field="value"]').inner_text().strip()
            assert NUMBER.match(value), value
            total = page.locator(f".{STATS_CLASS} .tabulator-row", has_text="total return")
            assert total.locator('[tabulator-field="value"]').inner_text().strip().endswith("%")
            page.get_by_text(re.compile(r"Recorded as run 1\.")).wait_for(timeout=10_000)
            page.wait_for_function(EQUITY_JS, timeout=30_000)  # the result's chart
            page.wait_for_timeout(1_500)  # the canvases draw after their data arrives
            page.screenshot(path=str(artifacts / "strategy_lab.png"), full_page=True)
            assert not watched.errors, watched.errors
            assert not watched.external, f"the page reached beyond the server: {watched.external}"
    assert not server_errors(log.read_text(errors="replace"))
