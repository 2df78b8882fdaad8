"""The account over a run, rebuilt after it from the portfolio's snapshots, vectorised.

The engine's loop never values the account per bar: the portfolio records a snapshot
when something changes (a fill, funding, a liquidation), and the curves are rebuilt here
at every bar time from those snapshots and the bars' closes.

A long run has hundreds of thousands of bars, and fresh memory for an array of that
length costs more than the arithmetic on it (its pages are faulted in anew), so only the
equity is built at once -- the cash, exposure and positions curves when asked for -- and
the rebuild spreads each snapshot over its bars once, then works in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workbench.data.model import BAR_COLUMNS
from workbench.engine.feed import ReplayFeed
from workbench.engine.portfolio import Portfolio

# a currency's column in the cash, the columns of the symbols quoted in it, and its rate
# to the account currency at each bar (bars x 1)
Conversion = tuple[int, list[int], np.ndarray]


@dataclass
class Account:
    """The account after each distinct bar time (the state after all of its bars) in the
    account currency: ``equity`` at once, the other curves from their methods.

    Per snapshot, each holding for ``spans`` bars: ``cash_held`` per currency, and per
    symbol ``quantity`` and ``basis`` (the entry value a perpetual's P&L is measured from;
    None when all zero, as without perpetuals).
    """

    index: pd.DatetimeIndex
    symbols: list[str]
    spans: np.ndarray
    cash_held: np.ndarray
    quantity: np.ndarray
    basis: np.ndarray | None
    closes: np.ndarray
    conversions: list[Conversion]
    equity: pd.Series = field(init=False)

    def __post_init__(self) -> None:
        value = self._notional()
        if self.basis is not None:
            value -= self._converted(self._per_bar(self.basis))
        equity = _row_sums(value)
        equity += self._cash()
        self.equity = pd.Series(equity, index=self.index, name="equity", copy=False)

    def cash(self) -> pd.Series:
        """All the cash."""
        return pd.Series(self._cash(), index=self.index, name="cash", copy=False)

    def exposure(self) -> pd.Series:
        """Gross notional over equity; NaN when equity is not positive."""
        notional = self._notional()
        exposure = _row_sums(np.abs(notional, out=notional))
        equity = self.equity.to_numpy()
        positive = equity > 0
        np.divide(exposure, equity, out=exposure, where=positive)
        exposure[~positive] = np.nan
        return pd.Series(exposure, index=self.index, name="exposure", copy=False)

    def positions(self) -> pd.DataFrame:
        """Each symbol's quantity."""
        quantity = self._per_bar(self.quantity)
        return pd.DataFrame(quantity, index=self.index, columns=self.symbols, copy=False)

    def time_in_market(self) -> float:
        """The fraction of bars holding any position, from the snapshots' spans (the same
        as from :meth:`positions`, without building them)."""
        held = (self.quantity != 0).any(axis=1)
        return float(self.spans[held].sum() / len(self.index))

    def _per_bar(self, values: np.ndarray) -> np.ndarray:
        """Per-snapshot values at each bar, a fresh array."""
        return np.repeat(values, self.spans, axis=0)

    def _notional(self) -> np.ndarray:
        """Each symbol's holding valued at the close (bars x symbols), a fresh array."""
        notional = self._per_bar(self.quantity)
        notional *= self.closes
        if len(self.symbols) > 1:  # a close is NaN before its symbol's first bar
            np.nan_to_num(notional, copy=False)
        return self._converted(notional)

    def _converted(self, values: np.ndarray) -> np.ndarray:
        """Per-symbol values in their quote currencies turned into the account currency,
        in place."""
        for _, quoted, rate in self.conversions:
            values[:, quoted] *= rate
        return values

    def _cash(self) -> np.ndarray:
        """All the cash at each bar. Cash held in the account currency alone is summed per
        snapshot before it is spread over the bars."""
        if not self.conversions:
            return self._per_bar(self.cash_held.sum(axis=1))
        cash = self._per_bar(self.cash_held)
        for column, _, rate in self.conversions:
            cash[:, [column]] *= rate
        return cash.sum(axis=1)


def account_curves(portfolio: Portfolio, feed: ReplayFeed, start: int | None = None) -> Account:
    """The account from ``start`` (ns) on, rebuilt from the snapshots. Its index is a
    view of the feed's (a slice with ``start``): the same bars and the checks pandas has
    already cached, with a name of its own."""
    p = portfolio
    index = feed.index.view()
    if start is not None:
        index = index[int(np.searchsorted(index.asi8, start)) :]
    closes = _closes(feed)[_rows(feed, start)]
    stamps, cash_held, quantity, basis = p.snapshots.arrays()
    return Account(
        index=index,
        symbols=list(feed.symbols),
        spans=_spans(stamps, index.asi8),
        cash_held=cash_held,
        quantity=quantity,
        basis=basis,
        closes=closes,
        conversions=_conversions(p, feed.symbols, closes),
    )


def _row_sums(values: np.ndarray) -> np.ndarray:
    """Sums over the columns; with one column, that column itself (no fresh array)."""
    return values[:, 0] if values.shape[1] == 1 else values.sum(axis=1)


def _rows(feed: ReplayFeed, start: int | None) -> slice | np.ndarray:
    """The events to value: the last of each bar time from ``start`` on (a slice when no
    two bars share a time, as with one symbol)."""
    times = feed.times
    first = 0 if start is None else int(np.searchsorted(times, start))
    if len(feed.index) == len(times):
        return slice(first, None)
    last = np.r_[times[1:] != times[:-1], True]
    last[:first] = False
    return last


def _spans(stamps: np.ndarray, times: np.ndarray) -> np.ndarray:
    """How many of the times each snapshot holds for: from the first time at or after it
    up to the next snapshot's. The first snapshot is the opening state and holds from
    the start; of several before one time, only the last holds."""
    first = np.searchsorted(times, stamps)
    first[0] = 0
    return np.diff(first, append=len(times))


def _closes(feed: ReplayFeed) -> np.ndarray:
    """Each symbol's last close at every event (events x symbols), carried over the
    others' bars; NaN before a symbol's first bar."""
    close = BAR_COLUMNS.index("close")  # a row of the bars' values: no pandas on the way
    if len(feed.symbols) == 1:
        return feed.bars[feed.symbols[0]].values[close][:, None]
    closes = np.full((len(feed), len(feed.symbols)), np.nan)
    for j, symbol in enumerate(feed.symbols):
        at = feed.which == j
        closes[at, j] = feed.bars[symbol].values[close][feed.rows[at]]
    return pd.DataFrame(closes, copy=False).ffill().to_numpy()


def _conversions(p: Portfolio, symbols: list[str], closes: np.ndarray) -> list[Conversion]:
    """For each currency but the account's, how to turn it into the account currency."""
    conversions = []
    for c, currency in enumerate(p.cash):
        pair = p._pairs[currency]
        if pair is not None:
            column = closes[:, [symbols.index(pair[0])]]
            quoted = [j for j, s in enumerate(symbols) if p.instruments[s].quote == currency]
            conversions.append((c, quoted, 1 / column if pair[1] else column))
    return conversions
