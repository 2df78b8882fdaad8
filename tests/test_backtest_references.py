"""The event engine against independent engines, on Binance's recorded 5-minute spot bars.

An SMA(10)/SMA(50) long-only cross with 0.1 % fees, decided at a bar's close and filled at
the next bar's open, must give the same trades (entry and exit times and prices) and the
same final equity as:

- vectorbt's ``Portfolio.from_signals``, fed entries/exits shifted one bar and
  ``price=open``, all-in (``size=inf``: cash / (price x (1 + fee))) -- our default
  target-order sizing through ``Backtest(bars, MovingAverageCross(...))``;
- backtesting.py, which trades at the next open by default but sizes in whole units, so
  both engines trade a fixed number of units (an ``EventStrategy`` here).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from workbench.backtest.api import Backtest
from workbench.data.model import to_bars
from workbench.engine import EventStrategy
from workbench.indicators import sma
from workbench.strategies import MovingAverageCross

FILES = ["ADA_BTC", "ETC_BTC", "ETH_BTC", "LTC_BTC", "NXT_BTC", "XLM_BTC"]
FEES = 0.001
RTOL = 1e-9


@pytest.fixture(scope="module")
def vbt():
    return pytest.importorskip("vectorbt")


@pytest.fixture(scope="module")
def backtesting():
    return pytest.importorskip("backtesting")


def spot_bars(shared_data, name: str) -> pd.DataFrame:
    return to_bars(pd.read_parquet(shared_data / "binance-spot/5m" / f"{name}.parquet"))


def above(close: pd.Series) -> np.ndarray:
    """Where SMA(10) > SMA(50): the long-only rule (False during the warm-up)."""
    return (sma(close, 10) > sma(close, 50)).to_numpy()


@pytest.mark.parametrize("name", FILES)
def test_all_in_trades_and_equity_equal_vectorbt(shared_data, vbt, name):
    bars = spot_bars(shared_data, name)
    ours = Backtest(
        bars, MovingAverageCross(fast=10, slow=50, long_only=True), cash=1.0, fees=FEES, symbol=name
    ).run()

    up = pd.Series(above(bars["close"]), index=bars.index)
    entries = (up & ~up.shift(1, fill_value=False)).shift(1, fill_value=False)
    exits = (~up & up.shift(1, fill_value=False)).shift(1, fill_value=False)
    pf = vbt.Portfolio.from_signals(
        bars["close"],
        entries,
        exits,
        price=bars["open"],
        size=np.inf,
        fees=FEES,
        init_cash=1.0,
        freq="5min",
    )
    theirs = pf.trades.records_readable

    assert len(ours.trades) == len(theirs) > 10
    _same_times(ours.trades["entry_time"], theirs["Entry Timestamp"])
    _same_times(
        ours.trades["exit_time"][~ours.trades["open"]],
        theirs["Exit Timestamp"][theirs["Status"] == "Closed"],
    )
    np.testing.assert_allclose(ours.trades["entry_price"], theirs["Avg Entry Price"], rtol=RTOL)
    closed = ~ours.trades["open"].to_numpy()
    np.testing.assert_allclose(
        ours.trades["exit_price"][closed], theirs["Avg Exit Price"][closed], rtol=RTOL
    )
    np.testing.assert_allclose(ours.trades["quantity"], theirs["Size"], rtol=RTOL)
    np.testing.assert_allclose(
        ours.trades["pnl"][closed], theirs["PnL"][closed], rtol=1e-7, atol=1e-15
    )
    assert ours.equity.iloc[-1] == pytest.approx(pf.final_value(), rel=RTOL)
    np.testing.assert_allclose(ours.equity.to_numpy(), pf.value().to_numpy(), rtol=RTOL)


class FixedUnitsCross(EventStrategy):
    """SMA(10)/SMA(50) long-only with a fixed number of units, from the first bar both
    averages exist (as backtesting.py starts calling ``next``)."""

    def __init__(self, units: float, start: int, **params):
        super().__init__(**params)
        self.units, self.start = units, start

    def on_start(self, ctx):
        self.up = above(ctx.history(full=True)["close"]).tolist()

    def on_bar(self, ctx, bar):
        if bar.row < self.start:
            return
        held = ctx.position()
        if self.up[bar.row] and not held:
            ctx.buy(quantity=self.units)
        elif not self.up[bar.row] and held:
            ctx.sell(quantity=held)


@pytest.mark.parametrize("name", FILES)
def test_fixed_unit_trades_and_equity_equal_backtesting_py(shared_data, backtesting, name):
    from backtesting import Backtest as ReferenceBacktest
    from backtesting import Strategy as ReferenceStrategy

    bars = spot_bars(shared_data, name)
    units, cash = 1_000.0, 1_000.0

    class Reference(ReferenceStrategy):
        def init(self):
            self.fast = self.I(lambda: sma(pd.Series(self.data.Close), 10).to_numpy())
            self.slow = self.I(lambda: sma(pd.Series(self.data.Close), 50).to_numpy())

        def next(self):
            if self.fast[-1] > self.slow[-1] and not self.position:
                self.buy(size=int(units))
            elif not self.fast[-1] > self.slow[-1] and self.position:
                self.position.close()

    frame = bars.rename(columns=str.capitalize).tz_localize(None)
    reference = ReferenceBacktest(
        frame, Reference, cash=cash, commission=FEES, finalize_trades=False
    )
    with warnings.catch_warnings():  # "some trades remain open": on purpose, as ours
        warnings.simplefilter("ignore", UserWarning)
        stats = reference.run()
    ours = Backtest(
        bars, FixedUnitsCross(units, _first_next(stats)), cash=cash, fees=FEES, symbol=name
    ).run()
    theirs = stats["_trades"]

    assert len(ours.trades) == len(theirs) + int(ours.trades["open"].iloc[-1]) > 10
    closed = ours.trades[~ours.trades["open"]]
    _same_times(closed["entry_time"], theirs["EntryTime"].dt.tz_localize("UTC"))
    _same_times(closed["exit_time"], theirs["ExitTime"].dt.tz_localize("UTC"))
    np.testing.assert_allclose(closed["entry_price"], theirs["EntryPrice"], rtol=RTOL)
    np.testing.assert_allclose(closed["exit_price"], theirs["ExitPrice"], rtol=RTOL)
    np.testing.assert_allclose(closed["pnl"], theirs["PnL"], rtol=1e-7, atol=1e-12)
    assert ours.equity.iloc[-1] == pytest.approx(stats["Equity Final [$]"], rel=RTOL)


def _first_next(stats) -> int:
    """The row at which backtesting.py first calls ``next``: the bar after its indicators'
    warm-up (``1 + _indicator_warmup_nbars`` in its ``Backtest.run``)."""
    return int(np.flatnonzero(~np.isnan(stats["_strategy"].slow))[0]) + 1


def _same_times(ours: pd.Series, theirs: pd.Series) -> None:
    theirs = pd.to_datetime(theirs)
    if theirs.dt.tz is None:
        theirs = theirs.dt.tz_localize("UTC")
    assert list(ours) == list(theirs)
