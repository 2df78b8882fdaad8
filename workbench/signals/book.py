"""Order-book pressure and liquidity: imbalance of resting size, and sudden changes of depth.

Books are :class:`~workbench.data.model.OrderBook` snapshots (bids and asks best first).
A value computed from a book uses that book only; a value on a liquidity series uses the
samples up to and including its own time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import numpy as np
import pandas as pd

from workbench.data.model import OrderBook
from workbench.errors import DataFormatError
from workbench.indicators import _validate as v
from workbench.signals import _inputs

_IQR_PER_SIGMA = 1.3489795003921634  # interquartile range of a standard normal


@overload
def book_imbalance(
    books: OrderBook, levels: int = 5, weights: Sequence[float] | None = None
) -> float: ...
@overload
def book_imbalance(
    books: Sequence[OrderBook], levels: int = 5, weights: Sequence[float] | None = None
) -> pd.Series: ...
def book_imbalance(
    books: OrderBook | Sequence[OrderBook],
    levels: int = 5,
    weights: Sequence[float] | None = None,
) -> float | pd.Series:
    """Normalised order-book imbalance (NOBI) over the top ``levels`` of each side:
    (bid size - ask size) / (bid size + ask size), in [-1, 1]; positive when bids outweigh.

    ``weights`` (one per level, best first; the best level's must be positive) weights
    the sizes, e.g. ``[1, 0.5, 0.25]`` to let the touch count most; equal by default. A
    side with fewer levels contributes those it has. One book gives a float, a sequence
    of books a Series ``nobi`` indexed by book time.
    """
    what = v.call("book_imbalance", levels=levels, weights=weights)
    depth = v.period(levels, "levels")
    scale = _level_weights(weights, depth, what)
    if isinstance(books, OrderBook):
        return _nobi(books, scale, what)
    found = _inputs.books(books, what)
    values = [_nobi(book, scale, what) for book in found]
    return pd.Series(values, index=_book_times(found), name="nobi")


def depth_within(books: Sequence[OrderBook], bps: float = 10.0) -> pd.DataFrame:
    """Resting size within ``bps`` basis points of the mid: ``bid_depth``, ``ask_depth`` and
    their sum ``depth``, in base units, one row per book (a liquidity series to watch)."""
    what = v.call("depth_within", bps=bps)
    band = v.real(bps, "bps", positive=True) / 1e4
    found = _inputs.books(books, what)
    rows = [_band_depth(book, band, what) for book in found]
    frame = pd.DataFrame(rows, columns=["bid_depth", "ask_depth"], index=_book_times(found))
    frame["depth"] = frame["bid_depth"] + frame["ask_depth"]
    return frame


def liquidity_change(
    liquidity: pd.Series,
    window: str | pd.Timedelta = "60s",
    min_periods: int = 10,
    relative: bool = True,
) -> pd.DataFrame:
    """How fast liquidity moves, and how unusual that is: ``rate`` (change per second),
    ``acceleration`` (change of rate per second) and their robust scores.

    With ``relative`` (the default) changes are of log liquidity, so -0.1 is about 10% a
    second going: depth is multiplicative, and relative scores stay comparable when the
    book thins or fills for a while. That needs positive liquidity; ``relative=False``
    scores absolute changes of a series that may reach zero.

    A score is the distance from the median of the values seen in the trailing ``window``
    before the sample (the sample excluded), in units of their interquartile range over
    1.349 (a standard deviation for normal data): robust to the very spikes it looks for.
    A score is NaN until ``min_periods`` values are in the window; a flat history gives
    0 for no change and +-inf for any change.
    """
    what = v.call("liquidity_change", window=window, min_periods=min_periods, relative=relative)
    span = _inputs.window(window, "window", what)
    count = v.period(min_periods, "min_periods")
    level = _inputs.series(liquidity, what)
    if relative:
        if (level <= 0).any():
            raise DataFormatError(
                f"{what}: liquidity reaches {level.min()}, but relative changes need it "
                f"positive; pass relative=False to score absolute changes."
            )
        level = np.log(level)
    elapsed = level.index.to_series().diff() / pd.Timedelta(seconds=1)
    rate = level.diff() / elapsed
    acceleration = rate.diff() / elapsed
    return pd.DataFrame(
        {
            "rate": rate,
            "acceleration": acceleration,
            "rate_score": _robust_score(rate, span, count),
            "acceleration_score": _robust_score(acceleration, span, count),
        }
    )


def liquidity_events(
    liquidity: pd.Series,
    window: str | pd.Timedelta = "60s",
    threshold: float = 4.0,
    min_periods: int = 10,
    relative: bool = True,
) -> pd.DataFrame:
    """Sudden withdrawals (``direction`` -1) and additions (+1) of liquidity: the rows of
    :func:`liquidity_change` whose rate score reaches ``threshold`` in size, or whose
    acceleration score does while liquidity moves that same way.

    The second rule catches a withdrawal that is speeding up, without mistaking the end
    of a drop (liquidity stops falling: a positive acceleration) for an addition.
    """
    level = v.real(threshold, "threshold", positive=True)
    change = liquidity_change(liquidity, window, min_periods, relative)
    rate_score, accel_score = change["rate_score"], change["acceleration_score"]
    by_rate = np.sign(rate_score).where(rate_score.abs() >= level, 0.0)
    speeding = (accel_score.abs() >= level) & (np.sign(accel_score) == np.sign(change["rate"]))
    by_acceleration = np.sign(accel_score).where(speeding, 0.0)
    direction = by_rate.where(by_rate != 0, by_acceleration).astype("int8")
    change.insert(0, "direction", direction)
    return change[direction != 0]


def _nobi(book: OrderBook, weights: np.ndarray, what: str) -> float:
    if not (len(book.bids) or len(book.asks)):
        raise DataFormatError(f"{what}: the book at {book.timestamp} has no levels at all.")
    bid, ask = _weighted_size(book.bids, weights), _weighted_size(book.asks, weights)
    return (bid - ask) / (bid + ask)


def _weighted_size(ladder: np.ndarray, weights: np.ndarray) -> float:
    sizes = ladder[: weights.size, 1]
    return float(sizes @ weights[: sizes.size])


def _band_depth(book: OrderBook, band: float, what: str) -> tuple[float, float]:
    """Bid and ask size priced within ``band`` (a fraction) of the book's mid."""
    if not (len(book.bids) and len(book.asks)):
        raise DataFormatError(f"{what}: the book at {book.timestamp} has an empty side.")
    bids, asks = book.bids, book.asks
    return (
        float(bids[bids[:, 0] >= book.mid * (1 - band), 1].sum()),
        float(asks[asks[:, 0] <= book.mid * (1 + band), 1].sum()),
    )


def _level_weights(weights: Sequence[float] | None, levels: int, what: str) -> np.ndarray:
    if weights is None:
        return np.ones(levels)
    try:
        scale = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        scale = np.full(levels, np.nan)
    if scale.shape != (levels,) or not np.isfinite(scale).all() or (scale < 0).any():
        raise DataFormatError(
            f"{what}: weights must be {levels} finite, non-negative numbers, one per level."
        )
    if scale[0] <= 0:
        raise DataFormatError(f"{what}: the best level's weight must be positive.")
    return scale


def _book_times(books: Sequence[OrderBook]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([book.timestamp for book in books], name="timestamp")


def _robust_score(values: pd.Series, span: pd.Timedelta, min_periods: int) -> pd.Series:
    """(value - median) / (IQR / 1.349) of the values in [t - span, t)."""
    past = values.rolling(span, min_periods=min_periods, closed="left")
    spread = (past.quantile(0.75) - past.quantile(0.25)) / _IQR_PER_SIGMA
    deviation = values - past.median()
    return (deviation / spread).where(deviation != 0, 0.0)
