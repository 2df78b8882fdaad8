"""CcxtSource against ccxt's real parsing, fed offline: recorded Binance replies, Binance-shaped
fakes serving real recorded market data, and a local websocket server."""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing

import ccxt
import numpy as np
import pandas as pd
import pytest

from tests.ccxt_fakes import (
    DROP,
    BinanceStreamServer,
    FakeBinanceRest,
    kline_message,
    offline_binance,
    static_binance,
    trade_message,
)
from workbench.config import load_settings
from workbench.data._retry import Backoff
from workbench.data.model import BAR_COLUMNS, index_from_ms
from workbench.data.sources.base import BarUpdate, MarketSource
from workbench.data.sources.ccxt_source import CcxtSource
from workbench.errors import ConfigError, SourceError, UnknownSymbolError

KEY, SECRET = "KEY-live-8f2a61c0", "SECRET-9d4e7b13aa"
T0, T1 = 1_706_630_400_000, 1_706_630_460_000  # two consecutive minutes


@pytest.fixture(scope="module")
def static(shared_data):
    return static_binance(shared_data)


@pytest.fixture
def markets(static):
    return static[0]


@pytest.fixture
def recorded(static):
    return static[1]["methods"]


@pytest.fixture(scope="module")
def xrp_bars(shared_data) -> pd.DataFrame:
    return pd.read_parquet(shared_data / "binance-futures" / "5m" / "XRP_USDT_USDT.parquet")


@pytest.fixture(scope="module")
def eth_tape(shared_data) -> pd.DataFrame:
    return pd.read_parquet(shared_data / "binance-futures" / "trades" / "ETH_USDT_USDT.parquet")


@pytest.fixture(scope="module")
def funding(shared_data) -> pd.DataFrame:
    """Eight-hourly funding of XRP/USDT:USDT, marked at the recorded mark-price opens."""
    path = shared_data / "binance-futures" / "1h-mark" / "XRP_USDT_USDT.parquet"
    mark = pd.read_parquet(path)
    at_funding = mark[(mark.timestamp // 3_600_000) % 8 == 0]
    rates = np.round(np.linspace(-0.0003, 0.0006, len(at_funding)), 8)
    return pd.DataFrame(
        {"timestamp": at_funding.timestamp, "funding_rate": rates, "mark_price": at_funding.open}
    )


def source_for(markets, fetch, *, market_type="spot", config=None, **options) -> CcxtSource:
    exchange = offline_binance(markets, **(config or {}))
    exchange.fetch = fetch
    return CcxtSource(exchange, market_type=market_type, **options)


def replay(entry):
    return lambda url, method="GET", headers=None, body=None: entry["httpResponse"]


def ms(index: pd.DatetimeIndex) -> list[int]:
    return list(index.asi8 // 1_000_000)


def as_bars(table: pd.DataFrame) -> pd.DataFrame:
    values = table[list(BAR_COLUMNS)].to_numpy()
    index = index_from_ms(table["timestamp"])
    return pd.DataFrame(values, index=index, columns=list(BAR_COLUMNS))


# -- recorded replies: our convention holds what ccxt parsed -----------------------------


def test_is_a_market_source(markets):
    source = CcxtSource(offline_binance(markets))
    assert isinstance(source, MarketSource)
    assert source.name == "binance"
    assert "BTC/USDT" in source.symbols() and "BTC/USDT:USDT" not in source.symbols()
    swaps = CcxtSource(offline_binance(markets), market_type="swap").symbols()
    assert "BTC/USDT:USDT" in swaps and "BTC/USDT:USDT-231229" not in swaps  # a dated future
    assert all(":" in symbol for symbol in swaps)


@pytest.mark.parametrize("case", [0, 2], ids=["spot-since", "swap-latest"])
def test_ohlcv_matches_ccxt_recording(markets, recorded, case):
    entry = recorded["fetchOHLCV"][case]
    symbol, timeframe, since = entry["input"][:3]
    parsed = np.array(entry["parsedResponse"], dtype="float64")
    source = source_for(markets, replay(entry), market_type="swap" if ":" in symbol else "spot")

    last = int(parsed[-1, 0]) if since else None
    bars = source.fetch_ohlcv(symbol, timeframe, start=since, end=last)

    assert ms(bars.index) == list(parsed[:, 0].astype("int64"))
    np.testing.assert_array_equal(bars.to_numpy(), parsed[:, 1:6])
    assert str(bars.index.tz) == "UTC" and list(bars.columns) == list(BAR_COLUMNS)


def test_trades_match_ccxt_recording(markets, recorded):
    entry = recorded["fetchTrades"][0]
    symbol, _, limit = entry["input"]
    trades = source_for(markets, replay(entry)).fetch_trades(symbol, limit=limit)

    expected = entry["parsedResponse"]
    assert list(trades["id"]) == [t["id"] for t in expected]
    assert list(trades["side"]) == [t["side"] for t in expected]
    assert list(trades["price"]) == [t["price"] for t in expected]
    assert list(trades["amount"]) == [t["amount"] for t in expected]
    assert ms(trades.index) == [t["timestamp"] for t in expected]


@pytest.mark.parametrize("case", [0, 1], ids=["spot", "swap"])
def test_order_books_match_ccxt_recording(markets, recorded, case):
    entry = recorded["fetchOrderBook"][case]
    symbol, depth = entry["input"]
    parsed = entry["parsedResponse"]
    source = source_for(markets, replay(entry), market_type="swap" if ":" in symbol else "spot")

    before = pd.Timestamp.now("UTC")
    book = source.fetch_order_book(symbol, depth)

    np.testing.assert_array_equal(book.bids, parsed["bids"])
    np.testing.assert_array_equal(book.asks, parsed["asks"])
    if parsed["timestamp"] is None:  # Binance spot sends no time: stamped on receipt
        assert before <= book.timestamp <= pd.Timestamp.now("UTC")
    else:
        assert book.timestamp == pd.Timestamp(parsed["timestamp"], unit="ms", tz="UTC")


# -- paginated history ----------------------------------------------------------------------


def test_backfill_pages_to_exactly_the_bars_in_range(markets, xrp_bars, capsys):
    fake = FakeBinanceRest(bars=xrp_bars, page_cap=300)  # fewer rows than ccxt asks for
    source = source_for(markets, fake, market_type="swap")
    start = int(xrp_bars.timestamp.iloc[7]) + 60_000  # mid-bar: that bar is out of range
    end = int(xrp_bars.timestamp.iloc[1_900])

    bars = source.fetch_ohlcv("XRP/USDT:USDT", "5m", start, end, progress=True)

    expected = as_bars(xrp_bars.iloc[8:1_901])
    pd.testing.assert_frame_equal(bars, expected, check_freq=False)
    assert bars.index.is_unique
    assert len(fake.requests) == -(-len(expected) // 300)  # full pages, none asked twice
    assert [r["startTime"] for r in fake.requests[:2]] == [str(start), str(ms(expected.index)[300])]
    assert f"{len(expected)}/{len(expected)}" in capsys.readouterr().err


def test_backfill_steps_over_empty_pages(markets, xrp_bars):
    table = xrp_bars[(xrp_bars.index < 600) | (xrp_bars.index >= 1_400)]  # a 2.8-day hole
    fake = FakeBinanceRest(bars=table, windowed=True)
    source = source_for(markets, fake, market_type="swap")
    start, end = int(table.timestamp.iloc[0]), int(table.timestamp.iloc[-1])

    bars = source.fetch_ohlcv("XRP/USDT:USDT", "5m", start, end)

    pd.testing.assert_frame_equal(bars, as_bars(table), check_freq=False)
    assert 0 in fake.answered[1:-1]  # an empty page mid-range did not end the backfill
    assert len(fake.requests) <= -(-len(xrp_bars) // 500) + 1  # a page's span per request


def test_backfill_of_an_empty_range_is_empty(markets, xrp_bars):
    fake = FakeBinanceRest(bars=xrp_bars)
    source = source_for(markets, fake, market_type="swap")
    bars = source.fetch_ohlcv("XRP/USDT:USDT", "5m", "2030-01-01", "2030-01-02")
    assert bars.empty and list(bars.columns) == list(BAR_COLUMNS)
    assert len(fake.requests) == 1  # the empty page skips a whole page's span


def test_trade_pages_keep_trades_sharing_a_millisecond(markets, eth_tape):
    fake = FakeBinanceRest(trades=eth_tape)
    config = {"options": {"fetchTrades": {"maxEntriesPerRequest": 100}}}
    source = source_for(markets, fake, market_type="swap", config=config)
    start, end = int(eth_tape.timestamp.iloc[0]), int(eth_tape.timestamp.iloc[-1])

    trades = source.fetch_trades("ETH/USDT:USDT", start, end)

    assert len(fake.requests) > 10
    assert list(trades["id"]) == [str(i) for i in eth_tape["id"]]
    assert list(trades["side"]) == list(eth_tape["side"])
    np.testing.assert_array_equal(trades["price"], eth_tape["price"])
    np.testing.assert_array_equal(trades["amount"], eth_tape["amount"])
    assert ms(trades.index) == list(eth_tape["timestamp"])


def test_trade_limit_caps_a_range(markets, eth_tape):
    source = source_for(markets, FakeBinanceRest(trades=eth_tape), market_type="swap")
    trades = source.fetch_trades("ETH/USDT:USDT", int(eth_tape.timestamp.iloc[0]), limit=250)
    assert list(trades["id"]) == [str(i) for i in eth_tape["id"][:250]]


def test_funding_rates_are_paged_with_mark_prices(markets, funding):
    fake = FakeBinanceRest(funding=funding)
    config = {"options": {"fetchFundingRateHistory": {"maxEntriesPerRequest": 5}}}
    source = source_for(markets, fake, market_type="swap", config=config)

    rates = source.fetch_funding_rates("XRP/USDT:USDT", "2021-11-15", "2021-11-20")

    assert len(fake.requests) >= len(funding) // 5
    assert ms(rates.index) == list(funding.timestamp)
    np.testing.assert_array_equal(rates["funding_rate"], funding.funding_rate)
    np.testing.assert_array_equal(rates["mark_price"], funding.mark_price)


def test_funding_of_a_quiet_range_is_empty(markets, funding):
    source = source_for(markets, FakeBinanceRest(funding=funding), market_type="swap")
    rates = source.fetch_funding_rates("XRP/USDT:USDT", "2030-01-01", "2030-01-02")
    assert rates.empty and list(rates.columns) == ["funding_rate", "mark_price"]


def test_funding_needs_a_swap_source(markets):
    with pytest.raises(SourceError, match="market_type='swap'"):
        CcxtSource(offline_binance(markets)).fetch_funding_rates("BTC/USDT")


# -- retries and failures -------------------------------------------------------------------


class Flaky:
    """``exchange.fetch`` failing with the given errors first, then answering."""

    def __init__(self, failures, answer=None):
        self.failures = list(failures)
        self.answer = answer
        self.calls = 0

    def __call__(self, url, method="GET", headers=None, body=None):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.answer


def test_transient_failures_are_retried_with_growing_pauses(markets, recorded):
    entry = recorded["fetchOHLCV"][2]
    fetch = Flaky([ccxt.RequestTimeout("binance GET timed out")] * 2, entry["httpResponse"])
    sleeps: list[float] = []
    source = source_for(markets, fetch, market_type="swap", sleep=sleeps.append)

    bars = source.fetch_ohlcv("BTC/USDT:USDT", "1m")

    assert len(bars) == 3 and fetch.calls == 3
    assert len(sleeps) == 2 and 0 < sleeps[0] < sleeps[1]


def test_gives_up_after_capped_attempts(markets):
    fetch = Flaky([ccxt.ExchangeNotAvailable("binance 503 Service Unavailable")] * 10)
    sleeps: list[float] = []
    source = source_for(markets, fetch, backoff=Backoff(attempts=3), sleep=sleeps.append)

    with pytest.raises(SourceError) as failure:
        source.fetch_ohlcv("BTC/USDT", "1h")

    assert fetch.calls == 3 and len(sleeps) == 2
    message = str(failure.value)
    for part in ("binance fetch_ohlcv BTC/USDT", "ExchangeNotAvailable", "503", "after 3 attempts"):
        assert part in message
    assert (failure.value.exchange, failure.value.symbol) == ("binance", "BTC/USDT")


@pytest.mark.parametrize(
    ("refusal", "error", "hint"),
    [
        (ccxt.BadSymbol("binance Invalid symbol."), UnknownSymbolError, "source.symbols()"),
        (ccxt.AuthenticationError('binance {"code":-2015}'), SourceError, "WORKBENCH_API_KEY"),
        (ccxt.InsufficientFunds("binance balance"), SourceError, "refused"),
    ],
)
def test_refusals_fail_at_once(markets, refusal, error, hint):
    fetch = Flaky([refusal])
    sleeps: list[float] = []
    source = source_for(markets, fetch, sleep=sleeps.append)

    with pytest.raises(error) as failure:
        source.fetch_trades("ETH/USDT")

    assert fetch.calls == 1 and sleeps == []
    message = str(failure.value)
    assert f"binance fetch_trades ETH/USDT failed: {type(refusal).__name__}" in message
    assert hint in message and "attempts" not in message


def test_credentials_never_reach_messages_or_logs(markets, caplog):
    echoing = [
        ccxt.RequestTimeout(f"GET /api?apiKey={KEY}"),
        ccxt.AuthenticationError(f"bad {KEY}:{SECRET}"),
    ]
    config = {"apiKey": KEY, "secret": SECRET}
    source = source_for(markets, Flaky(echoing), config=config, sleep=lambda _: None)

    with caplog.at_level(logging.WARNING), pytest.raises(SourceError) as failure:
        source.fetch_order_book("BTC/USDT")

    logged = caplog.text
    assert "RequestTimeout" in logged and "apiKey=***" in logged
    assert "***:***" in str(failure.value)
    for text in (logged, str(failure.value), repr(source)):
        assert KEY not in text and SECRET not in text


def test_unknown_exchange_suggests_close_ids():
    with pytest.raises(SourceError, match="'binanse'.*did you mean binance") as failure:
        CcxtSource("binanse")
    assert failure.value.exchange == "binanse"


def test_unlisted_symbol_names_exchange_and_symbol(markets):
    source = CcxtSource(offline_binance(markets))
    with pytest.raises(UnknownSymbolError, match="binance lists no spot market 'BTC/USDC'") as err:
        source.fetch_ohlcv("BTC/USDC")
    assert "close matches: BTC/USDT" in str(err.value)
    assert (err.value.exchange, err.value.symbol) == ("binance", "BTC/USDC")
    with pytest.raises(UnknownSymbolError, match="use CcxtSource.'binance', market_type='swap'"):
        source.fetch_order_book("BTC/USDT:USDT")


def test_market_type_is_checked(markets):
    with pytest.raises(ConfigError, match="'spot' or 'swap'"):
        CcxtSource(offline_binance(markets), market_type="future")


def test_from_settings_takes_exchange_keys_and_testnet(isolated_env, monkeypatch):
    monkeypatch.setenv("WORKBENCH_EXCHANGE", "Bybit")
    monkeypatch.setenv("WORKBENCH_API_KEY", KEY)
    monkeypatch.setenv("WORKBENCH_API_SECRET", SECRET)

    source = CcxtSource.from_settings(load_settings(), market_type="swap")

    assert source.name == "bybit-testnet" and source.market_type == "swap"  # testnet data keyed apart
    assert (source.exchange.apiKey, source.exchange.secret) == (KEY, SECRET)
    assert source.exchange.isSandboxModeEnabled  # testnet is the default setting
    assert KEY not in repr(source) and SECRET not in repr(source)


# -- streams --------------------------------------------------------------------------------


def run(scenario, timeout: float = 10.0):
    return asyncio.run(asyncio.wait_for(scenario, timeout))


def bar(symbol: str, stamp: int, close: float, closed: bool = False) -> BarUpdate:
    """The update a kline_message of ``close`` becomes (O 100, H 110, L 90, V 5)."""
    when = pd.Timestamp(stamp, unit="ms", tz="UTC")
    return BarUpdate(symbol, "1m", when, 100.0, 110.0, 90.0, close, 5.0, closed)


async def updates_until(stream, last: BarUpdate) -> list[BarUpdate]:
    """Updates from ``stream`` up to and including ``last``."""
    got = [await anext(stream)]
    while got[-1] != last:
        got.append(await anext(stream))
    return got


def test_stream_bars_repeats_forming_bars_and_closes_them(markets):
    script = [
        ("BTC/USDT", T0, 101.0),
        ("BTC/USDT", T0, 102.0),
        ("ETH/USDT", T0, 103.0),
        ("BTC/USDT", T1, 104.0),
        ("ETH/USDT", T1, 105.0),
    ]

    async def scenario():
        async with BinanceStreamServer() as server:
            source = CcxtSource(offline_binance(markets), stream_exchange=server.exchange)
            updates = []
            async with aclosing(source.stream_bars(["BTC/USDT", "ETH/USDT"], "1m")) as stream:
                first = asyncio.ensure_future(anext(stream))  # opens the connection
                await server.subscribed("btcusdt@kline_1m", "ethusdt@kline_1m")
                for symbol, stamp, close in script:
                    await server.send(kline_message(markets[symbol]["id"], "1m", stamp, close))
                    if first is not None:
                        updates.append(await first)
                        first = None
                    else:
                        updates += await updates_until(stream, bar(symbol, stamp, close))
            await server.disconnected()  # leaving the stream closed the connection
            return updates

    assert run(scenario()) == [
        bar("BTC/USDT", T0, 101.0),
        bar("BTC/USDT", T0, 102.0),
        bar("ETH/USDT", T0, 103.0),
        bar("BTC/USDT", T0, 102.0, closed=True),
        bar("BTC/USDT", T1, 104.0),
        bar("ETH/USDT", T0, 103.0, closed=True),
        bar("ETH/USDT", T1, 105.0),
    ]


def test_stream_reconnects_after_a_dropped_connection(markets):
    async def scenario():
        async with BinanceStreamServer() as server:
            source = CcxtSource(
                offline_binance(markets),
                stream_exchange=server.exchange,
                backoff=Backoff(first=0.01),
            )
            async with aclosing(source.stream_bars("BTC/USDT", "1m")) as stream:
                pending = asyncio.ensure_future(anext(stream))
                await server.subscribed("btcusdt@kline_1m")
                await server.send(kline_message("BTCUSDT", "1m", T0, 101.0))
                before = await pending
                await server.send(DROP)
                await server.disconnected()
                pending = asyncio.ensure_future(anext(stream))
                await server.subscribed("btcusdt@kline_1m")
                await server.send(kline_message("BTCUSDT", "1m", T1, 104.0))
                after = [await pending, await anext(stream)]
            return server.connections, before, after

    connections, before, after = run(scenario())
    assert connections == 2
    assert before == bar("BTC/USDT", T0, 101.0)
    assert after == [bar("BTC/USDT", T0, 101.0, closed=True), bar("BTC/USDT", T1, 104.0)]


def test_stream_trades_in_the_convention(markets):
    stamp = 1_710_327_661_939

    async def scenario():
        async with BinanceStreamServer() as server:
            source = CcxtSource(offline_binance(markets), stream_exchange=server.exchange)
            async with aclosing(source.stream_trades(["BTC/USDT"])) as stream:
                pending = asyncio.ensure_future(anext(stream))
                await server.subscribed("btcusdt@trade")
                await server.send(trade_message("BTCUSDT", 77, stamp, 73238.7, 0.00109, "sell"))
                return await pending

    symbol, trades = run(scenario())
    assert symbol == "BTC/USDT"
    assert list(trades["id"]) == ["77"] and list(trades["side"]) == ["sell"]
    assert list(trades["price"]) == [73238.7] and list(trades["amount"]) == [0.00109]
    assert ms(trades.index) == [stamp]


def test_stream_refuses_unlisted_symbols_before_connecting(markets):
    opened = []
    source = CcxtSource(offline_binance(markets), stream_exchange=lambda: opened.append(1))

    async def scenario():
        async with aclosing(source.stream_bars(["BTC/USDT", "NOPE/USDT"])) as stream:
            await anext(stream)

    with pytest.raises(UnknownSymbolError, match="NOPE/USDT"):
        run(scenario())
    assert opened == []
