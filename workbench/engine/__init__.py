"""The event-driven core shared by backtests, paper and live trading.

Only three parts change between them: the clock, the feed and the venue. The strategy,
the order manager, the risk seam and the portfolio are the same objects throughout.
"""

from workbench.engine.engine import Engine
from workbench.engine.feed import ReplayFeed
from workbench.engine.fills import (
    BookSlippage,
    FeeSchedule,
    FixedSlippage,
    SlippageModel,
    VolumeSlippage,
)
from workbench.engine.instruments import Instrument, MarginTier
from workbench.engine.order_manager import OrderManager
from workbench.engine.orders import Fill, Order, OrderStatus, OrderType, Side, TimeInForce
from workbench.engine.portfolio import Portfolio, Position
from workbench.engine.risk import Decision, RiskLimits, RiskManager
from workbench.engine.strategy import Bar, EventStrategy, TargetTrader
from workbench.engine.venue import SimulatedVenue

__all__ = [
    "Bar", "BookSlippage", "Decision", "Engine", "EventStrategy", "FeeSchedule", "Fill",
    "FixedSlippage", "Instrument", "MarginTier", "Order", "OrderManager", "OrderStatus",
    "OrderType", "Portfolio", "Position", "ReplayFeed", "RiskLimits", "RiskManager", "Side",
    "SimulatedVenue", "SlippageModel", "TargetTrader", "TimeInForce", "VolumeSlippage",
]  # fmt: skip
