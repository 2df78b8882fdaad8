"""``ReplayFeed``: stored or given bars as one time-ordered stream of bar events.

A backtest replays history through the same engine that runs paper and live trading; only
the feed (and the clock and venue) differ. The replay merges several symbols by bar time
(ties in the order the symbols were given) and keeps everything as plain arrays, so the
engine's loop never touches pandas.

Bars are checked before anything runs: an empty frame, missing values, non-positive
prices, a high below the low, or an unsorted or duplicated index fail loudly here rather
than becoming a quietly wrong result.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.data.model import BAR_COLUMNS
from workbench.data.timeframes import timeframe_ms
from workbench.engine.strategy import Bar
from workbench.errors import DataFormatError


@dataclass(frozen=True)
class SymbolBars:
    """One symbol's checked bars, as arrays: times (ns, bar open) and the five columns."""

    symbol: str
    frame: pd.DataFrame
    times: np.ndarray
    timeframe: int  # ns


class ReplayFeed:
    """History as bar events: ``feed.events()`` gives every :class:`Bar` in time order."""

    live = False

    def __init__(
        self,
        data: pd.DataFrame | Mapping[str, pd.DataFrame],
        *,
        symbol: str = "asset",
        timeframe: str | None = None,
    ) -> None:
        frames = {symbol: data} if isinstance(data, pd.DataFrame) else dict(data)
        if not frames:
            raise DataFormatError(
                "No data: give a bar frame, or a mapping of symbol to bar frames."
            )
        step = timeframe_ms(timeframe) * 1_000_000 if timeframe else None
        self.symbols: list[str] = list(frames)
        self.bars: dict[str, SymbolBars] = {s: _checked(s, f, step) for s, f in frames.items()}
        times = np.concatenate([b.times for b in self.bars.values()])
        which = np.concatenate(
            [np.full(len(b.times), k, dtype=np.int32) for k, b in enumerate(self.bars.values())]
        )
        rows = np.concatenate([np.arange(len(b.times)) for b in self.bars.values()])
        order = np.argsort(times, kind="stable")
        self.times, self.which, self.rows = times[order], which[order], rows[order]

    @classmethod
    def from_store(
        cls,
        store,
        exchange: str,
        symbols: list[str],
        timeframe: str,
        start: object = None,
        end: object = None,
    ) -> ReplayFeed:
        """Replay ``symbols`` of ``exchange`` from a :class:`~workbench.data.store.MarketStore`."""
        frames = {s: store.bars(exchange, s, timeframe, start, end) for s in symbols}
        return cls(frames, timeframe=timeframe)

    def events(self) -> Iterator[Bar]:
        """Every bar of every symbol as a :class:`Bar`, in time order (built in C, lazily)."""
        which, rows = self.which, self.rows
        symbols = self.symbols
        if len(symbols) == 1:
            only = self.bars[symbols[0]]
            columns = [only.frame[c].to_numpy() for c in BAR_COLUMNS]
            times = only.times
            steps = np.full(len(times), only.timeframe)
        else:
            columns = [np.empty(len(rows)) for _ in BAR_COLUMNS]
            times, steps = np.empty(len(rows), dtype=np.int64), np.empty(len(rows), dtype=np.int64)
            for k, symbol in enumerate(symbols):
                at, bars = which == k, self.bars[symbol]
                for column, name in zip(columns, BAR_COLUMNS, strict=True):
                    column[at] = bars.frame[name].to_numpy()[rows[at]]
                times[at], steps[at] = bars.times[rows[at]], bars.timeframe
        if len(symbols) == 1:
            names = itertools.repeat(symbols[0], len(rows))
        else:
            names = map(symbols.__getitem__, which.tolist())
        fields = (
            names,
            rows.tolist(),
            times.tolist(),
            *(c.tolist() for c in columns),
            (times + steps).tolist(),
        )
        return map(functools.partial(tuple.__new__, Bar), zip(*fields, strict=True))

    def __len__(self) -> int:
        return len(self.times)

    @property
    def index(self) -> pd.DatetimeIndex:
        """The distinct bar times of all symbols (UTC), the index of the results."""
        distinct = self.times[np.r_[True, np.diff(self.times) != 0]]  # already sorted
        return pd.DatetimeIndex(distinct.view("datetime64[ns]"), name="timestamp").tz_localize(
            "UTC"
        )


def _checked(symbol: str, frame: pd.DataFrame, step: int | None) -> SymbolBars:
    what = f"Bars of {symbol}"
    if not isinstance(frame, pd.DataFrame):
        raise DataFormatError(f"{what} must be a DataFrame; got {type(frame).__name__}.")
    if frame.empty:
        raise DataFormatError(f"{what} are empty: there is nothing to run over.")
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"{what} lack the column(s) {missing}; bars need {list(BAR_COLUMNS)}."
        )
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataFormatError(
            f"{what} need a DatetimeIndex of bar times; convert with workbench.data.model.to_bars()."
        )
    if index.tz is None:
        raise DataFormatError(
            f"{what} have naive times; localise them to UTC (index.tz_localize('UTC'))."
        )
    if not index.is_monotonic_increasing:
        raise DataFormatError(
            f"{what} are not in time order; sort them first (frame.sort_index())."
        )
    if index.has_duplicates:
        raise DataFormatError(
            f"{what} repeat the time {index[index.duplicated()][0]}; drop the duplicates."
        )
    bars = frame[list(BAR_COLUMNS)].astype("float64")
    values = bars.to_numpy()
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise DataFormatError(
            f"{what} hold missing or infinite values at {index[bad.argmax()]} ({int(bad.sum())} bar(s)); "
            f"repair or drop them (workbench.data.quality) instead of trading on them."
        )
    prices, volume = values[:, :4], values[:, 4]
    bad = (prices <= 0).any(axis=1) | (volume < 0)
    bad |= (values[:, 1] < values[:, [0, 2, 3]].max(axis=1)) | (
        values[:, 2] > values[:, [0, 1, 3]].min(axis=1)
    )
    if bad.any():
        raise DataFormatError(
            f"{what} are inconsistent at {index[bad.argmax()]}: a non-positive price, negative "
            f"volume, or a high/low that does not contain the open and close."
        )
    times = index.as_unit("ns").asi8.copy()
    if step is None:
        if len(times) < 2:
            raise DataFormatError(
                f"{what}: one bar does not say its timeframe; pass timeframe='1m' (or similar)."
            )
        step = int(np.median(np.diff(times)))
    return SymbolBars(symbol, bars, times, step)
