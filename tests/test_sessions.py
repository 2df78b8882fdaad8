"""Session and killzone tagging: fixed UTC windows, exchange clocks across daylight saving,
windows past midnight, configuration errors and bad input."""

from __future__ import annotations

from datetime import time

import pandas as pd
import pytest

from workbench.errors import ConfigError, DataFormatError
from workbench.signals import (
    EXCHANGE_SESSIONS,
    KILLZONES,
    NEW_YORK_KILLZONES,
    SESSIONS,
    SessionWindow,
    Sessions,
    session_flags,
    session_label,
)


def at(*stamps: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(list(stamps), tz="UTC", name="timestamp")


def minutes(day: str) -> pd.DatetimeIndex:
    return pd.date_range(day, periods=24 * 60, freq="1min", tz="UTC", name="timestamp")


def test_utc_sessions_by_the_clock():
    times = at("2024-01-15 00:00", "2024-01-15 08:30", "2024-01-15 09:00", "2024-01-15 13:00",
               "2024-01-15 16:59", "2024-01-15 17:00", "2024-01-15 22:00")
    flags = session_flags(times)
    assert list(flags.columns) == ["asia", "london", "new_york", "london_new_york"]
    assert flags.index.equals(times)
    assert flags.astype(int).to_numpy().tolist() == [
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 0, 0],  # a window's end is not in it
        [0, 1, 1, 1],
        [0, 1, 1, 1],
        [0, 0, 1, 0],
        [0, 0, 0, 0],
    ]
    labels = session_label(times)
    assert labels.name == "session"
    assert labels.tolist() == [
        "asia", "london", "london", "london_new_york", "london_new_york", "new_york", pd.NA
    ]


@pytest.mark.parametrize(
    ("day", "london", "new_york", "overlap"),
    [
        ("2024-01-15", (8, 17), (13, 22), 4 * 60),  # both on winter time
        ("2024-03-15", (8, 17), (12, 21), 5 * 60),  # New York already on summer time
        ("2024-07-15", (7, 16), (12, 21), 4 * 60),  # both on summer time
        ("2024-10-30", (8, 17), (12, 21), 5 * 60),  # London back on winter time first
    ],
)
def test_exchange_sessions_follow_daylight_saving(day, london, new_york, overlap):
    flags = session_flags(minutes(day), EXCHANGE_SESSIONS)
    hours = flags.index.hour
    assert flags["london"].equals(pd.Series((hours >= london[0]) & (hours < london[1]),
                                            index=flags.index, name="london"))
    assert flags["new_york"].equals(pd.Series((hours >= new_york[0]) & (hours < new_york[1]),
                                              index=flags.index, name="new_york"))
    assert flags["london_new_york"].sum() == overlap
    assert flags["asia"].sum() == 9 * 60  # Tokyo keeps no daylight saving


def test_london_opens_an_hour_earlier_in_utc_the_day_the_clocks_change():
    flags = session_flags(at("2024-03-30 07:30", "2024-03-31 07:30"), EXCHANGE_SESSIONS)
    assert flags["london"].tolist() == [False, True]


def test_killzones_in_utc_and_on_new_yorks_clock():
    winter = minutes("2024-01-15")
    assert session_label(winter, KILLZONES).equals(session_label(winter, NEW_YORK_KILLZONES))
    counts = session_label(winter, KILLZONES).value_counts()
    assert counts.to_dict() == {"asia": 240, "london_open": 180, "new_york_open": 180,
                                "london_close": 120}
    summer = minutes("2024-07-15")
    in_utc = session_label(summer + pd.Timedelta("1h"), KILLZONES)
    on_new_york = session_label(summer, NEW_YORK_KILLZONES)
    assert on_new_york.tolist() == in_utc.tolist()  # an hour earlier in UTC in summer


def test_custom_windows_past_midnight_and_naive_or_framed_input():
    night = Sessions(
        {"night": SessionWindow(time(22, 0), "02:00"), "noon": SessionWindow("12:00", "12:30")}
    )
    naive = pd.DatetimeIndex(["2024-01-01 21:59", "2024-01-01 23:00", "2024-01-02 01:59",
                              "2024-01-02 02:00", "2024-01-02 12:15"])
    assert session_label(naive, night).tolist() == [pd.NA, "night", "night", pd.NA, "noon"]
    bars = pd.DataFrame({"close": range(5)}, index=naive.tz_localize("UTC"))
    assert session_flags(bars, night).index.equals(bars.index)
    assert session_label(bars["close"], night).tolist() == session_label(naive, night).tolist()
    berlin = Sessions({"xetra": SessionWindow("09:00", "17:30", "Europe/Berlin")})
    assert session_flags(at("2024-01-15 08:00", "2024-07-15 07:00"), berlin)["xetra"].all()


def test_tagging_does_not_look_ahead():
    times = minutes("2024-03-31")  # the day London's clocks change
    full = session_flags(times, EXCHANGE_SESSIONS)
    for row in (0, 60, 700):
        later = pd.date_range("2030-06-01", periods=50, freq="37min", tz="UTC", name="timestamp")
        for variant in (times[: row + 1], times[: row + 1].append(later)):
            head = session_flags(variant, EXCHANGE_SESSIONS).iloc[: row + 1]
            pd.testing.assert_frame_equal(head, full.iloc[: row + 1], check_freq=False)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: SessionWindow("25:00", "02:00"), "time of day"),
        (lambda: SessionWindow("08:00", 9), "time of day"),
        (lambda: SessionWindow("08:00+01:00", "09:00"), "time of day"),
        (lambda: SessionWindow("08:00", "08:00"), "empty"),
        (lambda: SessionWindow("08:00", "09:00", "Mars/Olympus"), "Unknown time zone"),
        (lambda: Sessions({}), "at least one"),
        (lambda: Sessions({"a": "08:00-09:00"}), "at least one"),
        (lambda: Sessions({"a": SessionWindow("08:00", "09:00")}, {"b": ("a", "c")}), "two of"),
        (lambda: Sessions({"a": SessionWindow("08:00", "09:00")}, {"a": ("a", "a")}), "twice"),
    ],
)
def test_bad_configuration_is_refused(make, words):
    with pytest.raises(ConfigError, match=words):
        make()


@pytest.mark.parametrize(
    ("times", "words"),
    [
        (pd.DatetimeIndex([], tz="UTC"), "no rows"),
        (pd.DatetimeIndex(["2024-01-01", None], tz="UTC"), "NaT"),
        (pd.RangeIndex(3), "DatetimeIndex"),
        (pd.Series([1, 2]), "DatetimeIndex"),
        (["2024-01-01"], "DatetimeIndex"),
    ],
)
def test_bad_times_are_refused(times, words):
    with pytest.raises(DataFormatError, match=words):
        session_flags(times)
    with pytest.raises(DataFormatError, match=words):
        session_label(times, KILLZONES)


def test_sessions_must_be_a_sessions():
    with pytest.raises(DataFormatError, match="must be a Sessions"):
        session_flags(at("2024-01-01"), {"a": SessionWindow("08:00", "09:00")})
    assert SESSIONS.windows["london"] == SessionWindow("08:00", "17:00")
