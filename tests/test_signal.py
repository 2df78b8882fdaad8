"""Signal: values checked on creation, times brought to UTC, and a lossless frame round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.errors import DataFormatError
from workbench.signals.signal import Signal, signals_from_frame, signals_to_frame

T0 = pd.Timestamp("2024-03-01 12:00", tz="UTC")


def make(**changes) -> Signal:
    why = ("SMA(10)=1.234 crossed above SMA(50)=1.229",)
    values = dict(symbol="BTC/USDT", time=T0, direction=1, strength=0.8, confidence=0.6,
                  source="sma_cross", reasons=why)  # fmt: skip
    return Signal(**(values | changes))


def test_a_signal_keeps_its_values_and_says_its_side():
    signal = make()
    assert (signal.symbol, signal.time, signal.direction, signal.strength) == (
        "BTC/USDT",
        T0,
        1,
        0.8,
    )
    assert signal.reasons == ("SMA(10)=1.234 crossed above SMA(50)=1.229",)
    assert [make(direction=d).side for d in (1, -1, 0)] == ["long", "short", "flat"]
    with pytest.raises(AttributeError):
        signal.direction = -1  # frozen


def test_times_become_utc_timestamps():
    assert make(time="2024-03-01 12:00").time == T0  # naive: read as UTC, like bar times
    paris = make(time=pd.Timestamp("2024-03-01 13:00", tz="Europe/Paris")).time
    assert paris == T0 and str(paris.tz) == "UTC"
    assert make(time=np.datetime64("2024-03-01T12:00")).time == T0


def test_reasons_become_a_tuple_of_strings():
    assert make(reasons="one reason").reasons == ("one reason",)
    assert make(reasons=["a", "b"]).reasons == ("a", "b")
    assert make(reasons=np.array(["a"])).reasons == ("a",)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"direction": 2}, "direction"),
        ({"direction": 0.5}, "direction"),
        ({"direction": True}, "direction"),
        ({"direction": "long"}, "direction"),
        ({"strength": 1.5}, "strength between 0 and 1"),
        ({"strength": -0.1}, "strength between 0 and 1"),
        ({"strength": float("nan")}, "strength between 0 and 1"),
        ({"confidence": 2}, "confidence between 0 and 1"),
        ({"confidence": "high"}, "confidence"),
        ({"symbol": ""}, "symbol must be a non-empty string"),
        ({"source": None}, "source must be a non-empty string"),
        ({"time": None}, "no time"),
        ({"time": "not a time"}, "cannot be read"),
        ({"reasons": ("ok", 3)}, "must be strings"),
        ({"reasons": 3}, "must be strings"),
    ],
)
def test_bad_values_are_refused_with_what_was_wrong(changes, message):
    with pytest.raises(DataFormatError, match=message):
        make(**changes)


def test_frame_round_trip_keeps_every_field():
    signals = [
        make(),
        make(symbol="ETH/USDT", time=T0 + pd.Timedelta("5min"), direction=-1, reasons=("a", "b")),
        make(direction=0, strength=0.0, reasons=()),
    ]
    frame = signals_to_frame(signals)
    assert list(frame.columns) == [
        "symbol",
        "direction",
        "strength",
        "confidence",
        "source",
        "reasons",
    ]
    assert frame.index.name == "time" and str(frame.index.tz) == "UTC"
    assert frame["direction"].dtype == np.int8
    assert frame["reasons"].iloc[1] == ("a", "b")
    assert signals_from_frame(frame) == signals
    assert signals_from_frame(frame.reset_index()) == signals  # time as a column


def test_frame_round_trip_through_parquet(tmp_path):
    signals = [make(), make(direction=-1, reasons=())]
    path = tmp_path / "signals.parquet"
    signals_to_frame(signals).to_parquet(path)
    assert signals_from_frame(pd.read_parquet(path)) == signals  # reasons come back as arrays


def test_an_empty_list_makes_an_empty_frame_with_the_columns():
    frame = signals_to_frame([])
    assert frame.empty and "reasons" in frame.columns
    assert signals_from_frame(frame) == []


def test_missing_columns_take_signal_defaults():
    frame = pd.DataFrame(
        {"symbol": ["BTC/USDT"], "direction": [1]}, index=pd.DatetimeIndex([T0], name="time")
    )
    assert signals_from_frame(frame) == [Signal("BTC/USDT", T0, 1)]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            pd.DataFrame(
                {"symbol": ["X/Y"], "Direction": [1]}, index=pd.DatetimeIndex([T0], name="time")
            ),
            r"missing column\(s\) \['direction'\], unexpected column\(s\) \['Direction'\]",
        ),
        (pd.DataFrame({"symbol": ["X/Y"], "direction": [1]}), "needs the times"),
        (
            pd.DataFrame(
                {"symbol": ["X/Y"], "direction": [3]}, index=pd.DatetimeIndex([T0], name="time")
            ),
            "direction",
        ),
        ("not a frame", "needs a DataFrame"),
    ],
)
def test_bad_frames_are_refused(frame, message):
    with pytest.raises(DataFormatError, match=message):
        signals_from_frame(frame)


def test_to_frame_refuses_what_is_not_a_signal():
    with pytest.raises(DataFormatError, match="needs Signals"):
        signals_to_frame([make(), {"symbol": "BTC/USDT"}])
