"""Overlap studies, drawn on the price itself: moving averages, bands, SAR, Ichimoku, Supertrend.

Names, parameters, defaults and values are TA-Lib's (``talib.SMA`` is :func:`sma`);
:func:`ichimoku` and :func:`supertrend` are additions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.errors import DataFormatError
from workbench.indicators import _kernels_trend as kt
from workbench.indicators import _kernels_window as kw
from workbench.indicators import _validate as v
from workbench.indicators._kernels_overlap import ma, ma_lookback
from workbench.indicators._kernels_volatility import bbands as _bbands
from workbench.indicators._ma import MAType, parse_matype

HLC = ("high", "low", "close")


def _average(close: pd.Series, timeperiod: int, matype: MAType) -> pd.Series:
    name = matype.name.lower()
    p = v.period(timeperiod, "timeperiod")
    data = v.prices(close, v.call(name, timeperiod=p), ma_lookback(p, int(matype)))
    out, tail = data.output()
    ma(*data.columns, p, int(matype), tail)
    return data.series(out, f"{name}_{p}")


def sma(close: pd.Series, timeperiod: int = 30) -> pd.Series:
    """Simple moving average (TA_SMA)."""
    return _average(close, timeperiod, MAType.SMA)


def ema(close: pd.Series, timeperiod: int = 30) -> pd.Series:
    """Exponential moving average, ``k = 2 / (timeperiod + 1)``, seeded with an SMA (TA_EMA)."""
    return _average(close, timeperiod, MAType.EMA)


def wma(close: pd.Series, timeperiod: int = 30) -> pd.Series:
    """Linearly weighted moving average, newest bar weighted ``timeperiod`` (TA_WMA)."""
    return _average(close, timeperiod, MAType.WMA)


def dema(close: pd.Series, timeperiod: int = 30) -> pd.Series:
    """Double EMA, ``2 * EMA - EMA(EMA)`` (TA_DEMA; Mulloy, TASC 1994)."""
    return _average(close, timeperiod, MAType.DEMA)


def tema(close: pd.Series, timeperiod: int = 30) -> pd.Series:
    """Triple EMA, ``3 * EMA - 3 * EMA(EMA) + EMA(EMA(EMA))`` (TA_TEMA)."""
    return _average(close, timeperiod, MAType.TEMA)


def kama(close: pd.Series, timeperiod: int = 30) -> pd.Series:
    """Kaufman adaptive moving average with TA-Lib's 2/30 fast/slow constants (TA_KAMA)."""
    return _average(close, timeperiod, MAType.KAMA)


def bbands(
    close: pd.Series,
    timeperiod: int = 20,
    nbdevup: float = 2.0,
    nbdevdn: float = 2.0,
    matype: MAType | int | str = MAType.SMA,
) -> pd.DataFrame:
    """Bollinger bands: columns ``upper``, ``middle``, ``lower`` (TA_BBANDS).

    The middle band is the ``matype`` average; the bands add and subtract ``nbdev`` times
    the population standard deviation over ``timeperiod`` bars, which TA-Lib always
    measures around the simple mean.
    """
    p = v.period(timeperiod, "timeperiod", minimum=2)
    up, down = v.real(nbdevup, "nbdevup"), v.real(nbdevdn, "nbdevdn")
    kind = parse_matype(matype, "matype")
    what = v.call("bbands", timeperiod=p, nbdevup=up, nbdevdn=down, matype=kind.name.lower())
    data = v.prices(close, what, max(ma_lookback(p, int(kind)), p - 1))
    out, tail = data.output(rows=3)
    _bbands(*data.columns, p, up, down, int(kind), tail)
    return data.frame(out, ("upper", "middle", "lower"))


def sar(bars: pd.DataFrame, acceleration: float = 0.02, maximum: float = 0.2) -> pd.Series:
    """Parabolic SAR (TA_SAR): a trailing stop that accelerates with the trend.

    TA-Lib consumes the first bar and picks the first trade's side from bar 1's
    directional movement. Unlike TA-Lib, an ``acceleration`` above ``maximum`` is refused
    rather than silently lowered to it.
    """
    step = v.real(acceleration, "acceleration", positive=True)
    cap = v.real(maximum, "maximum", positive=True)
    if step > cap:
        raise DataFormatError(f"sar: acceleration ({step}) must not exceed maximum ({cap}).")
    data = v.bars(bars, ("high", "low"), v.call("sar", acceleration=step, maximum=cap), 1)
    out, tail = data.output()
    kt.sar(*data.columns, step, cap, tail)
    return data.series(out, "sar")


def ichimoku(
    bars: pd.DataFrame,
    tenkan_period: int = 9,
    kijun_period: int = 26,
    senkou_period: int = 52,
    displacement: int = 26,
) -> pd.DataFrame:
    """Ichimoku cloud: columns ``tenkan``, ``kijun``, ``senkou_a``, ``senkou_b``.

    Each line is the midpoint of a window's highest high and lowest low; the two senkou
    spans are shifted forward by ``displacement`` bars, so the row for bar t holds the
    cloud drawn at t (computed at t - displacement). The chikou span is left out: it is
    the close drawn ``displacement`` bars back, and as a column it would put a future
    close on today's row.
    """
    tenkan = v.period(tenkan_period, "tenkan_period")
    kijun = v.period(kijun_period, "kijun_period")
    senkou = v.period(senkou_period, "senkou_period")
    shift = v.period(displacement, "displacement", minimum=0)
    what = v.call(
        "ichimoku",
        tenkan_period=tenkan,
        kijun_period=kijun,
        senkou_period=senkou,
        displacement=shift,
    )
    data = v.bars(bars, ("high", "low"), what, max(tenkan, kijun, senkou) - 1 + shift)
    high, low = data.columns
    out, tail = data.output(rows=4)
    extremes = np.empty((2, high.size))

    def midpoint(width: int, row: np.ndarray) -> None:
        kw.highest_lowest(high, low, width, extremes)
        np.add(extremes[0], extremes[1], out=row)
        row /= 2.0

    midpoint(tenkan, tail[0])
    midpoint(kijun, tail[1])
    midpoint(senkou, tail[3])
    tail[2] = (tail[0] + tail[1]) / 2.0
    for row in tail[2:]:  # draw the spans `shift` bars ahead
        row[shift:] = row[: row.size - shift].copy()
        row[:shift] = np.nan
    return data.frame(out, ("tenkan", "kijun", "senkou_a", "senkou_b"))


def supertrend(bars: pd.DataFrame, timeperiod: int = 10, multiplier: float = 3.0) -> pd.DataFrame:
    """Supertrend: columns ``supertrend``, ``direction`` (+1 up, -1 down), ``upper``, ``lower``.

    Bands at ``(high + low) / 2 +- multiplier * ATR(timeperiod)`` (Wilder's ATR, as
    :func:`~workbench.indicators.atr`) that only tighten while price stays inside; the
    line is the lower band in an uptrend and the upper band in a downtrend. It starts in a
    downtrend, as TradingView's ``ta.supertrend`` does.
    """
    p = v.period(timeperiod, "timeperiod")
    factor = v.real(multiplier, "multiplier", positive=True)
    data = v.bars(bars, HLC, v.call("supertrend", timeperiod=p, multiplier=factor), p)
    out, tail = data.output(rows=4)
    kt.supertrend(*data.columns, p, factor, tail)
    return data.frame(out, ("supertrend", "direction", "upper", "lower"))
