"""Trend kernels: Wilder's directional movement (+DI, -DI, ADX), parabolic SAR, Supertrend.

Same conventions as _kernels_overlap.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from workbench.indicators._fma import fma
from workbench.indicators._kernels_volatility import atr, true_range

# What directional() returns.
PLUS_DI, MINUS_DI, ADX = 0, 1, 2


@njit(cache=True)
def directional(high, low, close, period, kind, out):
    """+DI, -DI or ADX from Wilder-smoothed directional movement and true range.

    +DM is today's high minus yesterday's when that beats yesterday's low minus today's
    (and is positive); -DM the reverse. The sums of the first ``period - 1`` bars seed
    ``s = s - s / period + today`` smoothing; DI is ``100 * DM / TR`` (0 for a zero TR).
    ADX starts as the mean of the first ``period`` DX values (bar ``2 * period - 1``) and
    then follows ``(adx * (period - 1) + dx) / period``; a bar whose DX is undefined
    (zero TR or zero DI sum) leaves it unchanged.
    """
    n = close.size
    first = 2 * period - 1 if kind == ADX else period
    out[:first] = np.nan
    plus_dm = minus_dm = tr = 0.0
    dx_sum = 0.0
    adx = 0.0
    for i in range(1, n):
        up = high[i] - high[i - 1]
        down = low[i - 1] - low[i]
        plus = up if up > 0.0 and up - down > 0.0 else 0.0
        minus = down if down > 0.0 and down - up > 0.0 else 0.0
        bar_range = true_range(high[i], low[i], close[i - 1])
        if i < period:
            plus_dm += plus
            minus_dm += minus
            tr += bar_range
            continue
        plus_dm = plus_dm - plus_dm / period + plus
        minus_dm = minus_dm - minus_dm / period + minus
        tr = tr - tr / period + bar_range
        if kind == PLUS_DI:
            out[i] = 100.0 * (plus_dm / tr) if tr > 0.0 else 0.0
            continue
        if kind == MINUS_DI:
            out[i] = 100.0 * (minus_dm / tr) if tr > 0.0 else 0.0
            continue
        dx = -1.0  # undefined
        if tr > 0.0:
            plus_di = 100.0 * (plus_dm / tr)
            minus_di = 100.0 * (minus_dm / tr)
            both = minus_di + plus_di
            if not -1e-14 < both < 1e-14:
                dx = 100.0 * (abs(minus_di - plus_di) / both)
        if i < first:
            if dx >= 0.0:
                dx_sum += dx
            continue
        if i == first:
            if dx >= 0.0:
                dx_sum += dx
            adx = dx_sum / period
        elif dx >= 0.0:
            adx = (adx * (period - 1) + dx) / period
        out[i] = adx


@njit(cache=True)
def sar(high, low, acceleration, maximum, out):
    """Wilder's parabolic SAR, bootstrapped as TA-Lib does.

    The first bar is consumed: the trade starts short if bar 1 has a -DM (its low fell
    further than its high rose), long otherwise, with the first bar's low (long) or high
    (short) as the initial SAR and bar 1's extreme as the extreme point. A reversal
    replaces the SAR with the extreme point, clamped to the last two bars' range.
    """
    n = high.size
    out[0] = np.nan
    down = low[0] - low[1]
    is_long = not (down > 0.0 and down - (high[1] - high[0]) > 0.0)
    af = acceleration
    if is_long:
        ep = high[1]
        value = low[0]
    else:
        ep = low[1]
        value = high[0]
    new_low = low[1]
    new_high = high[1]
    for today in range(1, n):
        prev_low = new_low
        prev_high = new_high
        new_low = low[today]
        new_high = high[today]
        if is_long:
            if new_low <= value:  # stopped out: reverse to short
                is_long = False
                value = max(ep, prev_high, new_high)
                out[today] = value
                af = acceleration
                ep = new_low
                value = max(fma(af, ep - value, value), prev_high, new_high)
            else:
                out[today] = value
                if new_high > ep:
                    ep = new_high
                    af = min(af + acceleration, maximum)
                value = min(fma(af, ep - value, value), prev_low, new_low)
        elif new_high >= value:  # stopped out: reverse to long
            is_long = True
            value = min(ep, prev_low, new_low)
            out[today] = value
            af = acceleration
            ep = new_high
            value = min(fma(af, ep - value, value), prev_low, new_low)
        else:
            out[today] = value
            if new_low < ep:
                ep = new_low
                af = min(af + acceleration, maximum)
            value = max(fma(af, ep - value, value), prev_high, new_high)


@njit(cache=True)
def supertrend(high, low, close, period, multiplier, out):
    """Supertrend line, direction (+1 up, -1 down), upper and lower band (rows 0-3).

    Bands are ``(high + low) / 2 +- multiplier * ATR`` (Wilder ATR); a band only
    tightens while the close stays inside it. The trend flips when the close crosses the
    band in force; like TradingView's ``ta.supertrend`` it starts down (upper band).
    """
    n = close.size
    average = out[2]  # scratch: each bar's ATR is read before its upper band replaces it
    atr(high, low, close, period, False, average)
    out[:, :period] = np.nan
    upper = lower = 0.0
    direction = -1.0
    for i in range(period, n):
        middle = (high[i] + low[i]) / 2.0
        basic_upper = middle + multiplier * average[i]
        basic_lower = middle - multiplier * average[i]
        if i == period:
            upper, lower = basic_upper, basic_lower
        else:
            if basic_upper < upper or close[i - 1] > upper:
                upper = basic_upper
            if basic_lower > lower or close[i - 1] < lower:
                lower = basic_lower
            if direction < 0.0:
                direction = 1.0 if close[i] > upper else -1.0
            else:
                direction = -1.0 if close[i] < lower else 1.0
        out[0, i] = upper if direction < 0.0 else lower
        out[1, i] = direction
        out[2, i] = upper
        out[3, i] = lower
