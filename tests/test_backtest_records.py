"""Backtest run records: stored and read back on SQLite and PostgreSQL, listed, compared;
the data fingerprint, the code version, and the migration from a store made at 0002."""

from __future__ import annotations

import dataclasses
import math
import subprocess
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from alembic import command
from sqlalchemy import create_engine, insert, inspect, select
from sqlalchemy.engine import make_url

import workbench
from workbench.backtest.api import Backtest
from workbench.backtest.records import (
    BacktestRuns,
    backtest_runs,
    code_version,
    fingerprint,
    infer_timeframe,
    record_run,
)
from workbench.config import load_settings
from workbench.data.sources.simulated import SimulatedMarket
from workbench.data.store._engine import _alembic_config
from workbench.engine import FeeSchedule
from workbench.errors import StoreError
from workbench.strategies import MovingAverageCross, RsiReversion

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    market = SimulatedMarket(["ETH/USDT", "BTC/USDT"], seed=3)
    return market.fetch_ohlcv("ETH/USDT", "1h", "2024-01-01", "2024-01-21")


@pytest.fixture(scope="module")
def results(bars):
    """Three runs: two moving-average crosses and an RSI reversion, on the same bars."""
    runs = [
        (MovingAverageCross(fast=5, slow=20, long_only=True), 0.001),
        (MovingAverageCross(fast=10, slow=40, long_only=True), 0.001),
        (RsiReversion(long_only=True), 0.0),
    ]
    return [Backtest(bars, s, cash=5_000, fees=fees, symbol="ETH/USDT").run() for s, fees in runs]


def assert_same_stats(read: pd.Series, expected: pd.Series) -> None:
    assert list(read.index) == list(expected.index)
    for key, value in expected.items():
        got = read[key]
        if isinstance(value, float) and math.isnan(value):
            assert isinstance(got, float) and math.isnan(got), key
        else:
            assert (
                got == value
                and type(got) is type(value)
                or (isinstance(value, (int, float, np.floating)) and float(got) == float(value))
            ), (key, got, value)


# -- record, get, list, compare ------------------------------------------------------------


def test_a_run_is_recorded_and_read_back_whole(store_url, results, bars):
    result = results[0]
    before = datetime.now(UTC)
    with BacktestRuns(store_url) as runs:
        saved = runs.record(result, seed=42, note="first try")
    with BacktestRuns(store_url) as runs:  # a new connection: it is in the store
        run = runs.get(saved.id)

    assert run == saved
    assert (run.strategy, run.label) == ("MovingAverageCross", "SMA(5)/SMA(20)")
    assert run.parameters == {"long_only": True, "kind": "sma", "fast": 5, "slow": 20}
    assert run.settings["cash"] == 5_000 and run.settings["fees"] == 0.001
    assert run.settings["slippage"] == 0.0
    assert (run.symbols, run.timeframe, run.bars) == (["ETH/USDT"], "1h", len(bars))
    assert (run.start, run.end) == (bars.index[0], bars.index[-1])
    assert run.fingerprint == fingerprint(result.bars) == fingerprint({"ETH/USDT": bars})
    assert (run.version, run.commit) == code_version()
    assert (run.seed, run.note, run.exchange) == (42, "first try", None)
    assert before <= run.created <= datetime.now(UTC)
    assert_same_stats(run.stats, result.stats)
    assert isinstance(run.stats["max_drawdown_duration"], pd.Timedelta)
    assert "SMA(5)/SMA(20)" in str(run) and run.fingerprint in str(run)

    engine = create_engine(_sqlalchemy_url(store_url))  # the sortable columns hold the stats
    with engine.connect() as conn:
        row = (
            conn.execute(select(backtest_runs).where(backtest_runs.c.id == run.id)).mappings().one()
        )
    engine.dispose()
    assert row["total_return"] == result.stats["total_return"]
    assert row["sharpe"] == result.stats["sharpe"]
    assert row["max_drawdown"] == result.stats["max_drawdown"]
    assert row["trades"] == result.stats["trades"]
    assert row["final_equity"] == result.stats["final_equity"]


def test_nan_and_infinite_stats_and_object_settings_survive_the_round_trip(store_url, results):
    stats = results[0].stats.copy()
    stats["sharpe"], stats["profit_factor"], stats["calmar"] = np.nan, np.inf, -np.inf
    result = dataclasses.replace(
        results[0],
        stats=stats,
        settings={**results[0].settings, "fees": FeeSchedule(maker=0.0002, taker=0.001)},
        params={"fast": np.int64(5), "when": pd.Timestamp("2024-01-01", tz="UTC")},
    )
    with BacktestRuns(store_url) as runs:
        run = runs.get(runs.record(result).id)
        listed = runs.list()

    assert math.isnan(run.stats["sharpe"]) and run.stats["profit_factor"] == math.inf
    assert run.stats["calmar"] == -math.inf
    assert run.settings["fees"] == {"type": "FeeSchedule", "maker": 0.0002, "taker": 0.001}
    assert run.parameters == {"fast": 5, "when": "2024-01-01T00:00:00+00:00"}
    assert math.isnan(listed.loc[0, "sharpe"])


def test_list_newest_first_filtered_and_limited_and_compare_side_by_side(store_url, results):
    with BacktestRuns(store_url) as runs:
        ids = [runs.record(r, exchange="sim").id for r in results]
        listed = runs.list()
        crosses = runs.list(strategy="MovingAverageCross")
        newest = runs.list(limit=1)
        table = runs.compare([ids[2], ids[0]])
        with pytest.raises(
            StoreError, match=r"No backtest run 999, 998 in the store\. Newest runs: "
        ):
            runs.compare([ids[0], 999, 998])
        with pytest.raises(StoreError, match="No backtest run 999"):
            runs.get(999)

    assert list(listed["id"]) == ids[::-1]
    assert list(listed["label"]) == ["RSI(14) 30/50/70", "SMA(10)/SMA(40)", "SMA(5)/SMA(20)"]
    assert list(crosses["id"]) == ids[1::-1]
    assert list(newest["id"]) == [ids[2]]
    assert (listed["symbols"] == "ETH/USDT").all() and (listed["exchange"] == "sim").all()
    for name in ("total_return", "sharpe", "max_drawdown", "trades", "final_equity"):
        assert list(listed[name]) == [r.stats[name] for r in results[::-1]]
    assert listed["created"].dt.tz is not None

    assert list(table.columns) == [ids[2], ids[0]]
    assert table.loc["strategy"].tolist() == ["RsiReversion", "MovingAverageCross"]
    assert table.loc["param.fast"].tolist()[1] == 5 and pd.isna(table.loc["param.fast"].tolist()[0])
    assert table.loc["param.timeperiod"].tolist()[0] == 14
    assert table.loc["settings.fees"].tolist() == [0.0, 0.001]
    for name in results[0].stats.index:
        assert table.loc[name].tolist() == [results[2].stats[name], results[0].stats[name]]
    rows = list(table.index)  # what ran, then parameters, then settings, then every stat
    assert rows.index("param.fast") < rows.index("settings.cash") < rows.index("start")
    assert rows[-len(results[0].stats) :] == list(results[0].stats.index)


def test_a_portfolio_run_records_every_symbol_and_the_whole_span(store_url, results, bars):
    other = SimulatedMarket(["BTC/USDT"], seed=3).fetch_ohlcv(
        "BTC/USDT", "1h", "2023-12-31", "2024-01-25"
    )
    portfolio = dataclasses.replace(results[0], bars={"ETH/USDT": bars, "BTC/USDT": other})
    with BacktestRuns(store_url) as runs:
        run = runs.record(portfolio, data_fingerprint="given", timeframe="1h")
    assert run.symbols == ["ETH/USDT", "BTC/USDT"]
    assert (run.start, run.end) == (min(bars.index[0], other.index[0]), other.index[-1])
    assert run.bars == len(bars) + len(other) and run.fingerprint == "given"


def test_record_run_opens_the_settings_store(isolated_env, results):
    saved = record_run(results[1], seed=7)
    assert (isolated_env / "data" / "workbench.db").exists()
    with BacktestRuns(load_settings().store_url) as runs:
        assert runs.get(saved.id).label == "SMA(10)/SMA(40)"
        assert runs.get(saved.id).seed == 7


# -- the fingerprint ------------------------------------------------------------------------


def test_the_fingerprint_changes_with_one_price_and_not_with_a_copy(bars):
    base = fingerprint({"ETH/USDT": bars})
    assert len(base) == 64 and int(base, 16) >= 0

    assert fingerprint({"ETH/USDT": bars.copy()}) == base
    assert fingerprint({"ETH/USDT": bars[bars.columns[::-1]]}) == base  # column order
    assert fingerprint({"ETH/USDT": bars.set_axis(bars.index.as_unit("ms"))}) == base
    assert fingerprint({"ETH/USDT": bars.tz_convert("Europe/Berlin")}) == base  # same instants
    assert fingerprint(bars) == fingerprint({"asset": bars})

    one_price = bars.copy()
    one_price.iloc[100, one_price.columns.get_loc("close")] *= 1 + 1e-12
    assert fingerprint({"ETH/USDT": one_price}) != base
    one_volume = bars.copy()
    one_volume.iloc[-1, one_volume.columns.get_loc("volume")] += 1
    assert fingerprint({"ETH/USDT": one_volume}) != base
    shifted = bars.set_axis(
        bars.index.where(bars.index != bars.index[-1], bars.index[-1] + pd.Timedelta("1s"))
    )
    assert fingerprint({"ETH/USDT": shifted}) != base
    assert fingerprint({"ETH/USDT": bars.iloc[:-1]}) != base
    assert fingerprint({"BTC/USDT": bars}) != base  # the symbol is part of the data
    assert fingerprint({"ETH/USDT": bars, "BTC/USDT": bars}) not in (
        base,
        fingerprint({"BTC/USDT": bars}),
    )
    two = {"ETH/USDT": bars, "BTC/USDT": one_price}
    assert fingerprint(two) == fingerprint(dict(reversed(two.items())))  # by name, not order


def test_the_timeframe_is_inferred_from_the_bar_spacing(bars):
    assert infer_timeframe({"x": bars}) == "1h"
    assert infer_timeframe({"x": bars.iloc[::5]}) == "5h"
    assert infer_timeframe({"x": bars.resample("1D").last()}) == "1d"
    assert infer_timeframe({"x": bars.iloc[:1]}) is None


# -- the code version -----------------------------------------------------------------------


def test_the_code_version_is_this_checkout_with_its_commit():
    version, commit = code_version()
    assert version == workbench.__version__
    root = workbench.__file__.rsplit("/workbench/", 1)[0]
    if subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True).returncode:
        assert commit is None  # an installed copy, not a checkout
        return
    sha, _, dirty = commit.partition("+")
    assert len(sha) == 40 and dirty in ("", "dirty")
    # the commit exists in this repository (others may commit while the test runs)
    assert (
        subprocess.run(["git", "-C", root, "cat-file", "-e", sha], capture_output=True).returncode
        == 0
    )


def test_the_commit_is_marked_dirty_with_uncommitted_changes(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run([*GIT, "init", "-q", str(repo)], check=True)
    assert code_version(repo) == (workbench.__version__, None)  # no commit yet
    (repo / "a.py").write_text("x = 1\n")
    subprocess.run([*GIT, "-C", str(repo), "add", "a.py"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-q", "-m", "one"], check=True)
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()

    assert code_version(repo) == (workbench.__version__, head)
    (repo / "a.py").write_text("x = 2\n")
    assert code_version(repo) == (workbench.__version__, head + "+dirty")
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "a.py"], check=True)
    (repo / "new.py").write_text("")
    assert code_version(repo) == (workbench.__version__, head + "+dirty")  # untracked counts
    (repo / "sub").mkdir()
    assert code_version(repo / "sub")[1] is None  # inside another checkout, not its own


def test_without_git_the_commit_is_none(tmp_path, monkeypatch):
    assert code_version(tmp_path)[1] is None  # not a checkout
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable at all
    assert code_version() == (workbench.__version__, None)


# -- migration ------------------------------------------------------------------------------


def test_a_store_made_at_0002_is_upgraded_keeping_its_rows(store_url, results):
    from workbench.data.store.schema import series
    from workbench.jobs.registry import job_runs

    engine = create_engine(_sqlalchemy_url(store_url))
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        assert "backtest_runs" not in inspect(conn).get_table_names()
        conn.execute(
            insert(series).values(
                kind="bars", exchange="sim", symbol="BTC/USDT", timeframe="1h", rows=0
            )
        )
        conn.execute(
            insert(job_runs).values(
                job="echo", parameters="{}", status="succeeded", started=now, host="h", pid=1
            )
        )

    with BacktestRuns(store_url) as runs:  # opening migrates to the head
        run = runs.record(results[0])
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0003"
        assert conn.execute(select(job_runs.c.job, job_runs.c.status)).all() == [
            ("echo", "succeeded")
        ]
        assert conn.execute(select(series.c.symbol)).scalars().all() == ["BTC/USDT"]
        assert conn.execute(select(backtest_runs.c.id)).scalars().all() == [run.id]

    with engine.begin() as conn:  # and back down, and up again
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
        assert "backtest_runs" not in inspect(conn).get_table_names()
        command.upgrade(config, "head")
        assert "backtest_runs" in inspect(conn).get_table_names()
    engine.dispose()


def _sqlalchemy_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)
