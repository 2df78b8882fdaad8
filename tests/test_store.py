"""MarketStore on SQLite and on a real PostgreSQL server: upserts, reads, resampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.data.files import describe
from workbench.data.model import BAR_COLUMNS, to_bars, to_funding, to_trades
from workbench.data.store import MarketStore
from workbench.data.store.schema import SEGMENT_BARS
from workbench.errors import StoreError


def synthetic_bars(n: int, start: str = "2024-01-01", freq: str = "1min", seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.r_[100.0, close[:-1]]
    spread = np.abs(rng.normal(0, 5e-4, n)) * close
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="timestamp").as_unit("ns")
    return pd.DataFrame(
        {"open": open_, "high": np.fmax(open_, close) + spread, "low": np.fmin(open_, close) - spread,
         "close": close, "volume": rng.gamma(2.0, 10.0, n)},
        index=index,
    )


@pytest.fixture
def store(store_url):
    with MarketStore(store_url) as opened:
        yield opened


def assert_convention(frame: pd.DataFrame) -> None:
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "timestamp"
    assert str(frame.index.tz) == "UTC"
    assert list(frame.columns) == list(BAR_COLUMNS)
    assert all(dtype == np.float64 for dtype in frame.dtypes)
    assert frame.index.is_monotonic_increasing and frame.index.is_unique


def test_upsert_twice_gives_the_same_rows(store):
    bars = synthetic_bars(3 * SEGMENT_BARS + 17)  # spans several segments
    assert store.upsert_bars("sim", "BTC/USDT", "1m", bars) == len(bars)
    assert store.upsert_bars("sim", "BTC/USDT", "1m", bars) == 0
    back = store.bars("sim", "BTC/USDT", "1m")
    assert_convention(back)
    pd.testing.assert_frame_equal(back, bars, check_freq=False)
    listed = store.list().iloc[0]
    assert (listed.rows, listed.missing) == (len(bars), 0)
    assert listed["first"] == bars.index[0] and listed["last"] == bars.index[-1]


def test_newer_values_replace_stored_ones_and_new_times_add(store):
    bars = synthetic_bars(100)
    store.upsert_bars("sim", "ETH/USDT", "1m", bars)
    changed = bars.iloc[40:60].copy()
    changed["close"] += 1.0
    changed["high"] += 1.0
    extra = synthetic_bars(10, start=str(bars.index[-1] + pd.Timedelta(minutes=1)), seed=2)
    assert store.upsert_bars("sim", "ETH/USDT", "1m", pd.concat([changed, extra])) == 10
    back = store.bars("sim", "ETH/USDT", "1m")
    expected = pd.concat([bars, extra])
    expected.loc[changed.index] = changed
    pd.testing.assert_frame_equal(back, expected, check_freq=False)
    assert store.list().iloc[0].rows == 110


def test_range_reads_are_inclusive_and_exact(store):
    bars = synthetic_bars(2 * SEGMENT_BARS)
    store.upsert_bars("sim", "BTC/USDT", "1m", bars)
    start, end = bars.index[SEGMENT_BARS - 5], bars.index[SEGMENT_BARS + 5]
    part = store.bars("sim", "BTC/USDT", "1m", start, end)
    pd.testing.assert_frame_equal(part, bars.loc[start:end], check_freq=False)
    assert store.bars("sim", "BTC/USDT", "1m", "2030-01-01").empty


def test_series_are_kept_apart_by_key(store):
    one, two = synthetic_bars(50, seed=1), synthetic_bars(50, seed=2)
    store.upsert_bars("sim", "BTC/USDT", "1m", one)
    store.upsert_bars("binance", "BTC/USDT", "1m", two)
    store.upsert_bars("sim", "BTC/USDT", "1m", two, price="mark")
    pd.testing.assert_frame_equal(store.bars("sim", "BTC/USDT", "1m"), one, check_freq=False)
    pd.testing.assert_frame_equal(store.bars("binance", "BTC/USDT", "1m"), two, check_freq=False)
    pd.testing.assert_frame_equal(store.bars("sim", "BTC/USDT", "1m", price="mark"), two, check_freq=False)
    assert sorted(store.list().kind) == ["bars", "bars", "mark"]


def test_reading_an_unknown_series_names_what_is_stored(store):
    store.upsert_bars("sim", "BTC/USDT", "1m", synthetic_bars(5))
    with pytest.raises(StoreError, match=r"no bars sim DOGE/USDT 1m.*sim BTC/USDT 1m"):
        store.bars("sim", "DOGE/USDT", "1m")


def test_higher_timeframes_are_resampled_from_finer_bars(store):
    bars = synthetic_bars(24 * 60, start="2024-03-01")
    store.upsert_bars("sim", "BTC/USDT", "1m", bars)
    hourly = store.bars("sim", "BTC/USDT", "1h")
    assert len(hourly) == 24
    first = bars.iloc[:60]
    assert hourly.iloc[0].tolist() == pytest.approx(
        [first.open.iloc[0], first.high.max(), first.low.min(), first.close.iloc[-1], first.volume.sum()], rel=1e-12
    )
    window = store.bars("sim", "BTC/USDT", "1h", "2024-03-01 05:00", "2024-03-01 07:00")
    assert list(window.index.hour) == [5, 6, 7]
    with pytest.raises(StoreError, match="no bars"):
        store.bars("sim", "BTC/USDT", "1M")  # calendar months are not built from minutes


def test_gaps_show_as_missing_bars(store):
    bars = synthetic_bars(100).drop(synthetic_bars(100).index[[10, 11, 50]])
    store.upsert_bars("sim", "BTC/USDT", "1m", bars)
    assert store.list().iloc[0].missing == 3


def test_trades_and_funding_round_trip(store, shared_data):
    raw = pd.read_parquet(shared_data / "binance-futures/trades/ETH_USDT_USDT.parquet")
    tape = to_trades(raw)
    store.upsert_trades("binance", "ETH/USDT:USDT", raw)
    store.upsert_trades("binance", "ETH/USDT:USDT", raw)
    back = store.trades("binance", "ETH/USDT:USDT")
    pd.testing.assert_frame_equal(back, tape)
    rates = to_funding(pd.DataFrame({"timestamp": [1_700_000_000_000 + i * 28_800_000 for i in range(3)],
                                     "funding_rate": [1e-4, -2e-4, 3e-4], "mark_price": [1.0, np.nan, 1.2]}))
    store.upsert_funding("binance", "ETH/USDT:USDT", rates)
    pd.testing.assert_frame_equal(store.funding("binance", "ETH/USDT:USDT"), rates)
    listed = store.list().set_index("kind")
    assert listed.loc["trades", "rows"] == len(tape) and listed.loc["funding", "rows"] == 3


def test_shared_files_read_back_losslessly(store, shared_data):
    for path in sorted(shared_data.glob("binance-*/*/*.parquet")):
        raw = pd.read_parquet(path)
        if "open" not in raw:
            continue
        bars = to_bars(raw)
        spec = describe(path)
        key = (spec.exchange, spec.symbol, spec.timeframe)
        store.upsert_bars(*key, bars, price=spec.price)
        back = store.bars(*key, price=spec.price)
        assert_convention(back)
        pd.testing.assert_frame_equal(back, bars)  # NaN volumes (mark prices) included
        assert (back.index.asi8 // 1_000_000 == raw.timestamp.to_numpy()).all()


def test_delete_removes_a_series(store):
    store.upsert_bars("sim", "BTC/USDT", "1m", synthetic_bars(10))
    store.delete("bars", "sim", "BTC/USDT", "1m")
    assert store.list().empty


def test_bad_input_changes_nothing(store):
    store.upsert_bars("sim", "BTC/USDT", "1m", synthetic_bars(10))
    broken = synthetic_bars(10, start="2025-01-01").drop(columns="volume")
    with pytest.raises(Exception, match="missing column"):
        store.upsert_bars("sim", "BTC/USDT", "1m", broken)
    assert store.list().iloc[0].rows == 10


def test_concurrent_writers_queue_instead_of_failing(store_url):
    """Two processes' worth of writers on one series: every bar lands, none is lost."""
    from concurrent.futures import ThreadPoolExecutor

    bars = synthetic_bars(8 * 500)
    chunks = [bars.iloc[i::8] for i in range(8)]  # interleaved: every write touches shared segments
    stores = [MarketStore(store_url) for _ in range(2)]
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: stores[i % 2].upsert_bars("sim", "BTC/USDT", "1m", chunks[i]), range(8)))
        back = stores[0].bars("sim", "BTC/USDT", "1m")
        pd.testing.assert_frame_equal(back, bars, check_freq=False)
        assert stores[1].list().iloc[0].rows == len(bars)
    finally:
        for opened in stores:
            opened.close()


class FrameSource:
    """A source serving slices of known bars, recording what it was asked for."""

    name = "frames"

    def __init__(self, frames: dict[str, pd.DataFrame]):
        self.frames = frames
        self.calls: list[tuple[str, pd.Timestamp, pd.Timestamp]] = []

    def fetch_ohlcv(self, symbol, timeframe, start, end, *, progress=False):
        start, end = pd.Timestamp(start, unit="ms", tz="UTC"), pd.Timestamp(end, unit="ms", tz="UTC")
        self.calls.append((symbol, start, end))
        return self.frames[symbol].loc[start:end]


def test_update_fetches_only_what_each_symbol_is_missing(store):
    full = {"BTC/USDT": synthetic_bars(1000, seed=1), "ETH/USDT": synthetic_bars(1000, seed=2)}
    index = full["BTC/USDT"].index
    store.upsert_bars("frames", "BTC/USDT", "1m", full["BTC/USDT"].iloc[200:600])
    source = FrameSource(full)

    added = store.update(source, ["BTC/USDT", "ETH/USDT"], "1m", index[0], index[-1])

    assert added == {"BTC/USDT": 600, "ETH/USDT": 1000}
    assert source.calls == [
        ("BTC/USDT", index[0], index[199]),   # before the stored span
        ("BTC/USDT", index[600], index[-1]),  # after it
        ("ETH/USDT", index[0], index[-1]),    # nothing stored: everything
    ]
    for symbol, bars in full.items():
        pd.testing.assert_frame_equal(store.bars("frames", symbol, "1m"), bars, check_freq=False)
    source.calls.clear()
    assert store.update(source, ["BTC/USDT"], "1m", index[0], index[-1]) == {"BTC/USDT": 0}
    assert source.calls == []  # up to date: nothing fetched
