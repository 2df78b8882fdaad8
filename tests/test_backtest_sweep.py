"""Parameter sweeps: every row equals a single run of its parameters, nothing per combination
is kept in memory, the table and its heatmap, bad grids, and the Dask path."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from workbench.backtest import metrics
from workbench.backtest.cluster import get_client
from workbench.backtest.sweep import FIGURES, SweepResult, sweep
from workbench.backtest.vectorized import run_vectorized
from workbench.config import Settings
from workbench.data.model import to_bars
from workbench.errors import ConfigError, DataFormatError
from workbench.strategies import MovingAverageCross, RsiReversion

FEES = 0.001
GRID = {"fast": [5, 10, 20, 50], "slow": [20, 50, 100], "kind": ["sma", "ema"]}


@pytest.fixture(scope="module")
def eth_btc(shared_data) -> pd.DataFrame:
    return to_bars(pd.read_parquet(shared_data / "binance-spot" / "5m" / "ETH_BTC.parquet"))


@pytest.fixture(scope="module")
def swept(eth_btc) -> SweepResult:
    return sweep(eth_btc, MovingAverageCross, GRID, fees=FEES, fixed={"long_only": True})


def walk(rows: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, rows)))
    index = pd.date_range("2024-01-01", periods=rows, freq="1min", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {"open": np.r_[close[0], close[:-1]], "high": close * 1.001, "low": close * 0.999,
         "close": close, "volume": 1.0},
        index=index,
    )  # fmt: skip


def test_every_row_equals_a_single_run(eth_btc, swept):
    table = swept.table
    assert list(table.columns) == ["fast", "slow", "kind", *FIGURES]
    assert swept.skipped == 6 and len(table) == 4 * 3 * 2 - 6  # fast >= slow is skipped
    assert not ((table["fast"] >= table["slow"]).any())
    for row in table.itertuples(index=False):
        strategy = MovingAverageCross(fast=row.fast, slow=row.slow, kind=row.kind, long_only=True)
        single = run_vectorized(eth_btc, strategy, fees=FEES)
        figures = np.array([getattr(row, name) for name in FIGURES], dtype=float)
        assert np.array_equal(figures, single.summary.to_numpy(dtype=float), equal_nan=True)
        stats = metrics.stats(
            single.equity, single.trades, fees=single.fills["fee"].sum(), positions=single.positions
        )
        for name in FIGURES:
            assert getattr(row, name) == pytest.approx(
                stats[name], rel=1e-9, abs=1e-12, nan_ok=True
            )


def test_strategies_without_a_fast_path_run_their_target(eth_btc):
    result = sweep(eth_btc, RsiReversion, {"timeperiod": [7, 14]}, fees=FEES, progress=False)
    for row in result.table.itertuples(index=False):
        single = run_vectorized(eth_btc, RsiReversion(timeperiod=row.timeperiod), fees=FEES)
        figures = np.array([getattr(row, name) for name in FIGURES], dtype=float)
        assert np.array_equal(figures, single.summary.to_numpy(dtype=float), equal_nan=True)


def test_an_instance_gives_the_defaults_and_slippage_and_units_pass_through(eth_btc):
    base = MovingAverageCross(kind="ema", long_only=True)
    result = sweep(
        eth_btc, base, {"fast": [8, 12]}, fees=FEES, slippage=5, units=100, progress=False
    )
    for row in result.table.itertuples(index=False):
        single = run_vectorized(
            eth_btc, MovingAverageCross(kind="ema", fast=row.fast, long_only=True), fees=FEES,
            slippage=5, units=100,
        )  # fmt: skip
        assert row.final_equity == single.final_equity and row.trades == single.summary["trades"]


def test_combinations_are_not_materialised():
    """By construction the kernel keeps only figures per combination; measured here: a
    10 x 10 grid on 200,000 bars holds its 20 distinct lines (1.6 MB each) and not an
    array per combination (100 equity curves alone would be 160 MB)."""
    bars = walk(200_000)
    grid = {"fast": list(range(5, 55, 5)), "slow": list(range(60, 260, 20))}
    sweep(bars.iloc[:2000], MovingAverageCross, grid, progress=False)  # compile first
    line = 8 * len(bars) / 2**20
    tracemalloc.start()
    try:
        result = sweep(bars, MovingAverageCross, grid, progress=False)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert len(result.table) == 100
    assert peak < 24 * line, f"peak {peak:.1f} MB for lines of {line:.1f} MB"
    # a smaller memory budget computes the lines in batches: less memory, the same table
    tracemalloc.start()
    try:
        small = sweep(bars, MovingAverageCross, grid, progress=False, memory=int(6 * line * 2**20))
        small_peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert small_peak < 10 * line
    pd.testing.assert_frame_equal(small.table, result.table)


def test_best_heatmap_and_display(swept):
    best = swept.best()
    assert best["sharpe"] == swept.table["sharpe"].max()
    assert swept.best("max_drawdown")["max_drawdown"] == swept.table["max_drawdown"].max()
    assert swept.best("fees", minimize=True)["fees"] == swept.table["fees"].min()
    assert swept.best_params() == {k: best[k] for k in ("fast", "slow", "kind")}
    assert all(type(v) in (int, str) for v in swept.best_params().values())

    import holoviews as hv

    heatmap = swept.heatmap("fast", "slow", "total_return")
    assert isinstance(heatmap, hv.HeatMap)
    cells = heatmap.dframe()
    expected = swept.table.groupby(["fast", "slow"])["total_return"].max()
    assert len(cells) == len(expected)
    for cell in cells.itertuples(index=False):
        assert cell.total_return == expected[(cell.fast, cell.slow)]
    hv.render(heatmap, backend="bokeh")  # it draws
    html = swept._repr_html_()
    assert "MovingAverageCross" in html and "6 skipped" in html and "sharpe" in html
    with pytest.raises(ConfigError, match="not a swept parameter"):
        swept.heatmap("fast", "long_only")
    with pytest.raises(ConfigError, match="not a sweep figure"):
        swept.best("alpha")


def test_bad_grids_are_refused(eth_btc):
    for grid, words in [
        ({}, "non-empty"),
        ({"fastest": [1, 2]}, "no parameter"),
        ({"fast": []}, "no values"),
        ({"kind": "sma"}, "list of values"),
        ({"fast": [0, 5]}, "fast"),  # below the parameter's bounds
    ]:
        with pytest.raises(ConfigError, match=words):
            sweep(eth_btc, MovingAverageCross, grid, progress=False)
    with pytest.raises(ConfigError, match="objective"):
        sweep(eth_btc, MovingAverageCross, {"fast": [5]}, objective="alpha", progress=False)
    with pytest.raises(ConfigError, match="no parameter"):
        sweep(eth_btc, MovingAverageCross, {"fast": [5]}, fixed={"slowest": 3}, progress=False)
    with pytest.raises(ConfigError, match="cash"):
        sweep(eth_btc, MovingAverageCross, {"fast": [5]}, cash=-1, progress=False)
    with pytest.raises(DataFormatError, match="at least 400 rows"):
        sweep(eth_btc.iloc[:300], MovingAverageCross, {"slow": [50, 400]}, progress=False)


def test_a_grid_that_is_all_skipped_gives_an_empty_table(eth_btc):
    result = sweep(eth_btc, MovingAverageCross, {"fast": [60], "slow": [50]}, progress=False)
    assert result.skipped == 1 and len(result) == 0
    assert list(result.table.columns) == ["fast", "slow", *FIGURES]


@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_same_table(eth_btc, swept, isolated_env):
    with get_client() as client:  # no scheduler configured: a local, in-process cluster
        assert client.scheduler.address.startswith("inproc://")
        remote = sweep(
            eth_btc, MovingAverageCross, GRID, fees=FEES, fixed={"long_only": True}, client=client
        )
        generic = sweep(
            eth_btc, RsiReversion, {"timeperiod": [7, 14, 21]}, fees=FEES, client=client
        )
        # a client on a scheduler address from settings: here the local cluster's own
        with get_client(Settings(dask_scheduler=client.scheduler.address)) as other:
            again = sweep(
                eth_btc, MovingAverageCross, GRID, fees=FEES, fixed={"long_only": True},
                client=other, progress=False,
            )  # fmt: skip
    pd.testing.assert_frame_equal(remote.table, swept.table)
    pd.testing.assert_frame_equal(again.table, swept.table)
    local = sweep(eth_btc, RsiReversion, {"timeperiod": [7, 14, 21]}, fees=FEES, progress=False)
    pd.testing.assert_frame_equal(generic.table, local.table)


@pytest.mark.slow
def test_an_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(ConfigError, match="Cannot reach the Dask scheduler"):
        get_client(Settings(dask_scheduler="tcp://127.0.0.1:9"), timeout="2s")
