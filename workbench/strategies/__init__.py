"""Strategies: bars in, signals or target positions out, with the reasons in words.

::

    from workbench.strategies import MovingAverageCross
    strategy = MovingAverageCross(kind="ema", fast=12, slow=48, long_only=True)
    strategy.signals(bars)             # direction, strength, reason per bar
    strategy.target(bars)              # target position per bar, in [-1, 1]
    strategy.events(bars, "BTC/USDT")  # Signals where the position changes
    pn.Param(strategy)                 # its controls, from its bounded parameters

Every built-in reads :mod:`workbench.indicators`, states its rule in its docstring and
never looks ahead: the row of bar t uses bars up to t only, for an engine acting at t+1.
:data:`BUILTIN_STRATEGIES` lists them by name for pickers in a UI.
"""

from workbench.strategies.base import TRANSITIONS, Inputs, Strategy
from workbench.strategies.bollinger import BollingerBreakout, BollingerReversion
from workbench.strategies.donchian import DonchianBreakout
from workbench.strategies.grid import Grid
from workbench.strategies.macd import MacdTrend
from workbench.strategies.moving_average import MovingAverageCross
from workbench.strategies.rsi import RsiReversion

BUILTIN_STRATEGIES: dict[str, type[Strategy]] = {
    cls.__name__: cls
    for cls in (
        MovingAverageCross,
        RsiReversion,
        MacdTrend,
        BollingerBreakout,
        BollingerReversion,
        DonchianBreakout,
        Grid,
    )
}

__all__ = [
    "BUILTIN_STRATEGIES",
    "TRANSITIONS",
    "BollingerBreakout",
    "BollingerReversion",
    "DonchianBreakout",
    "Grid",
    "Inputs",
    "MacdTrend",
    "MovingAverageCross",
    "RsiReversion",
    "Strategy",
]
