"""Volatility kernels: true range, Wilder's ATR/NATR, rolling mean and standard deviation,
Bollinger bands and z-score. Same conventions as _kernels_overlap.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from workbench.indicators._fma import fma
from workbench.indicators._kernels_overlap import ma


@njit(cache=True, inline="always")
def true_range(high, low, prev_close):
    """Wilder's true range: the bar's range stretched to include the previous close."""
    greatest = high - low
    up = abs(prev_close - high)
    if up > greatest:
        greatest = up
    down = abs(prev_close - low)
    if down > greatest:
        greatest = down
    return greatest


@njit(cache=True)
def atr(high, low, close, period, normalize, out):
    """Average true range (Wilder smoothing); ``normalize`` gives NATR, ATR as % of close.

    Seeded with the plain mean of the first ``period`` true ranges (bars 1..period), then
    ``alpha * TR + beta * ATR`` with ``beta = (period - 1) / period`` and
    ``alpha = 1 - beta`` (TA-Lib's two-coefficient form, the second product fused as in
    its build). A zero close gives NATR 0.
    """
    out[:period] = np.nan
    beta = (period - 1) / period
    alpha = 1.0 - beta
    total = 0.0
    for i in range(1, period + 1):
        total += true_range(high[i], low[i], close[i - 1])
    value = total / period
    prev_close = close[period]
    highs, lows, closes, dst = high[period:], low[period:], close[period:], out[period:]
    for i in range(dst.size):
        if i > 0:
            value = fma(beta, value, alpha * true_range(highs[i], lows[i], prev_close))
            prev_close = closes[i]
        if not normalize:
            dst[i] = value
        elif closes[i] != 0.0:
            dst[i] = (value / closes[i]) * 100.0
        else:
            dst[i] = 0.0


@njit(cache=True)
def moments(x, period, centre, mean_out, std_out):
    """Rolling mean and population standard deviation (``mean_out`` may be ``std_out``
    itself when only the deviation is wanted: each mean is written before its deviation).

    The mean is TA-Lib's SMA running total; with ``centre``, ``mean_out`` gets instead
    the newest value's offset from the window mean, taken from the shifted sums below so
    that it stays accurate when tiny (the running total carries the rounding of the whole
    series). The variance is TA-Lib's cancellation-free form: running sums of deviations
    from a shift near the window, re-anchored (shift = window mean, sums rebuilt) when the
    variance has shrunk below 1e-6 of the mean squared deviation, when a departing value
    dwarfs the remaining sum, or every ``32 * period`` bars; a re-anchored variance under
    1e-12 of that scale is exactly 0 (a flat window), so price level never decides whether
    a band collapses.
    """
    n = x.size
    lag = period - 1
    mean_out[:lag] = np.nan
    std_out[:lag] = np.nan
    inv = 1.0 / period
    shift = x[0]
    total = 0.0
    sum1 = 0.0
    sum2 = 0.0
    for j in range(lag):
        total += x[j]
        t = x[j] - shift
        sum1 += t
        sum2 += t * t
    countdown = 32 * period
    for i in range(lag, n):
        total += x[i]
        t = x[i] - shift
        sum1 += t
        sum2 += t * t
        mean1 = sum1 * inv
        variance = sum2 * inv - mean1 * mean1
        mean_out[i] = (x[i] - shift) - mean1 if centre else total / period

        oldest = i - lag
        total -= x[oldest]
        t = x[oldest] - shift
        sum1 -= t
        t *= t
        sum2 -= t
        countdown -= 1
        if variance < 1e-6 * (sum2 * inv) or t > 1e6 * sum2 or countdown <= 0:
            countdown = 32 * period
            window = x[oldest : i + 1]
            t = 0.0
            for j in range(period):
                t += window[j]
            shift = t * inv
            sum1 = 0.0
            sum2 = 0.0
            for j in range(period):
                t = window[j] - shift
                sum1 += t
                sum2 += t * t
            mean1 = sum1 * inv
            variance = sum2 * inv - mean1 * mean1
            if variance < 1e-12 * (sum2 * inv):
                variance = 0.0
            t = window[0] - shift
            sum1 -= t
            sum2 -= t * t
        std_out[i] = math.sqrt(variance)


@njit(cache=True)
def bbands(x, period, up, down, matype, out):
    """Bollinger bands (upper, middle, lower rows): ``ma +- nbdev * stddev``.

    The deviation is always the population standard deviation around the simple mean
    (TA-Lib's choice, whatever average the middle band uses). The outer rows serve as
    scratch for the mean and the deviation before the bands overwrite them.
    """
    upper, middle, lower = out[0], out[1], out[2]
    if matype == 0:
        moments(x, period, False, middle, lower)
    else:
        moments(x, period, False, upper, lower)
        ma(x, period, matype, middle)
    for i in range(x.size):
        spread = lower[i]
        if up == down:  # one product for both bands, as TA-Lib computes it
            width = spread * up
            upper[i] = middle[i] + width
            lower[i] = middle[i] - width
        else:  # TA-Lib's build fuses the upper band's multiply-add only
            upper[i] = fma(spread, up, middle[i])
            lower[i] = middle[i] - spread * down


@njit(cache=True)
def zscore(x, period, out):
    """How many rolling standard deviations ``x`` sits from its rolling mean (0 if flat)."""
    spread = np.empty(x.size)
    moments(x, period, True, out, spread)
    for i in range(period - 1, x.size):
        out[i] = out[i] / spread[i] if spread[i] > 0.0 else 0.0
