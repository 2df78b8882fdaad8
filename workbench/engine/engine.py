"""``Engine``: one event loop for backtests, paper and live trading.

Per bar, in time order across symbols:

1. funding falling due at or before the bar's open is exchanged on open perpetuals;
2. the venue matches the symbol's open orders against the bar;
3. an open perpetual whose liquidation price the bar's mark (or, without mark bars, its
   own) range reaches is liquidated there;
4. the strategy's ``on_bar`` runs at the bar's close; orders it places meet later bars.

A replay does per bar only what the bar needs. The bar handed to the strategy is a view
of its row; the clock, the last prices and each symbol's row are brought up to it only
when something reads them (:meth:`Engine.sync`); the venue is asked only while orders
rest on it. The portfolio records a snapshot only when something changes (a fill,
funding, a liquidation), and the equity curve is rebuilt from those snapshots after the
run, vectorised.
"""

from __future__ import annotations

import gc
import math
import sys
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from workbench.engine.context import Context
from workbench.engine.feed import ReplayFeed
from workbench.engine.orders import Fill, Order, OrderStatus, OrderType, Side
from workbench.engine.order_manager import OrderManager
from workbench.engine.portfolio import Portfolio
from workbench.engine.risk import RiskManager
from workbench.engine.strategy import Bar, BarColumns, EventStrategy
from workbench.errors import ConfigError, DataFormatError, StrategyError, WorkbenchError

_UNHELD = 3 if sys.implementation.name == "cpython" and sys.version_info < (3, 14) else 0
"""``sys.getrefcount`` of a bar only the replay holds (its local, ``Engine.bar`` and the
call's argument). CPython up to 3.13 counts every reference, so that count proves nobody
kept the bar and the replay may refill it for the next one, as ``zip`` refills its tuples;
later interpreters may leave borrowed references uncounted, so there (0) every bar is new."""


class Engine:
    """Runs a strategy over a feed against a portfolio, an order manager and its venue."""

    def __init__(
        self,
        feed: ReplayFeed,
        strategy: EventStrategy,
        orders: OrderManager,
        *,
        funding: Mapping[str, pd.DataFrame] | bool | None = None,
        marks: Mapping[str, pd.DataFrame] | None = None,
        start: int | None = None,
    ) -> None:
        self.feed = feed
        self.start = start if start is not None else -(2**63)  # ns: earlier bars only warm up
        self.strategy = strategy
        self.orders = orders
        self.portfolio: Portfolio = orders.portfolio
        self.venue = orders.venue
        self.risk = orders.risk
        self.rows = dict.fromkeys(feed.symbols, -1)
        self._merged = len(self.rows) > 1
        self._funding = _funding_schedules(feed, self.portfolio, funding)
        self._marks = _mark_ranges(feed, marks or {})
        self._margin = {s for s in feed.symbols if self.portfolio.instruments[s].is_margin}
        self.bar: Bar | None = None  # the bar being handled
        self._synced: Bar | None = None  # the bar the state was last brought up to
        self._event = -1  # the feed's event index of that bar
        self._hears_fills = type(strategy).on_fill is not EventStrategy.on_fill
        if self._hears_fills:
            orders.listeners.append(self._on_fill)
        self.ctx = Context(self)

    def run(self) -> Engine:
        """Replay the feed (trading from ``start``); returns the engine, whose records the
        caller reads."""
        feed = self.feed
        self.begin(int(feed.times[0]))
        first = feed.first_event(self.start)
        if first:  # the warm-up bars: the strategy's indicators saw them, nothing traded
            self._catch_up(first - 1)
        gc.freeze()  # spare the collector re-scanning the replay's lists on every pass
        try:
            if len(feed.symbols) == 1:
                symbol = feed.symbols[0]
                self._replay_one(symbol, range(first, len(feed)), feed.columns[symbol])
            else:
                self._replay(feed.events(first))
        finally:
            gc.unfreeze()
        self.finish(int(feed.times[-1]))
        return self

    def begin(self, first: int) -> None:
        """Start a run whose first bar opens at ``first`` (ns): the strategy's ``on_start``."""
        portfolio = self.portfolio
        portfolio.snapshot(-(2**63))
        self.orders.now = first  # orders placed in on_start are placed at the first bar
        self._call(self.strategy.on_start, at=first)
        portfolio.initial_equity = _initial_equity(portfolio, self.feed)
        if self.risk.watches_equity:  # the peak and the first day start before any bar moves
            self.risk.on_equity(first, portfolio.initial_equity)

    def step(self, bar: Bar) -> None:
        """Handle one closed bar as it arrives (paper and live feeds), as a replay does; the
        state is brought up to the bar at once, since a session reads it between bars."""
        self._replay(((bar.symbol, bar.row, bar._columns),))
        self.sync()

    def finish(self, last: int) -> None:
        """End a run: the strategy's ``on_stop``."""
        self.sync()
        self._call(self.strategy.on_stop, at=last)

    def sync(self) -> None:
        """Bring the clock, the last prices and the rows up to the bar being handled.

        A replay leaves them until something reads them (the strategy through its context,
        the venue, the end of the run), so the bars nobody looks at cost nothing."""
        bar = self.bar
        if bar is self._synced:
            return
        self._synced = bar
        symbol, row = bar.symbol, bar.row
        if self._merged:  # other symbols' bars may have passed too
            event = self.feed.event(symbol, row)
            if event > self._event + 1:
                self._catch_up(event - 1)
            self._event = event
        else:  # one symbol: its rows are the events
            self._event = row
        self.orders.now, self.portfolio.last[symbol] = bar._columns.close_of(row)
        self.rows[symbol] = row

    def _catch_up(self, event: int) -> None:
        """Set each symbol's row and last price as of the feed's event ``event``."""
        feed = self.feed
        if event - self._event <= 2 * len(self.rows):  # a few events: step through them
            passed = [feed.at(e) for e in range(self._event + 1, event + 1)]
        else:  # many: each symbol's latest bar
            passed = [(s, feed.row_at(s, event)) for s in self.rows]
        for symbol, row in passed:
            if row >= 0:
                self.rows[symbol] = row
                self.portfolio.last[symbol] = feed.columns[symbol].close_of(row)[1]
        self._event = event

    def _replay(self, events: Iterable[tuple[str, int, BarColumns]]) -> None:
        ctx, on_bar, books = self.ctx, self.strategy.on_bar, self.venue.books
        before = bool(self._funding or self._margin)  # perpetuals: every bar needs _open
        watch = self.risk if self.risk.watches_equity else None
        new, count = object.__new__, sys.getrefcount
        bar = self.bar
        for symbol, row, columns in events:
            if books or before:  # orders rest on the venue, or perpetuals need their checks
                self._open(symbol, row, columns)
            self._synced = None
            if count(bar) != _UNHELD:  # kept by the strategy (or anyone): it stays as it is
                bar = self.bar = new(Bar)  # Bar(symbol, row, columns) without a Python call
            bar.symbol, bar.row, bar._columns = symbol, row, columns
            try:
                on_bar(ctx, bar)
            except WorkbenchError:
                raise
            except Exception as exc:
                raise self._failed(exc, bar) from exc
            if watch is not None:
                self._watch(watch, bar)

    def _replay_one(self, symbol: str, rows: range, columns: BarColumns) -> None:
        """:meth:`_replay` of one symbol's rows: the same steps, in a loop that only moves
        the bar's row (a quarter less time per bar than unpacking events, in the loop a
        replay spends most of its time in)."""
        ctx, on_bar, books = self.ctx, self.strategy.on_bar, self.venue.books
        before = bool(self._funding or self._margin)
        watch = self.risk if self.risk.watches_equity else None
        count = sys.getrefcount
        bar = None
        for row in rows:
            if books or before:
                self._open(symbol, row, columns)
            self._synced = None
            if count(bar) != _UNHELD:
                bar = self.bar = Bar(symbol, row, columns)
            bar.row = row
            try:
                on_bar(ctx, bar)
            except WorkbenchError:
                raise
            except Exception as exc:
                raise self._failed(exc, bar) from exc
            if watch is not None:
                self._watch(watch, bar)

    def _watch(self, risk: RiskManager, bar: Bar) -> None:
        """Let the risk manager see the equity after ``bar`` (for its halts)."""
        self.sync()
        risk.on_equity(bar.closes, self.portfolio.equity())

    def _open(self, symbol: str, row: int, columns: BarColumns) -> None:
        """What meets a bar before the strategy sees it, on the state as of the bar before:
        funding due by its open, the venue's matching, and the liquidation check."""
        self.sync()
        t, o, h, l, c, v = columns.values(row)
        if symbol in self._funding:
            self._pay_funding(symbol, self._funding[symbol], t, row, o)
        if symbol in self.venue.books:
            self.orders.now = t
            self.venue.on_bar(symbol, t, t + columns.timeframe, o, h, l, v)
        if symbol in self._margin and self.portfolio.positions[symbol].quantity:
            self.portfolio.last[symbol] = c
            self._check_liquidation(symbol, row, self._marks.get(symbol), l, h, t)

    def _failed(self, exc: Exception, bar: Bar) -> StrategyError:
        return StrategyError(
            f"{self.strategy.label} raised {type(exc).__name__} at the {bar.symbol} bar of "
            f"{bar.timestamp}: {exc}"
        )

    # -- events -------------------------------------------------------------------------------

    def _on_fill(self, order: Order, fill: Fill) -> None:
        self._call(self.strategy.on_fill, order, fill, at=fill.time)

    def _pay_funding(
        self, symbol: str, schedule: _Funding, t: int, row: int, bar_open: float
    ) -> None:
        """Exchange the funding due at or before ``t``, at the funding's own mark price, else
        the mark bar's open, else the bar's open."""
        marks = self._marks.get(symbol)
        while schedule.next < len(schedule.times) and schedule.times[schedule.next] <= t:
            k = schedule.next
            schedule.next += 1
            mark = schedule.marks[k]
            if math.isnan(mark):
                mark = (
                    marks[2][row]
                    if marks is not None and not math.isnan(marks[2][row])
                    else bar_open
                )
            if self.portfolio.apply_funding(symbol, schedule.rates[k], mark, schedule.times[k]):
                self.portfolio.snapshot(t)

    def _check_liquidation(
        self, symbol: str, row: int, marks: tuple[list, ...] | None, low: float, high: float, t: int
    ) -> None:
        if marks is not None and not math.isnan(marks[0][row]):
            low, high = marks[0][row], marks[1][row]
        price = self.portfolio.liquidation_price(symbol)
        position = self.portfolio.positions[symbol].quantity
        if math.isnan(price) or (low > price if position > 0 else high < price):
            return
        instrument = self.portfolio.instruments[symbol]
        size = abs(position)
        tier = instrument.tier(size * self.portfolio.positions[symbol].entry_price)
        left = max(size * price * tier.rate - tier.amount, 0.0)  # the margin left at LP
        fee = min(instrument.liquidation_fee * size * price, left)
        for order in self.orders.open_orders(symbol):
            self.orders.cancel(order, "cancelled by the liquidation")
        side = Side.SELL if position > 0 else Side.BUY
        order = self.orders.submit(symbol, side, size, type=OrderType.MARKET, tag="liquidation")
        self.venue.cancel(order)
        order.status, order.filled, order.average_price, order.fees, order.updated = (
            OrderStatus.FILLED,
            size,
            price,
            fee,
            t,
        )
        order.reason = f"liquidated: the mark reached {price:.6g}"
        fill = Fill(order.id, t, symbol, side, size, price, fee, "liquidation")
        self.portfolio.apply(fill)
        if self._hears_fills:
            self._on_fill(order, fill)

    def _call(self, hook: Callable[..., None], *args: object, at: int) -> None:
        """Run a strategy hook; a failure stops the run, naming the hook and the time."""
        try:
            hook(self.ctx, *args)
        except WorkbenchError:
            raise
        except Exception as exc:
            raise StrategyError(
                f"{self.strategy.label}.{hook.__name__} raised {type(exc).__name__} at "
                f"{pd.Timestamp(at, tz='UTC')}: {exc}"
            ) from exc


class _Funding:
    __slots__ = ("times", "rates", "marks", "next")

    def __init__(self, frame: pd.DataFrame) -> None:
        self.times = frame.index.as_unit("ns").asi8.tolist()
        self.rates = frame["funding_rate"].to_numpy(dtype=np.float64).tolist()
        marks = (
            frame["mark_price"] if "mark_price" in frame else pd.Series(np.nan, index=frame.index)
        )
        self.marks = marks.to_numpy(dtype=np.float64).tolist()
        self.next = 0


def _funding_schedules(
    feed: ReplayFeed, portfolio: Portfolio, funding: Mapping[str, pd.DataFrame] | bool | None
) -> dict[str, _Funding]:
    perps = [s for s in feed.symbols if portfolio.instruments[s].is_margin]
    if funding is None:
        if perps:
            raise ConfigError(
                f"{perps} are perpetuals: pass funding={{symbol: rates}} (a frame with a "
                f"funding_rate column, e.g. from MarketStore.funding), or funding=False to "
                f"ignore funding knowingly."
            )
        return {}
    if funding is False:
        return {}
    unknown = set(funding) - set(perps)
    if unknown:
        raise ConfigError(
            f"Funding given for {sorted(unknown)}, which are not perpetuals in this run."
        )
    schedules = {}
    for symbol, frame in funding.items():
        if "funding_rate" not in frame or not isinstance(frame.index, pd.DatetimeIndex):
            raise DataFormatError(
                f"Funding of {symbol} needs a DatetimeIndex and a funding_rate column."
            )
        start = feed.bars[symbol].times[0]
        schedules[symbol] = _Funding(frame[frame.index.as_unit("ns").asi8 > start])
    return schedules


def _mark_ranges(
    feed: ReplayFeed, marks: Mapping[str, pd.DataFrame]
) -> dict[str, tuple[list, list, list]]:
    """Mark-price low, high and open per bar row, NaN where no mark bar has the bar's time
    (mark bars must share the traded bars' timeframe)."""
    ranges = {}
    for symbol, frame in marks.items():
        if symbol not in feed.bars:
            raise ConfigError(f"Mark prices given for {symbol!r}, which is not in the data.")
        bars = feed.bars[symbol]
        aligned = frame.reindex(bars.frame.index)
        ranges[symbol] = tuple(
            aligned[c].to_numpy(dtype=np.float64).tolist() for c in ("low", "high", "open")
        )
    return ranges


def _initial_equity(portfolio: Portfolio, feed: ReplayFeed) -> float:
    for symbol in feed.symbols:
        if math.isnan(portfolio.last[symbol]):
            portfolio.last[symbol] = feed.bars[symbol].frame["open"].iat[0]
    return portfolio.equity()
