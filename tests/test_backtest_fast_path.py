"""The vectorised fast path makes exactly the event engine's trades.

Both implement the same fill convention (docs/backtesting.md): a target decided at a
bar's close, traded at the next open only when it changes, sized at the fill price with
the cash cap. Here they run side by side on the recorded spot bars, for the moving-average
cross (which has a numba fast path) and for strategies the fast path runs through their
own ``target()``, with fees and slippage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.backtest.api import Backtest
from workbench.backtest.vectorized import run_vectorized
from workbench.data.model import to_bars
from workbench.strategies import (
    BollingerBreakout,
    DonchianBreakout,
    MovingAverageCross,
    RsiReversion,
)

FILES = ["ADA_BTC", "ETH_BTC", "XLM_BTC"]
STRATEGIES = [
    MovingAverageCross(fast=10, slow=50, long_only=True),
    MovingAverageCross(kind="ema", fast=12, slow=48, long_only=True),
    RsiReversion(long_only=True),
    BollingerBreakout(long_only=True),
    DonchianBreakout(long_only=True),
]
COLUMNS = ["side", "entry_time", "exit_time", "open"]
NUMBERS = ["quantity", "entry_price", "exit_price", "fees", "pnl"]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: f"{type(s).__name__}-{s.label}")
def test_the_fast_path_makes_the_event_engines_trades(shared_data, name, strategy):
    bars = to_bars(pd.read_parquet(shared_data / "binance-spot/5m" / f"{name}.parquet"))
    settings = {"cash": 1.0, "fees": 0.001, "slippage": 3.0, "symbol": name}
    event = Backtest(bars, strategy, **settings).run()
    fast = run_vectorized(bars, strategy, **settings)

    ours, theirs = event.trades, fast.trades
    assert len(ours) == len(theirs) > 0
    pd.testing.assert_frame_equal(ours[COLUMNS], theirs[COLUMNS], check_dtype=False)
    for column in NUMBERS:
        np.testing.assert_allclose(
            ours[column], theirs[column], rtol=1e-9, atol=1e-15, err_msg=column
        )
    np.testing.assert_allclose(event.equity.to_numpy(), fast.equity.to_numpy(), rtol=1e-9)
