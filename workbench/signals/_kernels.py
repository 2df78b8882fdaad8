"""Numba loops the detectors cannot express as whole-array operations."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def gap_fills(high, low, direction, top, bottom, out):
    """For each gap (``direction`` +1 bullish, -1 bearish, 0 none), the first later bar that
    trades through all of it (-1 if none): a low at or below a bullish gap's bottom, a high
    at or above a bearish gap's top. Each scan stops at its fill, so filled gaps are cheap.
    """
    n = high.size
    for i in range(n):
        out[i] = -1
        if direction[i] == 0:
            continue
        for j in range(i + 1, n):
            if (low[j] <= bottom[i]) if direction[i] > 0 else (high[j] >= top[i]):
                out[i] = j
                break


@njit(cache=True)
def rolling_corr(x, y, window, out):
    """Pearson correlation of ``x`` and ``y`` over each trailing ``window`` (NaN before the
    first full window, for a window holding a NaN, and for a flat one).

    Two passes over each window (means, then centred sums) rather than running sums, so
    the result is exact to the last few bits whatever the level of the data.
    """
    out[: window - 1] = np.nan
    for end in range(window, x.size + 1):
        xs, ys = x[end - window : end], y[end - window : end]
        dx, dy = xs - xs.mean(), ys - ys.mean()
        scale = math.sqrt((dx * dx).sum() * (dy * dy).sum())
        out[end - 1] = (dx * dy).sum() / scale if scale > 0.0 else np.nan
