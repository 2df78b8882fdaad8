"""``Portfolio``: cash per currency, positions per symbol, P&L, margin, funding, liquidation.

Spot positions hold the base asset, bought with quote-currency cash. Linear perpetuals
(``XRP/USDT:USDT``) hold contracts: only fees, realised P&L and funding move cash, and the
open position adds its unrealised P&L to equity. Equity is reported in one account
currency; other currencies convert at the last price of a symbol pairing them with it
(``BTC`` in a ``USDT`` account through ``BTC/USDT``).

Perpetuals are on cross margin, as Binance computes it: a position is liquidated when its
mark price reaches

    LP = (WB - TMM + UPNL + cum - side * Q * EP) / (Q * MMR - side * Q)

where WB is the settlement currency's wallet balance, TMM and UPNL the maintenance margin
and unrealised P&L of the account's *other* perpetuals, Q the position size, EP its entry
price, side +1 long / -1 short, and MMR, cum the rate and maintenance amount of the
position's bracket. The position closes at LP; the liquidation fee (a fraction of the
notional) is charged from what margin is left, never more.

Every change is recorded as a snapshot so the equity curve can be rebuilt vectorised
after a run, instead of being valued on every bar inside the loop.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from workbench.engine.instruments import Instrument
from workbench.engine.ledger import FillLog
from workbench.engine.orders import Fill, Side
from workbench.errors import ConfigError


@dataclass(slots=True)
class Position:
    """Signed ``quantity`` (> 0 long) at the average ``entry_price``, with what it earned."""

    symbol: str
    quantity: float = 0.0
    entry_price: float = 0.0
    realised: float = 0.0
    fees: float = 0.0
    funding: float = 0.0


class Snapshots:
    """The account after each change, field by field in flat typed arrays: ``times`` (ns),
    then per snapshot a value per currency (``cash``) and per symbol (``quantity``, and
    ``basis``, the entry value of perpetuals). A long run records tens of thousands;
    as tuples they would scatter over memory and take longer to read back than to make."""

    __slots__ = ("times", "cash", "quantity", "basis", "_widths")

    def __init__(self, currencies: int, symbols: int) -> None:
        self.times = array("q")
        self.cash, self.quantity, self.basis = array("d"), array("d"), array("d")
        self._widths = (currencies, symbols)

    def drop_last(self) -> None:
        """Forget the last snapshot (a later one at the same time replaces it)."""
        currencies, symbols = self._widths
        del self.times[-1], self.cash[-currencies:], self.quantity[-symbols:]
        if self.basis:
            del self.basis[-symbols:]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Copies as numpy arrays: times, cash (snapshots x currencies), quantity and basis
        (snapshots x symbols; basis None without perpetuals). Copies, since a live
        portfolio goes on recording."""
        currencies, symbols = self._widths
        return (
            np.array(self.times, dtype=np.int64),
            np.array(self.cash, dtype=np.float64).reshape(-1, currencies),
            np.array(self.quantity, dtype=np.float64).reshape(-1, symbols),
            np.array(self.basis, dtype=np.float64).reshape(-1, symbols) if self.basis else None,
        )


FUNDING_FIELDS = ("time", "symbol", "rate", "mark_price", "quantity", "payment")


class Portfolio:
    """Cash, positions and their history. The engine feeds it fills, prices and funding;
    strategies read it through their context."""

    def __init__(
        self,
        cash: float | Mapping[str, float],
        instruments: Mapping[str, Instrument],
        *,
        currency: str | None = None,
    ) -> None:
        if not instruments:
            raise ConfigError("A portfolio needs at least one instrument.")
        self.instruments = dict(instruments)
        first = next(iter(self.instruments.values()))
        self.currency = currency or first.quote
        balances = {self.currency: float(cash)} if isinstance(cash, int | float) else dict(cash)
        for name, amount in balances.items():
            if not math.isfinite(amount) or amount < 0:
                raise ConfigError(
                    f"Starting cash must be a finite amount >= 0; got {name} {amount}."
                )
        if sum(balances.values()) <= 0:
            raise ConfigError(
                "Starting cash must be positive: a portfolio with nothing cannot trade."
            )
        currencies = set(balances) | {i.quote for i in self.instruments.values()}
        self.cash: dict[str, float] = {c: float(balances.get(c, 0.0)) for c in sorted(currencies)}
        self._pairs = {c: self._pair_for(c) for c in self.cash}
        self.positions: dict[str, Position] = {s: Position(s) for s in self.instruments}
        self.last: dict[str, float] = dict.fromkeys(self.instruments, math.nan)
        self.funding: list[tuple] = []  # FUNDING_FIELDS
        self.fills: list[Fill] = []
        self.fill_log = FillLog()  # fills and funding as numbers, paired into trades after a run
        self.symbols = list(self.instruments)
        self._codes = {s: k for k, s in enumerate(self.symbols)}
        self.snapshots = Snapshots(len(self.cash), len(self.positions))
        self.initial_equity = math.nan
        self._one_currency = list(self.cash) == [self.currency]
        self._margin = {s: i.is_margin for s, i in self.instruments.items()}
        self._held = list(self.positions.values())
        self._balances = self.cash.values()  # (a live view)
        self._margin_list = list(self._margin.values())
        self._perpetuals = any(self._margin_list)  # else every snapshot's basis is zeros

    # -- reading ------------------------------------------------------------------------------

    def position(self, symbol: str) -> float:
        return self.positions[symbol].quantity

    def rate(self, currency: str) -> float:
        """How many account-currency units one unit of ``currency`` is worth, at last prices."""
        pair = self._pairs[currency]
        if pair is None:
            return 1.0
        symbol, inverse = pair
        price = self.last[symbol]
        return 1.0 / price if inverse else price

    def value(self, symbol: str) -> float:
        """What the position adds to equity in its quote currency: the holding for spot, the
        unrealised P&L for a perpetual."""
        p = self.positions[symbol]
        last = self.last[symbol]
        if self.instruments[symbol].is_margin:
            return p.quantity * (last - p.entry_price)
        return p.quantity * last

    def equity(self) -> float:
        """Everything marked at last prices, in the account currency."""
        if self._one_currency:
            total = self.cash[self.currency]
            for symbol, p in self.positions.items():
                if p.quantity:
                    last = self.last[symbol]
                    total += p.quantity * (last - p.entry_price if self._margin[symbol] else last)
            return total
        total = sum(amount * self.rate(c) for c, amount in self.cash.items() if amount)
        for symbol, p in self.positions.items():
            if p.quantity:
                total += self.value(symbol) * self.rate(self.instruments[symbol].quote)
        return total

    def gross_exposure(self) -> float:
        """Sum of |position notional| in the account currency."""
        return sum(
            abs(p.quantity * self.last[s]) * self.rate(self.instruments[s].quote)
            for s, p in self.positions.items()
            if p.quantity
        )

    # -- changing -----------------------------------------------------------------------------

    def apply(self, fill: Fill) -> None:
        """Book a fill: cash, position, average entry, realised P&L, the fill's numbers
        (for the trades, paired after the run) and a snapshot."""
        _, time, symbol, side, quantity, price, fee, _ = fill
        instrument = self.instruments[symbol]
        p = self.positions[symbol]
        signed = quantity if side is Side.BUY else -quantity
        old = p.quantity
        new = old + signed
        size, held = abs(signed), abs(old)  # (conditionals below: min and max cost 5x more)
        if old * signed < 0:  # closes some or all of the position
            closing = held if held < size else size
            realised = math.copysign(closing, old) * (price - p.entry_price)
        else:
            realised = 0.0
        if instrument.is_margin:
            self.cash[instrument.quote] += realised - fee
        else:
            self.cash[instrument.quote] -= signed * price + fee
        if abs(new) < 1e-12 * (size if size > held else held):
            new = 0.0
        if new == 0.0:
            p.entry_price = 0.0
        elif old * new <= 0:  # opened, or reversed through zero
            p.entry_price = price
        elif abs(new) > held:  # added to the position
            p.entry_price = (old * p.entry_price + signed * price) / new
        p.quantity = new
        p.realised += realised
        p.fees += fee
        self.fills.append(fill)
        log = self.fill_log
        log.times.append(time)
        log.symbols.append(self._codes[symbol])
        log.quantities.append(signed)
        log.prices.append(price)
        log.fees.append(fee)
        self.snapshot(time)

    def apply_funding(self, symbol: str, rate: float, mark_price: float, time: int) -> float:
        """Exchange funding on an open perpetual: longs pay shorts when ``rate`` > 0.
        Returns the payment received (negative when paid)."""
        p = self.positions[symbol]
        if not p.quantity:
            return 0.0
        payment = -p.quantity * mark_price * rate
        self.cash[self.instruments[symbol].quote] += payment
        p.funding += payment
        self.funding.append((time, symbol, rate, mark_price, p.quantity, payment))
        self.fill_log.pay(self._codes[symbol], payment)
        return payment

    def liquidation_price(self, symbol: str) -> float:
        """The mark price at which the perpetual ``symbol`` is liquidated (NaN: never)."""
        instrument = self.instruments[symbol]
        p = self.positions[symbol]
        if not instrument.is_margin or not p.quantity:
            return math.nan
        side = 1.0 if p.quantity > 0 else -1.0
        size = abs(p.quantity)
        others_margin = others_pnl = 0.0
        for s, other in self.positions.items():
            if (
                s != symbol
                and other.quantity
                and self.instruments[s].is_margin
                and self.instruments[s].quote == instrument.quote
            ):
                others_margin += self._maintenance(s, self.last[s])
                others_pnl += self.value(s)
        tier = instrument.tier(size * p.entry_price)
        wallet = self.cash[instrument.quote]
        numerator = wallet - others_margin + others_pnl + tier.amount - side * size * p.entry_price
        price = numerator / (size * tier.rate - side * size)
        return price if price > 0 else math.nan

    def snapshot(self, time: int) -> None:
        """Record the state after a change at ``time`` (ns): cash per currency, quantity per
        symbol, and with perpetuals per symbol the entry value a perpetual's P&L is
        measured from (0 for spot, whose holding is worth quantity x price)."""
        held, snapshots = self._held, self.snapshots
        if snapshots.times and snapshots.times[-1] == time:
            snapshots.drop_last()
        snapshots.times.append(time)
        snapshots.cash.extend(self._balances)
        snapshots.quantity.extend([p.quantity for p in held])
        if self._perpetuals:
            snapshots.basis.extend(
                [
                    p.quantity * p.entry_price if margin else 0.0
                    for p, margin in zip(held, self._margin_list)
                ]
            )

    # -- machinery ----------------------------------------------------------------------------

    def _maintenance(self, symbol: str, mark: float) -> float:
        p = self.positions[symbol]
        notional = abs(p.quantity) * mark
        tier = self.instruments[symbol].tier(abs(p.quantity) * p.entry_price)
        return notional * tier.rate - tier.amount

    def _pair_for(self, currency: str) -> tuple[str, bool] | None:
        """The symbol that converts ``currency`` to the account currency, and whether inverted."""
        if currency == self.currency:
            return None
        for s, i in self.instruments.items():
            if i.kind == "spot" and (i.base, i.quote) == (currency, self.currency):
                return s, False
            if i.kind == "spot" and (i.base, i.quote) == (self.currency, currency):
                return s, True
        raise ConfigError(
            f"Cannot value {currency} in the account currency {self.currency}: add the symbol "
            f"{currency}/{self.currency} to the data, or choose currency={currency!r}."
        )
