"""What the engine must know about a traded symbol: its currencies, kind and margin terms."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from workbench.errors import ConfigError

Kind = Literal["spot", "perpetual"]


@dataclass(frozen=True)
class MarginTier:
    """One maintenance-margin bracket: positions up to ``max_notional`` (quote currency)
    keep ``rate`` of their notional, less ``amount`` (the exchange's "maintenance amount",
    which makes the requirement continuous across brackets)."""

    max_notional: float
    rate: float
    amount: float = 0.0


@dataclass(frozen=True)
class Instrument:
    """A symbol as ccxt spells it: ``BTC/USDT`` (spot) or ``XRP/USDT:USDT`` (a linear
    perpetual settled in USDT). Perpetuals carry maintenance-margin tiers and the exchange's
    liquidation fee (a fraction of the notional, taken from what margin is left)."""

    symbol: str
    base: str
    quote: str
    kind: Kind = "spot"
    lot_size: float = 0.0  # quantities are rounded down to multiples of this; 0: any
    tiers: tuple[MarginTier, ...] = (MarginTier(math.inf, 0.005),)
    liquidation_fee: float = 0.0

    @property
    def settle(self) -> str:
        return self.quote

    @cached_property
    def is_margin(self) -> bool:  # (cached: read on every fill)
        return self.kind == "perpetual"

    def tier(self, notional: float) -> MarginTier:
        """The bracket a position of ``notional`` (quote currency) falls in."""
        for tier in self.tiers:
            if notional <= tier.max_notional:
                return tier
        return self.tiers[-1]

    def round_quantity(self, quantity: float) -> float:
        """``quantity`` rounded toward zero to the lot size."""
        if self.lot_size <= 0:
            return quantity
        return math.copysign(
            math.floor(abs(quantity) / self.lot_size + 1e-9) * self.lot_size, quantity
        )

    @classmethod
    def parse(cls, symbol: str, **terms: Any) -> Instrument:
        """An instrument from its ccxt symbol; ``BASE/QUOTE:SETTLE`` is a perpetual.
        A bare name (``"asset"``, ``"QQQ"``) is a spot instrument quoted in ``USD``."""
        base, _, rest = symbol.partition("/")
        quote, colon, settle = rest.partition(":")
        if not base or ("/" in symbol and not quote):
            raise ConfigError(
                f"Cannot read the symbol {symbol!r}; write it as ccxt does: BTC/USDT or BTC/USDT:USDT."
            )
        if colon:
            if settle != quote:
                raise ConfigError(
                    f"{symbol} is an inverse or quanto contract; only linear perpetuals (settled in "
                    f"the quote currency, e.g. BTC/USDT:USDT) are simulated."
                )
            terms.setdefault("kind", "perpetual")
        return cls(symbol, base, quote or "USD", **terms)

    @classmethod
    def from_ccxt_market(
        cls, market: Mapping[str, Any], tiers: Sequence[MarginTier] | None = None
    ) -> Instrument:
        """An instrument from a ccxt market structure (``exchange.markets[symbol]``).

        Binance lists a flat ``maintMarginPercent`` and ``liquidationFee`` in the market's
        ``info``; pass ``tiers`` (from ``fetch_leverage_tiers``) for the full brackets."""
        info = market.get("info") or {}
        kind: Kind = "perpetual" if market.get("swap") else "spot"
        if tiers is None and "maintMarginPercent" in info:
            tiers = (MarginTier(math.inf, float(info["maintMarginPercent"]) / 100),)
        return cls(
            market["symbol"],
            market["base"],
            market["quote"],
            kind=kind,
            tiers=tuple(tiers) if tiers else cls.tiers,
            liquidation_fee=float(info.get("liquidationFee", 0.0)),
        )
