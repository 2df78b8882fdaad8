"""``OrderManager``: the one way orders are made, checked, sent, filled and linked.

It gives every order an id, refuses what cannot be valid (unknown symbol, a limit order
without a price, a negative quantity), passes the rest through the risk seam, hands it to
the venue, books fills in the portfolio and keeps the links between orders: a bracket's
stop-loss and take-profit wait for the entry to fill, then cancel each other (OCO). Exits
already covering part of an entry stay when the rest of the entry is cancelled or expires.

Target orders (``target=0.5``: hold half of equity) are sized when they fill, at the
fill price, so "all in" means exactly what the cash allows after fees.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import count

from workbench.engine.orders import Fill, Order, OrderStatus, OrderType, Side, TimeInForce
from workbench.engine.portfolio import Portfolio
from workbench.engine.risk import RiskManager
from workbench.engine.venue import SimulatedVenue
from workbench.errors import ConfigError

_NEEDS = {
    OrderType.LIMIT: ("limit_price",),
    OrderType.STOP: ("stop_price",),
    OrderType.STOP_LIMIT: ("stop_price", "limit_price"),
    OrderType.TRAILING_STOP: ("trail",),
}


class OrderManager:
    """Creates orders, applies risk, routes them to the venue and books what fills."""

    def __init__(
        self,
        portfolio: Portfolio,
        venue: SimulatedVenue,
        risk: RiskManager | None = None,
        *,
        leverage: float = 1.0,
    ) -> None:
        if not (math.isfinite(leverage) and leverage >= 1):
            raise ConfigError(f"leverage must be >= 1; got {leverage}.")
        self.portfolio = portfolio
        self.venue = venue
        self.risk = risk or RiskManager()
        self.leverage = leverage
        self.orders: dict[int, Order] = {}
        self.listeners: list[Callable[[Order, Fill], None]] = []
        self.now = 0  # set by the engine: the time new orders are placed at (ns)
        self._kids: dict[int, list[Order]] = {}  # a bracket entry's exit orders
        self._caps: dict[int, float] = {}  # target orders the risk seam resized: most they may fill
        self._unchecked: set[int] = set()  # placed before any price: risk-checked when they fill
        self._ids = count(1)
        venue.connect(self._size, self._report)

    # -- the API strategies reach through their context -------------------------------------

    def submit(
        self,
        symbol: str,
        side: Side | str,
        quantity: float = math.nan,
        *,
        type: OrderType | str = OrderType.MARKET,
        limit_price: float = math.nan,
        stop_price: float = math.nan,
        trail: float = math.nan,
        time_in_force: TimeInForce | str = TimeInForce.GTC,
        target: float = math.nan,
        reduce_only: bool = False,
        stop_loss: float = math.nan,
        take_profit: float = math.nan,
        tag: str = "",
    ) -> Order:
        """Place an order; returns it (status ``rejected`` with a ``reason`` if refused).

        ``stop_loss`` / ``take_profit`` (prices) make a bracket: exit orders for what the
        entry fills, cancelling each other when one fills.
        """
        order = Order(  # (positional: keywords would cost a third more)
            next(self._ids),
            symbol,
            side if side.__class__ is Side else Side(side),
            type if type.__class__ is OrderType else OrderType(type),
            float(quantity),
            self.now,
            float(limit_price),
            float(stop_price),
            float(trail),
            time_in_force if time_in_force.__class__ is TimeInForce else TimeInForce(time_in_force),
            float(target),
            reduce_only,
            tag,
        )
        self.orders[order.id] = order
        bracket = stop_loss == stop_loss or take_profit == take_profit  # either is not NaN
        problem = self._invalid(order) or (
            _bad_bracket(order.side, stop_loss, take_profit) if bracket else ""
        )
        if problem:
            return self._reject(order, problem)
        if not self.risk.limited:  # approved as it is (and recorded, as every decision is)
            self.risk.decisions.append(
                (self.now, order.id, "approve", order.quantity, "no limits set")
            )
        elif not self._approve(order):
            return order
        exits = self._bracket(order, stop_loss, take_profit) if bracket else ()
        self.venue.submit(order)
        for child in exits:
            self.orders[child.id] = child
        if exits:
            self._kids[order.id] = exits
        return order

    def cancel(self, order: Order | int, reason: str = "cancelled by the strategy") -> None:
        order = self.orders[order] if isinstance(order, int) else order
        if order.is_open:
            self.venue.cancel(order)
            order.status, order.reason, order.updated = OrderStatus.CANCELLED, reason, self.now
            for child in self._children(order):
                if (
                    child.status is OrderStatus.PENDING
                ):  # exits of a filled part stay, to protect it
                    self.cancel(child, f"parent order {order.id} cancelled")

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [
            o for o in self.orders.values() if o.is_open and (symbol is None or o.symbol == symbol)
        ]

    # -- checks -------------------------------------------------------------------------------

    def _invalid(self, order: Order) -> str:
        if order.symbol not in self.portfolio.instruments:
            return f"unknown symbol {order.symbol!r}; this run trades {sorted(self.portfolio.instruments)}"
        if order.type is not OrderType.MARKET:
            for name in _NEEDS[order.type]:
                value = getattr(order, name)
                if not 0 < value < math.inf:  # (False for NaN)
                    return f"a {order.type.value} order needs a positive {name}; got {value}"
        target = order.target
        if target != target:  # NaN: an order by quantity
            if not 0 < order.quantity < math.inf:
                return f"quantity must be a positive number; got {order.quantity}"
        elif not math.isfinite(target):
            return f"target must be a finite fraction of equity; got {target}"
        return ""

    def _approve(self, order: Order) -> bool:
        """The pre-trade risk check against the limits, on the last price; a resize
        shrinks the order."""
        price = self.portfolio.last[order.symbol]
        if math.isnan(price):
            self._unchecked.add(order.id)  # no price yet (on_start): checked when it fills
            return True
        refused = self._check(order, price)
        if refused:
            self._reject(order, refused)
            return False
        return True

    def _check(self, order: Order, price: float) -> str:
        """Pass ``order`` through the risk seam at ``price``; a resize shrinks it (a target
        order gets a cap on what it may fill). Returns the reasons of a rejection, or ""."""
        p = self.portfolio
        change = self._change(order, price)
        if change == 0.0:
            return ""
        decision = self.risk.check(
            time=self.now,
            order_id=order.id,
            symbol=order.symbol,
            position=p.position(order.symbol),
            change=change,
            price=price,
            rate=p.rate(p.instruments[order.symbol].quote),
            equity=p.equity(),
            gross=p.gross_exposure(),
        )
        if decision.action == "reject":
            return "; ".join(decision.reasons)
        if decision.action == "resize":
            if math.isnan(order.target):
                order.quantity = order.filled + decision.quantity
            else:
                self._caps[order.id] = decision.quantity
            order.reason = "resized: " + "; ".join(decision.reasons)
        return ""

    def _change(self, order: Order, price: float) -> float:
        """The signed position change the order asks for at ``price``."""
        if math.isnan(order.target):
            return order.side.sign * order.remaining
        return self.target_change(order.symbol, order.target, price)

    def target_change(self, symbol: str, target: float, price: float) -> float:
        """The signed change that makes ``symbol``'s position worth ``target`` x equity at ``price``."""
        p = self.portfolio
        held = p.position(symbol)
        if not target:
            return -held
        saved, p.last[symbol] = p.last[symbol], price
        try:
            equity = p.equity()
        finally:
            p.last[symbol] = saved
        instrument = p.instruments[symbol]
        wanted = target * equity / (price * p.rate(instrument.quote))
        return instrument.round_quantity(wanted - held)

    # -- sizing at the fill (called by the venue) ----------------------------------------------

    def _size(self, order: Order, price: float, fee_rate: float) -> tuple[float, str]:
        p = self.portfolio
        if order.id in self._unchecked:
            self._unchecked.discard(order.id)
            refused = self._check(order, price)
            if refused:
                return 0.0, refused
        instrument = p.instruments[order.symbol]
        held = p.positions[order.symbol].quantity
        sign = 1 if order.side is Side.BUY else -1
        by_target = not math.isnan(order.target)
        if by_target:
            change = self.target_change(order.symbol, order.target, price)
            if change * sign <= 0:
                return 0.0, "already at the target"
            quantity = min(abs(change), self._caps.get(order.id, math.inf) - order.filled)
            if quantity <= 0:
                return 0.0, "the risk limit's cap is filled"
        else:
            quantity = order.quantity - order.filled
        if order.reduce_only:
            if held * sign >= 0:
                return 0.0, "reduce-only: no position left to reduce"
            quantity = min(quantity, abs(held))
        if instrument.is_margin or (sign < 0 and self.leverage > 1):  # incl. spot shorts on margin
            after = abs(held + sign * quantity)
            room = (p.equity() * self.leverage) / price
            if after > abs(held) and after > room:
                if not by_target:
                    return (
                        0.0,
                        f"insufficient margin: {after:.6g} {instrument.base} needs more than {self.leverage:g}x equity",
                    )
                quantity = max(room - abs(held), 0.0) if held * sign >= 0 else abs(held) + room
        elif sign > 0:
            cash = p.cash[instrument.quote]
            afford = (0.0 if cash < 0.0 else cash) / (price * (1 + fee_rate))
            if quantity > afford:
                if not by_target:
                    return 0.0, (
                        f"insufficient {instrument.quote}: {quantity:.6g} {order.symbol} at {price:.6g} "
                        f"costs {quantity * price * (1 + fee_rate):.6g}, cash is {cash:.6g}"
                    )
                quantity = instrument.round_quantity(afford)
                while quantity > 0 and quantity * price + abs(quantity * price) * fee_rate > cash:
                    quantity = math.nextafter(quantity, 0.0)  # rounding must not leave cash < 0
        elif held - quantity < -1e-12 * quantity and self.leverage <= 1:
            no_short = (
                f"cannot sell {quantity:.6g} {instrument.base}: {held:.6g} held, and short selling "
                f"spot needs a margin account (leverage > 1)"
            )
            if not by_target or held <= 0:
                return 0.0, no_short
            quantity = held  # a target order goes as far as it can: flat
            order.reason = f"stopped at flat: {no_short}"
        if by_target:
            order.quantity = order.filled + quantity
        return quantity, ""

    def _report(self, order: Order, fill: Fill | None) -> None:
        linked = order.id in self._kids or order.oco  # (most orders have no links)
        if fill is None:
            if linked:
                self._ended(order)
            return
        self.portfolio.apply(fill)
        if linked:
            self._filled(order, fill)
        for listener in self.listeners:
            listener(order, fill)

    def _ended(self, order: Order) -> None:
        """An order ended unfilled: its pending exits go, and an exit the venue ended
        (nothing left to reduce) takes its OCO sibling with it."""
        for child in self._children(order):
            if child.status is OrderStatus.PENDING:  # exits of a filled part stay, to protect it
                self.cancel(child, f"parent order {order.id} {order.status.value}")
        for sibling_id in order.oco:
            self.cancel(self.orders[sibling_id], f"OCO: order {order.id} {order.status.value}")

    def _filled(self, order: Order, fill: Fill) -> None:
        """An order filled (in part): its exits cover what it filled, its OCO siblings go
        (or shrink by what filled)."""
        for child in self._children(order):
            child.quantity = order.filled
            if child.status is OrderStatus.PENDING:
                child.status, child.created = OrderStatus.OPEN, fill.time
                self.venue.submit(child)
        for sibling_id in order.oco:
            sibling = self.orders[sibling_id]
            if order.status is OrderStatus.FILLED:
                self.cancel(sibling, f"OCO: order {order.id} filled")
            elif sibling.is_open:
                sibling.quantity = max(sibling.quantity - fill.quantity, sibling.filled)

    # -- links --------------------------------------------------------------------------------

    def _bracket(self, entry: Order, stop_loss: float, take_profit: float) -> list[Order]:
        """The exits of an entry given a stop-loss or a take-profit price (or both)."""
        exit_side = Side.SELL if entry.side is Side.BUY else Side.BUY
        legs = [
            (OrderType.STOP, {"stop_price": stop_loss}, "stop_loss"),
            (OrderType.LIMIT, {"limit_price": take_profit}, "take_profit"),
        ]
        children = [
            Order(
                next(self._ids),
                entry.symbol,
                exit_side,
                kind,
                0.0,
                self.now,
                reduce_only=True,
                parent=entry.id,
                status=OrderStatus.PENDING,
                tag=tag,
                **prices,
            )
            for kind, prices, tag in legs
            if math.isfinite(next(iter(prices.values())))
        ]
        for child in children:
            child.oco = tuple([c.id for c in children if c is not child])
        return children

    def _children(self, order: Order) -> list[Order]:
        return [o for o in self._kids.get(order.id, ()) if o.is_open]

    def _reject(self, order: Order, reason: str) -> Order:
        order.status, order.reason, order.updated = OrderStatus.REJECTED, reason, self.now
        return order


def _bad_bracket(side: Side, stop_loss: float, take_profit: float) -> str:
    """Why a bracket's exit prices cannot be right ("" when they can)."""
    for name, price in (("stop_loss", stop_loss), ("take_profit", take_profit)):
        if not math.isnan(price) and not (math.isfinite(price) and price > 0):
            return f"a bracket's {name} must be a positive price; got {price}"
    if side is Side.BUY and stop_loss >= take_profit:
        return f"a buy's stop_loss ({stop_loss:g}) must be below its take_profit ({take_profit:g})"
    if side is Side.SELL and stop_loss <= take_profit:
        return f"a sell's stop_loss ({stop_loss:g}) must be above its take_profit ({take_profit:g})"
    return ""
