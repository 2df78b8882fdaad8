"""Momentum kernels: RSI, MACD, ROC, MOM, CCI, ULTOSC and MFI.

Same conventions as _kernels_overlap.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from workbench.indicators._fma import fma
from workbench.indicators._kernels_volatility import true_range


@njit(cache=True, inline="always")
def _next(slot, size):
    """The ring-buffer slot after ``slot``."""
    return slot + 1 if slot + 1 < size else 0


@njit(cache=True)
def rsi(x, period, out):
    """Wilder's RSI as ``100 * avg_gain / (avg_gain + avg_loss)``; 0 when both are 0.

    The averages start as plain means over the first ``period`` changes, then follow
    Wilder's smoothing ``avg = (avg * (period - 1) + change) * (1 / period)``.
    """
    n = x.size
    out[:period] = np.nan
    inv = 1.0 / period
    gain = 0.0
    loss = 0.0
    for i in range(1, period + 1):
        change = x[i] - x[i - 1]
        up = change if change > 0.0 else 0.0
        gain += up
        loss += up - change
    loss *= inv
    gain *= inv
    for i in range(period, n):
        if i > period:
            change = x[i] - x[i - 1]
            up = change if change > 0.0 else 0.0
            loss *= period - 1
            gain *= period - 1
            gain += up
            loss += up - change
            loss *= inv
            gain *= inv
        total = gain + loss
        out[i] = 100.0 * (gain / total) if total > 0.0 else 0.0


@njit(cache=True)
def macd(x, fast, slow, signal, out):
    """MACD line, signal and histogram (rows 0-2), TA-Lib's single lockstep pass.

    Both price EMAs are seeded with simple averages whose windows end on bar
    ``slow - 1`` (so the fast EMA does not start at bar 0), and the signal EMA with the
    average of the first ``signal`` MACD values.
    """
    n = x.size
    first = slow - 1 + signal - 1
    out[:, :first] = np.nan
    k_fast = 2.0 / (fast + 1)
    k_slow = 2.0 / (slow + 1)
    k_signal = 2.0 / (signal + 1)
    slow_sum = 0.0
    for i in range(slow - fast):
        slow_sum += x[i]
    fast_sum = 0.0
    for i in range(slow - fast, slow):
        fast_sum += x[i]
        slow_sum += x[i]
    e_fast = fast_sum / fast
    e_slow = slow_sum / slow
    line = e_fast - e_slow
    signal_sum = 0.0
    signal_sum += line
    for i in range(slow, slow + signal - 1):
        e_fast = fma(x[i] - e_fast, k_fast, e_fast)
        e_slow = fma(x[i] - e_slow, k_slow, e_slow)
        line = e_fast - e_slow
        signal_sum += line
    e_signal = signal_sum / signal
    out[0, first] = line
    out[1, first] = e_signal
    out[2, first] = line - e_signal
    for i in range(first + 1, n):
        e_fast = fma(x[i] - e_fast, k_fast, e_fast)
        e_slow = fma(x[i] - e_slow, k_slow, e_slow)
        line = e_fast - e_slow
        e_signal = fma(line - e_signal, k_signal, e_signal)
        out[0, i] = line
        out[1, i] = e_signal
        out[2, i] = line - e_signal


@njit(cache=True)
def roc(x, period, out):
    """Rate of change in %, ``(x / x[-period] - 1) * 100``; 0 where the base is 0."""
    out[:period] = np.nan
    now, base, dst = x[period:], x[: x.size - period], out[period:]
    for i in range(now.size):  # zero-based views: no negative-index checks, vectorised
        dst[i] = (now[i] / base[i] - 1.0) * 100.0 if base[i] != 0.0 else 0.0


@njit(cache=True)
def mom(x, period, out):
    """Momentum, ``x - x[-period]``."""
    out[:period] = np.nan
    now, base, dst = x[period:], x[: x.size - period], out[period:]
    for i in range(now.size):
        dst[i] = now[i] - base[i]


@njit(cache=True)
def cci(high, low, close, period, out):
    """Commodity channel index, ``(tp - mean) / (0.015 * mean deviation)``, typical prices.

    TA-Lib sums the window in circular-buffer order, recomputing mean and mean deviation
    every bar; that order is kept so the result matches bit for bit. A window flat to
    within 1e-14 of its average gives 0.
    """
    n = close.size
    out[: period - 1] = np.nan
    ring = np.empty(period)
    slot = 0
    for i in range(n):
        last = (high[i] + low[i] + close[i]) / 3
        ring[slot] = last
        slot = _next(slot, period)
        if i < period - 1:
            continue
        average = 0.0
        for j in range(period):
            average += ring[j]
        average /= period
        deviation = 0.0
        for j in range(period):
            deviation += abs(ring[j] - average)
        deviation /= period
        offset = last - average
        scale = 1e-14 * abs(average)
        if abs(offset) <= scale or abs(deviation) <= scale:
            out[i] = 0.0
        else:
            out[i] = offset / (0.015 * deviation)


@njit(cache=True)
def ultosc(high, low, close, short, medium, long, out):
    """Ultimate oscillator: buying pressure over true range on three windows, weighted 4:2:1.

    The periods must be given sorted (``short <= medium <= long``); sums of true range
    within 1e-14 of zero drop their term, as in TA-Lib.
    """
    n = close.size
    out[:long] = np.nan
    # One ring slot per bar of the longest window; bar b lives in slot (b - 1) % long.
    pressure = np.empty(long)
    ranges = np.empty(long)
    a1 = a2 = a3 = b1 = b2 = b3 = 0.0
    for i in range(1, long):
        pressure[i - 1] = close[i] - min(low[i], close[i - 1])
        ranges[i - 1] = true_range(high[i], low[i], close[i - 1])
        if i >= long - short + 1:
            a1 += pressure[i - 1]
            b1 += ranges[i - 1]
        if i >= long - medium + 1:
            a2 += pressure[i - 1]
            b2 += ranges[i - 1]
        a3 += pressure[i - 1]
        b3 += ranges[i - 1]
    slot = long - 1  # today's slot
    old1, old2, old3 = long - short, long - medium, 0  # slots of each window's oldest bar
    for i in range(long, n):
        pressure[slot] = close[i] - min(low[i], close[i - 1])
        ranges[slot] = true_range(high[i], low[i], close[i - 1])
        a1 += pressure[slot]
        a2 += pressure[slot]
        a3 += pressure[slot]
        b1 += ranges[slot]
        b2 += ranges[slot]
        b3 += ranges[slot]
        value = 0.0
        if not -1e-14 < b1 < 1e-14:
            value += 4.0 * (a1 / b1)
        if not -1e-14 < b2 < 1e-14:
            value += 2.0 * (a2 / b2)
        if not -1e-14 < b3 < 1e-14:
            value += a3 / b3
        a1 -= pressure[old1]
        b1 -= ranges[old1]
        a2 -= pressure[old2]
        b2 -= ranges[old2]
        a3 -= pressure[old3]
        b3 -= ranges[old3]
        out[i] = 100.0 * (value / 7.0)
        slot = _next(slot, long)
        old1 = _next(old1, long)
        old2 = _next(old2, long)
        old3 = _next(old3, long)


@njit(cache=True)
def mfi(high, low, close, volume, period, out):
    """Money flow index: RSI-like ratio of up-bar to total money flow (typical price x volume).

    As in TA-Lib: a typical price that moved by no more than 1e-14 of its level carries no
    flow; after ``period`` bars without flow the sums restart at exactly 0; an empty window
    reads 0 and the ratio is clamped into [0, 100].
    """
    n = close.size
    out[:period] = np.nan
    ring_pos = np.zeros(period)
    ring_neg = np.zeros(period)
    slot = 0
    positive = 0.0
    negative = 0.0
    idle = 0
    previous = (high[0] + low[0] + close[0]) / 3.0
    for i in range(1, n):
        if i > period:
            positive -= ring_pos[slot]
            negative -= ring_neg[slot]
        typical = (high[i] + low[i] + close[i]) / 3.0
        change = typical - previous
        level = abs(typical) + abs(previous)
        previous = typical
        flow = 0.0 if abs(change) <= 1e-14 * level else typical * volume[i]
        up = 0.0 if change < 0.0 else flow
        down = flow if change < 0.0 else 0.0
        ring_pos[slot] = up
        ring_neg[slot] = down
        positive += up
        negative += down
        idle = idle + 1 if flow == 0.0 else 0
        if idle >= period:
            idle = period
            positive = 0.0
            negative = 0.0
        slot = _next(slot, period)
        if i >= period:
            total = positive + negative
            clamped = 0.0 if positive < 0.0 else min(positive, total)
            out[i] = 0.0 if total <= 0.0 else 100.0 * (clamped / total)
