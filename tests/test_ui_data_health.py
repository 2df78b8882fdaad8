"""DataHealth without a server: the table's quality columns, a series' gaps, import, refresh."""

from __future__ import annotations

import asyncio

import holoviews as hv
import panel as pn
import pytest

from workbench.config import load_settings
from workbench.data.importer import import_files
from workbench.data.store import MarketStore
from workbench.ui.data_health import DataHealth

BARS = "binance-spot/5m"


@pytest.fixture
def store(tmp_path) -> MarketStore:
    with MarketStore(f"sqlite:///{tmp_path / 'store.db'}") as store:
        yield store


@pytest.fixture
def health(store, shared_data) -> DataHealth:
    import_files(store, [shared_data / BARS / "ADA_BTC.parquet", shared_data / BARS / "ETH_BTC.parquet"])
    return DataHealth(store)


def row(health: DataHealth, symbol: str) -> int:
    return int((health.series["symbol"] == symbol).to_numpy().argmax())


def test_the_table_lists_each_series_with_its_missing_bars(health):
    table = health.series.set_index("symbol")
    assert list(table.index) == ["ADA/BTC", "ETH/BTC"]
    assert table.loc["ADA/BTC", "missing"] == 40 and table.loc["ETH/BTC", "missing"] == 0
    assert table.loc["ADA/BTC", "findings"] == "outlier_returns:2"
    assert table["ok"].all() and (table["timeframe"] == "5m").all()
    assert health._table.value is health.series  # the widget shows the param


def test_selecting_a_series_shows_its_gaps_and_shaded_chart(health):
    health._table.selection = [row(health, "ADA/BTC")]  # as a click in the table does
    assert health.selected == row(health, "ADA/BTC")
    gaps = health._gaps_table()
    assert isinstance(gaps, pn.widgets.Tabulator)
    assert len(gaps.value) == 5 and gaps.value["missing"].sum() == 40
    chart = health._chart()
    assert isinstance(chart, hv.Overlay)
    assert len(chart.get(1).data) == 5  # a shaded span per gap
    health.selected = row(health, "ETH/BTC")
    assert "no gaps" in health._gaps_table().object
    assert health._table.selection == [row(health, "ETH/BTC")]


def test_a_bad_import_path_is_an_alert_and_changes_nothing(health, tmp_path):
    before = health.series.copy()
    health.import_path = str(tmp_path / "nope" / "ADA_BTC.parquet")
    health.import_files()
    assert health.alert_type == "danger" and "Import failed" in health.message
    assert "Traceback" not in health.message
    assert health.series.equals(before)


def test_refresh_picks_up_new_data_and_keeps_the_selection(health, store, shared_data):
    health.selected = row(health, "ETH/BTC")
    import_files(store, [shared_data / BARS / "LTC_BTC.parquet"])
    health.refresh()
    assert "LTC/BTC" in set(health.series["symbol"])
    assert health.series.iloc[health.selected]["symbol"] == "ETH/BTC"


def test_importing_a_folder_adds_its_series(store, shared_data):
    health = DataHealth(store)
    assert health.series.empty
    health.import_path = str(shared_data / BARS)
    health.import_files()
    assert health.alert_type == "success", health.message
    assert len(health.series) == len(list((shared_data / BARS).glob("*.parquet")))


@pytest.mark.slow
def test_backfill_runs_the_job_and_refreshes(isolated_env):
    health = DataHealth.from_settings(load_settings())
    health.param.update(symbols="BTC/USDT", timeframe="1h", start="2024-01-01")
    run = asyncio.run(health.backfill())
    assert run is not None and run.ok, health.message
    assert health.alert_type == "success" and str(run.html) in health.message
    assert not health.busy
    assert list(health.series["symbol"]) == ["BTC/USDT"]
