"""The risk seam: every order passes ``RiskManager.check`` before it reaches a venue.

A check approves, resizes or rejects, always with reasons, and every decision is kept
(``RiskManager.decisions``) so a run can show why an order was smaller than asked or
never placed. These are the basic limits; richer risk (VaR, sizing models, circuit
breakers across accounts) plugs in by subclassing and overriding ``check``.

Halts: past ``max_drawdown`` from the equity peak, or ``daily_loss_limit`` below the UTC
day's starting equity, orders that would add exposure are rejected (orders that only
reduce a position still pass). The drawdown halt lasts for the rest of the run (a daily
halt in force does not hide it); the daily one until the next UTC day. A check judges by
the equity at the time of the order, so an order placed at the close of the bar that
breached a limit is already refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from workbench.errors import ConfigError

NS_PER_DAY = 86_400 * 10**9

Action = Literal["approve", "resize", "reject"]


@dataclass(frozen=True)
class RiskLimits:
    """Limits per symbol (a number for all, or a mapping by symbol) and for the account.

    ``max_position``: base units; ``max_notional``: account currency; ``max_leverage``:
    gross exposure over equity; ``daily_loss_limit`` and ``max_drawdown``: fractions
    (0.05 = 5 %).
    """

    max_position: float | Mapping[str, float] | None = None
    max_notional: float | Mapping[str, float] | None = None
    max_leverage: float | None = None
    daily_loss_limit: float | None = None
    max_drawdown: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_leverage", "daily_loss_limit", "max_drawdown"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"Risk limit {name} must be a positive number; got {value}.")
        for name in ("max_position", "max_notional"):
            value = getattr(self, name)
            values = value.values() if isinstance(value, Mapping) else [value]
            if any(v is not None and not (math.isfinite(v) and v >= 0) for v in values):
                raise ConfigError(f"Risk limit {name} must be >= 0; got {value}.")

    def for_symbol(self, name: str, symbol: str) -> float:
        value = getattr(self, name)
        if isinstance(value, Mapping):
            value = value.get(symbol)
        return math.inf if value is None else float(value)


@dataclass(frozen=True)
class Decision:
    """What the risk seam made of an order: the quantity it may have, and why."""

    action: Action
    quantity: float
    reasons: tuple[str, ...] = ()


class RiskManager:
    """Basic pre-trade limits and equity halts; see the module docstring."""

    def __init__(self, limits: RiskLimits | None = None) -> None:
        self.limits = limits or RiskLimits()
        self.decisions: list[
            tuple[int, int, str, float, str]
        ] = []  # time, order id, action, quantity, reasons
        self.halted: str = ""
        self.limited = any(v is not None for v in vars(self.limits).values())
        """Whether any limit is set (without one, every order is approved as it is)."""
        self._peak = -math.inf
        self._day = -1
        self._day_start = math.nan

    @property
    def watches_equity(self) -> bool:
        """Whether the engine must value equity after every bar for this manager."""
        return self.limits.max_drawdown is not None or self.limits.daily_loss_limit is not None

    def on_equity(self, time: int, equity: float) -> None:
        """Update the halts from the equity after a bar closing at ``time`` (ns)."""
        day = time // NS_PER_DAY
        if day != self._day:
            self._day, self._day_start = day, equity
            if self.halted.startswith("daily"):
                self.halted = ""
        self._peak = max(self._peak, equity)
        limits = self.limits
        if (
            limits.max_drawdown is not None
            and equity < self._peak * (1 - limits.max_drawdown)
            and not self.halted.startswith("drawdown")
        ):
            self.halted = (
                f"drawdown halt: equity {equity:.6g} is more than {limits.max_drawdown:.1%} below "
                f"its peak {self._peak:.6g}"
            )
        if (
            limits.daily_loss_limit is not None
            and not self.halted
            and equity < self._day_start * (1 - limits.daily_loss_limit)
        ):
            self.halted = (
                f"daily loss halt: equity {equity:.6g} is more than {limits.daily_loss_limit:.1%} "
                f"below the day's start {self._day_start:.6g}"
            )

    def check(
        self,
        *,
        time: int,
        order_id: int,
        symbol: str,
        position: float,
        change: float,
        price: float,
        rate: float,
        equity: float,
        gross: float,
    ) -> Decision:
        """Judge a change of ``change`` units (signed) to ``position`` in ``symbol`` at
        ``price`` (quote currency; ``rate`` converts to the account currency), given the
        account's ``equity`` and ``gross`` exposure."""
        if self.watches_equity:
            self.on_equity(time, equity)  # the halts as of now, not as of the last bar's close
        decision = self._judge(symbol, position, change, price * rate, equity, gross)
        self.decisions.append(
            (time, order_id, decision.action, decision.quantity, "; ".join(decision.reasons))
        )
        return decision

    def _judge(
        self, symbol: str, position: float, change: float, price: float, equity: float, gross: float
    ) -> Decision:
        after = position + change
        if abs(after) <= abs(position) and after * position >= 0:
            return Decision("approve", abs(change), ("reduces the position",))
        if self.halted:
            return Decision("reject", 0.0, (self.halted,))
        limits, reasons = self.limits, []
        cap = limits.for_symbol("max_position", symbol)
        cap = min(cap, limits.for_symbol("max_notional", symbol) / price if price > 0 else math.inf)
        if limits.max_leverage is not None and equity > 0:
            room = limits.max_leverage * equity - (gross - abs(position) * price)
            cap = min(cap, max(room, 0.0) / price)
            lev = f"leverage {limits.max_leverage:g}x"
        else:
            lev = ""
        if abs(after) <= cap:
            return Decision("approve", abs(change), ("within limits",))
        allowed = max(cap - abs(position), 0.0) if after * position >= 0 else cap + abs(position)
        limited = [n for n in ("max_position", "max_notional") if getattr(limits, n) is not None]
        reasons.append(
            f"{symbol}: a position of {abs(after):.6g} would exceed the cap of {cap:.6g} units "
            f"({', '.join(limited + ([lev] if lev else []))})"
        )
        if allowed <= 0:
            return Decision("reject", 0.0, tuple(reasons))
        return Decision("resize", allowed, tuple(reasons))
