"""Momentum indicators: oscillators and rates of change, TA-Lib's names, defaults and values.

``macd, rsi, stoch, stochrsi, willr, cci, roc, mom, adx, plus_di, minus_di, aroon, trix,
ultosc, mfi`` (TA-Lib files MFI under momentum too).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from workbench.errors import DataFormatError
from workbench.indicators import _kernels_momentum as km
from workbench.indicators import _kernels_trend as kt
from workbench.indicators import _kernels_window as kw
from workbench.indicators import _validate as v
from workbench.indicators._kernels_overlap import TRIX, ema_chain, ma_lookback
from workbench.indicators._ma import MAType, parse_matype

HLC = ("high", "low", "close")
HLCV = ("high", "low", "close", "volume")


def macd(
    close: pd.Series, fastperiod: int = 12, slowperiod: int = 26, signalperiod: int = 9
) -> pd.DataFrame:
    """MACD: columns ``macd`` (fast EMA - slow EMA), ``signal`` (its EMA), ``hist`` (TA_MACD).

    As in TA-Lib both price EMAs are seeded on the same bar, so the fast one does not
    start at the first bar. TA-Lib swaps a fast period longer than the slow one; here that
    is refused.
    """
    fast = v.period(fastperiod, "fastperiod", minimum=2)
    slow = v.period(slowperiod, "slowperiod", minimum=2)
    signal = v.period(signalperiod, "signalperiod")
    if fast >= slow:
        raise DataFormatError(
            f"macd: fastperiod ({fast}) must be shorter than slowperiod ({slow})."
        )
    what = v.call("macd", fastperiod=fast, slowperiod=slow, signalperiod=signal)
    data = v.prices(close, what, slow - 1 + signal - 1)
    out, tail = data.output(rows=3)
    km.macd(*data.columns, fast, slow, signal, tail)
    return data.frame(out, ("macd", "signal", "hist"))


def rsi(close: pd.Series, timeperiod: int = 14) -> pd.Series:
    """Wilder's relative strength index, 0-100 (TA_RSI)."""
    p = v.period(timeperiod, "timeperiod", minimum=2)
    data = v.prices(close, v.call("rsi", timeperiod=p), p)
    out, tail = data.output()
    km.rsi(*data.columns, p, tail)
    return data.series(out, f"rsi_{p}")


def stoch(
    bars: pd.DataFrame,
    fastk_period: int = 5,
    slowk_period: int = 3,
    slowk_matype: MAType | int | str = MAType.SMA,
    slowd_period: int = 3,
    slowd_matype: MAType | int | str = MAType.SMA,
) -> pd.DataFrame:
    """Slow stochastic: columns ``slowk`` (smoothed %K) and ``slowd`` (%D) (TA_STOCH).

    Both columns start on %D's first bar, as in TA-Lib.
    """
    fastk = v.period(fastk_period, "fastk_period")
    slowk = v.period(slowk_period, "slowk_period")
    slowd = v.period(slowd_period, "slowd_period")
    k_type = int(parse_matype(slowk_matype, "slowk_matype"))
    d_type = int(parse_matype(slowd_matype, "slowd_matype"))
    what = v.call(
        "stoch",
        fastk_period=fastk,
        slowk_period=slowk,
        slowk_matype=k_type,
        slowd_period=slowd,
        slowd_matype=d_type,
    )
    lookback = fastk - 1 + ma_lookback(slowk, k_type) + ma_lookback(slowd, d_type)
    data = v.bars(bars, HLC, what, lookback)
    out, tail = data.output(rows=2)
    kw.stochastic(*data.columns, fastk, slowk, k_type, slowd, d_type, tail)
    return data.frame(out, ("slowk", "slowd"))


def stochrsi(
    close: pd.Series,
    timeperiod: int = 14,
    fastk_period: int = 5,
    fastd_period: int = 3,
    fastd_matype: MAType | int | str = MAType.SMA,
) -> pd.DataFrame:
    """Stochastic RSI: the fast stochastic of RSI, columns ``fastk`` and ``fastd`` (TA_STOCHRSI)."""
    p = v.period(timeperiod, "timeperiod", minimum=2)
    fastk = v.period(fastk_period, "fastk_period")
    fastd = v.period(fastd_period, "fastd_period")
    d_type = int(parse_matype(fastd_matype, "fastd_matype"))
    what = v.call(
        "stochrsi", timeperiod=p, fastk_period=fastk, fastd_period=fastd, fastd_matype=d_type
    )
    data = v.prices(close, what, p + fastk - 1 + ma_lookback(fastd, d_type))
    out, tail = data.output(rows=2)
    strength = np.empty(tail.shape[1])
    km.rsi(*data.columns, p, strength)
    tail[:, :p] = np.nan
    valid = strength[p:]
    kw.stochastic(valid, valid, valid, fastk, 1, 0, fastd, d_type, tail[:, p:])
    return data.frame(out, ("fastk", "fastd"))


def willr(bars: pd.DataFrame, timeperiod: int = 14) -> pd.Series:
    """Williams %R, -100 (at the low) to 0 (at the high) (TA_WILLR)."""
    p = v.period(timeperiod, "timeperiod", minimum=2)
    data = v.bars(bars, HLC, v.call("willr", timeperiod=p), p - 1)
    out, tail = data.output()
    kw.willr(*data.columns, p, tail)
    return data.series(out, f"willr_{p}")


def cci(bars: pd.DataFrame, timeperiod: int = 14) -> pd.Series:
    """Commodity channel index of the typical price (TA_CCI)."""
    p = v.period(timeperiod, "timeperiod", minimum=2)
    data = v.bars(bars, HLC, v.call("cci", timeperiod=p), p - 1)
    out, tail = data.output()
    km.cci(*data.columns, p, tail)
    return data.series(out, f"cci_{p}")


def _change(close: pd.Series, timeperiod: int, kernel: Callable[..., None], name: str) -> pd.Series:
    p = v.period(timeperiod, "timeperiod")
    data = v.prices(close, v.call(name, timeperiod=p), p)
    out, tail = data.output()
    kernel(*data.columns, p, tail)
    return data.series(out, f"{name}_{p}")


def roc(close: pd.Series, timeperiod: int = 10) -> pd.Series:
    """Rate of change in percent, ``(close / close[-n] - 1) * 100`` (TA_ROC)."""
    return _change(close, timeperiod, km.roc, "roc")


def mom(close: pd.Series, timeperiod: int = 10) -> pd.Series:
    """Momentum, ``close - close[-n]`` (TA_MOM)."""
    return _change(close, timeperiod, km.mom, "mom")


def _directional(bars: pd.DataFrame, timeperiod: int, kind: int, name: str) -> pd.Series:
    # TA-Lib's DI accepts a period of 1 but then returns an unscaled ratio; refused here.
    p = v.period(timeperiod, "timeperiod", minimum=2)
    lookback = 2 * p - 1 if kind == kt.ADX else p
    data = v.bars(bars, HLC, v.call(name, timeperiod=p), lookback)
    out, tail = data.output()
    kt.directional(*data.columns, p, kind, tail)
    return data.series(out, f"{name}_{p}")


def adx(bars: pd.DataFrame, timeperiod: int = 14) -> pd.Series:
    """Wilder's average directional index: trend strength 0-100 (TA_ADX)."""
    return _directional(bars, timeperiod, kt.ADX, "adx")


def plus_di(bars: pd.DataFrame, timeperiod: int = 14) -> pd.Series:
    """Plus directional indicator, ``100 * smoothed +DM / smoothed TR`` (TA_PLUS_DI)."""
    return _directional(bars, timeperiod, kt.PLUS_DI, "plus_di")


def minus_di(bars: pd.DataFrame, timeperiod: int = 14) -> pd.Series:
    """Minus directional indicator, ``100 * smoothed -DM / smoothed TR`` (TA_MINUS_DI)."""
    return _directional(bars, timeperiod, kt.MINUS_DI, "minus_di")


def aroon(bars: pd.DataFrame, timeperiod: int = 14) -> pd.DataFrame:
    """Aroon: columns ``aroondown`` and ``aroonup``, 100 when the extreme is today (TA_AROON).

    The window is ``timeperiod + 1`` bars; on a tie the latest bar is the extreme.
    """
    p = v.period(timeperiod, "timeperiod", minimum=2)
    data = v.bars(bars, ("high", "low"), v.call("aroon", timeperiod=p), p)
    out, tail = data.output(rows=2)
    kw.aroon(*data.columns, p, tail)
    return data.frame(out, ("aroondown", "aroonup"))


def trix(close: pd.Series, timeperiod: int = 30) -> pd.Series:
    """TRIX: one-bar rate of change, in %, of a triple EMA (TA_TRIX)."""
    p = v.period(timeperiod, "timeperiod")
    data = v.prices(close, v.call("trix", timeperiod=p), 3 * (p - 1) + 1)
    out, tail = data.output()
    ema_chain(*data.columns, p, TRIX, tail)
    return data.series(out, f"trix_{p}")


def ultosc(
    bars: pd.DataFrame, timeperiod1: int = 7, timeperiod2: int = 14, timeperiod3: int = 28
) -> pd.Series:
    """Ultimate oscillator: buying pressure over three windows, weighted 4:2:1 (TA_ULTOSC).

    As in TA-Lib the periods may come in any order; the shortest gets weight 4.
    """
    periods = [
        v.period(p, f"timeperiod{i}")
        for i, p in enumerate((timeperiod1, timeperiod2, timeperiod3), start=1)
    ]
    short, medium, long = sorted(periods)
    what = v.call("ultosc", timeperiod1=periods[0], timeperiod2=periods[1], timeperiod3=periods[2])
    data = v.bars(bars, HLC, what, long)
    out, tail = data.output()
    km.ultosc(*data.columns, short, medium, long, tail)
    return data.series(out, "ultosc_{}_{}_{}".format(*periods))


def mfi(bars: pd.DataFrame, timeperiod: int = 14) -> pd.Series:
    """Money flow index: a volume-weighted RSI of the typical price, 0-100 (TA_MFI)."""
    p = v.period(timeperiod, "timeperiod", minimum=2)
    data = v.bars(bars, HLCV, v.call("mfi", timeperiod=p), p)
    out, tail = data.output()
    km.mfi(*data.columns, p, tail)
    return data.series(out, f"mfi_{p}")
