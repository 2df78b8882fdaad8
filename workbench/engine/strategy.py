"""Strategies as the engine runs them: callbacks per bar and fill.

``EventStrategy`` is the base for strategies that decide bar by bar in Python (stops that
move, position sizing from the portfolio, several symbols at once). ``TargetTrader`` runs
any signal :class:`~workbench.strategies.Strategy` on the engine: it trades toward the
strategy's target position whenever the target changes.

Both are called at a bar's close; orders they place meet the next bar (no look-ahead).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import param

from workbench.errors import ConfigError

if TYPE_CHECKING:
    from workbench.engine.context import Context
    from workbench.engine.orders import Fill, Order
    from workbench.strategies import Strategy


class BarColumns:
    """One symbol's bars as lists indexed by row, and their timeframe (ns): what a
    :class:`Bar` reads its fields from."""

    __slots__ = ("time", "open", "high", "low", "close", "volume", "timeframe")

    def __init__(
        self,
        time: list[int],
        columns: Mapping[str, list[float]],
        timeframe: int,
    ) -> None:
        self.time = time
        self.open, self.high, self.low = columns["open"], columns["high"], columns["low"]
        self.close, self.volume = columns["close"], columns["volume"]
        self.timeframe = timeframe

    def values(self, row: int) -> tuple[int, float, float, float, float, float]:
        """Row ``row``'s time and open, high, low, close and volume, at once."""
        return (
            self.time[row], self.open[row], self.high[row], self.low[row], self.close[row],
            self.volume[row],
        )  # fmt: skip

    def close_of(self, row: int) -> tuple[int, float]:
        """When row ``row``'s bar closes (ns), and its close."""
        return self.time[row] + self.timeframe, self.close[row]


class Bar:
    """A closed bar as a strategy sees it.

    ``symbol``; ``row``, its position in the symbol's history (index arrays from
    :meth:`Context.indicator` with it); ``time``, its open, and ``closes``, its close (ns);
    ``open``, ``high``, ``low``, ``close``, ``volume``. A bar is a view of one row of its
    symbol's columns: the fields are read when asked, so handing a bar to the strategy
    costs the engine next to nothing, whatever the strategy reads. Keep a bar as long as
    you like; one nobody kept is refilled for the next bar.
    """

    __slots__ = ("symbol", "row", "_columns")

    def __init__(self, symbol: str, row: int, columns: BarColumns) -> None:
        self.symbol, self.row, self._columns = symbol, row, columns

    @property
    def time(self) -> int:
        return self._columns.time[self.row]

    @property
    def open(self) -> float:
        return self._columns.open[self.row]

    @property
    def high(self) -> float:
        return self._columns.high[self.row]

    @property
    def low(self) -> float:
        return self._columns.low[self.row]

    @property
    def close(self) -> float:
        return self._columns.close[self.row]

    @property
    def volume(self) -> float:
        return self._columns.volume[self.row]

    @property
    def closes(self) -> int:
        return self._columns.time[self.row] + self._columns.timeframe

    @property
    def timestamp(self) -> pd.Timestamp:
        return pd.Timestamp(self.time, tz="UTC")

    def __repr__(self) -> str:
        return (
            f"Bar({self.symbol!r}, row={self.row}, {self.timestamp}, open={self.open!r}, "
            f"high={self.high!r}, low={self.low!r}, close={self.close!r}, volume={self.volume!r})"
        )


class EventStrategy(param.Parameterized):
    """Subclass and override the hooks you need; declare parameters with ``param``."""

    def on_start(self, ctx: Context) -> None:
        """Before the first bar: compute indicators (``ctx.indicator``), set up state."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        """At each bar's close, for each symbol: read state, place or cancel orders."""

    def on_fill(self, ctx: Context, order: Order, fill: Fill) -> None:
        """After each fill of one of this strategy's orders."""

    def on_stop(self, ctx: Context) -> None:
        """After the last bar."""

    @property
    def label(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.param.values().items() if k != "name")
        return f"{type(self).__name__}({settings})"


class TargetTrader(EventStrategy):
    """Trades a signal strategy's target (a fraction of equity per symbol, times its
    weight) on the engine, placing a target order only when the target changes."""

    def __init__(
        self, strategy: Strategy, weights: Mapping[str, float] | None = None, **params
    ) -> None:
        super().__init__(**params)
        self.strategy = strategy
        self.weights = dict(weights) if weights else None
        self._targets: dict[str, list[float]] = {}
        self._held: dict[str, float] = {}

    @property
    def label(self) -> str:
        return self.strategy.label

    def on_start(self, ctx: Context) -> None:
        self._weights = self.weights or {s: 1.0 / len(ctx.symbols) for s in ctx.symbols}
        unknown = set(self._weights) - set(ctx.symbols)
        if unknown:
            raise ConfigError(f"weights name symbols not in the data: {sorted(unknown)}.")
        for symbol in ctx.symbols:
            self._held[symbol] = 0.0
            if not ctx.live:  # a replay: every bar's target at once (each from bars up to it)
                target = self.strategy.target(ctx.history(symbol, full=True)).to_numpy()
                self._targets[symbol] = (
                    np.nan_to_num(target) * self._weights.get(symbol, 0.0)
                ).tolist()

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if ctx.live:  # bars arrive one by one: the target of the newest, from the history so far
            latest = self.strategy.target(ctx.history(bar.symbol)).iat[-1]
            target = 0.0 if np.isnan(latest) else float(latest) * self._weights.get(bar.symbol, 0.0)
        else:
            target = self._targets[bar.symbol][bar.row]
        if target != self._held[bar.symbol]:
            self._held[bar.symbol] = target
            ctx.order_target(bar.symbol, target)


def check_strategy(strategy: object) -> EventStrategy:
    """An engine strategy from an ``EventStrategy`` or a signal ``Strategy``."""
    from workbench.strategies import Strategy

    if isinstance(strategy, EventStrategy):
        return strategy
    if isinstance(strategy, Strategy):
        return TargetTrader(strategy)
    if isinstance(strategy, type) and issubclass(strategy, EventStrategy | Strategy):
        raise ConfigError(f"Pass a strategy object, e.g. {strategy.__name__}(), not the class.")
    raise ConfigError(
        f"A strategy must be a workbench.strategies.Strategy or a workbench.engine.EventStrategy; "
        f"got {type(strategy).__name__}."
    )
