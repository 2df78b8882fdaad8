"""AlpacaSource through alpaca-py's real clients, against a local server speaking Alpaca's
market-data v2 and assets JSON, paging with next_page_token as Alpaca does."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd
import pytest

from workbench.config import load_settings
from workbench.data._retry import Backoff
from workbench.data.model import BAR_COLUMNS
from workbench.data.sources.alpaca_source import AlpacaSource, tick_rule
from workbench.data.sources.base import MarketSource
from workbench.errors import ConfigError, DataFormatError, SourceError, UnknownSymbolError

KEY, SECRET = "PKTEST7Q2W9E", "s3cr3t-Zx8Vb1Nm4"
PAGE = 7  # rows per page the fake answers, so every request spans several pages
SESSIONS = ("2024-01-02", "2024-01-05", "2024-01-10", "2024-01-17", "2024-01-22")
TAPE = [400.00, 400.00, 400.02, 400.02, 400.01, 400.05, 400.05, 400.04, 400.04, 400.06, 400.03,
        400.03]  # fmt: skip
TAPE_SIDES = ["sell", "sell", "buy", "buy", "sell", "buy", "buy", "sell", "sell", "buy", "sell",
              "sell"]  # fmt: skip
ASSET = {
    "id": "b28f4066-5c6d-479b-a2af-85dc1a8f16fb", "class": "us_equity", "exchange": "NASDAQ",
    "symbol": "QQQ", "name": "Invesco QQQ Trust", "status": "active", "tradable": True,
    "marginable": True, "shortable": True, "easy_to_borrow": True, "fractionable": True,
    "attributes": [],
}  # fmt: skip
QUOTE = {"t": "2024-01-02T15:00:00.5Z", "ax": "Q", "ap": 401.25, "as": 3, "bx": "Q", "bp": 401.2,
         "bs": 5, "c": ["R"], "z": "C"}  # fmt: skip


def minute_bars() -> list[dict]:
    """QQQ minute bars: the first half hour of five sessions spread over three weeks."""
    rng = np.random.default_rng(3)
    bars = []
    for day in SESSIONS:
        for stamp in pd.date_range(f"{day} 14:30", periods=30, freq="1min", tz="UTC"):
            o, c = np.round(400 + rng.normal(0, 2, 2), 2)
            bars.append({
                "t": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"), "o": o, "h": max(o, c) + 0.05,
                "l": min(o, c) - 0.05, "c": c, "v": float(rng.integers(1_000, 50_000)), "n": 90,
                "vw": c,
            })  # fmt: skip
    return bars


def trade_tape() -> list[dict]:
    """QQQ trades a quarter second apart, stamped in nanoseconds as Alpaca does."""
    start = pd.Timestamp("2024-01-02 14:30:00.000123456", tz="UTC")
    return [
        {"t": (start + pd.Timedelta(i * 250, "ms")).isoformat().replace("+00:00", "Z"),
         "x": "V", "p": price, "s": 100 + i, "c": ["@"], "i": 5_000 + i, "z": "C"}
        for i, price in enumerate(TAPE)
    ]  # fmt: skip


class FakeAlpaca(BaseHTTPRequestHandler):
    """Alpaca's /v2/assets and /v2/stocks/{bars,trades,quotes/latest}, listing QQQ and SPY."""

    bars: list[dict]
    trades: list[dict]
    quote: dict
    requests: list[dict]
    url: str

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        key = self.headers.get("APCA-API-KEY-ID")
        self.requests.append({"path": parts.path, "key": key, **query})
        if query.get("feed") == "sip":
            message = "subscription does not permit querying recent SIP data"
            return self.answer(403, {"code": 40310000, "message": message})
        routes = {
            "/v2/assets": lambda: [ASSET, {**ASSET, "symbol": "SPY"}],
            "/v2/assets/QQQ": lambda: ASSET,
            "/v2/stocks/bars": lambda: self.page("bars", self.bars, query),
            "/v2/stocks/trades": lambda: self.page("trades", self.trades, query),
            "/v2/stocks/quotes/latest": lambda: {"quotes": {"QQQ": self.quote}},
        }
        if parts.path not in routes:
            message = f"asset not found for {parts.path.rsplit('/')[-1]}"
            return self.answer(404, {"code": 40410000, "message": message})
        self.answer(200, routes[parts.path]())

    def page(self, key: str, rows: list[dict], query: dict) -> dict:
        """One page of the rows in [start, end], in the asked order, with next_page_token."""
        low, high = pd.Timestamp(query["start"]), pd.Timestamp(query["end"])
        chosen = [row for row in rows if low <= pd.Timestamp(row["t"]) <= high]
        if query.get("sort") == "desc":
            chosen.reverse()
        offset = int(query.get("page_token") or 0)
        end = offset + min(PAGE, int(query["limit"]))
        token = str(end) if end < len(chosen) else None
        return {key: {"QQQ": chosen[offset:end]}, "next_page_token": token}

    def answer(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def alpaca() -> Iterator[type[FakeAlpaca]]:
    state = {"bars": minute_bars(), "trades": trade_tape(), "quote": dict(QUOTE), "requests": []}
    handler = type("Handler", (FakeAlpaca,), state)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    serving = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    serving.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield handler
    server.shutdown()
    server.server_close()


def source(alpaca, **options) -> AlpacaSource:
    return AlpacaSource(KEY, SECRET, url_override=alpaca.url, **options)


def requests_to(alpaca, path: str) -> list[dict]:
    return [r for r in alpaca.requests if r["path"] == path]


def test_is_a_market_source_listing_equities(alpaca):
    qqq = source(alpaca)
    assert isinstance(qqq, MarketSource) and qqq.name == "alpaca"
    assert qqq.symbols() == ["QQQ", "SPY"]
    assert requests_to(alpaca, "/v2/assets")[0]["asset_class"] == "us_equity"


def test_bars_are_paged_and_equal_what_the_server_sent(alpaca, capsys):
    start = pd.Timestamp("2024-01-02 14:35", tz="UTC")
    end = pd.Timestamp("2024-01-22 14:40", tz="UTC")

    bars = source(alpaca).fetch_ohlcv("QQQ", "1m", start, end, progress=True)

    sent = [b for b in alpaca.bars if start <= pd.Timestamp(b["t"]) <= end]
    assert list(bars.index) == [pd.Timestamp(b["t"]) for b in sent]
    ohlcv = [[b["o"], b["h"], b["l"], b["c"], b["v"]] for b in sent]
    np.testing.assert_array_equal(bars.to_numpy(), ohlcv)
    assert list(bars.columns) == list(BAR_COLUMNS) and str(bars.index.tz) == "UTC"
    pages = requests_to(alpaca, "/v2/stocks/bars")
    assert len(pages) >= len(sent) / PAGE and any("page_token" in r for r in pages)
    assert {(r["timeframe"], r["adjustment"], r["key"]) for r in pages} == {("1Min", "split", KEY)}
    assert "2/2" in capsys.readouterr().err  # 20 days of minutes: two request windows


def test_latest_bars_without_start(alpaca):
    bars = source(alpaca).fetch_ohlcv("QQQ", "1m", end="2024-01-05 14:39")
    assert len(bars) == 30 + 10 and bars.index.is_monotonic_increasing
    assert bars.index[-1] == pd.Timestamp("2024-01-05 14:39", tz="UTC")
    assert requests_to(alpaca, "/v2/stocks/bars")[0]["sort"] == "desc"


def test_trades_get_tick_rule_sides_and_string_ids(alpaca):
    trades = source(alpaca).fetch_trades("QQQ", "2024-01-02 14:30", "2024-01-02 14:31")

    sent = alpaca.trades
    assert list(trades["id"]) == [str(t["i"]) for t in sent]
    np.testing.assert_array_equal(trades["price"], TAPE)
    np.testing.assert_array_equal(trades["amount"], [t["s"] for t in sent])
    assert trades.index[0] == pd.Timestamp(sent[0]["t"]).floor("us")
    assert list(trades["side"]) == TAPE_SIDES


def test_latest_trades_keep_their_sides_from_earlier_context(alpaca):
    trades = source(alpaca).fetch_trades("QQQ", limit=3)
    assert list(trades["id"]) == ["5009", "5010", "5011"]
    assert list(trades["side"]) == TAPE_SIDES[-3:]  # the last one follows a downtick
    assert requests_to(alpaca, "/v2/stocks/trades")[0]["sort"] == "desc"


def test_top_of_book_is_a_one_level_order_book(alpaca):
    book = source(alpaca).fetch_order_book("QQQ")
    np.testing.assert_array_equal(book.bids, [[401.2, 5]])
    np.testing.assert_array_equal(book.asks, [[401.25, 3]])
    assert book.timestamp == pd.Timestamp("2024-01-02 15:00:00.5", tz="UTC")


def test_an_empty_side_has_no_level(alpaca):
    alpaca.quote.update(bp=0, bs=0)
    book = source(alpaca).fetch_order_book("QQQ")
    assert len(book.bids) == 0 and book.best_ask == 401.25


def test_unknown_symbol(alpaca):
    with pytest.raises(UnknownSymbolError, match="alpaca lists no asset 'NOPE'.*not found") as err:
        source(alpaca).fetch_ohlcv("NOPE", "1m", "2024-01-02")
    assert (err.value.exchange, err.value.symbol) == ("alpaca", "NOPE")
    assert requests_to(alpaca, "/v2/stocks/bars") == []


def test_refused_feed_says_what_to_do(alpaca):
    with pytest.raises(SourceError, match=r"HTTP 403.*SIP data.*feed='iex'"):
        source(alpaca, feed="sip").fetch_ohlcv("QQQ", "1m", "2024-01-02")


def test_unreachable_server_is_retried_then_named():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    sleeps: list[float] = []
    backoff = Backoff(attempts=3)
    qqq = AlpacaSource(KEY, SECRET, url_override=url, backoff=backoff, sleep=sleeps.append)

    with pytest.raises(SourceError, match="get_asset QQQ failed after 3 attempts") as err:
        qqq.fetch_order_book("QQQ")

    assert "ConnectionError" in str(err.value)
    assert len(sleeps) == 2 and sleeps[0] < sleeps[1]
    assert KEY not in str(err.value) and SECRET not in str(err.value)


def test_funding_and_streams_are_refused(alpaca):
    qqq = source(alpaca)
    with pytest.raises(SourceError, match="equities pay no funding"):
        qqq.fetch_funding_rates("QQQ")
    with pytest.raises(SourceError, match="does not stream"):
        qqq.stream_bars(["QQQ"])


def test_unsupported_timeframe(alpaca):
    with pytest.raises(DataFormatError, match="Alpaca has no '2d' bars"):
        source(alpaca).fetch_ohlcv("QQQ", "2d", "2024-01-02")


@pytest.mark.parametrize(
    ("env", "named", "unnamed"),
    [
        ({}, ["WORKBENCH_ALPACA_API_KEY", "WORKBENCH_ALPACA_API_SECRET"], []),
        (
            {"WORKBENCH_ALPACA_API_KEY": KEY},
            ["WORKBENCH_ALPACA_API_SECRET"],
            ["WORKBENCH_ALPACA_API_KEY", KEY],
        ),
    ],
)
def test_missing_keys_name_the_variables_to_set(isolated_env, monkeypatch, env, named, unnamed):
    monkeypatch.setattr("workbench.config._keyring_secret", lambda service, name: None)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as failure:
        AlpacaSource.from_settings(load_settings())
    assert all(text in str(failure.value) for text in named)
    assert not any(text in str(failure.value) for text in unnamed)


def test_from_settings_sends_the_keys(isolated_env, monkeypatch, alpaca):
    monkeypatch.setenv("WORKBENCH_ALPACA_API_KEY", KEY)
    monkeypatch.setenv("WORKBENCH_ALPACA_API_SECRET", SECRET)
    qqq = AlpacaSource.from_settings(load_settings(), url_override=alpaca.url)
    qqq.fetch_order_book("QQQ")
    assert {r["key"] for r in alpaca.requests} == {KEY}
    assert KEY not in repr(qqq) and SECRET not in repr(qqq)


@pytest.mark.parametrize(
    ("prices", "sides"),
    [
        ([10.0, 10.1, 10.1, 10.0, 10.0, 10.2], ["sell", "buy", "buy", "sell", "sell", "buy"]),
        ([10.0, 10.0, 9.9, 9.9], ["buy", "buy", "sell", "sell"]),  # reverse tick for the head
        ([], []),
    ],
)
def test_tick_rule(prices, sides):
    assert list(tick_rule(np.array(prices))) == sides


def test_tick_rule_refuses_a_flat_tape():
    with pytest.raises(DataFormatError, match="never change price"):
        tick_rule(np.array([5.0, 5.0, 5.0]))
