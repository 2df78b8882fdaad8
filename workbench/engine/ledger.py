"""Round trips -- the trades of a run -- paired up after it from the fills and funding.

A run books each fill into cash and positions as it happens. Which trade a fill opens,
adds to or closes matters only to the results, so the portfolio records each fill's
numbers in flat typed arrays (:class:`FillLog`) and :func:`round_trips` pairs them up in
one compiled pass when the results are built (``_ledger_kernel``, imported then, so that
importing the engine -- as a live session does -- does not load numba).

The rules: per symbol, a fill on the open trade's side adds to it (at the average
price); a fill on the other side closes it, in part or whole, and what it has left over
opens a trade the other way. A closed part takes its share of the trade's fees and
funding, in proportion to the quantity, plus its share of the closing fill's fee.
A funding payment reaches the trade open when it was paid.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np

TRADE_FIELDS = (
    "symbol", "side", "quantity", "entry_time", "entry_price", "exit_time", "exit_price",
    "fees", "funding", "pnl",
)  # fmt: skip
"""The columns of a run's trades, in order."""


class FillLog:
    """Each fill's time (ns), symbol (its position in the portfolio's symbols), signed
    quantity (> 0 bought), price and fee, and each funding payment's place among the
    fills (how many came before it), symbol and amount, in flat typed arrays: a long run
    makes tens of thousands of fills, which read back from objects scattered over memory
    cost more than the pairing itself."""

    __slots__ = (
        "times", "symbols", "quantities", "prices", "fees",
        "paid_after", "paid_symbols", "payments",
    )  # fmt: skip

    def __init__(self) -> None:
        self.times, self.symbols = array("q"), array("q")
        self.quantities, self.prices, self.fees = array("d"), array("d"), array("d")
        self.paid_after, self.paid_symbols, self.payments = array("q"), array("q"), array("d")

    def pay(self, symbol: int, payment: float) -> None:
        """A funding payment on the symbol at position ``symbol``, after the fills so far."""
        self.paid_after.append(len(self.times))
        self.paid_symbols.append(symbol)
        self.payments.append(payment)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The fills' numbers, copied (a live portfolio goes on recording): times,
        symbols, quantities, prices, fees."""
        return tuple(
            np.array(a) for a in (self.times, self.symbols, self.quantities, self.prices, self.fees)
        )


@dataclass(frozen=True)
class RoundTrips:
    """The closed trades in the order they closed, then the open ones in symbol order
    (their exit and P&L not yet known: marked at the last prices by :meth:`open_pnl`).
    ``columns`` maps each of :data:`TRADE_FIELDS` to an array, ``symbol`` as positions in
    the portfolio's symbols; ``closed`` counts the closed ones."""

    columns: dict[str, np.ndarray]
    closed: int

    def open_pnl(self, last: np.ndarray) -> None:
        """Mark the open trades at ``last`` (the last price per symbol position)."""
        c, k = self.columns, slice(self.closed, None)
        marked = c["side"][k] * c["quantity"][k] * (last[c["symbol"][k]] - c["entry_price"][k])
        c["pnl"][k] = marked - c["fees"][k] + c["funding"][k]


def round_trips(log: FillLog, symbols: int, last: np.ndarray) -> RoundTrips:
    """Pair the fills in ``log`` into trades, over ``symbols`` symbols; ``last``: the last
    price per symbol position."""
    times, codes, quantities, prices, fees = log.arrays()
    n = len(times)
    ints = np.empty((3, n + symbols), dtype=np.int64)  # side, entry time, exit time
    floats = np.empty((6, n + symbols))  # quantity, entry, exit price, fees, funding, pnl
    which = np.empty(n + symbols, dtype=np.int64)
    from workbench.engine._ledger_kernel import pair  # numba: loaded when first needed

    closed, total = pair(
        times,
        codes,
        quantities,
        prices,
        fees,
        np.array(log.paid_after),
        np.array(log.paid_symbols),
        np.array(log.payments),
        symbols,
        which,
        ints,
        floats,
    )
    side, entry_time, exit_time = ints[:, :total]
    quantity, entry_price, exit_price, fees_, funding_, pnl = floats[:, :total]
    trips = RoundTrips(
        columns={
            "symbol": which[:total],
            "side": side,
            "quantity": quantity,
            "entry_time": entry_time,
            "entry_price": entry_price,
            "exit_time": exit_time,
            "exit_price": exit_price,
            "fees": fees_,
            "funding": funding_,
            "pnl": pnl,
        },  # fmt: skip
        closed=closed,
    )
    trips.open_pnl(last)
    return trips
