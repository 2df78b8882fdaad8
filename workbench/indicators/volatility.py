"""Volatility: true-range averages, deviation and price channels.

``atr``, ``natr`` and ``stddev`` are TA-Lib's (names, defaults, values); ``keltner``,
``donchian`` and ``zscore`` are additions built from the same kernels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.indicators import _kernels_volatility as kv
from workbench.indicators import _kernels_window as kw
from workbench.indicators import _validate as v
from workbench.indicators._kernels_overlap import EMA, ema_chain

HLC = ("high", "low", "close")


def _atr(bars: pd.DataFrame, timeperiod: int, name: str, minimum: int) -> pd.Series:
    p = v.period(timeperiod, "timeperiod", minimum=minimum)
    data = v.bars(bars, HLC, v.call(name, timeperiod=p), p)
    out, tail = data.output()
    kv.atr(*data.columns, p, name == "natr", tail)
    return data.series(out, f"{name}_{p}")


def atr(bars: pd.DataFrame, timeperiod: int = 14) -> pd.Series:
    """Average true range with Wilder's smoothing, seeded by a plain mean (TA_ATR)."""
    return _atr(bars, timeperiod, "atr", minimum=1)


def natr(bars: pd.DataFrame, timeperiod: int = 14) -> pd.Series:
    """ATR as a percentage of the close (TA_NATR).

    TA-Lib returns the raw true range, not normalised, for a period of 1; that period
    is refused here.
    """
    return _atr(bars, timeperiod, "natr", minimum=2)


def stddev(close: pd.Series, timeperiod: int = 5, nbdev: float = 1.0) -> pd.Series:
    """Rolling population standard deviation times ``nbdev`` (TA_STDDEV)."""
    p = v.period(timeperiod, "timeperiod", minimum=2)
    factor = v.real(nbdev, "nbdev")
    data = v.prices(close, v.call("stddev", timeperiod=p, nbdev=factor), p - 1)
    out, tail = data.output()
    kv.moments(*data.columns, p, False, tail, tail)  # each mean is overwritten by its deviation
    if factor != 1.0:
        tail *= factor
    return data.series(out, f"stddev_{p}")


def keltner(
    bars: pd.DataFrame, timeperiod: int = 20, atr_period: int = 10, multiplier: float = 2.0
) -> pd.DataFrame:
    """Keltner channel: columns ``upper``, ``middle``, ``lower``.

    The modern form (Raschke): the middle is the EMA of the close over ``timeperiod``
    (TA-Lib's SMA-seeded EMA), the bands ``multiplier`` Wilder ATRs over ``atr_period``
    either side.
    """
    p = v.period(timeperiod, "timeperiod")
    q = v.period(atr_period, "atr_period")
    factor = v.real(multiplier, "multiplier", positive=True)
    what = v.call("keltner", timeperiod=p, atr_period=q, multiplier=factor)
    data = v.bars(bars, HLC, what, max(p - 1, q))
    out, tail = data.output(rows=3)
    upper, middle, lower = tail
    ema_chain(data.columns[2], p, EMA, middle)
    kv.atr(*data.columns, q, False, lower)
    lower *= factor  # the band's half-width, for now
    np.add(middle, lower, out=upper)
    np.subtract(middle, lower, out=lower)
    return data.frame(out, ("upper", "middle", "lower"))


def donchian(bars: pd.DataFrame, timeperiod: int = 20) -> pd.DataFrame:
    """Donchian channel: ``upper`` (highest high), ``middle``, ``lower`` (lowest low)."""
    p = v.period(timeperiod, "timeperiod")
    data = v.bars(bars, ("high", "low"), v.call("donchian", timeperiod=p), p - 1)
    out, tail = data.output(rows=3)
    kw.highest_lowest(*data.columns, p, tail[::2])
    tail[1] = (tail[0] + tail[2]) / 2.0
    return data.frame(out, ("upper", "middle", "lower"))


def zscore(close: pd.Series, timeperiod: int = 20) -> pd.Series:
    """Rolling z-score, ``(x - mean) / stddev`` over ``timeperiod`` bars (population stddev).

    A flat window (zero deviation) scores 0, following TA-Lib's convention for
    oscillators of a flat window, rather than dividing by zero.
    """
    p = v.period(timeperiod, "timeperiod", minimum=2)
    data = v.prices(close, v.call("zscore", timeperiod=p), p - 1)
    out, tail = data.output()
    kv.zscore(*data.columns, p, tail)
    return data.series(out, f"zscore_{p}")
