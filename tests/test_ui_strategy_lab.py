"""StrategyLab without a browser: parameters as widgets, runs, sweeps, alerts, recorded runs."""

from __future__ import annotations

import asyncio
import threading

import holoviews as hv
import pandas as pd
import panel as pn
import pytest
from bokeh.document import Document

from workbench.backtest.api import Backtest
from workbench.backtest.records import BacktestRuns
from workbench.config import load_settings
from workbench.data.sources.simulated import SimulatedMarket
from workbench.strategies import MovingAverageCross
from workbench.ui.strategy_lab import StrategyLab

NOW = "2024-03-01 00:30"  # the simulated market opens 2024-01-01: 60 days of history


@pytest.fixture
def market() -> SimulatedMarket:
    return SimulatedMarket(seed=7, now=NOW)


@pytest.fixture
def lab(isolated_env, market) -> StrategyLab:
    lab = StrategyLab(market, settings=load_settings())
    yield lab
    lab.runs.close()


def run(lab: StrategyLab):
    return asyncio.run(lab.run())


def test_the_strategys_parameters_become_widgets_rebuilt_with_the_strategy(lab):
    assert lab.strategy_name == "MovingAverageCross" and lab.symbol == "BTC/USDT"
    values = lab.parameters.param.values()
    assert {k: values[k] for k in ("kind", "fast", "slow", "long_only")} == {
        "kind": "sma", "fast": 10, "slow": 50, "long_only": True,  # long only: a spot symbol
    }  # fmt: skip
    (widgets,) = lab._param_box.objects
    assert isinstance(widgets, pn.Param) and widgets.object is lab.parameters
    assert {"kind", "fast", "slow", "long_only"} <= set(widgets._widgets)
    assert (lab.sweep_x, lab.x_start, lab.x_stop, lab.x_step) == ("fast", 5, 30, 5)
    assert (lab.sweep_y, lab.y_start, lab.y_stop, lab.y_step) == ("slow", 30, 150, 10)

    lab.strategy_name = "DonchianBreakout"
    assert set(lab.parameters.param) - {"name"} == {"timeperiod", "exit_period", "long_only"}
    assert lab.parameters.long_only is True
    assert lab._param_box.objects[0].object is lab.parameters
    assert lab.param.sweep_x.objects == ["timeperiod", "exit_period"]
    assert (lab.sweep_x, lab.x_start, lab.x_stop) == ("timeperiod", 10, 60)
    assert (lab.sweep_y, lab.y_start, lab.y_stop) == ("exit_period", 5, 30)
    assert isinstance(lab.make_strategy(), lab.strategy_class)


def test_run_fills_the_stats_table_chart_and_trade_list(lab, market):
    result = run(lab)
    assert result is lab.result and lab.alert_type == "success", lab.message
    assert not lab.busy

    # the same as a Backtest of the lab's bars and settings
    assert lab.bars.index[-1] < market.now - pd.Timedelta(hours=1)  # closed bars only
    assert len(lab.bars) == 60 * 24
    direct = Backtest(
        lab.bars, MovingAverageCross(fast=10, slow=50, long_only=True),
        cash=10_000, fees=0.001, slippage=2, symbol="BTC/USDT",
    ).run()  # fmt: skip
    pd.testing.assert_series_equal(result.stats, direct.stats)

    stats = lab.stats_frame
    assert lab._stats.value is stats
    assert list(stats.index) == list(result.stats.index)
    assert stats.loc["sharpe", "stat"] == "sharpe"
    assert stats.loc["max_drawdown", "stat"] == "max drawdown"
    assert stats.loc["total_return", "value"] == f"{result.stats['total_return']:.2%}"
    assert stats.loc["sharpe", "value"] == f"{result.stats['sharpe']:,.2f}"
    assert stats.loc["final_equity", "value"] == f"{result.stats['final_equity']:,.2f}"
    assert stats.loc["trades", "value"] == str(result.stats["trades"])

    trades = lab.trades_frame
    assert lab._trades.value is trades and len(result.trades) > 0
    assert len(trades) == len(result.trades)
    assert trades["entry_price"].tolist() == result.trades["entry_price"].tolist()
    assert trades["entry_time"].dt.tz is None  # shown as UTC without the zone
    assert lab._trades.pagination == "remote"
    assert isinstance(lab._plot.object, hv.Layout)
    assert "SMA(10)/SMA(50)" in lab.message and "Recorded as run 1." in lab.message


def test_the_run_leaves_the_event_loop_free(lab, market, monkeypatch):
    """The fetch waits for a go-ahead that only the event loop can give: a run that held
    the loop would never get it."""
    go_ahead = threading.Event()
    fetch = market.fetch_ohlcv

    def fetch_when_allowed(*args, **kwargs):
        if not go_ahead.wait(timeout=10):
            raise RuntimeError("the event loop was blocked during the run")
        return fetch(*args, **kwargs)

    monkeypatch.setattr(market, "fetch_ohlcv", fetch_when_allowed)

    async def scenario():
        task = asyncio.create_task(lab.run())
        while not lab.busy and not task.done():
            await asyncio.sleep(0.001)
        go_ahead.set()  # the loop turns while the backtest is under way
        return await task

    assert asyncio.run(scenario()) is not None, lab.message
    assert lab.alert_type == "success" and not lab.busy


def test_contradicting_parameters_are_an_alert_not_a_traceback(lab):
    lab.parameters.fast = 60  # slow is 50
    assert lab.alert_type == "warning"
    assert "fast (60) must be less than slow (50)" in lab.message
    assert run(lab) is None
    assert lab.alert_type == "danger" and lab.message.startswith("**Backtest refused.**")
    assert "Traceback" not in lab.message and lab.result is None and not lab.busy
    lab.parameters.slow = 100  # consistent again: the warning goes
    assert lab.message == ""
    assert run(lab) is not None


def test_bad_data_and_unexpected_failures_are_alerts(isolated_env, monkeypatch):
    young = SimulatedMarket(seed=7, now="2024-01-01 20:00")  # 19 hourly bars: too few for SMA(50)
    lab = StrategyLab(young, settings=load_settings())
    assert run(lab) is None
    assert lab.alert_type == "danger" and lab.message.startswith("**Backtest failed.**")
    assert "50" in lab.message and not lab.busy

    def broken(*args, **kwargs):
        raise RuntimeError("the source fell over")

    monkeypatch.setattr(young, "fetch_ohlcv", broken)
    assert run(lab) is None
    assert lab.alert_type == "danger" and "unexpectedly" in lab.message
    assert "RuntimeError: the source fell over" in lab.message and not lab.busy
    lab.runs.close()


def test_too_many_bars_are_refused_before_fetching(lab):
    lab.param.update(timeframe="1m", days=365)
    assert run(lab) is None
    assert lab.alert_type == "danger" and "525,600 bars" in lab.message


def test_sweep_shows_the_heatmap_and_applies_the_best_parameters(lab):
    assert lab.apply_best() is None and lab.alert_type == "warning"  # nothing swept yet
    lab.record = False
    found = asyncio.run(lab.run_sweep())
    assert found is lab.sweep_result and lab.alert_type == "success", lab.message
    assert found.params == ("fast", "slow")
    assert len(found) == 6 * 13 - 1 and found.skipped == 1  # fast=30, slow=30 breaks the order
    heatmap = lab._heatmap.object
    assert isinstance(heatmap, hv.HeatMap)
    assert heatmap.kdims == ["fast", "slow"] and heatmap.vdims == ["sharpe"]
    best = found.best_params("sharpe")
    assert f"fast={best['fast']}, slow={best['slow']}" in lab._best_text()

    assert lab.apply_best() == best
    assert (lab.parameters.fast, lab.parameters.slow) == (best["fast"], best["slow"])
    result = run(lab)
    assert {k: result.params[k] for k in best} == best
    assert result.stats["sharpe"] == pytest.approx(found.best()["sharpe"], rel=1e-9)

    lab.strategy_name = "RsiReversion"  # another strategy: the old sweep no longer applies
    assert lab.sweep_result is None and lab._heatmap.object is None


def test_a_sweep_over_nonsense_ranges_is_an_alert(lab):
    lab.sweep_y = "fast"
    assert asyncio.run(lab.run_sweep()) is None
    assert lab.alert_type == "danger" and "two different parameters" in lab.message
    lab.sweep_y = "slow"  # its default range comes with it
    assert (lab.y_start, lab.y_stop) == (30, 150)
    lab.param.update(y_start=150, y_stop=30)
    assert asyncio.run(lab.run_sweep()) is None
    assert "runs backwards" in lab.message
    lab.param.update(y_start=2, y_stop=5000, y_step=1, x_start=1, x_stop=100, x_step=1)
    assert asyncio.run(lab.run_sweep()) is None
    assert "combinations is more than this page runs" in lab.message
    assert lab.sweep_result is None and not lab.busy


def test_recorded_runs_are_listed_and_compared(lab, isolated_env):
    assert lab.runs_frame.empty
    first = run(lab)
    lab.parameters.param.update(fast=20, slow=80)
    second = run(lab)
    assert list(lab.runs_frame["id"]) == [2, 1] and lab.last_record.id == 2
    assert lab.runs_frame["data"].tolist() == ["BTC/USDT 1h"] * 2
    assert lab.runs_frame["trades"].tolist() == [len(second.trades), len(first.trades)]
    with BacktestRuns.from_settings(load_settings()) as runs:  # the settings' store, isolated
        assert runs.list()["label"].tolist() == ["SMA(20)/SMA(80)", "SMA(10)/SMA(50)"]
        assert str(isolated_env) in runs.url

    assert lab.compare() is None and lab.alert_type == "warning"  # nothing ticked yet
    lab._runs_table.selection = [1, 0]  # as ticking the boxes does
    frame = lab.compare()
    assert list(frame.columns) == [1, 2] and lab.alert_type == "success"
    assert frame.loc["param.slow"].tolist() == [50, 80]
    shown = lab.comparison.set_index("field")
    assert list(shown.columns) == ["run 1", "run 2"]
    assert shown.loc["sharpe", "run 2"] == f"{second.stats['sharpe']:,.2f}"
    assert shown.loc["total_return", "run 1"] == f"{first.stats['total_return']:.2%}"

    lab._runs_table.selection = [1]  # run 1 ticked; a new run lands on top of the table
    run(lab)
    assert list(lab.runs_frame["id"]) == [3, 2, 1]
    assert lab._runs_table.selection == [2]  # still run 1

    lab.record = False
    run(lab)
    assert len(lab.refresh_runs()) == 3 and "Recorded" not in lab.message
    assert lab.compare([9]) is None and "No backtest run 9" in lab.message


def test_it_displays_in_a_notebook_cell_and_in_the_dashboard(lab, isolated_env):
    model = pn.panel(lab).get_root(Document())  # what a notebook cell does with it
    assert model is not None
    assert lab.__panel__() is lab.__panel__()  # one layout, however often it is shown

    default = StrategyLab()  # a notebook's one-liner: the settings' seed and store
    assert isinstance(default.source, SimulatedMarket)
    assert default.source.seed == load_settings().seed
    assert default.runs.url == load_settings().store_url
    default.runs.close()

    from workbench.ui.app import create_app

    app = create_app(load_settings())
    (tabs,) = app.main.objects
    assert tabs.dynamic and "Strategy lab" in tabs._names
