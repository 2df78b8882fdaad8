"""Kernels built on a trailing window's highest high and lowest low.

Donchian and Ichimoku channels, stochastic %K, Williams %R and Aroon all come from one
scan, van Herk / Gil-Werman's (as TA-Lib's WILLR): the series is cut into blocks of the
window's length; a window then spans the tail of one block and the head of the next,
so its extremes are the better of a suffix extreme and a prefix extreme. That costs a
few comparisons per bar whatever the window, with no data-dependent rescans. On a tie
the most recent bar is the extreme (Aroon depends on it). Same conventions as
_kernels_overlap.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from workbench.indicators._kernels_overlap import ma, ma_lookback

# What _scan writes; each has its own entry point below, so the choice is compiled in.
HIGHEST_LOWEST, STOCH_K, WILLR, AROON = 0, 1, 2, 3


@njit(cache=True, inline="always")
def _scan(high, low, close, width, kind, out):
    """One output per ``width``-bar window, ``kind`` saying which (see the entry points).

    Per block, the scans collect the extremes of the block's windows in small buffers;
    a separate loop then turns them into outputs, which keeps the divisions of %K and
    %R out of the compare-and-select scan loops (several times faster).
    """
    n = high.size
    out[:, : width - 1] = np.nan
    track = kind == AROON  # only Aroon needs where the extremes are
    suffix_hi, suffix_lo = np.empty(width), np.empty(width)
    suffix_hi_at, suffix_lo_at = np.zeros(width, np.int64), np.zeros(width, np.int64)
    window_hi, window_lo = np.empty(width), np.empty(width)
    window_hi_at, window_lo_at = np.zeros(width, np.int64), np.zeros(width, np.int64)
    for start in range(0, n - width + 1, width):
        # Suffix extremes of the block [start, end], scanned backwards: a later bar keeps
        # a tie because an earlier one must be strictly better to replace it.
        block_hi, block_lo = high[start : start + width], low[start : start + width]
        hi, lo = block_hi[width - 1], block_lo[width - 1]
        hi_at = lo_at = width - 1
        for j in range(width - 1, -1, -1):
            if track:
                hi_at = j if block_hi[j] > hi else hi_at
                lo_at = j if block_lo[j] < lo else lo_at
                suffix_hi_at[j], suffix_lo_at[j] = start + hi_at, start + lo_at
            hi = max(hi, block_hi[j])
            lo = min(lo, block_lo[j])
            suffix_hi[j], suffix_lo[j] = hi, lo
        end = start + width - 1
        window_hi[0], window_lo[0] = hi, lo  # the window that is this block
        window_hi_at[0], window_lo_at[0] = suffix_hi_at[0], suffix_lo_at[0]
        # Windows ending in the next block: its prefix (scanned forwards, a later bar
        # wins a tie) joined with this block's suffix from the window's first bar.
        head_hi, head_lo = high[end + 1 : end + width], low[end + 1 : end + width]
        hi, lo = -np.inf, np.inf
        for m in range(head_hi.size):
            if track:
                hi_at = end + 1 + m if head_hi[m] >= hi else hi_at
                lo_at = end + 1 + m if head_lo[m] <= lo else lo_at
            hi = max(hi, head_hi[m])
            lo = min(lo, head_lo[m])
            if track:
                window_hi_at[m + 1] = hi_at if hi >= suffix_hi[m + 1] else suffix_hi_at[m + 1]
                window_lo_at[m + 1] = lo_at if lo <= suffix_lo[m + 1] else suffix_lo_at[m + 1]
            window_hi[m + 1] = max(hi, suffix_hi[m + 1])
            window_lo[m + 1] = min(lo, suffix_lo[m + 1])
        # The outputs of this block's windows, through zero-based views (vectorisable).
        count = head_hi.size + 1
        first, second = out[0, end : end + count], out[out.shape[0] - 1, end : end + count]
        closes = close[end : end + count]
        for m in range(count):
            hi, lo = window_hi[m], window_lo[m]
            if kind == HIGHEST_LOWEST:
                first[m], second[m] = hi, lo
            elif kind == AROON:  # the window holds period + 1 bars
                first[m] = (100.0 / (width - 1)) * (width - 1 - (end + m - window_lo_at[m]))
                second[m] = (100.0 / (width - 1)) * (width - 1 - (end + m - window_hi_at[m]))
            elif abs(hi - lo) <= 1e-14 * (abs(hi) + abs(lo)):
                first[m] = 0.0  # flat to within 1e-14 of its own level: TA-Lib's guard
            elif kind == STOCH_K:
                first[m] = ((closes[m] - lo) / (hi - lo)) * 100.0
            else:
                first[m] = ((hi - closes[m]) / (hi - lo)) * -100.0


@njit(cache=True)
def highest_lowest(high, low, width, out):
    """Highest high (row 0) and lowest low (row 1) of each ``width``-bar window."""
    _scan(high, low, high, width, HIGHEST_LOWEST, out)


@njit(cache=True)
def stoch_k(high, low, close, width, out):
    """Fast %K, ``(close - LL) / (HH - LL) * 100`` (0 for a window flat to 1e-14)."""
    _scan(high, low, close, width, STOCH_K, out.reshape((1, -1)))


@njit(cache=True)
def willr(high, low, close, width, out):
    """Williams %R, ``(HH - close) / (HH - LL) * -100`` (0 for a window flat to 1e-14)."""
    _scan(high, low, close, width, WILLR, out.reshape((1, -1)))


@njit(cache=True)
def aroon(high, low, period, out):
    """Aroon down (row 0) and up (row 1): 100 when the window's extreme is the newest bar.

    The window holds ``period + 1`` bars (TA-Lib's lookback is ``period``).
    """
    _scan(high, low, high, period + 1, AROON, out)


@njit(cache=True)
def stochastic(high, low, close, fastk, k_period, k_type, d_period, d_type, out):
    """%K (row 0) and %D (row 1), TA-Lib's composition.

    %K is the fast %K smoothed by ``ma(k_period, k_type)`` (a period of 1 keeps it fast,
    which is STOCHF), %D smooths %K again. As in TA-Lib, both rows start on %D's first bar.
    """
    fast = np.empty(close.size)
    stoch_k(high, low, close, fastk, fast)
    k_start = fastk - 1
    d_start = k_start + ma_lookback(k_period, k_type)
    out[:, :k_start] = np.nan
    ma(fast[k_start:], k_period, k_type, out[0, k_start:])
    ma(out[0, d_start:], d_period, d_type, out[1, d_start:])
    out[1, :d_start] = np.nan
    out[0, : d_start + ma_lookback(d_period, d_type)] = np.nan
