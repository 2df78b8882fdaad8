"""What the built-in rules share: a position latch, strength scales, the line-cross rule.

Each looks only at the current and earlier rows and leaves NaN inputs (an indicator's
warm-up) flat with strength 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

from workbench.indicators import stddev


@njit(cache=True)
def _latch(enter_long, exit_long, enter_short, exit_short, out):
    state = 0
    for i in range(out.size):
        if (state == 1 and exit_long[i]) or (state == -1 and exit_short[i]):
            state = 0
        if enter_long[i] and not enter_short[i]:
            state = 1
        elif enter_short[i] and not enter_long[i]:
            state = -1
        out[i] = state


def latch(
    enter_long: np.ndarray, exit_long: np.ndarray, enter_short: np.ndarray, exit_short: np.ndarray
) -> np.ndarray:
    """A position held from an entry until its exit: +1, -1 or 0 per row (int8).

    An exit is checked before an entry, so one bar may close a position and open the
    opposite one; a bar meeting both entries leaves the position as it was.
    """
    out = np.empty(len(enter_long), dtype=np.int8)
    _latch(enter_long, exit_long, enter_short, exit_short, out)
    return out


def sign(gap: np.ndarray) -> np.ndarray:
    """+1 where ``gap`` > 0, -1 where < 0, 0 where zero or NaN (int8)."""
    return (gap > 0).astype(np.int8) - (gap < 0).astype(np.int8)


def gap_strength(gap: pd.Series, close: pd.Series, timeperiod: int) -> np.ndarray:
    """``|gap|`` in standard deviations of the close over ``timeperiod`` bars, capped at 1.

    Two lines that have just crossed are weak; lines a full standard deviation of price
    apart are at full strength. A flat window counts any gap as full strength.
    """
    wobble = stddev(close, timeperiod).to_numpy()
    size = np.abs(gap.to_numpy())
    full = np.where(size > 0, 1.0, 0.0)
    ratio = np.divide(size, wobble, out=full, where=wobble > 0)
    return np.nan_to_num(np.minimum(ratio, 1.0))


def band_strength(
    x: np.ndarray,
    lower: np.ndarray | float,
    middle: np.ndarray | float,
    upper: np.ndarray | float,
    direction: np.ndarray,
    toward: int,
) -> np.ndarray:
    """How far ``x`` has gone from ``middle`` toward the band the position bets on, 0..1.

    ``toward=+1`` for breakouts (a long is strongest at the upper band), ``-1`` for
    reversion (a long is strongest at the lower band). Flat rows have strength 0.
    """
    up = direction * toward > 0
    distance = np.where(up, x - middle, middle - x)
    width = np.where(up, upper - middle, middle - lower)
    full = np.where(distance > 0, 1.0, 0.0)
    ratio = np.divide(distance, width, out=full, where=width > 0)
    return np.where(direction != 0, np.nan_to_num(np.clip(ratio, 0.0, 1.0)), 0.0)


def crossing(a: pd.Series, b: pd.Series, close: pd.Series, timeperiod: int) -> pd.DataFrame:
    """Long while line ``a`` is above line ``b``, short while below; the strength is the
    gap between them in standard deviations of the close over ``timeperiod`` bars."""
    gap = a - b
    return pd.DataFrame(
        {"direction": sign(gap.to_numpy()), "strength": gap_strength(gap, close, timeperiod)},
        index=a.index,
    )


def crossing_reasons(a: str, b: str) -> dict[str, str]:
    """Reason templates of :func:`crossing` for lines described by templates ``a`` and ``b``."""
    return {
        "long": f"{a} crossed above {b}",
        "short": f"{a} crossed below {b}",
        "exit_long": f"{a} touched {b} from above",
        "exit_short": f"{a} touched {b} from below",
        "hold_long": f"{a} above {b}",
        "hold_short": f"{a} below {b}",
        "flat": f"{a} equals {b}",
        "start_long": f"{a} above {b}",
        "start_short": f"{a} below {b}",
    }
