"""Moving-average kernels: SMA, the EMA family (EMA, DEMA, TEMA, TRIX), WMA, KAMA, and
``ma``, which picks one by TA-Lib's MAType code.

Conventions of every kernel module: a kernel reads the valid part of its inputs (finite
float64, oldest first, at least ``lookback + 1`` values) and writes every element of the
``out`` array it is given (NaN for the warm-up) instead of allocating its result, so
composite indicators fill each other's buffers and none needs more than one scratch
array. The arithmetic follows TA-Lib's C source step for step, multiply-adds fused
where TA-Lib's build fuses them, so results match TA-Lib to the bit (see
tests/test_indicators_talib.py). Kernels are cached on disk by numba, which does not
notice edits to a kernel called from another module: after changing one, delete the
package's ``__pycache__``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from workbench.indicators._fma import fma
from workbench.indicators._ma import MAType

# What ema_chain computes; the depth of the chain follows.
EMA, DEMA, TEMA, TRIX = 1, 2, 3, 4


@njit(cache=True)
def sma(x, period, out):
    """Simple moving average with TA-Lib's running total (add the new, drop the oldest)."""
    out[: period - 1] = np.nan
    total = 0.0
    for i in range(period - 1):
        total += x[i]
    now, oldest, dst = x[period - 1 :], x[: x.size - period + 1], out[period - 1 :]
    for i in range(dst.size):
        total += now[i]
        dst[i] = total / period
        total -= oldest[i]


@njit(cache=True)
def ema_chain(x, period, kind, out):
    """EMA, DEMA, TEMA or TRIX: up to three chained EMAs advanced in one pass.

    Each level is seeded, as in TA-Lib's default compatibility mode, with the simple
    average of its first ``period`` inputs, then follows ``prev + k * (x - prev)`` with
    ``k = 2 / (period + 1)``; level ``d`` therefore starts at bar ``d * (period - 1)``.
    DEMA is ``2*e1 - e2``, TEMA ``e3 + (3*e1 - 3*e2)`` and TRIX the one-bar percent
    change of ``e3``. (TA-Lib's unstable period is 0 by default, so values near the
    start still carry the seed; that is what TA-Lib returns too.)
    """
    depth = 1 if kind == EMA else 2 if kind == DEMA else 3
    lag = period - 1
    seeded = depth * lag  # the bar where the last level gets its seed
    k = 2.0 / (period + 1)
    out[: seeded + (1 if kind == TRIX else 0)] = np.nan
    level = np.zeros(3)
    seed = np.zeros(3)
    # Warm-up: seed each level from the first values the level below produces.
    for i in range(seeded + 1):
        v = x[i]
        for d in range(depth):
            j = i - d * lag  # position of bar i in level d's input
            if j < lag:
                seed[d] += v
                break
            if j == lag:
                level[d] = (seed[d] + v) / period
            else:
                level[d] = fma(v - level[d], k, level[d])
            v = level[d]
    e1, e2, e3 = level[0], level[1], level[2]
    if kind == EMA:
        out[seeded] = e1
    elif kind == DEMA:
        out[seeded] = 2.0 * e1 - e2
    elif kind == TEMA:
        out[seeded] = e3 + (3.0 * e1 - 3.0 * e2)
    # Steady state: every level is live; the branches on kind are loop-invariant.
    src, dst = x[seeded + 1 :], out[seeded + 1 :]
    for i in range(dst.size):
        e1 = fma(src[i] - e1, k, e1)
        if kind == EMA:
            dst[i] = e1
            continue
        e2 = fma(e1 - e2, k, e2)
        if kind == DEMA:
            dst[i] = 2.0 * e1 - e2
            continue
        previous = e3
        e3 = fma(e2 - e3, k, e3)
        if kind == TEMA:
            dst[i] = e3 + (3.0 * e1 - 3.0 * e2)
        elif previous != 0.0:
            dst[i] = (e3 / previous - 1.0) * 100.0
        else:
            dst[i] = 0.0


@njit(cache=True)
def wma(x, period, out):
    """Linearly weighted average via TA-Lib's running sums (weighted -= plain each bar).

    The sums are rebuilt from the window every ``8 * period`` bars, as TA-Lib does, so
    rounding residue cannot build up over long series.
    """
    n = x.size
    out[: period - 1] = np.nan
    divider = float(period) * (period + 1) / 2.0
    weighted = 0.0
    plain = 0.0
    for i in range(period - 1):
        plain += x[i]
        weighted += x[i] * (i + 1)
    trailing = 0.0
    countdown = 8 * period
    for i in range(period - 1, n):
        v = x[i]
        plain += v
        plain -= trailing
        weighted += v * period
        countdown -= 1
        if countdown <= 0:
            countdown = 8 * period
            window = x[i - period + 1 : i + 1]
            plain = 0.0
            weighted = 0.0
            for j in range(period):
                plain += window[j]
                weighted += window[j] * (j + 1)
        trailing = x[i - period + 1]
        out[i] = weighted / divider
        weighted -= plain


@njit(cache=True)
def kama(x, period, out):
    """Kaufman's adaptive average: an EMA whose factor follows the efficiency ratio.

    TA-Lib's variant: fast/slow constants 2/3 and 2/31, the previous close seeds the
    average, and an efficiency ratio of 1 is used when the path length is ~0.
    """
    n = x.size
    out[:period] = np.nan
    fastest = 2.0 / (30.0 + 1.0)
    spread = 2.0 / (2.0 + 1.0) - fastest
    path = 0.0
    for i in range(period):
        path += abs(x[i] - x[i + 1])
    prev = x[period - 1]
    trailing = x[0]
    for today in range(period, n):
        value = x[today]
        if today > period:
            oldest = x[today - period]
            path -= abs(trailing - oldest)
            path += abs(value - x[today - 1])
            trailing = oldest
        change = value - x[today - period]
        flat = path <= change or -1e-14 < path < 1e-14  # TA-Lib's guard
        ratio = 1.0 if flat else abs(change / path)
        factor = fma(ratio, spread, fastest)
        factor *= factor
        prev = fma(value - prev, factor, prev)
        out[today] = prev


@njit(cache=True)
def ma_lookback(period, matype):
    """Bars consumed before the first value, as TA-Lib's ``TA_MA_Lookback``."""
    if period == 1:
        return 0
    if matype == MAType.DEMA:
        return 2 * (period - 1)
    if matype == MAType.TEMA:
        return 3 * (period - 1)
    if matype == MAType.KAMA:
        return period
    return period - 1


@njit(cache=True)
def ma(x, period, matype, out):
    """The average ``matype`` of ``x``; a period of 1 copies the input, as ``TA_MA`` does."""
    if period == 1:
        out[:] = x
    elif matype == MAType.SMA:
        sma(x, period, out)
    elif matype == MAType.EMA:
        ema_chain(x, period, EMA, out)
    elif matype == MAType.WMA:
        wma(x, period, out)
    elif matype == MAType.DEMA:
        ema_chain(x, period, DEMA, out)
    elif matype == MAType.TEMA:
        ema_chain(x, period, TEMA, out)
    else:
        kama(x, period, out)
