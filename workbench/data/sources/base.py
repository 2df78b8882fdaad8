"""The ``MarketSource`` seam: everything that fetches or streams market data.

A source speaks the data convention of :mod:`workbench.data.model` and nothing else, so
the store, feeds, strategies and UI never know which source they are fed by. The default
is :class:`~workbench.data.sources.simulated.SimulatedMarket`; real ones wrap ccxt or
Alpaca.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import pandas as pd

from workbench.data.model import OrderBook
from workbench.errors import DataFormatError

TimeLike = pd.Timestamp | str | int | float | None


def as_timestamp(value: TimeLike, *, what: str = "time") -> pd.Timestamp | None:
    """A UTC timestamp from a Timestamp, an ISO string, or epoch milliseconds (None stays None)."""
    if value is None:
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            stamp = pd.Timestamp(int(value), unit="ms", tz="UTC")
        else:
            stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DataFormatError(f"Cannot read {what} {value!r} as a time: {exc}") from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def time_window(start: TimeLike, end: TimeLike) -> tuple[pd.Timestamp | None, pd.Timestamp]:
    """``start`` and ``end`` as UTC times, the end defaulting to now."""
    last = as_timestamp(end, what="end")
    return as_timestamp(start, what="start"), pd.Timestamp.now("UTC") if last is None else last


@dataclass(frozen=True, slots=True)
class BarUpdate:
    """One streamed bar: the forming bar repeats with ``closed=False`` until it closes."""

    symbol: str
    timeframe: str
    timestamp: pd.Timestamp
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool


@runtime_checkable
class MarketSource(Protocol):
    """Fetches history and streams live data in the workbench's data convention."""

    #: The store key of this source ("sim", or the ccxt/alpaca exchange id).
    name: str

    def symbols(self) -> list[str]:
        """Symbols this source can serve, in the source's unified spelling."""
        ...

    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = "1m",
        start: TimeLike = None,
        end: TimeLike = None,
        *,
        progress: bool = False,
    ) -> pd.DataFrame:
        """Bars with open time in [start, end], in the convention."""
        ...

    def fetch_trades(
        self, symbol: str, start: TimeLike = None, end: TimeLike = None, *, limit: int | None = None
    ) -> pd.DataFrame:
        """Trades in [start, end] (the most recent ones when both are None)."""
        ...

    def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        """The current L2 book, ``depth`` levels a side."""
        ...

    def fetch_funding_rates(
        self, symbol: str, start: TimeLike = None, end: TimeLike = None
    ) -> pd.DataFrame:
        """Funding-rate history of a perpetual, in the convention."""
        ...

    def stream_bars(
        self, symbols: Sequence[str], timeframe: str = "1m"
    ) -> AsyncIterator[BarUpdate]:
        """Live bars on the running event loop, forming bars included."""
        ...
