"""Volume indicators: ``obv``, ``ad``, ``adosc`` (TA-Lib's), ``vwap`` and ``volume_profile``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.errors import DataFormatError
from workbench.indicators import _kernels_volume as kv
from workbench.indicators import _validate as v

HLCV = ("high", "low", "close", "volume")
_DAY_NS = 86_400 * 10**9


def obv(bars: pd.DataFrame) -> pd.Series:
    """On-balance volume: volume added on up closes, subtracted on down closes (TA_OBV).

    As in TA-Lib the running total starts at the first bar's volume.
    """
    data = v.bars(bars, ("close", "volume"), "obv()", 0)
    out, tail = data.output()
    kv.obv(*data.columns, tail)
    return data.series(out, "obv")


def ad(bars: pd.DataFrame) -> pd.Series:
    """Chaikin accumulation/distribution line (TA_AD)."""
    data = v.bars(bars, HLCV, "ad()", 0)
    out, tail = data.output()
    kv.ad(*data.columns, tail)
    return data.series(out, "ad")


def adosc(bars: pd.DataFrame, fastperiod: int = 3, slowperiod: int = 10) -> pd.Series:
    """Chaikin A/D oscillator, ``EMA(fast) - EMA(slow)`` of the A/D line (TA_ADOSC).

    Both EMAs start from the first A/D value (no SMA seed), as TA-Lib's ADOSC does.
    """
    fast = v.period(fastperiod, "fastperiod", minimum=2)
    slow = v.period(slowperiod, "slowperiod", minimum=2)
    what = v.call("adosc", fastperiod=fast, slowperiod=slow)
    data = v.bars(bars, HLCV, what, max(fast, slow) - 1)
    out, tail = data.output()
    kv.adosc(*data.columns, fast, slow, tail)
    return data.series(out, f"adosc_{fast}_{slow}")


def vwap(bars: pd.DataFrame, anchor: str | None = "D", tz: str = "UTC") -> pd.Series:
    """Volume-weighted average of the typical price, restarting every ``anchor`` period.

    ``anchor`` is a pandas frequency ("D" for each day, "h", "W", "MS", ...) read in
    time zone ``tz`` (a naive index is taken as UTC), or None for one VWAP anchored at the
    first bar. Rows before a session has traded any volume are NaN.
    """
    data = v.bars(bars, HLCV, v.call("vwap", anchor=anchor, tz=tz), 0)
    if anchor is None:
        new_session = np.zeros(len(data.columns[0]), dtype=np.bool_)
        new_session[0] = True
    else:
        new_session = _session_starts(data.index[data.start :], anchor, tz)
    out, tail = data.output()
    kv.anchored_vwap(*data.columns, new_session, tail)
    return data.series(out, "vwap")


def _session_starts(index: pd.Index, anchor: str, tz: str) -> np.ndarray:
    if not isinstance(index, pd.DatetimeIndex):
        raise DataFormatError(
            f"vwap(anchor={anchor!r}) needs a DatetimeIndex to find its sessions, not "
            f"{type(index).__name__}; pass anchor=None for a VWAP from the first bar."
        )
    try:
        offset = pd.tseries.frequencies.to_offset(anchor)
        local = (index.tz_localize("UTC") if index.tz is None else index).tz_convert(tz)
    except (ValueError, TypeError, KeyError) as exc:
        raise DataFormatError(
            f"vwap: cannot anchor sessions on {anchor!r} in {tz!r}: {exc}"
        ) from None
    wall = local.tz_localize(None)  # local clock time: a session starts at local midnight
    if isinstance(offset, (pd.offsets.Tick, pd.offsets.Day)):  # fixed length on the clock
        length = offset.nanos if isinstance(offset, pd.offsets.Tick) else offset.n * _DAY_NS
        keys = wall.asi8 // length
    else:  # calendar periods (weeks, months, ...)
        keys = wall.to_period(offset).asi8
    starts = np.empty(len(keys), dtype=np.bool_)
    starts[0] = True
    np.not_equal(keys[1:], keys[:-1], out=starts[1:])
    return starts


def volume_profile(
    bars: pd.DataFrame, bins: int = 24, price_range: tuple[float, float] | None = None
) -> pd.DataFrame:
    """Traded volume per price bin over all the bars given: a ``volume`` column indexed by
    price intervals (``price``).

    Each bar's volume is spread evenly over its low-high range (a bar with no range puts
    it in its price's bin). ``price_range`` defaults to the lowest low and highest high;
    volume outside an explicit range is not counted.
    """
    count = v.period(bins, "bins")
    data = v.bars(bars, ("high", "low", "volume"), v.call("volume_profile", bins=count), 0)
    high, low, volume = data.columns
    try:
        lo, hi = (low.min(), high.max()) if price_range is None else map(float, price_range)
    except (TypeError, ValueError):
        raise DataFormatError(
            f"volume_profile: price_range must be (low, high) numbers; got {price_range!r}."
        ) from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise DataFormatError(
            f"volume_profile needs a price range with low < high; got ({lo}, {hi})."
            + (" All prices are equal: pass price_range." if price_range is None else "")
        )
    edges = np.linspace(lo, hi, count + 1)
    profile = np.empty(count)
    kv.volume_profile(high, low, volume, edges, profile)
    index = pd.IntervalIndex.from_breaks(edges, closed="left", name="price")
    return pd.DataFrame({"volume": profile}, index=index)
