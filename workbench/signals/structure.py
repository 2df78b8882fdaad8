"""Market structure on bars: swings, fair value gaps, breaks of structure and order blocks.

Every result is a DataFrame aligned with the bars, and each value sits at the bar where it
becomes known, never earlier: a swing appears when the bars after it confirm it, a gap when
its third bar closes, a break on the close that makes it. So a strategy may act on row t
at t+1 without looking ahead. Directions are +1 (bullish) and -1 (bearish), 0 for none.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.indicators import _validate as v
from workbench.signals import _inputs
from workbench.signals._kernels import gap_fills


def swings(bars: pd.DataFrame, left: int = 2, right: int = 2) -> pd.DataFrame:
    """Fractal swing highs and lows, written at the bar that confirms them.

    A swing high is a bar whose high is above the ``left`` highs before it and not below
    the ``right`` highs after it (so a flat top counts once, at its first bar); a swing
    low mirrors it. A swing at bar p is only known once bar p + right has closed, so its
    price is written there: ``swing_high`` and ``swing_low`` hold the pivot's price at the
    confirmation bar, NaN elsewhere. (``shift(-right)`` puts pivots where they were made,
    which is for charts only: it looks ahead.)
    """
    what = v.call("swings", left=left, right=right)
    left, right = v.period(left, "left"), v.period(right, "right")
    return _swings(_inputs.bars(bars, ("high", "low"), what), left, right)


def fair_value_gaps(bars: pd.DataFrame) -> pd.DataFrame:
    """Three-bar imbalances, written at the third bar: ``fvg``, ``top``, ``bottom``,
    ``filled_at``.

    Bullish when the third bar's low is above the first bar's high (the gap is
    [first high, third low]), bearish when the third bar's high is below the first bar's
    low. ``filled_at`` is the first later bar that trades through the whole gap (a low at
    or below a bullish gap's bottom, a high at or above a bearish gap's top), NaT while
    it is open; it is found from the bars up to that one only, so a gap is filled as of
    bar t exactly when ``filled_at <= t``.
    """
    frame = _inputs.bars(bars, ("high", "low"), "fair_value_gaps()")
    high, low = frame["high"], frame["low"]
    first_high, first_low = high.shift(2), low.shift(2)
    bullish, bearish = low > first_high, high < first_low
    direction = bullish.astype("int8") - bearish.astype("int8")
    top = low.where(bullish, first_low.where(bearish))
    bottom = first_high.where(bullish, high.where(bearish))
    fills = np.empty(len(frame), dtype=np.int64)
    gap_fills(*(column.to_numpy() for column in (high, low, direction, top, bottom)), fills)
    return pd.DataFrame(
        {
            "fvg": direction,
            "top": top,
            "bottom": bottom,
            "filled_at": _at_rows(frame.index, fills, frame.index),
        }
    )


def structure_breaks(bars: pd.DataFrame, left: int = 2, right: int = 2) -> pd.DataFrame:
    """Breaks of structure: ``bos``, ``choch``, ``level`` and ``trend``.

    A break is the first close beyond the last confirmed swing (see :func:`swings`; each
    swing breaks once): above a swing high is +1, below a swing low -1. It is a change of
    character (``choch``) when it reverses the direction of the previous break, else a
    break of structure (``bos``), which the first break also is. ``level`` is the swing
    price broken and ``trend`` the direction of the latest break so far.
    """
    what = v.call("structure_breaks", left=left, right=right)
    left, right = v.period(left, "left"), v.period(right, "right")
    breaks = _breaks(_inputs.bars(bars, ("high", "low", "close"), what), left, right)
    direction = breaks["direction"]
    trend = direction.where(direction != 0).ffill().fillna(0).astype("int8")
    prior = trend.shift(1, fill_value=0)
    reversal = (direction != 0) & (prior != 0) & (direction != prior)
    return pd.DataFrame(
        {
            "bos": direction.where(~reversal, 0),
            "choch": direction.where(reversal, 0),
            "level": breaks["level"],
            "trend": trend,
        }
    )


def order_blocks(bars: pd.DataFrame, left: int = 2, right: int = 2) -> pd.DataFrame:
    """Order blocks, written at the break that makes them: ``order_block``, ``top``,
    ``bottom``, ``candle_time``.

    When a close breaks structure (see :func:`structure_breaks`), the block is the last
    opposite candle before that displacement move: the last down candle (close < open)
    before an up break gives a bullish block (+1), the last up candle before a down break
    a bearish one (-1). It is looked for from the broken swing's pivot bar to the bar
    before the break; a move without one makes no block. ``top`` and ``bottom`` are the
    candle's high and low, ``candle_time`` its time.
    """
    what = v.call("order_blocks", left=left, right=right)
    left, right = v.period(left, "left"), v.period(right, "right")
    frame = _inputs.bars(bars, ("open", "high", "low", "close"), what)
    breaks = _breaks(frame, left, right)
    direction = breaks["direction"]
    last_down = _last_where(frame["close"] < frame["open"]).shift(1)
    last_up = _last_where(frame["close"] > frame["open"]).shift(1)
    candle = last_down.where(direction > 0, last_up.where(direction < 0))
    found = candle >= breaks["pivot"]
    rows = candle.where(found, -1).to_numpy(dtype=np.int64)
    return pd.DataFrame(
        {
            "order_block": direction.where(found, 0),
            "top": _at_rows(frame["high"].to_numpy(), rows, frame.index),
            "bottom": _at_rows(frame["low"].to_numpy(), rows, frame.index),
            "candle_time": _at_rows(frame.index, rows, frame.index),
        }
    )


def _swings(frame: pd.DataFrame, left: int, right: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "swing_high": _pivots(frame["high"], left, right),
            "swing_low": -_pivots(-frame["low"], left, right),
        }
    )


def _pivots(values: pd.Series, left: int, right: int) -> pd.Series:
    """Pivot highs of ``values`` at their confirmation bar (``right`` bars later)."""
    pivot = values.shift(right)
    before = values.shift(right + 1).rolling(left).max()
    after = values.rolling(right).max()
    return pivot.where((pivot > before) & (pivot >= after))


def _breaks(frame: pd.DataFrame, left: int, right: int) -> pd.DataFrame:
    """Per bar: ``direction`` of the break made there, the swing ``level`` broken and the
    position of that swing's ``pivot`` bar (NaN where nothing breaks)."""
    found = _swings(frame, left, right)
    up, high_level, high_pivot = _first_close_beyond(frame["close"], found["swing_high"], right)
    down, low_level, low_pivot = _first_close_beyond(-frame["close"], -found["swing_low"], right)
    return pd.DataFrame(
        {
            "direction": up.astype("int8") - down.astype("int8"),
            "level": high_level.where(up, -low_level.where(down)),
            "pivot": high_pivot.where(up, low_pivot.where(down)),
        }
    )


def _first_close_beyond(
    close: pd.Series, swing: pd.Series, right: int
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """The first close above each confirmed swing (high) from its confirmation on, with the
    level it breaks and the position of its pivot bar."""
    confirmed = swing.notna()
    level = swing.ffill()
    beyond = (close > level).astype(np.int64)
    first = (beyond.groupby(confirmed.cumsum()).cumsum() == 1) & (beyond == 1)
    position = pd.Series(np.arange(len(close)) - right, index=close.index, dtype="float64")
    return first, level, position.where(confirmed).ffill()


def _last_where(mask: pd.Series) -> pd.Series:
    """The position of the latest row where ``mask`` holds, up to each row (NaN before)."""
    return pd.Series(np.arange(len(mask)), index=mask.index, dtype="float64").where(mask).ffill()


def _at_rows(values: np.ndarray | pd.Index, rows: np.ndarray, index: pd.Index) -> pd.Series:
    """``values[rows]`` aligned with ``index``; a row of -1 (none) gives NaN or NaT."""
    return pd.Series(values[np.maximum(rows, 0)], index=index).where(rows >= 0)
