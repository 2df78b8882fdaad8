"""``Context``: what a strategy may see and do during a run.

The same calls work in a backtest, in paper trading and live: read positions, cash and
equity; place, cancel and list orders; read the history up to the current bar.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.engine.orders import Order, OrderType, Side
from workbench.errors import ConfigError

if TYPE_CHECKING:
    from workbench.engine.engine import Engine
    from workbench.engine.portfolio import Portfolio


class Context:
    """A strategy's handle on the engine (passed to every callback)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._orders = engine.orders
        self._portfolio = engine.portfolio
        self._sync = engine.sync
        self.symbols: list[str] = engine.feed.symbols
        self.live: bool = engine.feed.live
        """Whether bars arrive as they close (paper, live) rather than from a replay."""

    @property
    def portfolio(self) -> Portfolio:
        """The account, valued at the current bar."""
        self._sync()
        return self._portfolio

    # -- time and data ------------------------------------------------------------------------

    @property
    def now(self) -> pd.Timestamp:
        """The current time: the close of the bar being handled."""
        self._sync()
        return pd.Timestamp(self._orders.now, tz="UTC")

    def row(self, symbol: str | None = None) -> int:
        """The row of ``symbol``'s latest closed bar (-1 before its first)."""
        self._sync()
        return self._engine.rows[self._symbol(symbol)]

    def history(
        self, symbol: str | None = None, bars: int | None = None, *, full: bool = False
    ) -> pd.DataFrame:
        """``symbol``'s bars up to the current one (the last ``bars`` of them).

        ``full=True`` gives the whole replay, which only ``on_start`` may use to precompute
        causal indicators; it is refused on a live feed.
        """
        feed = self._engine.feed
        frame = feed.bars[self._symbol(symbol)].frame
        if full:
            if feed.live:
                raise ConfigError(
                    "history(full=True) reads the whole replay, which a live feed does not have; "
                    "compute from ctx.history() in on_bar instead."
                )
            return frame
        end = self.row(symbol) + 1
        return frame.iloc[max(0, end - bars) if bars else 0 : end]

    def indicator(
        self,
        fn: Callable[..., pd.Series | np.ndarray],
        *args: Any,
        symbol: str | None = None,
        column: str = "close",
        **kwargs: Any,
    ) -> np.ndarray:
        """``fn(bars[column], *args, **kwargs)`` over the symbol's whole replay, as an array
        indexed by ``bar.row``. ``fn`` must be causal (row t from rows up to t), as every
        :mod:`workbench.indicators` function is."""
        values = fn(self.history(symbol, full=True)[column], *args, **kwargs)
        return np.asarray(values, dtype=np.float64)

    # -- the account --------------------------------------------------------------------------

    def position(self, symbol: str | None = None) -> float:
        return self._portfolio.positions[symbol or self._symbol(symbol)].quantity

    def equity(self) -> float:
        self._sync()
        return self._portfolio.equity()

    def cash(self, currency: str | None = None) -> float:
        return self._portfolio.cash[currency or self._portfolio.currency]

    # -- orders -------------------------------------------------------------------------------

    def buy(self, symbol: str | None = None, quantity: float = math.nan, **how: Any) -> Order:
        """Buy ``quantity``; ``how``: limit_price, stop_price, trail, type, time_in_force,
        stop_loss, take_profit, reduce_only, tag (see :meth:`OrderManager.submit`)."""
        self._sync()
        return self._orders.submit(
            symbol or self._symbol(symbol), Side.BUY, quantity, **(how and _typed(how))
        )

    def sell(self, symbol: str | None = None, quantity: float = math.nan, **how: Any) -> Order:
        """Sell ``quantity`` (to reduce a long, or open a short where that is allowed)."""
        self._sync()
        return self._orders.submit(
            symbol or self._symbol(symbol), Side.SELL, quantity, **(how and _typed(how))
        )

    def order_target(self, symbol: str | None, target: float, **how: Any) -> Order | None:
        """Trade toward a position worth ``target`` times equity (negative: short), sized at
        the fill price. Returns None when already there."""
        self._sync()
        symbol = self._symbol(symbol)
        if symbol not in self._portfolio.instruments:  # rejected with the reason, as ctx.buy is
            return self._orders.submit(symbol, Side.BUY, target=target, **_typed(how))
        if not math.isfinite(target):
            raise ConfigError(
                f"order_target needs a finite fraction of equity for {symbol}; got {target}."
            )
        price = self._portfolio.last[symbol]
        if math.isnan(price):
            raise ConfigError(f"No price for {symbol} yet; place target orders from on_bar.")
        change = self._orders.target_change(symbol, target, price)
        if change == 0:
            return None
        return self._orders.submit(
            symbol, Side.BUY if change > 0 else Side.SELL, target=target, **_typed(how)
        )

    def close(self, symbol: str | None = None) -> Order | None:
        """Flatten ``symbol`` with a market order."""
        return self.order_target(symbol, 0.0)

    def cancel(self, order: Order | int) -> None:
        self._sync()
        self._orders.cancel(order)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return self._orders.open_orders(symbol)

    # -- machinery ----------------------------------------------------------------------------

    def _symbol(self, symbol: str | None) -> str:
        """The symbol meant: ``None`` is the run's only one. (The order path calls this
        only without a name, ``symbol or self._symbol(symbol)``, saving a call per order.)"""
        if symbol is None:
            if len(self.symbols) != 1:
                raise ConfigError(f"Name the symbol: this run trades {self.symbols}.")
            return self.symbols[0]
        return symbol


def _typed(how: dict[str, Any]) -> dict[str, Any]:
    """Order keywords, with the order type inferred from the prices given."""
    if how and "type" not in how:  # (none given: a market order, the submit default)
        limit, stop = "limit_price" in how, "stop_price" in how
        if "trail" in how:
            how["type"] = OrderType.TRAILING_STOP
        elif limit and stop:
            how["type"] = OrderType.STOP_LIMIT
        elif limit or stop:
            how["type"] = OrderType.LIMIT if limit else OrderType.STOP
    return how
