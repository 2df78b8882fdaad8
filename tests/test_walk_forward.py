"""Walk-forward optimisation: windows, honest out-of-sample runs, stitching, Dask."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.backtest.api import Backtest
from workbench.backtest.sweep import sweep
from workbench.backtest.walk_forward import walk_forward, windows
from workbench.data.model import to_bars
from workbench.errors import ConfigError
from workbench.strategies import MovingAverageCross

GRID = {"fast": [5, 10, 20], "slow": [30, 50, 100]}


@pytest.fixture(scope="module")
def bars(shared_data):
    return to_bars(pd.read_parquet(shared_data / "binance-spot/5m/ETH_BTC.parquet"))


def run(bars, **extra):
    """The walk-forward the tests here check: ETH/BTC, the SMA grid, 5 days in, 2 out."""
    return walk_forward(
        bars, MovingAverageCross(long_only=True), GRID, train="5D", test="2D",
        cash=1.0, fees=0.001, symbol="ETH/BTC", progress=False, **extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def result(bars):
    return run(bars)


def test_rolling_and_anchored_windows_tile_the_data():
    index = pd.date_range("2024-01-01", periods=10 * 24, freq="1h", tz="UTC", name="timestamp")
    rolling = windows(index, "3D", "2D")
    assert [(w.train_start.day, w.train_end.day, w.test_end.day) for w in rolling] == [
        (1, 4, 6), (3, 6, 8), (5, 8, 10), (7, 10, 11),
    ]  # fmt: skip
    anchored = windows(index, 72, 48, anchored=True)  # bar counts: the same spans
    assert [w.train_start for w in anchored] == [index[0]] * 4
    assert [w.train_end for w in anchored] == [w.train_end for w in rolling]


def test_each_window_picks_the_in_sample_best_and_trades_it_out_of_sample(bars, result):
    row = result.table.iloc[2]
    train = bars.loc[row.train_start : row.test_start - pd.Timedelta(1)]
    direct = sweep(
        train, MovingAverageCross(long_only=True), GRID, cash=1.0, fees=0.001, progress=False
    )
    assert (row.fast, row.slow) == tuple(direct.best_params("sharpe").values())
    assert row.in_sample == pytest.approx(direct.best("sharpe")["sharpe"], rel=1e-12)
    data = bars.loc[row.train_start : row.test_end - pd.Timedelta(1)]
    alone = Backtest(
        data,
        MovingAverageCross(fast=int(row.fast), slow=int(row.slow), long_only=True),
        cash=1.0,
        fees=0.001,
        symbol="ETH/BTC",
        start=row.test_start,
    ).run()
    assert row.total_return == pytest.approx(alone.stats["total_return"], rel=1e-12)
    assert row.out_of_sample == pytest.approx(alone.stats["sharpe"], rel=1e-12)
    assert alone.trades["entry_time"].min() >= row.test_start


def test_the_stitched_equity_compounds_the_windows(result):
    growth = np.prod(1 + result.table["total_return"].to_numpy())
    assert result.equity.iloc[-1] == pytest.approx(growth, rel=1e-9)
    assert result.equity.index.is_unique and result.equity.index.is_monotonic_increasing
    assert result.equity.index[0] == result.table["test_start"].iloc[0]
    assert result.stats["trades"] == (~result.trades["open"]).sum()


def test_changing_later_bars_does_not_change_earlier_windows(bars, result):
    future = bars.copy()
    cut = result.table["test_end"].iloc[3]
    future.loc[cut:, ["open", "high", "low", "close"]] *= 1.5
    again = run(future)
    pd.testing.assert_frame_equal(again.table.iloc[:4], result.table.iloc[:4])
    assert not again.table.iloc[4:].equals(result.table.iloc[4:])


def test_the_result_shows_itself(result):
    import holoviews as hv

    assert isinstance(result.plot(), hv.Layout)
    assert "Walk-forward" in result._repr_html_()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train": "30D", "test": "2D"}, "shorter than one training window"),
        ({"train": "5D", "test": "2D", "objective": "luck"}, "cannot rank windows"),
        ({"train": "5D", "test": "nonsense"}, "is not a length"),
    ],
)
def test_bad_settings_are_refused(bars, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        walk_forward(bars, MovingAverageCross(long_only=True), GRID, progress=False, **kwargs)


def test_an_unknown_grid_parameter_is_refused(bars):
    with pytest.raises(ConfigError, match="no parameter"):
        walk_forward(
            bars, MovingAverageCross(), {"period": [5]}, train="5D", test="2D", progress=False
        )


@pytest.mark.slow
def test_windows_on_a_dask_cluster_give_the_same_table(bars, result):
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        remote = run(bars, client=client)
    pd.testing.assert_frame_equal(remote.table, result.table)
    pd.testing.assert_series_equal(remote.equity, result.equity)


def test_a_last_window_of_one_bar_is_left_out():
    index = pd.date_range("2024-01-01", periods=5 * 24 + 1, freq="1h", tz="UTC", name="timestamp")
    plan = windows(index, "3D", "1D")  # a third window would test only the 01-06 00:00 bar
    assert [w.train_end.day for w in plan] == [4, 5]
    assert plan[-1].test_end == pd.Timestamp("2024-01-06", tz="UTC")
