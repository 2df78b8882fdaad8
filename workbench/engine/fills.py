"""How a simulated venue prices a fill: fees, and the slippage models.

``slippage`` moves the price against the order. Three models: a fixed number of basis
points; a volume-participation model (the square-root law: the price moves by ``impact``
times the square root of the order's share of the bar's volume); and walking the L2 book
recorded nearest before the fill, which also limits the quantity to the depth shown.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from workbench.data.model import OrderBook
from workbench.engine.orders import Side
from workbench.errors import ConfigError


@dataclass(frozen=True)
class FeeSchedule:
    """Fee rates as fractions of the traded value: ``maker`` for resting limit orders that
    fill (negative: a rebate), ``taker`` for everything that takes liquidity (>= 0)."""

    maker: float = 0.0
    taker: float = 0.0

    def __post_init__(self) -> None:
        for name, lowest in (("maker", -0.01), ("taker", 0.0)):
            rate = getattr(self, name)
            if not (math.isfinite(rate) and lowest <= rate < 0.1):
                raise ConfigError(
                    f"The {name} fee {rate} is not a fraction of the traded value; 0.1% is 0.001 "
                    f"(only maker fees may be negative, as rebates down to -1%)."
                )

    @classmethod
    def of(cls, fees: float | FeeSchedule) -> FeeSchedule:
        return fees if isinstance(fees, FeeSchedule) else cls(float(fees), float(fees))

    def rate(self, liquidity: str) -> float:
        return self.maker if liquidity == "maker" else self.taker


class SlippageModel:
    """Prices a taker fill; returns the price and how much of ``quantity`` can fill."""

    def fill(
        self, side: Side, price: float, quantity: float, volume: float, time: int
    ) -> tuple[float, float]:
        raise NotImplementedError


@dataclass(frozen=True)
class FixedSlippage(SlippageModel):
    """The price moves ``bps`` basis points against the order, whatever its size."""

    bps: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bps) and 0 <= self.bps < 10_000):
            raise ConfigError(
                f"Slippage must be between 0 and 10,000 basis points; got {self.bps}."
            )

    def fill(
        self, side: Side, price: float, quantity: float, volume: float, time: int
    ) -> tuple[float, float]:
        return price * (1 + side.sign * self.bps / 1e4), quantity


@dataclass(frozen=True)
class VolumeSlippage(SlippageModel):
    """Square-root impact: the price moves ``impact * sqrt(quantity / bar volume)`` against
    the order (``impact`` 0.1 moves it 1% when the order is 1% of the bar's volume)."""

    impact: float = 0.1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.impact) and self.impact >= 0):
            raise ConfigError(f"VolumeSlippage impact must be a number >= 0; got {self.impact}.")

    def fill(
        self, side: Side, price: float, quantity: float, volume: float, time: int
    ) -> tuple[float, float]:
        share = quantity / volume if volume > 0 else 1.0
        return price * (1 + side.sign * self.impact * math.sqrt(share)), quantity


class BookSlippage(SlippageModel):
    """Walk the L2 book recorded nearest before the fill: the price is the average over
    the levels consumed, and the quantity is limited to the depth shown. The books are of
    one symbol; give a mapping ``{symbol: BookSlippage(books)}`` for several."""

    def __init__(self, books: Sequence[OrderBook]) -> None:
        if not books:
            raise ConfigError("BookSlippage needs at least one order book snapshot.")
        symbols = sorted({b.symbol for b in books})
        if len(symbols) > 1:
            raise ConfigError(
                f"BookSlippage got order books of {symbols}; give one per symbol: "
                f"slippage={{symbol: BookSlippage(books), ...}}."
            )
        self.symbol = symbols[0]
        self.books = sorted(books, key=lambda b: b.timestamp)
        self._times = [b.timestamp.value for b in self.books]

    def fill(
        self, side: Side, price: float, quantity: float, volume: float, time: int
    ) -> tuple[float, float]:
        at = bisect.bisect_right(self._times, time) - 1
        if at < 0:
            raise ConfigError(
                f"No order book at or before {np.datetime64(time, 'ns')}; the first is at "
                f"{self.books[0].timestamp}."
            )
        ladder = self.books[at].asks if side is Side.BUY else self.books[at].bids
        amounts = np.minimum(np.cumsum(ladder[:, 1]), quantity)
        taken = np.diff(amounts, prepend=0.0)
        filled = float(amounts[-1])
        if filled <= 0:
            return price, 0.0
        return float(taken @ ladder[:, 0] / filled), filled


def slippage_model(
    slippage: float | SlippageModel | Mapping[str, SlippageModel], symbol: str
) -> SlippageModel:
    """The model for ``symbol``: a number is fixed basis points; a mapping gives per-symbol models."""
    if isinstance(slippage, SlippageModel):
        return slippage
    if isinstance(slippage, Mapping):
        return slippage_model(slippage.get(symbol, 0.0), symbol)
    try:
        bps = float(slippage)
    except (TypeError, ValueError):
        raise ConfigError(
            f"slippage must be basis points or a SlippageModel; got {type(slippage).__name__} {slippage!r}."
        ) from None
    return FixedSlippage(bps)
