"""Serving the dashboard in tests: a server process on loopback, and headless Chromium
(Debian's ``chromium``; playwright drives it, no browser download) watching for page
errors and for any request that leaves the server."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from workbench.ui.server import AUTH_FILE_ENV, COOKIE_SECRET_ENV

ROOT = Path(__file__).resolve().parents[1]
WORKBENCH = str(Path(sys.executable).with_name("workbench"))
PANEL = str(Path(sys.executable).with_name("panel"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (AUTH_FILE_ENV, COOKIE_SECRET_ENV)}
    return {**env, **extra}


@contextmanager
def running(
    command: Sequence[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """A server in its own process group, killed with everything it started."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(command),
            cwd=ROOT,
            env=env or clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=15)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def wait_until_up(
    url: str, proc: subprocess.Popen, log: Path, timeout: float = 120
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = log.read_text(errors="replace")
            pytest.fail(f"the server exited ({proc.returncode}):\n{output}")
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text(errors='replace')}")


def wait_for(condition: Any, timeout: float = 30) -> bool:
    """Poll ``condition()`` until it holds or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return condition()


def tasks_named(server: Any, qualname: str) -> int:
    """How many tasks on a ``pn.serve(threaded=True)`` server's loop run ``qualname``."""
    import asyncio

    async def count() -> int:
        return [t.get_coro().__qualname__ for t in asyncio.all_tasks()].count(qualname)

    return asyncio.run_coroutine_threadsafe(count(), server.asyncio_loop).result(10)


@dataclass
class Watched:
    """A browser page, with the page errors it raised and the requests that left the server."""

    page: Any
    errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)


# A write in flight when the browser goes: tornado raises in a task nobody awaits and
# asyncio logs it -- the client leaving, not an error of the server. Its report, line by
# line: the heading, the task, then tornado's own frames, ending with this error.
_CLIENT_LEFT_TASK = re.compile(
    r"future: <Task finished name='Task-\d+' coro=<WebSocketProtocol13\.write_message\b.*"
    r"exception=WebSocketClosedError\(\)>"
)
_TORNADO_FRAME = re.compile(
    r"(Traceback \(most recent call last\):|During handling of the above exception.*|"
    r'  File ".*/tornado/[^"]+", line \d+, in \w+|    \S.*|'
    r"tornado\.iostream\.StreamClosedError: Stream is closed|)"
)
_CLIENT_LEFT_END = "tornado.websocket.WebSocketClosedError"


def server_errors(log: str) -> str:
    """What of a server's log shows an error (a traceback, a failed callback), leaving
    out reports of the client-left race above; "" when there is none."""
    lines, kept, k = log.splitlines(), [], 0
    while k < len(lines):
        end = k + 2
        if lines[k] == "Task exception was never retrieved" and _CLIENT_LEFT_TASK.fullmatch(
            lines[k + 1] if k + 1 < len(lines) else ""
        ):
            while end < len(lines) and _TORNADO_FRAME.fullmatch(lines[end]):
                end += 1
            if end < len(lines) and lines[end] == _CLIENT_LEFT_END:
                k = end + 1
                continue
        kept.append(lines[k])
        k += 1
    rest = "\n".join(kept)
    return rest if "Traceback" in rest or "Error thrown from callback" in rest else ""


@contextmanager
def browser_page(url: str, viewport: dict[str, int]) -> Iterator[Watched]:
    """A headless Chromium page on ``url`` (skips when chromium or playwright is missing)."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            watched = Watched(browser.new_page(viewport=viewport))
            local = (url, "data:", "blob:")
            watched.page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
            watched.page.on(
                "request", lambda r: r.url.startswith(local) or watched.external.append(r.url)
            )
            watched.page.goto(url)
            yield watched
        finally:
            browser.close()
