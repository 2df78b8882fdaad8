"""A ``BacktestResult`` builds its tables when first read, and its stats without them.

The stats come from the run's records as arrays, so they are checked here against
``metrics.stats`` on the built tables: the two must agree to the last bit. The tables
must be built once, from the run's own records (a risk manager shared by two runs keeps
adding decisions), and survive ``dataclasses.replace`` and pickling unbuilt.
"""

from __future__ import annotations

import dataclasses
import math
import pickle

import numpy as np
import pandas as pd
import pytest

import workbench.backtest.api as api
from workbench.backtest import metrics
from workbench.backtest.api import Backtest
from workbench.engine import EventStrategy, RiskLimits, RiskManager

TABLES = ("trades", "orders", "fills", "funding", "decisions")


def bars(rows: int, seed: int, start: str = "2024-01-01") -> pd.DataFrame:
    """A random walk of 1-minute bars."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, rows)))
    open_ = np.r_[close[0], close[:-1]]
    index = pd.date_range(start, periods=rows, freq="1min", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": 1_000.0,
        },
        index=index,
    )


class Rhythm(EventStrategy):
    """Buys, adds, trims and sells through zero on a fixed rhythm, for every symbol:
    round trips closed in parts and trades left open at the end."""

    def __init__(self, every: int = 5, quantity: float = 1.0, **params):
        super().__init__(**params)
        self.every, self.quantity, self.bars = every, quantity, 0

    def on_bar(self, ctx, bar):
        self.bars += 1
        step, q = self.bars % (4 * self.every), self.quantity
        if step == 0:
            ctx.buy(bar.symbol, q)
        elif step == self.every:
            ctx.buy(bar.symbol, q / 2)
        elif step == 2 * self.every:
            ctx.sell(bar.symbol, q * 0.75)
        elif step == 3 * self.every:
            ctx.sell(bar.symbol, q * 1.5)


@pytest.fixture(scope="module")
def two_symbols() -> dict[str, pd.DataFrame]:
    later = bars(900, 2, start="2024-01-01 00:07")
    return {"BTC/USDT": bars(1_000, 1), "ETH/USDT": later.drop(later.index[100:130])}


def test_stats_equal_metrics_stats_on_the_tables_to_the_last_bit(two_symbols):
    result = Backtest(two_symbols, Rhythm(3, 0.01), fees=0.001, leverage=2).run()
    fills = result.fills
    expected = metrics.stats(
        result.equity,
        result.trades,
        fees=fills["fee"].sum(),
        funding=0.0,
        traded_notional=(fills["quantity"] * fills["price"]).sum(),
        positions=result.positions,
    )
    assert result.stats["trades"] > 50 and result.trades["open"].any()
    assert list(result.stats.index) == list(expected.index)
    for key, value in expected.items():
        ours = result.stats[key]
        assert type(ours) is type(value), key
        assert ours == value or (math.isnan(ours) and math.isnan(value)), key


def test_tables_are_built_once_and_only_when_read(monkeypatch, two_symbols):
    built = []
    for name in ("_trades", "_orders", "_fills", "_frame"):
        original = getattr(api, name)

        def counting(*args, _original=original, _name=name, **kwargs):
            built.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(api, name, counting)
    result = Backtest(two_symbols, Rhythm(), fees=0.001).run()
    assert built == []
    assert repr(result).startswith("<BacktestResult")
    assert built == []
    first = [getattr(result, name) for name in TABLES]
    assert sorted(built) == ["_fills", "_frame", "_frame", "_orders", "_trades"]
    assert all(getattr(result, name) is table for name, table in zip(TABLES, first, strict=True))
    assert len(built) == 5


def test_a_shared_risk_manager_does_not_leak_the_next_runs_decisions():
    shared = RiskManager(RiskLimits(max_position=2.0))
    data = bars(400, 3)
    first = Backtest(data, Rhythm(4, 5.0), risk=shared).run()
    count = len(shared.decisions)
    second = Backtest(data, Rhythm(4, 5.0), risk=shared).run()
    assert len(first.decisions) == count > 0
    assert len(second.decisions) == 2 * count  # the manager's whole record, as before


def test_replace_and_pickle_keep_the_tables(two_symbols):
    result = Backtest(two_symbols, Rhythm(), fees=0.001).run()
    copy = pickle.loads(pickle.dumps(result))  # unbuilt tables travel as their records
    fewer = result.trades.iloc[:3]
    replaced = dataclasses.replace(result, trades=fewer)
    assert replaced.trades is fewer
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(copy, name), getattr(result, name))
        if name != "trades":
            assert getattr(replaced, name) is getattr(result, name)


@pytest.mark.parametrize("start", [None, "2024-01-01 03:20:30"])
def test_the_curves_share_the_feeds_index(two_symbols, start):
    backtest = Backtest(two_symbols, Rhythm(), start=start)
    result = backtest.run()
    index = backtest.feed.index
    if start is not None:
        index = index[index >= pd.Timestamp(start, tz="UTC")]
    for curve in (result.equity, result.cash, result.exposure, result.positions):
        pd.testing.assert_index_equal(curve.index, index, exact=True)
    assert list(result.positions.columns) == list(two_symbols)
    if start is None:  # the feed's bars and cached checks, not a copy per run ...
        assert np.shares_memory(result.equity.index.asi8, backtest.feed.index.asi8)
        result.equity.index.name = "renamed"  # ... in an index of the run's own
        assert backtest.feed.index.name == "timestamp"
        assert backtest.run().equity.index.name == "timestamp"


def test_runs_share_no_stats_index(two_symbols):
    first, second = (Backtest(two_symbols, Rhythm()).run() for _ in range(2))
    first.stats.index.name = "figure"  # (an Index's name can be set in place)
    assert second.stats.index.name is None


def test_the_curves_but_equity_are_built_when_first_read(two_symbols):
    result = Backtest(two_symbols, Rhythm(), fees=0.001).run()
    curves = ("cash", "positions", "exposure")
    assert all(callable(result.__dict__[f"_{name}"]) for name in curves)
    copy = pickle.loads(pickle.dumps(result))  # unbuilt curves travel as the account
    for name in curves:
        built = getattr(result, name)
        assert getattr(result, name) is built
        assert getattr(copy, name).equals(built)
    held = (result.positions != 0).any(axis=1).mean()
    assert result.stats["exposure"] == held
