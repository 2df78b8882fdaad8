"""The single run's direct route and its bar check.

A MovingAverageCross of simple averages has its target changes computed straight from the
close prices (``CrossFastPath.changes``), never writing the two lines out; the run must be
the same to the bit as the one through the lines and as the one through
``strategy.target``. The bar check reads prices as integers; it must refuse exactly the
prices that are not finite and positive, naming the first bad row and its column.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import param
import pytest

from workbench.backtest.vectorized import FAST_PATHS, register_fast_path, run_vectorized
from workbench.errors import DataFormatError
from workbench.strategies import MovingAverageCross, Strategy


class LinesCross(MovingAverageCross):
    """MovingAverageCross through its lines: its fast path without ``changes``."""


register_fast_path(LinesCross, dataclasses.replace(FAST_PATHS[MovingAverageCross], changes=None))


class Planned(Strategy):
    """Holds the target it is given (no fast path)."""

    plan = param.Array(default=np.zeros(0), doc="The target per bar.")

    def compute(self, bars, inputs):
        return pd.DataFrame({"plan": self.plan}, index=bars.index)

    def rule(self, values):
        plan = values["plan"].to_numpy()
        return pd.DataFrame(
            {"direction": np.sign(plan).astype(np.int8), "strength": np.abs(plan), "target": plan},
            index=values.index,
        )


def walk(rows: int, seed: int = 11) -> pd.DataFrame:
    """A random walk with flat stretches, where the averages meet exactly (target 0)."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-3, rows)))
    close[rows // 4 : rows // 4 + 120] = close[rows // 4]
    close[rows // 2 : rows // 2 + 70] = 49.5
    open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0.0, 5e-4, rows))
    index = pd.date_range("2024-01-01", periods=rows, freq="1min", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {"open": open_, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1.0},
        index=index,
    )


def assert_same_run(ours, theirs) -> None:
    assert ours.final_equity == theirs.final_equity
    for name in ("fill_records", "trade_records", "figures"):
        mine, other = getattr(ours, name), getattr(theirs, name)
        assert mine.shape == other.shape and mine.tobytes() == other.tobytes(), name


@pytest.mark.parametrize("long_only", [True, False])
@pytest.mark.parametrize("fast, slow", [(2, 3), (5, 30), (10, 50)])
@pytest.mark.parametrize("units", [None, 2.0])
def test_the_direct_route_makes_the_run_of_the_lines_and_of_the_target(
    fast, slow, long_only, units
):
    bars = walk(3_000)
    settings = {"fees": 0.001, "slippage": 3.0, "units": units}
    direct = run_vectorized(
        bars, MovingAverageCross(fast=fast, slow=slow, long_only=long_only), **settings
    )
    lines = run_vectorized(bars, LinesCross(fast=fast, slow=slow, long_only=long_only), **settings)
    target = MovingAverageCross(fast=fast, slow=slow, long_only=long_only).target(bars)
    planned = run_vectorized(bars, Planned(plan=target.fillna(0.0).to_numpy()), **settings)
    assert direct.fill_records.shape[1] > 20
    assert_same_run(direct, lines)
    assert_same_run(direct, planned)


@pytest.mark.parametrize("rows", [50, 51, 52])
def test_the_direct_route_at_the_fewest_bars(rows):
    bars = walk(rows, seed=3)
    direct = run_vectorized(bars, MovingAverageCross(fast=10, slow=50), fees=0.001)
    assert_same_run(direct, run_vectorized(bars, LinesCross(fast=10, slow=50), fees=0.001))


BAD = [0.0, -0.0, -1.0, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("column", ["open", "close"])
@pytest.mark.parametrize("value", BAD, ids=[str(value) for value in BAD])
@pytest.mark.parametrize("row", [0, 7, 59])
def test_each_bad_price_is_named_with_its_row(column, value, row):
    bars = walk(60)
    bars.iloc[row, bars.columns.get_loc(column)] = value
    if row < 59:  # a later bad price in the other column is not the first
        bars.iloc[59, bars.columns.get_loc("open" if column == "close" else "close")] = np.nan
    with pytest.raises(DataFormatError, match=rf": {column} is {value} at .* \(row {row}\);"):
        run_vectorized(bars, MovingAverageCross(fast=2, slow=3))


def test_the_extreme_finite_positive_prices_pass():
    bars = walk(60)
    bars.iloc[10, bars.columns.get_loc("open")] = 5e-324  # the smallest positive number
    bars.iloc[11, bars.columns.get_loc("close")] = np.finfo(np.float64).max
    result = run_vectorized(bars, Planned(plan=np.zeros(60)))
    assert result.final_equity == 10_000.0
