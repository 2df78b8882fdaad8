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

import bisect
import functools
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.data.model import BAR_COLUMNS
from workbench.data.timeframes import timeframe_ms
from workbench.engine.strategy import BarColumns
from workbench.errors import DataFormatError


@dataclass(frozen=True)
class SymbolBars:
    """One symbol's checked bars: times (ns, bar open), the five columns as the rows of
    one array, and the same as a frame in the bar convention."""

    symbol: str
    frame: pd.DataFrame
    times: np.ndarray
    values: np.ndarray  # 5 x bars: open, high, low, close, volume
    timeframe: int  # ns


class ReplayFeed:
    """History as bar events: ``feed.events()`` gives every bar in time order; ``columns``
    holds each symbol's bars as the lists a :class:`Bar` reads."""

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
        if len(frames) == 1:
            self.times: np.ndarray = self.bars[self.symbols[0]].times
            self._order = None
        else:  # merged by time, ties in the order the symbols were given
            times = np.concatenate([b.times for b in self.bars.values()])
            self._order = np.argsort(times, kind="stable")
            self.times = times[self._order]
        self.columns: dict[str, BarColumns] = {s: _ListedOnDemand(b) for s, b in self.bars.items()}

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

    def events(self, start: int = 0) -> Iterator[tuple[str, int, BarColumns]]:
        """Every bar from event ``start`` on, in time order, as ``(symbol, row, columns)``:
        the parts of a :class:`Bar`, which the engine assembles."""
        if len(self.symbols) == 1:
            symbol = self.symbols[0]
            return zip(
                itertools.repeat(symbol),
                range(start, len(self)),
                itertools.repeat(self.columns[symbol]),
            )
        which = self.which[start:].tolist()
        columns = [self.columns[s] for s in self.symbols]
        return zip(
            map(self.symbols.__getitem__, which),
            self.rows[start:].tolist(),
            map(columns.__getitem__, which),
        )

    @functools.cached_property
    def which(self) -> np.ndarray:
        """Each event's symbol, as its position in ``symbols``."""
        which = np.concatenate(
            [np.full(len(b.times), k, dtype=np.int32) for k, b in enumerate(self.bars.values())]
        )
        return which if self._order is None else which[self._order]

    @functools.cached_property
    def rows(self) -> np.ndarray:
        """Each event's row in its symbol's bars."""
        rows = np.concatenate([np.arange(len(b.times)) for b in self.bars.values()])
        return rows if self._order is None else rows[self._order]

    def first_event(self, time: int) -> int:
        """The index of the first event at or after ``time`` (ns)."""
        return int(np.searchsorted(self.times, time, side="left"))

    def event(self, symbol: str, row: int) -> int:
        """The index of ``symbol``'s bar ``row`` among all events."""
        return row if self._order is None else self._positions[symbol][row]

    def at(self, event: int) -> tuple[str, int]:
        """The symbol and row of event ``event``."""
        if len(self.symbols) == 1:
            return self.symbols[0], event
        which, rows = self._listed
        return self.symbols[which[event]], rows[event]

    def row_at(self, symbol: str, event: int) -> int:
        """``symbol``'s latest row at or before event ``event`` (-1 before its first)."""
        return bisect.bisect_right(self._positions[symbol], event) - 1

    @functools.cached_property
    def _positions(self) -> dict[str, Sequence[int]]:
        if len(self.symbols) == 1:
            return {self.symbols[0]: range(len(self))}
        return {s: np.flatnonzero(self.which == k).tolist() for k, s in enumerate(self.symbols)}

    @functools.cached_property
    def _listed(self) -> tuple[list[int], list[int]]:
        return self.which.tolist(), self.rows.tolist()

    def __len__(self) -> int:
        return len(self.times)

    @functools.cached_property
    def index(self) -> pd.DatetimeIndex:
        """The distinct bar times of all symbols (UTC), the index of the results."""
        if len(self.symbols) == 1:  # its times are distinct already (checked)
            return _results_index(self.times)
        return _results_index(self.times[np.r_[True, self.times[1:] != self.times[:-1]]])


def _results_index(times: np.ndarray) -> pd.DatetimeIndex:
    """Sorted bar times (ns) as a results' index, without copying them (a feed never
    changes its arrays)."""
    return pd.DatetimeIndex(times, dtype="datetime64[ns, UTC]", name="timestamp", copy=False)


class _ListedOnDemand(BarColumns):
    """A replay's columns. Each becomes a list the first time a bar reads it (a strategy
    that reads only rows and its precomputed arrays never pays for them); the engine reads
    the few rows it needs, where orders rest, through ``values``."""

    __slots__ = ("_bars", "_items")

    def __init__(self, bars: SymbolBars) -> None:
        self._bars, self.timeframe = bars, bars.timeframe
        self._items = (bars.times.item, *(column.item for column in bars.values))

    def __getattr__(self, name: str) -> list:
        if name == "time":
            values = self._bars.times.tolist()
        elif name in BAR_COLUMNS:
            values = self._bars.values[BAR_COLUMNS.index(name)].tolist()
        else:
            raise AttributeError(name)
        setattr(self, name, values)
        return values

    def values(self, row: int) -> tuple[int, float, float, float, float, float]:
        time, o, h, l, c, v = self._items
        return time(row), o(row), h(row), l(row), c(row), v(row)

    def close_of(self, row: int) -> tuple[int, float]:
        return self._items[0](row) + self.timeframe, self._items[4](row)


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
    bars = frame[list(BAR_COLUMNS)].astype(np.float64)  # copied on write, not now
    values = bars.to_numpy().T  # a view of the frame's one block, when it has one
    if not np.isfinite(values.sum()):  # (a sum is finite only if every value is)
        bad = ~np.isfinite(values).all(axis=0)
        raise DataFormatError(
            f"{what} hold missing or infinite values at {index[bad.argmax()]} ({int(bad.sum())} bar(s)); "
            f"repair or drop them (workbench.data.quality) instead of trading on them."
        )
    o, h, l, c, v = values
    bad = (l <= 0) | (v < 0) | (h < o) | (h < c) | (h < l) | (l > o) | (l > c)
    if bad.any():
        raise DataFormatError(
            f"{what} are inconsistent at {index[bad.argmax()]}: a non-positive price, negative "
            f"volume, or a high/low that does not contain the open and close."
        )
    times = index.as_unit("ns").asi8  # (the index is immutable)
    if step is None:
        if len(times) < 2:
            raise DataFormatError(
                f"{what}: one bar does not say its timeframe; pass timeframe='1m' (or similar)."
            )
        gaps = np.diff(times)
        step = int(gaps[0] if (gaps == gaps[0]).all() else np.median(gaps))
    return SymbolBars(symbol, bars, times, values, step)
