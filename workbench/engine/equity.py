"""The account over a run, rebuilt after it from the portfolio's snapshots, vectorised.

The engine's loop never values the account per bar: the portfolio records a snapshot
when something changes (a fill, funding, a liquidation), and the curves are rebuilt here
at every bar time from those snapshots and the bars' closes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.engine.feed import ReplayFeed
from workbench.engine.portfolio import Portfolio


def equity_frame(portfolio: Portfolio, feed: ReplayFeed) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per distinct bar time: equity, cash and exposure (account currency), and each
    symbol's position -- rebuilt from the snapshots, vectorised."""
    p = portfolio
    stamps = np.array([s[0] for s in p.snapshots], dtype=np.int64)
    state = np.searchsorted(stamps, feed.times, side="right") - 1  # the state after each bar's time
    cash = np.array([s[1] for s in p.snapshots])[state]  # events x currencies
    quantity = np.array([s[2] for s in p.snapshots])[state]  # events x symbols
    basis = np.array([s[3] for s in p.snapshots])[state]
    if len(feed.symbols) == 1:
        closes = feed.bars[feed.symbols[0]].frame["close"].to_numpy()[:, None]
    else:  # each symbol's last close at every event, carried over the others' bars
        closes = np.full((len(feed), len(feed.symbols)), np.nan)
        for j, symbol in enumerate(feed.symbols):
            at = feed.which == j
            closes[at, j] = feed.bars[symbol].frame["close"].to_numpy()[feed.rows[at]]
        closes = pd.DataFrame(closes).ffill().to_numpy()
    currencies = list(p.cash)
    rates = np.ones((len(feed), len(currencies)))
    for c, currency in enumerate(currencies):
        pair = p._pairs[currency]
        if pair is not None:
            column = closes[:, feed.symbols.index(pair[0])]
            rates[:, c] = 1 / column if pair[1] else column
    quote = rates[:, [currencies.index(p.instruments[s].quote) for s in feed.symbols]]
    notional = np.nan_to_num(quantity * closes) * quote
    cash_total = (cash * rates).sum(axis=1)
    equity = cash_total + (notional - basis * quote).sum(axis=1)
    gross = np.abs(notional).sum(axis=1)
    last = np.r_[np.diff(feed.times) != 0, True]  # the last event of each bar time
    account = pd.DataFrame(
        {
            "equity": equity[last],
            "cash": cash_total[last],
            "exposure": (gross / np.where(equity > 0, equity, np.nan))[last],
        },
        index=feed.index,
    )
    return account, pd.DataFrame(quantity[last], index=feed.index, columns=feed.symbols)
