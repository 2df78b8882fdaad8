"""Orders and fills: the records that pass between a strategy, the risk seam and a venue.

An :class:`Order` is mutable -- a venue fills it in parts, a trailing stop moves its
trigger, an OCO sibling cancels it -- but only the :class:`~workbench.engine.order_manager.
OrderManager` and a venue change it. A :class:`Fill` is an immutable fact.

Times are integer nanoseconds since the epoch (UTC), so the engine's loop never builds a
``pd.Timestamp``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


class TimeInForce(StrEnum):
    GTC = "gtc"  # good till cancelled
    IOC = "ioc"  # immediate or cancel: what fills in the first bar it meets, the rest cancelled
    FOK = "fok"  # fill or kill: all in the first bar it meets, or nothing
    DAY = "day"  # expires at the end of the UTC day it was placed on


class OrderStatus(StrEnum):
    PENDING = "pending"  # held until a parent order fills (a bracket's exits)
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


ORDER_COLUMNS = (
    "id", "symbol", "side", "type", "quantity", "limit_price", "stop_price", "time_in_force",
    "status", "filled", "average_price", "fees", "created", "updated", "tag", "reason",
)  # fmt: skip
"""The columns of ``BacktestResult.orders``, each an :class:`Order` field."""

DONE = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


@dataclass(slots=True, eq=False)
class Order:
    """One order. ``quantity`` is in base units (contracts for derivatives), always > 0;
    ``side`` says the direction. A ``target`` order has no quantity yet: it asks for a
    position worth ``target`` times equity, resolved at the fill price (see
    :meth:`~workbench.engine.portfolio.Portfolio.quantity_for_target`)."""

    id: int
    symbol: str
    side: Side
    type: OrderType
    quantity: float
    created: int
    limit_price: float = math.nan
    stop_price: float = math.nan
    trail: float = math.nan  # trailing distance as a fraction of the best price since placed
    time_in_force: TimeInForce = TimeInForce.GTC
    target: float = math.nan
    reduce_only: bool = False
    tag: str = ""
    parent: int | None = None  # a bracket exit waits for this order to fill
    oco: tuple[int, ...] = ()  # filling this cancels (or shrinks) these
    status: OrderStatus = OrderStatus.OPEN
    arrives: int = 0  # when the venue sees it: created + latency
    bars_met: int = 0  # bars a venue has matched it against
    updated: int = 0
    filled: float = 0.0
    average_price: float = 0.0
    fees: float = 0.0
    triggered: bool = False  # a stop whose trigger price has traded
    anchor: float = math.nan  # a trailing stop's best price since it was placed
    reason: str = ""

    @property
    def remaining(self) -> float:
        return self.quantity - self.filled

    @property
    def is_open(self) -> bool:
        return self.status not in DONE


class Fill(NamedTuple):
    """An execution: ``quantity`` > 0 of ``symbol`` at ``price``, ``fee`` in the quote currency.

    A named tuple: immutable, and a third of the cost of a frozen dataclass to make (one
    is made per fill)."""

    order_id: int
    time: int
    symbol: str
    side: Side
    quantity: float
    price: float
    fee: float
    liquidity: str  # "maker", "taker" or "liquidation"
