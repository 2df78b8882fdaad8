"""Trading sessions and killzones: which named daily windows each time falls in.

A :class:`SessionWindow` is a daily span of wall-clock time in one time zone. In UTC (the
presets' default) it is fixed; in an exchange's zone it follows that zone's daylight saving,
so London's 08:00 open is 08:00 UTC in winter and 07:00 UTC in summer. :class:`Sessions`
names a set of windows plus the overlaps of pairs of them. Tagging looks at each time on
its own, so it never looks ahead; bars are tagged by their open time. A naive index is
read as UTC, the data convention's zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from workbench.errors import ConfigError, DataFormatError
from workbench.signals import _inputs

_DAY_NS = 86_400 * 10**9


def _clock(value: object, name: str) -> time:
    """A naive time of day from a ``time`` or an "HH:MM" string."""
    if isinstance(value, str):
        try:
            value = time.fromisoformat(value)
        except ValueError:
            pass
    if isinstance(value, time) and value.tzinfo is None:
        return value
    raise ConfigError(f"A session {name} is a time of day such as '08:00'; got {value!r}.")


def _nanoseconds(clock: time) -> int:
    seconds = clock.hour * 3600 + clock.minute * 60 + clock.second
    return (seconds * 1_000_000 + clock.microsecond) * 1000


@dataclass(frozen=True)
class SessionWindow:
    """The daily span [start, end) of wall-clock time in ``tz`` (an IANA zone name).

    ``start`` and ``end`` are ``datetime.time`` or "HH:MM" strings; an end at or before
    the start runs past midnight (20:00-00:00 is the day's last four hours).
    """

    start: time | str
    end: time | str
    tz: str = "UTC"

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _clock(self.start, "start"))
        object.__setattr__(self, "end", _clock(self.end, "end"))
        if self.start == self.end:
            raise ConfigError(f"A session window from {self.start} to {self.end} is empty.")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigError(
                f"Unknown time zone {self.tz!r}; use an IANA name such as 'Europe/London'."
            ) from None

    def contains(self, times: pd.DatetimeIndex) -> np.ndarray:
        """Whether each (UTC-aware) time falls inside the window, on its local wall clock."""
        wall = times.tz_convert(self.tz).tz_localize(None).as_unit("ns")
        clock = wall.asi8 % _DAY_NS
        start, end = _nanoseconds(self.start), _nanoseconds(self.end)
        if start < end:
            return (clock >= start) & (clock < end)
        return (clock >= start) | (clock < end)


@dataclass(frozen=True)
class Sessions:
    """Named session windows, and named ``overlaps`` of two of them.

    An overlap is worked out from its two windows at each time, so it stays right when
    they keep different daylight-saving calendars (London and New York switch weeks
    apart). Names list the windows first, then the overlaps, in the order given.
    """

    windows: Mapping[str, SessionWindow]
    overlaps: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        windows, overlaps = dict(self.windows), {k: tuple(v) for k, v in self.overlaps.items()}
        if not windows or not all(isinstance(w, SessionWindow) for w in windows.values()):
            raise ConfigError("Sessions need at least one SessionWindow, keyed by name.")
        unknown = [pair for pair in overlaps.values() if not set(pair) <= windows.keys()]
        if unknown or any(len(pair) != 2 for pair in overlaps.values()):
            raise ConfigError(
                f"An overlap names two of the windows {list(windows)}; got {unknown or overlaps}."
            )
        if windows.keys() & overlaps.keys():
            raise ConfigError(f"Names {sorted(windows.keys() & overlaps.keys())} are used twice.")
        object.__setattr__(self, "windows", MappingProxyType(windows))
        object.__setattr__(self, "overlaps", MappingProxyType(overlaps))


SESSIONS = Sessions(
    windows={
        "asia": SessionWindow("00:00", "09:00"),
        "london": SessionWindow("08:00", "17:00"),
        "new_york": SessionWindow("13:00", "22:00"),
    },
    overlaps={"london_new_york": ("london", "new_york")},
)
"""Tokyo, London and New York at fixed UTC hours (their winter hours), with the overlap."""

EXCHANGE_SESSIONS = Sessions(
    windows={
        "asia": SessionWindow("09:00", "18:00", "Asia/Tokyo"),
        "london": SessionWindow("08:00", "17:00", "Europe/London"),
        "new_york": SessionWindow("08:00", "17:00", "America/New_York"),
    },
    overlaps={"london_new_york": ("london", "new_york")},
)
"""The same sessions on each exchange's local clock, following its daylight saving."""

KILLZONES = Sessions(
    {
        "asia": SessionWindow("01:00", "05:00"),
        "london_open": SessionWindow("07:00", "10:00"),
        "new_york_open": SessionWindow("12:00", "15:00"),
        "london_close": SessionWindow("15:00", "17:00"),
    }
)
"""ICT killzones at fixed UTC hours (New York's winter offset of NEW_YORK_KILLZONES)."""

NEW_YORK_KILLZONES = Sessions(
    {
        "asia": SessionWindow("20:00", "00:00", "America/New_York"),
        "london_open": SessionWindow("02:00", "05:00", "America/New_York"),
        "new_york_open": SessionWindow("07:00", "10:00", "America/New_York"),
        "london_close": SessionWindow("10:00", "12:00", "America/New_York"),
    }
)
"""ICT killzones as defined, on New York's clock, following its daylight saving."""


def session_flags(
    times: pd.DatetimeIndex | pd.Series | pd.DataFrame, sessions: Sessions = SESSIONS
) -> pd.DataFrame:
    """One boolean column per window and overlap of ``sessions``: is each time inside it.

    ``times`` is a DatetimeIndex, or bars, trades or a Series whose index is one; the
    result keeps that index.
    """
    return _flags(times, sessions, "session_flags()")


def session_label(
    times: pd.DatetimeIndex | pd.Series | pd.DataFrame, sessions: Sessions = SESSIONS
) -> pd.Series:
    """The name of the window each time falls in (``session``, <NA> outside them all).

    Where windows overlap the one named last wins, so an overlap, named after its
    windows, labels the hours they share. ``session_label(bars, KILLZONES)`` tags
    killzones.
    """
    flags = _flags(times, sessions, "session_label()")
    label = pd.Series(pd.NA, index=flags.index, dtype="string", name="session")
    for name, inside in flags.items():
        label = label.mask(inside, name)
    return label


def _flags(times: object, sessions: Sessions, what: str) -> pd.DataFrame:
    if not isinstance(sessions, Sessions):
        raise DataFormatError(
            f"{what}: sessions must be a Sessions, not {type(sessions).__name__}."
        )
    if isinstance(times, (pd.Series, pd.DataFrame)):
        times = times.index
    index = _inputs.times(times, what)
    utc = index.tz_localize("UTC") if index.tz is None else index
    flags = {name: window.contains(utc) for name, window in sessions.windows.items()}
    for name, (first, second) in sessions.overlaps.items():
        flags[name] = flags[first] & flags[second]
    return pd.DataFrame(flags, index=index)

