"""The served live paper view under load: server CPU per update and bar-to-browser latency.

Serves a ``LivePaperView`` over the seeded simulated market (``SimulatedMarket(seed=7)``,
20 symbols, 1m bars at speed 60: every symbol closes a bar once a wall second and sends
five forming updates in between) with ``panel serve`` in a child process on 127.0.0.1,
opens it in headless Chromium (Debian's ``chromium`` driven by playwright), presses
Start, lets it warm up, then measures over a window of ``--seconds``:

- the server process's CPU (``psutil`` user + system time of the server and anything it
  started, delta over the window) as a fraction of one core, and per update (an update
  being one symbol's closed bar; per stream message, forming ones included, too);
- the latency from a bar arriving on the server (the served app's market source logs
  ``time.time()`` as it yields each closed bar to the session) to that bar reaching the
  browser's Bokeh data sources (the page polls its candle and equity
  ``ColumnDataSource`` s every 5 ms and notes ``Date.now()`` when a bar time first
  appears); same machine, same clock; median, p95 and max. The view redraws at most once
  per ``refresh`` seconds (0.5 by default), which this latency includes by design.

Also measures, for scale, the browser's CPU over the same window and a no-browser
baseline: the same 20-symbol paper session in a process of its own with no view at all.
Target: the server under half a core (PASS/FAIL), keeping up with the stream (every
symbol's bar closed each second, every charted bar reaching the browser). Ends with one
JSON line holding every figure. Every process started is killed (by process group) at the
end, also on errors.

    .venv/bin/python benchmarks/dashboard.py [--seconds 30] [--symbols 20] [--refresh 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
PANEL = str(Path(sys.executable).with_name("panel"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
#: A fixed simulated present (as the served tests use): reproducible history and prices.
NOW = "2024-03-01 12:30"
#: The five listed symbols first, then unlisted pairs (the market gives them a profile).
SYMBOLS = [
    "BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "DOGE/USDT", "ADA/USDT", "AVAX/USDT",
    "LINK/USDT", "DOT/USDT", "LTC/USDT", "BCH/USDT", "TRX/USDT", "ATOM/USDT", "UNI/USDT",
    "XLM/USDT", "ETC/USDT", "FIL/USDT", "NEAR/USDT", "APT/USDT", "ARB/USDT",
]  # fmt: skip
CPU_TARGET = 0.5  # cores

#: The served app: the live paper view on a market whose stream logs each closed bar as it
#: reaches the session ("<epoch seconds> <symbol> <bar open ms> <stream messages so far>").
APP = """
import os
import time

import panel as pn

from workbench.data.sources.simulated import SimulatedMarket
from workbench.ui.live_paper import LivePaperView

LOG = open(os.environ["BENCH_BAR_LOG"], "a", buffering=1)


class LoggedMarket(SimulatedMarket):
    async def stream_bars(self, symbols, timeframe="1m", speed=1.0, **options):
        messages = 0
        async for update in super().stream_bars(symbols, timeframe, speed, **options):
            messages += 1
            if update.closed:
                stamp = int(update.timestamp.value // 1_000_000)
                LOG.write(f"{time.time():.6f} {update.symbol} {stamp} {messages}\\n")
            yield update


pn.extension("tabulator")
symbols = os.environ["BENCH_SYMBOLS"].split(",")
market = LoggedMarket(symbols, seed=7, now=os.environ["BENCH_NOW"])
LivePaperView(
    market, symbols=symbols, speed=float(os.environ["BENCH_SPEED"]),
    refresh=float(os.environ["BENCH_REFRESH"]),
).servable(title="Live paper benchmark")
"""

#: Installed in the page: polls the candle and equity data sources every 5 ms and notes,
#: per kind, the Date.now() at which each bar time first appears in them.
WATCH_JS = """
() => {
  if (window.__bench) return true;
  const seen = {candles: {}, equity: {}};
  window.__bench = seen;
  const col = (m, name) => {
    const d = m.data;
    if (!d) return undefined;
    return d instanceof Map ? d.get(name) : d[name];
  };
  let sources = [];
  const scan = () => {
    const found = [];
    for (const doc of (window.Bokeh && window.Bokeh.documents) || []) {
      for (const m of doc.all_models) {
        if (!m || m.data === undefined || typeof m.get_length !== "function") continue;
        if (col(m, "timestamp") && col(m, "open") && col(m, "left")) {
          found.push(["candles", "timestamp", m]);  // closed candles (the forming one: 1 row)
        } else if (col(m, "time") && col(m, "equity")) {
          found.push(["equity", "time", m]);
        }
      }
    }
    sources = found;
  };
  const poll = () => {
    const now = Date.now();
    for (const [kind, key, m] of sources) {
      const c = col(m, key);
      const n = c ? c.length : 0;
      if (kind === "candles" && n < 2) continue;
      for (let i = n - 1; i >= 0; i--) {
        const t = Number(c[i]);
        if (t in seen[kind]) break;
        seen[kind][t] = now;
      }
    }
  };
  scan();
  setInterval(scan, 250);
  setInterval(poll, 5);
  return true;
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def process_group(command: list[str], log: Path, env: dict[str, str]):
    """A child in its own process group, killed with everything it started at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=10)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()}")


def cpu_seconds(procs: list[psutil.Process]) -> float:
    """User + system CPU of the processes, their live descendants and reaped children."""
    total, seen = 0.0, set()
    for root in procs:
        try:
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in family:
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def quantiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median_ms": None, "p95_ms": None, "max_ms": None}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(ordered[-1], 1),
    }


def read_bar_log(path: Path) -> list[tuple[float, str, int, int]]:
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4:
            rows.append((float(parts[0]), parts[1], int(parts[2]), int(parts[3])))
    return rows


def served(args: argparse.Namespace, symbols: list[str], work: Path) -> dict[str, Any]:
    """The served view in Chromium: server and browser CPU, stream counts and latencies."""
    from playwright.sync_api import sync_playwright

    from workbench.ui.live_paper import STATUS_CLASS

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"chromium is not at {CHROMIUM} (apt-get install chromium)")
    app, bar_log, server_log = work / "live_paper_bench.py", work / "bars.log", work / "serve.log"
    app.write_text(APP)
    bar_log.touch()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "WORKBENCH_DATA_DIR": str(work / "data"),
        "BENCH_BAR_LOG": str(bar_log),
        "BENCH_SYMBOLS": ",".join(symbols),
        "BENCH_NOW": NOW,
        "BENCH_SPEED": str(args.speed),
        "BENCH_REFRESH": str(args.refresh),
    }
    command = [
        PANEL, "serve", str(app), "--index", app.stem, "--port", str(port),
        "--address", "127.0.0.1",
    ]  # fmt: skip
    with ExitStack() as stack:
        proc = stack.enter_context(process_group(command, server_log, env))
        wait_until_up(url, proc, server_log)
        server = psutil.Process(proc.pid)
        idle_0, idle_t0 = cpu_seconds([server]), time.monotonic()
        time.sleep(2.0)
        idle_cores = (cpu_seconds([server]) - idle_0) / (time.monotonic() - idle_t0)

        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        start = page.get_by_role("button", name="Start")
        start.wait_for(timeout=60_000)
        page.wait_for_selector("canvas", timeout=60_000)
        page.evaluate(WATCH_JS)
        mine = {server.pid, *(p.pid for p in server.children(recursive=True))}
        browsers = [p for p in psutil.Process().children(recursive=True) if p.pid not in mine]

        start.click()
        page.locator(f".{STATUS_CLASS}").get_by_text("running").wait_for(timeout=30_000)
        time.sleep(args.warmup)
        t0_wall, t0 = time.time(), time.monotonic()
        cpu0, browser0 = cpu_seconds([server]), cpu_seconds(browsers)
        time.sleep(args.seconds)
        cpu1, browser1 = cpu_seconds([server]), cpu_seconds(browsers)
        t1_wall, elapsed = time.time(), time.monotonic() - t0
        time.sleep(max(2.0, 3 * args.refresh))  # let the window's last bars reach the page
        seen = page.evaluate("() => window.__bench")
        page.screenshot(path=str(work / "live_paper_bench.png"), full_page=True)
        status = page.locator(f".{STATUS_CLASS} p").first.inner_text().strip()
        if proc.poll() is not None:
            raise RuntimeError(f"the server died:\n{server_log.read_text()}")

    bars = read_bar_log(bar_log)
    window = [b for b in bars if t0_wall <= b[0] < t1_wall]
    if not window:
        raise RuntimeError(f"no bars closed in the window:\n{server_log.read_text()}")
    # stream messages (forming and closed) per second, from the first to the last logged bar
    span = window[-1][0] - window[0][0]
    rate = (window[-1][3] - window[0][3]) / span if span > 0 else 0.0
    messages = round(rate * elapsed) or 1
    charted = symbols[0]
    first_arrival: dict[int, float] = {}
    for at, _, stamp, _ in bars:
        first_arrival.setdefault(stamp, at)
    candle_ms, equity_ms, missing = [], [], 0
    in_window = [(at, stamp) for at, symbol, stamp, _ in window if symbol == charted]
    for at, stamp in in_window:
        shown = seen["candles"].get(str(stamp))
        if shown is None:
            missing += 1
        else:
            candle_ms.append(shown - at * 1000)
        if str(stamp) in seen["equity"]:
            equity_ms.append(seen["equity"][str(stamp)] - first_arrival[stamp] * 1000)
    # how long a bar time's symbols take to reach the session, first to last
    spread = [
        max(a for a, s, st, _ in window if st == stamp) - min(a for a, s, st, _ in window if st == stamp)
        for stamp in {st for _, _, st, _ in window}
    ]  # fmt: skip
    cpu = cpu1 - cpu0
    return {
        "seconds": round(elapsed, 2),
        "server_idle_cores": round(idle_cores, 4),
        "server_cpu_s": round(cpu, 3),
        "server_cores": round(cpu / elapsed, 4),
        "browser_cores": round((browser1 - browser0) / elapsed, 4),
        "closed_bars": len(window),
        "closed_bars_per_s": round(len(window) / elapsed, 2),
        "stream_messages_per_s": round(rate, 2),
        "server_cpu_ms_per_bar": round(1000 * cpu / len(window), 3),
        "server_cpu_ms_per_message": round(1000 * cpu / messages, 3),
        "batch_spread_ms_max": round(1000 * max(spread), 1),
        "charted_symbol": charted,
        "charted_bars": len(in_window),
        "charted_bars_missing_in_browser": missing,
        "candle_latency": quantiles(candle_ms),
        "equity_latency": quantiles(equity_ms),
        "page_errors": errors,
        "status": status,
    }


def baseline_child(symbols: list[str], speed: float, seconds: float, warmup: float) -> None:
    """In a process of its own: the same paper session with no view; prints its CPU."""
    import asyncio

    from workbench.data.sources.simulated import SimulatedMarket
    from workbench.engine.live import PaperSession
    from workbench.ui.live_paper import _warm_up, default_strategy

    arrivals: list[float] = []  # when each closed bar reached the session

    class CountedMarket(SimulatedMarket):
        async def stream_bars(self, *a: Any, **kw: Any) -> Any:
            async for update in super().stream_bars(*a, **kw):
                if update.closed:
                    arrivals.append(time.monotonic())
                yield update

    async def run() -> dict[str, float]:
        market = CountedMarket(symbols, seed=7, now=NOW)
        session = PaperSession.from_source(
            market, symbols, "1m", default_strategy(), speed=speed, history_bars=200
        )
        _warm_up(session.strategy, session.feed.bars[symbols[0]].frame)
        session.start()
        await asyncio.sleep(warmup + 30 / speed)  # the window starts half a bar off the closes
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, t1 = time.process_time() - cpu0, time.monotonic()
        elapsed, closed = t1 - t0, sum(t0 <= at < t1 for at in arrivals)
        await session.stop()
        return {"seconds": elapsed, "cpu_s": cpu, "closed_bars": closed}

    print(json.dumps(asyncio.run(run())))


def baseline(args: argparse.Namespace, symbols: list[str], work: Path) -> dict[str, Any]:
    log = work / "baseline.log"
    command = [
        sys.executable, str(Path(__file__).resolve()), "--baseline-child",
        "--symbols", str(len(symbols)), "--speed", str(args.speed),
        "--seconds", str(args.baseline_seconds), "--warmup", str(args.warmup),
    ]  # fmt: skip
    with process_group(command, log, dict(os.environ)) as proc:
        proc.wait(timeout=args.baseline_seconds + args.warmup + 120)
    result = json.loads(log.read_text().strip().splitlines()[-1])
    closed = max(result["closed_bars"], 1)
    return {
        "seconds": round(result["seconds"], 2),
        "cores": round(result["cpu_s"] / result["seconds"], 4),
        "closed_bars": result["closed_bars"],
        "cpu_ms_per_bar": round(1000 * result["cpu_s"] / closed, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--speed", type=float, default=60.0, help="60: a 1m bar a second")
    parser.add_argument("--refresh", type=float, default=0.5, help="the view's redraw period")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after Start")
    parser.add_argument("--baseline-seconds", type=float, default=10.0, help="0: skip it")
    parser.add_argument("--baseline-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.symbols <= len(SYMBOLS):
        parser.error(f"--symbols must be in 1..{len(SYMBOLS)}")
    symbols = SYMBOLS[: args.symbols]
    if args.baseline_child:
        baseline_child(symbols, args.speed, args.seconds, args.warmup)
        return

    per_second = len(symbols) * args.speed / 60
    print(
        f"live paper view served: {len(symbols)} symbols, 1m bars at speed {args.speed:g} "
        f"({per_second:g} closed bars/s), refresh {args.refresh:g} s, "
        f"{args.seconds:g} s window after {args.warmup:g} s warm-up\n"
    )
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        work = Path(tmp)
        base = baseline(args, symbols, work) if args.baseline_seconds > 0 else None
        figures = served(args, symbols, work)

    cl, eq = figures["candle_latency"], figures["equity_latency"]
    rows = [
        ("server CPU, cores", f"{figures['server_cores']:.3f}",
         f"{base['cores']:.3f}" if base else "-"),
        ("CPU per closed bar, ms", f"{figures['server_cpu_ms_per_bar']:.2f}",
         f"{base['cpu_ms_per_bar']:.2f}" if base else "-"),
        ("closed bars in window", str(figures["closed_bars"]),
         str(base["closed_bars"]) if base else "-"),
    ]  # fmt: skip
    print(f"{'':<28} {'served+browser':>15} {'session alone':>14}")
    for name, served_value, base_value in rows:
        print(f"{name:<28} {served_value:>15} {base_value:>14}")
    print(
        f"\nserver idle before the page: {figures['server_idle_cores']:.3f} cores; "
        f"browser while running: {figures['browser_cores']:.3f} cores"
    )
    print(
        f"stream: {figures['closed_bars_per_s']:.2f} closed bars/s (expected {per_second:g}), "
        f"{figures['stream_messages_per_s']:.0f} messages/s (forming ones included), "
        f"{figures['server_cpu_ms_per_message']:.2f} ms CPU per message; "
        f"a bar time's {len(symbols)} symbols reach the session within "
        f"{figures['batch_spread_ms_max']:.0f} ms"
    )
    print(f"\nbar arrival -> browser data source, ms      {'median':>8} {'p95':>8} {'max':>8}  n")
    for name, q in (("candles (" + figures["charted_symbol"] + ")", cl), ("equity", eq)):
        if q["n"]:
            print(
                f"  {name:<41} {q['median_ms']:8.0f} {q['p95_ms']:8.0f} {q['max_ms']:8.0f}  "
                f"{q['n']}"
            )
        else:
            print(f"  {name:<41} {'-':>8} {'-':>8} {'-':>8}  0")
    print(f"  (includes the view's redraw throttle of up to {args.refresh:g} s)")
    if figures["page_errors"]:
        print(f"\npage errors: {figures['page_errors']}")

    keeps_up = (
        figures["closed_bars_per_s"] >= 0.95 * per_second
        and figures["charted_bars_missing_in_browser"] == 0
        and cl["n"] > 0
        and not figures["page_errors"]
    )
    targets = {
        f"server CPU < {CPU_TARGET} core": figures["server_cores"] < CPU_TARGET,
        "keeps up (all bars closed on time and charted in the browser)": keeps_up,
    }
    print()
    for name, passed in targets.items():
        print(f"  {'PASS' if passed else 'FAIL'}  {name}")
    summary = {
        "symbols": len(symbols),
        "speed": args.speed,
        "refresh": args.refresh,
        "served": figures,
        "baseline_session_alone": base,
        "targets": targets,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
