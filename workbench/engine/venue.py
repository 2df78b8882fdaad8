"""Venues: where orders go. ``SimulatedVenue`` fills them against bars.

The seam is small -- ``submit``, ``cancel`` and fills reported back through the callbacks
given to ``connect`` -- so a ccxt venue can take the simulated one's place in paper or
live trading while the strategy, risk and order manager stay the same.

How ``SimulatedVenue`` fills an order in a bar (open ``o``, high ``h``, low ``l``; a buy is
described, a sell mirrors it):

- It sees orders that arrived before the bar closed: an order placed at a bar's close
  (the engine calls strategies then) arrives ``latency_ms`` later, so with a latency
  shorter than a bar it meets the next bar from its open. Bars carry no path inside them,
  so a market order fills at the open of the first bar it meets.
- market: at ``o``, plus slippage; taker.
- limit ``L``: at ``o`` if ``o <= L`` (taker if the order was marketable on arrival, maker
  if it had been resting), else at ``L`` if ``l <= L`` (maker).
- stop ``S``: triggers at ``o`` if ``o >= S`` or at ``S`` if ``h >= S``, then fills as a
  market order at that price; stop-limit: triggers the same way and then rests as a limit.
- trailing stop (a sell below the best price): its stop trails the highest high since it
  was placed by ``trail`` (a fraction); it is checked against a bar before that bar's high
  moves it, since the order of the high and the low inside a bar is unknown.
- ``participation`` caps what fills in one bar at that fraction of the bar's volume;
  the rest waits for the next bar (an IOC order is cancelled instead, an FOK order gets
  nothing unless all of it fits).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from workbench.engine.fills import FeeSchedule, SlippageModel, slippage_model
from workbench.engine.orders import Fill, Order, OrderStatus, OrderType, Side, TimeInForce
from workbench.errors import ConfigError

NS_PER_DAY = 86_400 * 10**9

Sizer = Callable[[Order, float, float], tuple[float, str]]
"""``(order, price, fee_rate) -> (quantity, reason)``: what may fill at ``price`` (0 with a
reason when nothing may) -- where target orders get their size and cash caps apply."""


class SimulatedVenue:
    """Fills orders against bars with fees, slippage, latency and volume limits."""

    def __init__(
        self,
        *,
        fees: float | FeeSchedule = 0.0,
        slippage: float | SlippageModel | Mapping[str, SlippageModel] = 0.0,
        latency_ms: float = 0.0,
        participation: float | None = None,
    ) -> None:
        if not (math.isfinite(latency_ms) and latency_ms >= 0):
            raise ConfigError(f"latency_ms must be >= 0; got {latency_ms}.")
        if participation is not None and not 0 < participation <= 1:
            raise ConfigError(f"participation is a fraction of bar volume in (0, 1]; got {participation}.")
        self.fees = FeeSchedule.of(fees)
        self.slippage = slippage
        self.latency = int(latency_ms * 1e6)
        self.participation = participation
        self.books: dict[str, list[Order]] = {}
        self._models: dict[str, SlippageModel] = {}
        self._size: Sizer | None = None
        self._report: Callable[[Order, Fill | None], None] | None = None

    def connect(self, size: Sizer, report: Callable[[Order, Fill | None], None]) -> None:
        """Wire the venue to an order manager: ``size`` resolves quantities at the fill
        price, ``report`` hears every fill (and, with ``None``, every order that ended
        without one)."""
        self._size, self._report = size, report

    def submit(self, order: Order) -> None:
        order.arrives = order.created + self.latency
        self.books.setdefault(order.symbol, []).append(order)

    def cancel(self, order: Order) -> None:
        book = self.books.get(order.symbol)
        if book and order in book:
            book.remove(order)

    def has_orders(self, symbol: str) -> bool:
        return bool(self.books.get(symbol))

    def on_bar(self, symbol: str, opened: int, closes: int, o: float, h: float, l: float, v: float) -> None:
        """Match the symbol's open orders against one bar (times in ns: its open and close)."""
        book = self.books.get(symbol)
        if not book:
            return
        capacity = self.participation * v if self.participation is not None else math.inf
        for order in list(book):
            if order.status is OrderStatus.PENDING or order.arrives >= closes:
                continue
            if order.time_in_force is TimeInForce.DAY and opened // NS_PER_DAY > order.created // NS_PER_DAY:
                self._end(order, OrderStatus.EXPIRED, "day order: the UTC day ended", opened)
                continue
            first = order.bars_met == 0
            order.bars_met += 1
            capacity -= self._match(order, o, h, l, v, capacity, first, opened)
            if order.is_open and first and order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
                self._end(order, OrderStatus.CANCELLED, f"{order.time_in_force.value}: not filled in the first bar", opened)
            if not order.is_open and order in book:
                book.remove(order)

    # -- matching -------------------------------------------------------------------------

    def _match(self, order: Order, o: float, h: float, l: float, v: float, capacity: float, first: bool, time: int) -> float:
        """Fill what the bar allows; returns the quantity filled."""
        buy = order.side is Side.BUY
        kind = order.type
        if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and not order.triggered:
            s = order.stop_price
            if (o >= s) if buy else (o <= s):
                trigger = o
            elif (h >= s) if buy else (l <= s):
                trigger = s
            else:
                return 0.0
            order.triggered = True
            if kind is OrderType.STOP:
                return self._execute(order, trigger, "taker", v, capacity, time)
            limit = order.limit_price
            if (trigger <= limit) if buy else (trigger >= limit):
                return self._execute(order, trigger, "taker", v, capacity, time, limit=limit)
            return 0.0
        if kind is OrderType.MARKET:
            return self._execute(order, o, "taker", v, capacity, time)
        if kind is OrderType.TRAILING_STOP:
            if math.isnan(order.anchor):
                order.anchor = o
            stop = order.anchor * (1 + order.trail) if buy else order.anchor * (1 - order.trail)
            order.stop_price = stop
            order.anchor = min(order.anchor, l) if buy else max(order.anchor, h)
            if (o >= stop) if buy else (o <= stop):
                return self._execute(order, o, "taker", v, capacity, time)
            if (h >= stop) if buy else (l <= stop):
                return self._execute(order, stop, "taker", v, capacity, time)
            return 0.0
        limit = order.limit_price  # a limit, or a triggered stop-limit
        if (o <= limit) if buy else (o >= limit):
            return self._execute(order, o, "taker" if first else "maker", v, capacity, time, limit=limit)
        if (l <= limit) if buy else (h >= limit):
            return self._execute(order, limit, "maker", v, capacity, time, limit=limit)
        return 0.0

    def _execute(
        self, order: Order, price: float, liquidity: str, volume: float, capacity: float, time: int,
        limit: float = math.nan,
    ) -> float:
        rate = self.fees.rate(liquidity)
        wanted, reason = self._size(order, price, rate)
        if wanted <= 0:
            if reason:
                self._end(order, OrderStatus.REJECTED if not order.filled else OrderStatus.CANCELLED, reason, time)
            return 0.0
        if liquidity == "taker":
            model = self._models.get(order.symbol) or self._models.setdefault(
                order.symbol, slippage_model(self.slippage, order.symbol)
            )
            slipped, depth = model.fill(order.side, price, min(wanted, capacity), volume, time)
            if not math.isnan(limit):
                slipped = min(slipped, limit) if order.side is Side.BUY else max(slipped, limit)
            if slipped != price:  # the cash cap at the slipped price
                price = slipped
                wanted, reason = self._size(order, price, rate)
            wanted = min(wanted, depth)
        quantity = min(wanted, capacity)
        if order.time_in_force is TimeInForce.FOK and quantity < wanted:
            self._end(order, OrderStatus.CANCELLED, f"fill or kill: only {quantity:g} of {wanted:g} available", time)
            return 0.0
        if quantity <= 0:
            return 0.0
        fee = abs(quantity * price) * rate
        total = order.filled + quantity
        order.average_price = (order.average_price * order.filled + price * quantity) / total
        order.filled = total
        order.fees += fee
        order.status = OrderStatus.FILLED if quantity >= wanted else OrderStatus.PARTIALLY_FILLED
        order.updated = time
        self._report(order, Fill(order.id, time, order.symbol, order.side, quantity, price, fee, liquidity))
        return quantity

    def _end(self, order: Order, status: OrderStatus, reason: str, time: int) -> None:
        order.status, order.reason, order.updated = status, reason, time
        self._report(order, None)
