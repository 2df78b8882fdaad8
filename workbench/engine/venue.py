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
- a stop or trailing stop that has triggered is a market order: what a volume cap left
  unfilled fills at the next bar's open.
- Within a bar, orders the open reaches (market orders, limits and stops the open crosses)
  fill first, since the open came first; the others follow in the order they were placed.
- Brackets: the exits of an entry that filled at a bar's open meet the rest of that bar
  (the price moved after the open); an entry filled inside a bar sends its exits to the
  next bar, as what came first inside it is unknown. When the stop-loss and the
  take-profit are both reached inside one bar, the stop-loss is taken to have come first
  (the cautious assumption); when the open reaches one of them, that one fills.
- ``participation`` caps what fills in one bar at that fraction of the bar's volume;
  the rest waits for the next bar (an IOC order is cancelled instead, an FOK order gets
  nothing unless all of it fits).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping

from workbench.engine.fills import FeeSchedule, FixedSlippage, SlippageModel, slippage_model
from workbench.engine.orders import Fill, Order, OrderStatus, OrderType, Side, TimeInForce
from workbench.errors import ConfigError

NS_PER_DAY = 86_400 * 10**9
_LIVE = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)  # (tuples: enum hashing is slow)
_DAY, _IOC, _FOK = TimeInForce.DAY, TimeInForce.IOC, TimeInForce.FOK

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
            raise ConfigError(
                f"participation is a fraction of bar volume in (0, 1]; got {participation}."
            )
        self.fees = FeeSchedule.of(fees)
        self._rates = {"maker": self.fees.maker, "taker": self.fees.taker}  # (no call per fill)
        for model in slippage.values() if isinstance(slippage, Mapping) else (slippage,):
            slippage_model(model, "")  # refuse a bad setting now, not at the first fill
        self.slippage = slippage
        self.latency = int(latency_ms * 1e6)
        self.participation = participation
        self.books: dict[str, list[Order]] = {}
        self._models: dict[str, SlippageModel | None] = {}  # None: no slippage
        self._open = math.nan  # the open of the bar being matched
        self._opened: set[int] = set()  # orders filled at that open
        self._sent = 0  # orders submitted so far (a bar's fills may send a bracket's exits)
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
        self._sent += 1

    def cancel(self, order: Order) -> None:
        book = self.books.get(order.symbol)
        if book and order in book:
            book.remove(order)
            if not book:
                del self.books[order.symbol]  # the engine skips symbols with no book

    def on_bar(
        self, symbol: str, opened: int, closes: int, o: float, h: float, l: float, v: float
    ) -> None:
        """Match the symbol's open orders against one bar (times in ns: its open and close)."""
        book = self.books.get(symbol)
        if not book:
            return
        capacity = self.participation * v if self.participation is not None else math.inf
        live = _LIVE
        # what the open reaches trades first, the rest in the order placed
        batch = _open_first(book, o) if len(book) > 1 else book.copy()
        self._open = o
        at_open = self._opened
        at_open.clear()
        met: Collection[Order] = ()  # the orders that met this bar: each meets it once
        while batch:
            sent = self._sent
            for order in batch:
                if order.status not in live or order.arrives >= closes:
                    continue  # pending, not arrived yet, or ended earlier in this bar (an OCO sibling)
                tif = order.time_in_force
                if tif is _DAY and opened // NS_PER_DAY > order.created // NS_PER_DAY:
                    self._end(order, OrderStatus.EXPIRED, "day order: the UTC day ended", opened)
                    if order in book:
                        book.remove(order)
                    continue
                first = order.bars_met == 0
                order.bars_met += 1
                capacity -= self._match(order, o, h, l, v, capacity, first, opened)
                if first and (tif is _IOC or tif is _FOK) and order.status in live:
                    reason = f"{tif.value}: not filled in the first bar"
                    self._end(order, OrderStatus.CANCELLED, reason, opened)
                if order.status not in live and order in book:
                    book.remove(order)
            if not at_open or self._sent == sent:
                break  # no fill at the open, or it sent no exits: nothing new meets this bar
            # a bracket's exits, sent when its entry filled at the open, meet the rest of the bar
            met = {*met, *batch}
            batch = [x for x in book if x.parent in at_open and x not in met]
        if not book and self.books.get(symbol) is book:
            del self.books[symbol]

    # -- matching -------------------------------------------------------------------------

    def _match(
        self,
        order: Order,
        o: float,
        h: float,
        l: float,
        v: float,
        capacity: float,
        first: bool,
        time: int,
    ) -> float:
        """Fill what the bar allows; returns the quantity filled."""
        kind = order.type
        if kind is OrderType.MARKET or (order.triggered and kind is not OrderType.STOP_LIMIT):
            return self._execute(order, o, "taker", v, capacity, time)  # incl. a stop's rest
        buy = order.side is Side.BUY
        if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and not order.triggered:
            trigger = _triggered_at(buy, order.stop_price, o, h, l)
            if trigger != trigger:  # NaN: not reached
                return 0.0
            order.triggered = True
            if kind is OrderType.STOP:
                return self._execute(order, trigger, "taker", v, capacity, time)
            limit = order.limit_price
            if (trigger <= limit) if buy else (trigger >= limit):
                return self._execute(order, trigger, "taker", v, capacity, time, limit=limit)
            return 0.0
        if kind is OrderType.TRAILING_STOP:
            if math.isnan(order.anchor):
                order.anchor = o
            stop = order.anchor * (1 + order.trail) if buy else order.anchor * (1 - order.trail)
            order.stop_price = stop
            order.anchor = min(order.anchor, l) if buy else max(order.anchor, h)
            trigger = _triggered_at(buy, stop, o, h, l)
            if trigger != trigger:
                return 0.0
            order.triggered = True
            return self._execute(order, trigger, "taker", v, capacity, time)
        limit = order.limit_price  # a limit, or a triggered stop-limit
        if (o <= limit) if buy else (o >= limit):
            return self._execute(
                order, o, "taker" if first else "maker", v, capacity, time, limit=limit
            )
        if (l <= limit) if buy else (h >= limit):
            return self._execute(order, limit, "maker", v, capacity, time, limit=limit)
        return 0.0

    def _execute(
        self,
        order: Order,
        price: float,
        liquidity: str,
        volume: float,
        capacity: float,
        time: int,
        limit: float = math.nan,
    ) -> float:
        at_open = price == self._open  # (before slippage)
        rate = self._rates[liquidity]
        wanted, reason = self._size(order, price, rate)
        if wanted <= 0:
            return self._refuse(order, reason, time)
        available = capacity
        if liquidity == "taker":
            symbol, models = order.symbol, self._models
            model = models[symbol] if symbol in models else self._model(symbol)
            if model is not None:
                slipped, depth = model.fill(order.side, price, min(wanted, capacity), volume, time)
                if not math.isnan(limit):
                    slipped = min(slipped, limit) if order.side is Side.BUY else max(slipped, limit)
                if slipped != price:  # the cash cap at the slipped price
                    price = slipped
                    wanted, reason = self._size(order, price, rate)
                    if wanted <= 0:
                        return self._refuse(order, reason, time)
                available = min(capacity, depth)  # the book's depth limits this fill
        quantity = available if available < wanted else wanted  # (min, without its call cost)
        if order.time_in_force is _FOK and quantity < wanted:
            self._end(
                order,
                OrderStatus.CANCELLED,
                f"fill or kill: only {quantity:g} of {wanted:g} available",
                time,
            )
            return 0.0
        if quantity <= 0:
            return 0.0
        if at_open:
            self._opened.add(order.id)  # its bracket's exits meet the rest of this bar
        fee = abs(quantity * price) * rate
        total = order.filled + quantity
        order.average_price = (order.average_price * order.filled + price * quantity) / total
        order.filled = total
        order.fees += fee
        order.status = OrderStatus.FILLED if quantity >= wanted else OrderStatus.PARTIALLY_FILLED
        order.updated = time
        self._report(
            order, Fill(order.id, time, order.symbol, order.side, quantity, price, fee, liquidity)
        )
        return quantity

    def _refuse(self, order: Order, reason: str, time: int) -> float:
        """Nothing may fill: with a reason the order ends (rejected, or cancelled after a
        partial fill); without one it waits."""
        if reason:
            self._end(
                order,
                OrderStatus.REJECTED if not order.filled else OrderStatus.CANCELLED,
                reason,
                time,
            )
        return 0.0

    def _model(self, symbol: str) -> SlippageModel | None:
        """The symbol's slippage model, kept for its later fills; None for zero basis points,
        which would leave every price and quantity as they are."""
        model = slippage_model(self.slippage, symbol)
        books = getattr(model, "symbol", symbol)
        if books != symbol:
            raise ConfigError(
                f"BookSlippage holds order books of {books}, not of {symbol}; give one per symbol: "
                f"slippage={{symbol: BookSlippage(books), ...}}."
            )
        if type(model) is FixedSlippage and model.bps == 0:
            model = None
        self._models[symbol] = model
        return model

    def _end(self, order: Order, status: OrderStatus, reason: str, time: int) -> None:
        order.status, order.reason, order.updated = status, reason, time
        self._report(order, None)


def _open_first(book: list[Order], o: float) -> list[Order]:
    """The book's orders, those the open ``o`` reaches first (each side in the order placed)."""
    opens = [_at_open(order, o) for order in book]
    if any(opens) and not all(opens):
        return [x for x, f in zip(book, opens) if f] + [x for x, f in zip(book, opens) if not f]
    return list(book)


def _triggered_at(buy: bool, stop: float, o: float, h: float, l: float) -> float:
    """Where a buy (sell) stop at ``stop`` triggers in a bar: at the open when the open is
    already past it, at the stop when the high (low) reaches it; NaN when the bar never does."""
    if (o >= stop) if buy else (o <= stop):
        return o
    if (h >= stop) if buy else (l <= stop):
        return stop
    return math.nan


def _at_open(order: Order, o: float) -> bool:
    """Whether the open ``o`` alone fills (or triggers) ``order``."""
    kind, buy = order.type, order.side is Side.BUY
    if kind is OrderType.MARKET or (order.triggered and kind is not OrderType.STOP_LIMIT):
        return True
    if kind is OrderType.LIMIT or (kind is OrderType.STOP_LIMIT and order.triggered):
        price = order.limit_price
    elif kind is OrderType.TRAILING_STOP:
        if math.isnan(order.anchor):
            return False
        price = order.anchor * (1 + order.trail) if buy else order.anchor * (1 - order.trail)
        return o >= price if buy else o <= price
    else:
        price = order.stop_price
        return o >= price if buy else o <= price
    return o <= price if buy else o >= price
