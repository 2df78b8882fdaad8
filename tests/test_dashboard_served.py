"""The dashboard as people meet it: the README's command, a browser, and the server's guards."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.served import (
    CHROMIUM, CHROMIUM_ARGS, PANEL, ROOT, WORKBENCH, browser_page, clean_env, free_port,
    port_in_use, running, tasks_named, wait_for, wait_until_up,
)  # fmt: skip
from workbench.errors import ConfigError
from workbench.ui.server import AUTH_FILE_ENV, COOKIE_SECRET_ENV, auth_from_env, is_loopback

SECRET = "s3cret-cookie-signing-key-for-the-test-only-0123456789"

# The candles the page shows: of the data sources holding bars (a "high" column), the one
# made last (ids count up; a replaced chart's sources may linger in Bokeh.documents[0]), as
# its row count, id and last value of "top" (a candle body's close).
CANDLES_JS = """() => {
  const col = (m, k) => (m.data instanceof Map ? m.data.get(k) : m.data[k]);
  let best = null;
  for (const m of Bokeh.documents[0].all_models) {
    const high = m.data && col(m, "high"), top = m.data && col(m, "top");
    if (!high || !top || high.length < 2) continue;
    const serial = Number(m.id.replace(/\\D/g, ""));
    if (!best || serial > best.serial)
      best = {serial: serial, rows: high.length, close: top[top.length - 1]};
  }
  return best;
}"""


@pytest.mark.served
@pytest.mark.slow
def test_run_dashboard_serves_the_page_and_liveness(tmp_path):
    """The README's first command, exactly as a user types it, from the repository root."""
    if port_in_use(5006):
        pytest.fail("port 5006 is already taken, so `./run dashboard` cannot be tried here")
    log = tmp_path / "dashboard.log"
    with running(["./run", "dashboard"], log, env=dict(os.environ)) as proc:
        page = wait_until_up("http://localhost:5006", proc, log)
        assert "<title>Trading Workbench</title>" in page.text
        live = httpx.get("http://localhost:5006/liveness", timeout=10)
        assert live.status_code == 200 and live.json() == {"/liveness": True}
        app = httpx.get("http://localhost:5006/liveness", params={"endpoint": "/"}, timeout=30)
        assert app.status_code == 200 and app.json() == {"/": True}
    assert "http://localhost:5006" in log.read_text()


@pytest.mark.served
@pytest.mark.slow
def test_dashboard_streams_bars_in_a_browser(tmp_path, artifacts):
    port = free_port()
    url = f"http://localhost:{port}"
    log = tmp_path / "serve.log"
    with running([WORKBENCH, "serve", "--port", str(port)], log) as proc:
        wait_until_up(url, proc, log)
        with browser_page(url, {"width": 1400, "height": 900}) as watched:
            page = watched.page
            page.wait_for_selector("canvas", timeout=60_000)
            page.wait_for_function(f"({CANDLES_JS})() !== null", timeout=30_000)
            first = page.evaluate(CANDLES_JS)
            assert first["rows"] >= 100, first
            page.screenshot(path=str(artifacts / "dashboard_loaded.png"))

            page.wait_for_function(
                f"(first) => {{ const now = ({CANDLES_JS})(); "
                "return now.rows !== first.rows || now.close !== first.close; }",
                arg=first,
                timeout=20_000,
            )
            page.screenshot(path=str(artifacts / "dashboard_streamed.png"))

            page.locator("select").first.select_option("ETH/USDT")
            page.wait_for_function(
                f"(first) => Math.abs(({CANDLES_JS})().close / first.close - 1) > 0.2",
                arg=first,
                timeout=20_000,
            )
            page.wait_for_timeout(1_500)
            page.screenshot(path=str(artifacts / "dashboard_eth.png"))
            assert page.get_by_text(re.compile(r"ETH/USDT · 1m · last [\d,.]+")).is_visible()
            assert not watched.errors, watched.errors
            assert not watched.external, f"the page reached beyond the server: {watched.external}"


@pytest.mark.served
def test_closing_the_page_stops_its_stream():
    """Each session streams on the server's loop until the session is destroyed."""

    import panel as pn

    from workbench.ui.app import create_app

    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    port = free_port()
    server = pn.serve(
        lambda: create_app(),
        port=port,
        threaded=True,
        show=False,
        verbose=False,
        unused_session_lifetime_milliseconds=500,
        check_unused_sessions_milliseconds=200,
    )

    def streams() -> int:
        return tasks_named(server, "MarketView._follow")

    try:
        assert wait_for(lambda: port_in_use(port))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for _ in range(2):
                    browser.new_page().goto(f"http://localhost:{port}")
                assert wait_for(lambda: streams() == 2), streams()
            finally:
                browser.close()
        assert wait_for(lambda: streams() == 0), streams()
    finally:
        server.stop()


@pytest.mark.served
def test_panel_serve_runs_the_app_module(tmp_path):
    port = free_port()
    log = tmp_path / "panel.log"
    command = [PANEL, "serve", "workbench/ui/app.py", "--port", str(port), "--liveness"]
    with running(command, log) as proc:
        page = wait_until_up(f"http://localhost:{port}/app", proc, log)
        assert "<title>Trading Workbench</title>" in page.text
        live = f"http://localhost:{port}/liveness"
        app = httpx.get(live, params={"endpoint": "/app"}, timeout=30)
        assert app.json() == {"/app": True}


@pytest.mark.served
def test_refuses_to_listen_beyond_localhost_without_a_login():
    result = subprocess.run(
        [WORKBENCH, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Refusing to serve the dashboard on 0.0.0.0" in result.stderr
    assert AUTH_FILE_ENV in result.stderr and COOKIE_SECRET_ENV in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.served
def test_a_configured_login_guards_the_dashboard_and_stays_secret(tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"alice": "wonderland-password"}))
    port = free_port()
    log = tmp_path / "serve.log"
    env = clean_env(**{AUTH_FILE_ENV: str(users), COOKIE_SECRET_ENV: SECRET})
    command = [WORKBENCH, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, log, env) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/liveness", proc, log)
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/").status_code in (302, 303)  # to the login page
            credentials = {"username": "alice", "password": "wonderland-password"}
            login = client.post("/login", data=credentials)
            assert login.status_code in (200, 302)
            assert "user" in client.cookies
            assert "<title>Trading Workbench</title>" in client.get("/", follow_redirects=True).text
    output = log.read_text()
    assert "login required" in output
    assert SECRET not in output and "wonderland-password" not in output


# -- the guards, without a server ------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("::", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_no_login_configured_is_none():
    assert auth_from_env({}) is None


def test_a_login_needs_both_the_file_and_the_secret(tmp_path):
    users = tmp_path / "users.json"
    users.write_text('{"alice": "hunter2"}')
    with pytest.raises(ConfigError, match=COOKIE_SECRET_ENV):
        auth_from_env({AUTH_FILE_ENV: str(users)})
    with pytest.raises(ConfigError, match=AUTH_FILE_ENV):
        auth_from_env({COOKIE_SECRET_ENV: SECRET})
    auth = auth_from_env({AUTH_FILE_ENV: str(users), COOKIE_SECRET_ENV: SECRET})
    assert auth.users_file == users.resolve() and SECRET not in repr(auth)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot be read"),
        ("alice:hunter2", "not valid JSON"),
        ('["hunter2"]', "JSON object"),
        ('{"alice": ""}', "JSON object"),
        ("{}", "JSON object"),
    ],
)
def test_a_bad_users_file_is_refused_without_showing_it(tmp_path, content, problem):
    users = tmp_path / "users.json"
    if content is not None:
        users.write_text(content)
    with pytest.raises(ConfigError, match=problem) as failure:
        auth_from_env({AUTH_FILE_ENV: str(users), COOKIE_SECRET_ENV: SECRET})
    assert "hunter2" not in str(failure.value) and SECRET not in str(failure.value)


def test_a_short_cookie_secret_is_refused_without_showing_it(tmp_path):
    users = tmp_path / "users.json"
    users.write_text('{"alice": "hunter2"}')
    with pytest.raises(ConfigError, match="too short") as failure:
        auth_from_env({AUTH_FILE_ENV: str(users), COOKIE_SECRET_ENV: "short-secret"})
    assert "short-secret" not in str(failure.value)
