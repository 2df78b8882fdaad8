"""Volume kernels: OBV, Chaikin A/D line and oscillator, anchored VWAP, volume profile.

Same conventions as _kernels_overlap.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from workbench.indicators._fma import fma


@njit(cache=True)
def obv(close, volume, out):
    """On-balance volume; TA-Lib starts the running total at the first bar's volume."""
    n = close.size
    total = volume[0]
    previous = close[0]
    for i in range(n):
        if close[i] > previous:
            total += volume[i]
        elif close[i] < previous:
            total -= volume[i]
        out[i] = total
        previous = close[i]


@njit(cache=True, inline="always")
def _money_flow(high, low, close, volume):
    """Chaikin money-flow volume of one bar: close location value x volume (0 if H == L)."""
    spread = high - low
    if spread > 0.0:
        return (((close - low) - (high - close)) / spread) * volume
    return 0.0


@njit(cache=True)
def ad(high, low, close, volume, out):
    """Chaikin accumulation/distribution line: the running sum of money-flow volume."""
    n = close.size
    total = 0.0
    for i in range(n):
        total += _money_flow(high[i], low[i], close[i], volume[i])
        out[i] = total


@njit(cache=True)
def adosc(high, low, close, volume, fast, slow, out):
    """Chaikin oscillator: EMA(fast) - EMA(slow) of the A/D line.

    Unlike TA-Lib's EMA, both averages are seeded with the first A/D value (as TA-Lib's
    ADOSC and Metastock do), and use ``k * ad + (1 - k) * ema``.
    """
    n = close.size
    first = max(fast, slow) - 1
    out[:first] = np.nan
    k_fast = 2.0 / (fast + 1)
    k_slow = 2.0 / (slow + 1)
    total = _money_flow(high[0], low[0], close[0], volume[0])
    e_fast = total
    e_slow = total
    for i in range(1, n):
        total += _money_flow(high[i], low[i], close[i], volume[i])
        e_fast = fma(1.0 - k_fast, e_fast, k_fast * total)
        e_slow = fma(1.0 - k_slow, e_slow, k_slow * total)
        if i >= first:
            out[i] = e_fast - e_slow


@njit(cache=True)
def anchored_vwap(high, low, close, volume, new_session, out):
    """VWAP of the typical price, restarted wherever ``new_session`` is true.

    NaN until the session has traded some volume (a price average over no volume is
    undefined, not zero).
    """
    n = close.size
    price_volume = 0.0
    total_volume = 0.0
    for i in range(n):
        if new_session[i]:
            price_volume = 0.0
            total_volume = 0.0
        typical = (high[i] + low[i] + close[i]) / 3.0
        price_volume += typical * volume[i]
        total_volume += volume[i]
        out[i] = price_volume / total_volume if total_volume > 0.0 else np.nan


@njit(cache=True)
def volume_profile(high, low, volume, edges, out):
    """Volume per price bin, each bar's volume spread evenly over its [low, high] range.

    A bar with no range puts all its volume in the bin holding its price (the last bin
    holds the top edge); volume outside the edges is not counted.
    """
    bins = edges.size - 1
    out[:] = 0.0
    for i in range(high.size):
        lo = low[i]
        hi = high[i]
        first = min(max(np.searchsorted(edges, lo, side="right") - 1, 0), bins - 1)
        if hi == lo:
            if edges[0] <= lo <= edges[bins]:
                out[first] += volume[i]
            continue
        share = volume[i] / (hi - lo)
        for b in range(first, bins):
            if edges[b] >= hi:
                break
            overlap = min(hi, edges[b + 1]) - max(lo, edges[b])
            if overlap > 0.0:
                out[b] += share * overlap
