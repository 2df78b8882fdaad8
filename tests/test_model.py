"""The data convention and the conversions into it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.data.model import OrderBook, detect_time_unit, to_bars, to_funding, to_trades
from workbench.data.timeframes import bar_index, timeframe_ms, timeframe_offset
from workbench.errors import DataFormatError

RAW = pd.DataFrame(
    {"timestamp": [1_700_000_000_000, 1_700_000_060_000], "open": [1, 2], "high": [2, 3],
     "low": [0.5, 1.5], "close": [1.5, 2.5], "volume": [10, 20]}
)


def test_bars_follow_the_convention():
    bars = to_bars(RAW)
    assert bars.index.name == "timestamp" and str(bars.index.tz) == "UTC"
    assert bars.index[0] == pd.Timestamp("2023-11-14 22:13:20", tz="UTC")
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert (bars.dtypes == np.float64).all()


def test_bars_from_datetime_index_and_mixed_case_columns():
    frame = RAW.rename(columns=str.upper).set_index("TIMESTAMP")
    frame.index = pd.to_datetime(frame.index, unit="ms")
    assert to_bars(frame).equals(to_bars(RAW))


def test_seconds_instead_of_milliseconds_are_detected():
    seconds = RAW.assign(timestamp=RAW.timestamp // 1000)
    with pytest.raises(DataFormatError, match="look like s.*--unit s"):
        to_bars(seconds)
    assert to_bars(seconds, unit="s").equals(to_bars(RAW))
    assert detect_time_unit(np.array([1.7e9])) == "s" and detect_time_unit(np.array([1.7e18])) == "ns"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (RAW.drop(columns="volume"), r"missing column\(s\) \['volume'\]"),
        (RAW.drop(columns="timestamp"), "need a time"),
        (RAW.iloc[::-1], "not in time order"),
        (RAW.iloc[[0, 0, 1]], "duplicate timestamps"),
        (RAW.assign(close=["a", "b"]), "'close' is not numeric"),
    ],
)
def test_bad_bars_are_refused_with_a_reason(frame, message):
    with pytest.raises(DataFormatError, match=message):
        to_bars(frame)


def test_trades_and_funding():
    tape = to_trades(pd.DataFrame({"timestamp": [1_700_000_000_000], "price": [1.0], "amount": [2], "side": ["BUY"], "id": [7]}))
    assert tape.side.iloc[0] == "buy" and tape.id.iloc[0] == "7"
    with pytest.raises(DataFormatError, match="'buy' or 'sell'"):
        to_trades(pd.DataFrame({"timestamp": [1_700_000_000_000], "price": [1.0], "amount": [2], "side": ["long"]}))
    rates = to_funding(pd.DataFrame({"timestamp": [1_700_000_000_000], "funding_rate": [1e-4]}))
    assert np.isnan(rates.mark_price.iloc[0])


def test_order_book_is_checked():
    book = OrderBook("BTC/USDT", pd.Timestamp.now(tz="UTC"), [[100, 1], [99, 2]], [[101, 1], [102, 3]])
    assert (book.mid, book.spread) == (100.5, 1.0)
    assert list(book.to_frame().side) == ["bid", "bid", "ask", "ask"]
    assert "order book" in book._repr_html_()
    with pytest.raises(DataFormatError, match="crossed"):
        OrderBook("X", pd.Timestamp.now(tz="UTC"), [[101, 1]], [[100, 1]])
    with pytest.raises(DataFormatError, match="not sorted"):
        OrderBook("X", pd.Timestamp.now(tz="UTC"), [[99, 1], [100, 1]], [[101, 1]])


def test_timeframes_in_ccxt_spelling():
    assert timeframe_ms("5m") == 300_000 and timeframe_ms("1h") == 3_600_000 and timeframe_ms("1M") == 2_592_000_000
    assert timeframe_offset("15m") == "15min" and timeframe_offset("1d") == "1D"
    for bad in ("5", "m5", "0m", "5 minutes", None):
        with pytest.raises(DataFormatError, match="Unknown timeframe"):
            timeframe_ms(bad)
    index = bar_index(pd.Timestamp("2024-01-01 00:01", tz="UTC"), pd.Timestamp("2024-01-01 00:20", tz="UTC"), "5m")
    assert list(index.minute) == [5, 10, 15, 20]
