"""SimulatedMarket: determinism, the data convention, realism, trades, books, funding, stream."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pandas as pd
import pytest

from workbench.data.model import to_bars, to_funding, to_trades
from workbench.data.resample import resample_bars
from workbench.data.sources.base import MarketSource
from workbench.data.sources.simulated import SimulatedMarket
from workbench.errors import ConfigError, DataFormatError, UnknownSymbolError

NOW = "2024-06-01 12:00"


@pytest.fixture(scope="module")
def market() -> SimulatedMarket:
    return SimulatedMarket(now=NOW)


@pytest.fixture(scope="module")
def history(market) -> dict[str, pd.DataFrame]:
    """Eight weeks of 1-minute bars of every symbol."""
    return {
        s: market.fetch_ohlcv(s, "1m", "2024-01-01", "2024-02-25 23:59") for s in market.symbols()
    }


def assert_frames_equal(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Exactly equal (and fast: pandas' tolerant float comparison is slow on long frames)."""
    pd.testing.assert_frame_equal(left, right, check_exact=True)


def log_returns(bars: pd.DataFrame) -> pd.Series:
    return np.log(bars["close"]).diff().dropna()


def collect(stream, closed_bars: int) -> list:
    """Updates from an async stream until ``closed_bars`` closed ones, on a fresh loop."""

    async def run():
        updates = []
        async for update in stream:
            updates.append(update)
            if sum(u.closed for u in updates) == closed_bars:
                return updates

    return asyncio.run(run())


# -- determinism ----------------------------------------------------------------------------


def assert_same(left, right) -> None:
    if isinstance(left, pd.DataFrame):
        assert_frames_equal(left, right)
    else:
        np.testing.assert_array_equal(left, right)


def snapshot(market: SimulatedMarket) -> tuple:
    bars = market.fetch_ohlcv("ETH/USDT", "1m", "2024-03-03", "2024-03-04")
    trades = market.fetch_trades("ETH/USDT", "2024-03-03 10:00", "2024-03-03 10:30")
    book = market.fetch_order_book("ETH/USDT", at="2024-03-03 10:30")
    return bars, trades, book.bids, book.asks


def test_same_seed_same_data_whatever_was_asked_before():
    fresh, used = SimulatedMarket(now=NOW), SimulatedMarket(now=NOW)
    used.fetch_ohlcv("SOL/USDT", "1h", "2024-05-01", "2024-05-30")
    used.fetch_trades("ETH/USDT", "2024-03-03", "2024-03-03 01:00")
    expected = snapshot(fresh)
    for mine, theirs in zip(expected, snapshot(used), strict=True):
        assert_same(mine, theirs)
    other_seed = snapshot(SimulatedMarket(seed=8, now=NOW))
    assert not np.allclose(other_seed[0]["close"], expected[0]["close"])


def test_editing_fetched_data_changes_nothing_served_later(market):
    bars = market.fetch_ohlcv("BTC/USDT", "1m", "2024-02-01 10:00", "2024-02-01 10:05")
    expected = bars.copy()
    bars.iloc[0, 0] = 1.0
    bars["close"] *= 2
    assert_frames_equal(
        market.fetch_ohlcv("BTC/USDT", "1m", bars.index[0], bars.index[-1]), expected
    )


@pytest.mark.parametrize("timeframe", ["1m", "15m", "1h"])
def test_a_range_equals_its_two_halves(market, timeframe):
    a, b, c = (
        pd.Timestamp("2024-02-10 03:00", tz="UTC"),
        pd.Timestamp("2024-02-12 17:00", tz="UTC"),
        pd.Timestamp("2024-02-14", tz="UTC"),
    )
    whole = market.fetch_ohlcv("BTC/USDT", timeframe, a, c)
    halves = [
        market.fetch_ohlcv("BTC/USDT", timeframe, a, b),
        market.fetch_ohlcv("BTC/USDT", timeframe, b + pd.Timedelta("1ms"), c),
    ]
    assert_frames_equal(whole, pd.concat(halves))
    fresh = SimulatedMarket(now=NOW).fetch_ohlcv("BTC/USDT", timeframe, b, c)
    assert_frames_equal(fresh, whole.loc[b:])


def test_trades_of_a_range_equal_its_two_halves(market):
    a, b, c = "2024-02-10 09:20", "2024-02-10 10:07:13", "2024-02-10 11:30"
    whole = market.fetch_trades("XRP/USDT", a, c)
    halves = [
        market.fetch_trades("XRP/USDT", a, b),
        market.fetch_trades("XRP/USDT", pd.Timestamp(b, tz="UTC") + pd.Timedelta("1ms"), c),
    ]
    assert_frames_equal(whole, pd.concat(halves))


def test_adding_symbols_leaves_the_others_paths_alone(market):
    alone = SimulatedMarket(["BTC/USDT"], now=NOW).fetch_ohlcv(
        "BTC/USDT", "1m", "2024-04-01", "2024-04-02"
    )
    assert_frames_equal(alone, market.fetch_ohlcv("BTC/USDT", "1m", "2024-04-01", "2024-04-02"))


# -- convention and bar consistency --------------------------------------------------------------


def test_bars_follow_the_convention_and_are_consistent(history):
    for symbol, bars in history.items():
        assert_frames_equal(to_bars(bars), bars)
        assert len(bars) == 56 * 1440
        assert (bars.index.to_series().diff().dropna() == pd.Timedelta("1min")).all()
        assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all(), symbol
        assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all(), symbol
        assert (bars["low"] > 0).all() and (bars["volume"] > 0).all(), symbol
        assert (bars["high"] > bars["low"]).mean() > 0.95, symbol
        np.testing.assert_array_equal(bars["open"].to_numpy()[1:], bars["close"].to_numpy()[:-1])


@pytest.mark.parametrize(
    ("symbol", "price", "tick"),
    [
        ("BTC/USDT", 42_300, 0.01),
        ("ETH/USDT", 2_280, 0.01),
        ("XRP/USDT", 0.615, 0.0001),
        ("DOGE/USDT", 0.0897, 0.00001),
    ],
)
def test_price_levels_and_ticks_are_realistic(history, symbol, price, tick):
    bars = history[symbol]
    assert bars["open"].iloc[0] == pytest.approx(price)
    ticks = bars[["open", "high", "low", "close"]].to_numpy() / tick
    np.testing.assert_allclose(ticks, np.round(ticks), atol=1e-6)


def test_default_request_returns_the_last_thousand_closed_bars(market):
    bars = market.fetch_ohlcv("ETH/USDT", "1h")
    assert len(bars) == 1000
    assert bars.index[-1] == pd.Timestamp(NOW, tz="UTC") - pd.Timedelta("1h")


@pytest.mark.parametrize("timeframe", ["5m", "1h", "4h", "1d", "1w", "1M"])
def test_higher_timeframes_aggregate_base_bars_aligned_as_ccxt(market, timeframe):
    base = market.fetch_ohlcv("SOL/USDT", "1m", "2024-01-01", "2024-03-31 23:59")
    bars = market.fetch_ohlcv("SOL/USDT", timeframe, "2024-01-01", "2024-03-31 23:59")
    pd.testing.assert_frame_equal(
        bars, resample_bars(base, timeframe), check_freq=False, rtol=1e-12
    )
    if timeframe == "1w":
        assert (bars.index.day_of_week == 0).all()
    if timeframe == "1M":
        assert list(bars.index.day) == [1, 1, 1]


# -- statistical properties --------------------------------------------------------------------


def test_returns_are_fat_tailed_with_clustered_volatility(history):
    for symbol, bars in history.items():
        returns = log_returns(bars)
        assert returns.kurt() > 1, symbol
        assert returns.abs().autocorr(1) > 0.1, symbol
        daily_vol = returns.groupby(returns.index.date).std()
        assert daily_vol.quantile(0.9) > 1.5 * daily_vol.quantile(0.1), symbol


@pytest.mark.parametrize("correlation", [0.8, 0.3])
def test_cross_correlation_is_the_configured_one(correlation):
    market = SimulatedMarket(["BTC/USDT", "ETH/USDT"], correlation=correlation, now=NOW)
    returns = pd.DataFrame(
        {
            s: log_returns(market.fetch_ohlcv(s, "1m", "2024-01-01", "2024-01-31"))
            for s in market.symbols()
        }
    )
    assert returns.corr().iloc[0, 1] == pytest.approx(correlation, abs=0.05)


def test_annual_volatility_matches_the_profile():
    market = SimulatedMarket(["BTC/USDT", "SOL/USDT"], now="2025-01-01")
    for symbol, annual in (("BTC/USDT", 0.55), ("SOL/USDT", 0.95)):
        daily = log_returns(market.fetch_ohlcv(symbol, "1d", "2024-01-01", "2024-12-31"))
        assert daily.std() * np.sqrt(365) == pytest.approx(annual, rel=0.3)


def test_volume_follows_the_utc_day_and_the_size_of_moves(history):
    bars = history["BTC/USDT"]
    weekdays = bars[bars.index.day_of_week < 5]
    by_hour = weekdays["volume"].groupby(weekdays.index.hour).mean()
    assert by_hour.max() > 1.5 * by_hour.min()
    assert by_hour.idxmax() in (13, 14, 15, 16)  # the US session
    moves = log_returns(bars).abs()
    assert np.corrcoef(moves, bars["volume"].iloc[1:])[0, 1] > 0.2


# -- trades -----------------------------------------------------------------------------------


def test_trades_fill_their_bars(market):
    bars = market.fetch_ohlcv("ETH/USDT", "1m", "2024-02-01 10:00", "2024-02-01 12:59")
    trades = market.fetch_trades("ETH/USDT", "2024-02-01 10:00", "2024-02-01 12:59:59.999")
    assert_frames_equal(to_trades(trades), trades)
    assert trades["id"].is_unique
    by_bar = trades.groupby(trades.index.floor("1min"))
    pd.testing.assert_index_equal(by_bar.size().index, bars.index)
    np.testing.assert_allclose(by_bar["amount"].sum(), bars["volume"], rtol=1e-9)
    trade_bar = bars.loc[trades.index.floor("1min")]
    assert (trades["price"].to_numpy() >= trade_bar["low"].to_numpy()).all()
    assert (trades["price"].to_numpy() <= trade_bar["high"].to_numpy()).all()
    np.testing.assert_array_equal(by_bar["price"].last(), bars["close"])
    np.testing.assert_array_equal(np.maximum(by_bar["price"].max(), bars["open"]), bars["high"])
    np.testing.assert_array_equal(np.minimum(by_bar["price"].min(), bars["open"]), bars["low"])
    buy_share = by_bar["side"].agg(lambda side: (side == "buy").mean())
    assert 0.05 < buy_share.mean() < 0.95
    assert np.corrcoef(buy_share, np.sign(bars["close"] - bars["open"]))[0, 1] > 0.2


def test_trade_limit_keeps_the_first_after_a_start_else_the_latest(market):
    latest = market.fetch_trades("BTC/USDT", limit=5)
    assert len(latest) == 5 and latest.index[-1] <= pd.Timestamp(NOW, tz="UTC")
    assert_frames_equal(latest, market.fetch_trades("BTC/USDT").tail(5))
    more_than_an_hour = market.fetch_trades("BTC/USDT", limit=10_000)
    assert len(more_than_an_hour) == 10_000 and more_than_an_hour.index[-1] == latest.index[-1]
    first = market.fetch_trades("BTC/USDT", "2024-05-01 10:00", limit=5)
    assert first.index[0] >= pd.Timestamp("2024-05-01 10:00", tz="UTC")
    assert_frames_equal(
        first, market.fetch_trades("BTC/USDT", "2024-05-01 10:00", "2024-05-01 11:00").head(5)
    )


# -- order books ------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["BTC/USDT", "DOGE/USDT"])
def test_order_books_sit_around_the_last_trade(market, symbol):
    tick = {"BTC/USDT": 0.01, "DOGE/USDT": 0.00001}[symbol]
    for at in pd.date_range("2024-03-05 09:00:07", periods=20, freq="17min", tz="UTC"):
        book = market.fetch_order_book(symbol, depth=10, at=at)
        last = market.fetch_trades(symbol, at - pd.Timedelta("1h"), at)["price"].iloc[-1]
        assert book.best_bid <= last <= book.best_ask and book.best_bid < book.best_ask
        assert book.spread < 8 * tick
        assert len(book.bids) == len(book.asks) == 10
        assert (book.bids[:, 1] > 0).all() and (book.asks[:, 1] > 0).all()
    deep = market.fetch_order_book(symbol, depth=50, at="2024-03-05")
    near, far = deep.asks[:10, 1].mean(), deep.asks[-10:, 1].mean()
    assert far > 1.5 * near


def test_book_defaults_to_now(market):
    assert market.fetch_order_book("ETH/USDT").timestamp == pd.Timestamp(NOW, tz="UTC")


# -- funding ----------------------------------------------------------------------------------


def test_funding_every_eight_hours_with_mark_prices(market):
    funding = market.fetch_funding_rates("BTC/USDT:USDT", "2024-01-01", "2024-05-31")
    assert_frames_equal(to_funding(funding), funding)
    assert (funding.index.to_series().diff().dropna() == pd.Timedelta("8h")).all()
    assert set(funding.index.hour) == {0, 8, 16}
    assert funding["funding_rate"].abs().max() <= 0.0075
    assert (funding["funding_rate"] == 0.0001).mean() > 0.3  # the flat 0.01% most of the time
    spot = market.fetch_ohlcv("BTC/USDT", "1m", "2024-01-01", "2024-05-31")["open"]
    spot = spot.reindex(funding.index)
    assert ((funding["mark_price"] / spot - 1).abs() < 0.01).all()
    trend = np.log(spot).diff(9)  # three days of fundings
    assert funding["funding_rate"].corr(trend) > 0.3
    assert_frames_equal(funding, market.fetch_funding_rates("BTC/USDT", "2024-01-01", "2024-05-31"))


# -- streaming --------------------------------------------------------------------------------


@pytest.mark.parametrize("timeframe", ["1m", "5m"])
def test_stream_forms_then_closes_the_bars_of_history(market, timeframe):
    symbols = ["BTC/USDT", "SOL/USDT"]
    start = pd.Timestamp("2024-04-02 13:01:30", tz="UTC")
    began = time.perf_counter()
    updates = collect(
        market.stream_bars(symbols, timeframe, speed=20_000, start=start), 3 * len(symbols)
    )
    assert time.perf_counter() - began < 2
    closed = [u for u in updates if u.closed]
    assert [u.symbol for u in closed] == symbols * 3
    for symbol in symbols:
        mine = [u for u in updates if u.symbol == symbol]
        history = market.fetch_ohlcv(
            symbol, timeframe, start - pd.Timedelta("1h"), start + pd.Timedelta("1h")
        )
        for update in mine:
            bar = history.loc[update.timestamp]
            values = [update.open, update.high, update.low, update.close, update.volume]
            assert all(type(value) is float for value in values)
            if update.closed:
                assert values == bar.tolist()
            else:
                assert update.open == bar["open"]
                assert bar["low"] <= update.low <= min(update.open, update.close)
                assert max(update.open, update.close) <= update.high <= bar["high"]
                assert 0 <= update.volume <= bar["volume"] * (1 + 1e-9)
        forming = [u for u in mine if not u.closed and u.timestamp == mine[-1].timestamp]
        assert len(forming) == 5  # updates=6: five forming, then the close
        assert [u.volume for u in forming] == sorted(u.volume for u in forming)


def test_stream_paces_itself_by_speed(market):
    began = time.perf_counter()
    updates = collect(
        market.stream_bars(["ETH/USDT"], "1m", speed=600, start="2024-04-02 13:00", updates=2), 3
    )
    elapsed = time.perf_counter() - began
    assert 0.27 < elapsed < 1.5  # three simulated minutes at 600x are 0.3 s
    assert [u.closed for u in updates] == [False, True] * 3


# -- errors and display -----------------------------------------------------------------------


def test_bad_input_gets_clear_errors(market):
    with pytest.raises(UnknownSymbolError, match="ADA/USDT"):
        market.fetch_ohlcv("ADA/USDT")
    for call in (market.fetch_trades, market.fetch_order_book, market.fetch_funding_rates):
        with pytest.raises(UnknownSymbolError):
            call("ADA/USDT")
    with pytest.raises(UnknownSymbolError):
        collect(market.stream_bars(["ADA/USDT"]), 1)
    with pytest.raises(DataFormatError, match="timeframe"):
        market.fetch_ohlcv("BTC/USDT", "1x")
    with pytest.raises(DataFormatError, match="multiple of 1m"):
        market.fetch_ohlcv("BTC/USDT", "30s")
    with pytest.raises(DataFormatError, match="before the start"):
        market.fetch_ohlcv("BTC/USDT", "1m", "2024-02-02", "2024-02-01")
    with pytest.raises(DataFormatError, match="before the start"):
        market.fetch_trades("BTC/USDT", "2024-02-02", "2024-02-01")
    with pytest.raises(DataFormatError, match="before the simulated market opened"):
        market.fetch_order_book("BTC/USDT", at="2023-06-01")
    with pytest.raises(ConfigError, match="correlation"):
        SimulatedMarket(correlation=1.5)
    with pytest.raises(ConfigError, match="base_timeframe"):
        SimulatedMarket(base_timeframe="7m")
    with pytest.raises(ConfigError, match="BASE/QUOTE"):
        SimulatedMarket(["BTCUSDT"])


def test_history_before_the_market_opened_is_empty(market):
    assert market.fetch_ohlcv("BTC/USDT", "1h", "2023-01-01", "2023-12-31").empty
    assert market.fetch_trades("BTC/USDT", "2023-12-31", "2023-12-31 23:00").empty


def test_it_is_a_market_source_that_displays_itself(market):
    assert isinstance(market, MarketSource) and market.name == "sim"
    html = market._repr_html_()
    last = market.fetch_ohlcv("DOGE/USDT", "1m")["close"].iloc[-1]
    assert all(symbol in html for symbol in market.symbols())
    assert f"{last:.8g}" in html and ("calm" in html or "volatile" in html)


def test_unlisted_symbols_get_a_plausible_profile():
    market = SimulatedMarket(["BTC/USDT", "FOO/USDT"], now=NOW)
    bars = market.fetch_ohlcv("FOO/USDT", "1h", "2024-01-01", "2024-01-31")
    assert 0.1 <= bars["open"].iloc[0] <= 1_000 and (bars["volume"] > 0).all()
