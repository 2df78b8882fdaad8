"""Resampling bars to a higher timeframe without inventing bars."""

from __future__ import annotations

import pandas as pd

from workbench.data.model import BAR_COLUMNS, to_bars
from workbench.data.timeframes import is_fixed, timeframe_ms, timeframe_offset

_AGGREGATION = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def resample_bars(bars: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Bars aggregated into ``timeframe`` bins labelled by their open time (UTC-aligned, as
    exchanges align them). Bins with no input bar are left out, never filled; volume of a
    bin whose input volumes are all NaN stays NaN."""
    bars = to_bars(bars)
    # Intraday bins align to the epoch, as exchanges align them; days and longer to midnight.
    origin = "epoch" if is_fixed(timeframe) and timeframe_ms(timeframe) < 86_400_000 else "start_day"
    grouped = bars.resample(timeframe_offset(timeframe), label="left", closed="left", origin=origin)
    out = grouped.agg(_AGGREGATION)
    out["volume"] = grouped["volume"].sum(min_count=1)
    counts = grouped["close"].count()
    return out.loc[counts > 0, list(BAR_COLUMNS)].rename_axis("timestamp")
