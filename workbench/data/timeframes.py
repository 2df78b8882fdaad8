"""Timeframes as ccxt spells them ("1m", "5m", "1h", "1d", "1w", "1M")."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from workbench.data.model import index_from_ms
from workbench.errors import DataFormatError

_UNIT_MS = {
    "s": 1_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
    "M": 2_592_000_000,  # ccxt's nominal 30-day month; calendar months resample by offset
    "y": 31_536_000_000,
}
_PANDAS_UNIT = {"s": "s", "m": "min", "h": "h", "d": "D", "w": "W-MON", "M": "MS", "y": "YS"}
_PATTERN = re.compile(r"^(\d+)([smhdwMy])$")


def _parse(timeframe: str) -> tuple[int, str]:
    match = _PATTERN.match(timeframe) if isinstance(timeframe, str) else None
    if not match or int(match.group(1)) <= 0:
        raise DataFormatError(
            f"Unknown timeframe {timeframe!r}: use ccxt's spelling, a positive count and one "
            f"of s, m, h, d, w, M, y (for example '1m', '5m', '1h', '1d')."
        )
    return int(match.group(1)), match.group(2)


def timeframe_ms(timeframe: str) -> int:
    """Length of one bar in milliseconds (months count 30 days, as in ccxt)."""
    count, unit = _parse(timeframe)
    return count * _UNIT_MS[unit]


def timeframe_offset(timeframe: str) -> str:
    """The pandas offset alias that bins bars of this timeframe (for resampling)."""
    count, unit = _parse(timeframe)
    if unit == "w":
        if count != 1:
            raise DataFormatError("Weekly bars resample only as '1w' (weeks start on Monday).")
        return "W-MON"
    return f"{count}{_PANDAS_UNIT[unit]}"


def is_fixed(timeframe: str) -> bool:
    """True when every bar has the same length (not months or years)."""
    return _parse(timeframe)[1] not in "My"


def bar_index(start: pd.Timestamp, end: pd.Timestamp, timeframe: str) -> pd.DatetimeIndex:
    """The bar open times a complete series of this timeframe has in [start, end]."""
    step = timeframe_ms(timeframe)
    first = -(-int(start.value // 1_000_000) // step) * step
    last = int(end.value // 1_000_000) // step * step
    return index_from_ms(np.arange(first, max(first, last + step), step, dtype=np.int64))
