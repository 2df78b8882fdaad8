"""`workbench backtest ...` on an isolated data directory: run on the simulated default and
on stored bars, list, show, compare, and the usage errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import ROOT
from workbench.backtest.api import Backtest
from workbench.backtest.records import BacktestRuns, fingerprint
from workbench.cli import main
from workbench.config import load_settings
from workbench.data.model import to_bars
from workbench.data.sources.simulated import SimulatedMarket
from workbench.strategies import BUILTIN_STRATEGIES, MovingAverageCross

# 14 days of hourly bars: quick, and enough for a 5/20 cross to trade
WINDOW = ("--timeframe", "1h", "--start", "2024-01-01", "--end", "2024-01-14 23:00")
TAKES = "long_only=False, kind=sma, fast=10, slow=50."  # MovingAverageCross's parameters
CROSS = ("MovingAverageCross", "-p", "fast=5", "-p", "slow=20", "-p", "long_only=true")


@pytest.fixture
def cli(isolated_env, capsys):
    """Run the CLI in-process; returns (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        status = main([str(a) for a in args])
        out = capsys.readouterr()
        return status, out.out, out.err

    return run


def runs():
    return BacktestRuns(load_settings().store_url)


def test_run_on_the_simulated_default_is_recorded_listed_shown_and_compared(cli, isolated_env):
    status, out, err = cli(
        "backtest", "run", *CROSS, "-s", "ETH/BTC", *WINDOW, "--fees", "0.001", "--note", "cli"
    )
    assert status == 0, err
    assert out.startswith(
        "MovingAverageCross SMA(5)/SMA(20) on ETH/BTC 1h: 336 bars from the simulated market (seed 7)"
    )
    assert "recorded as run 1 (workbench backtest show 1)" in out

    # the run is the API's run over the simulated market's bars, with the same stats
    bars = SimulatedMarket(["ETH/BTC"], seed=7).fetch_ohlcv(
        "ETH/BTC", "1h", "2024-01-01", "2024-01-14 23:00"
    )
    expected = Backtest(
        bars, MovingAverageCross(fast=5, slow=20, long_only=True), fees=0.001, symbol="ETH/BTC"
    ).run()
    with runs() as store:
        run = store.get(1)
    assert run.fingerprint == fingerprint({"ETH/BTC": bars})
    assert (run.exchange, run.timeframe, run.seed, run.note) == ("sim", "1h", 7, "cli")
    assert run.stats["final_equity"] == expected.stats["final_equity"]
    assert run.stats["trades"] == expected.stats["trades"] > 0
    assert out.splitlines()[-3].split() == ["trades", str(expected.stats["trades"])]

    # the same command again gives the same data and result: a second, identical record
    assert cli("backtest", "run", *CROSS, "-s", "ETH/BTC", *WINDOW, "--fees", "0.001")[0] == 0
    status, out, _ = cli("backtest", "list")
    assert status == 0
    lines = out.splitlines()
    header = "id created strategy label data return sharpe max_dd trades final_equity code"
    assert lines[0].split() == header.split()
    assert [line.split()[0] for line in lines[1:]] == ["2", "1"]
    assert "SMA(5)/SMA(20)" in lines[1] and "ETH/BTC 1h sim" in lines[1]
    assert f"{expected.stats['total_return']:.2%}" in lines[1]

    status, out, _ = cli("backtest", "show", "1")
    assert status == 0
    assert f"fingerprint  {run.fingerprint}" in out and "seed         7" in out
    assert "parameters   fast=5, kind=sma, long_only=True, slow=20" in out

    status, out, _ = cli("backtest", "compare", "2", "1")
    assert status == 0
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert table["run"] == ["2", "1"]
    assert (
        table["param.fast"] == ["5", "5"] and table["trades"] == [str(expected.stats["trades"])] * 2
    )
    assert table["fingerprint"] == [run.fingerprint[:12]] * 2


def test_no_record_leaves_the_history_empty_and_list_filters_by_strategy(cli):
    status, out, err = cli("backtest", "run", "rsireversion", *WINDOW, "--no-record")
    assert status == 0, err
    assert "RsiReversion RSI(14) 30/50/70 on BTC/USDT 1h" in out and "not recorded" in out
    assert cli("backtest", "list") == (0, "(no runs recorded)\n", "")

    assert cli("backtest", "run", "RsiReversion", *WINDOW)[0] == 0
    assert cli("backtest", "run", *CROSS, *WINDOW)[0] == 0
    status, out, _ = cli("backtest", "list", "--strategy", "rsireversion")
    assert status == 0 and len(out.splitlines()) == 2 and "RsiReversion" in out
    status, out, _ = cli("backtest", "list", "--limit", "1")
    assert len(out.splitlines()) == 2 and "MovingAverageCross" in out


def test_bars_in_the_store_come_before_the_simulation(cli):
    fetch = "data fetch BTC/USDT --exchange sim --timeframe 1h --start 2024-02-01 --end 2024-02-05"
    status, _, err = cli(*fetch.split())
    assert status == 0, err
    status, out, err = cli("backtest", "run", *CROSS, "--timeframe", "1h")
    assert status == 0, err
    assert (
        "on BTC/USDT 1h: 97 bars from the store (sim), 2024-02-01 00:00 to 2024-02-05 00:00 UTC"
        in out
    )
    with runs() as store:
        assert store.get(1).seed is None  # not made here: the store's bars


def test_run_on_real_bars_imported_into_the_store(cli, shared_data):
    path = shared_data / "binance-spot" / "5m" / "ETH_BTC.parquet"
    assert cli("data", "import", path)[0] == 0
    command = "backtest run MovingAverageCross -p long_only=true --exchange binance --timeframe 5m"
    status, out, err = cli(*command.split(), "--symbol", "ETH/BTC", "--fees", "0.001")
    assert status == 0, err
    assert "SMA(10)/SMA(50) on ETH/BTC 5m: 5,760 bars from the store (binance)" in out
    expected = Backtest(
        to_bars(pd.read_parquet(path)),
        MovingAverageCross(long_only=True),
        fees=0.001,
        symbol="ETH/BTC",
    ).run()
    with runs() as store:
        run = store.get(1)
    assert run.stats["final_equity"] == expected.stats["final_equity"]
    assert run.fingerprint == fingerprint({"ETH/BTC": expected.bars["ETH/BTC"]})

    status, _, err = cli(*command.split(), "-s", "ETH/BTC", "--start", "2030-01-01")
    assert status == 1 and err.startswith(
        "error: The store holds no binance ETH/BTC 5m bars between 2030-01-01"
    )
    status, _, err = cli(*command.split(), "-s", "LTC/BTC")
    assert status == 1 and "holds no bars binance LTC/BTC 5m" in err and "binance ETH/BTC 5m" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("Nope",),
            "Unknown strategy 'Nope'; the built-in strategies are: "
            + ", ".join(BUILTIN_STRATEGIES)
            + ".",
        ),
        (
            ("MovingAverageCross", "-p", "fats=3"),
            f"MovingAverageCross has no parameter 'fats'; it takes: {TAKES}",
        ),
        (
            ("MovingAverageCross", "-p", "fast"),
            f"Parameter 'fast' is not of the form NAME=VALUE; MovingAverageCross takes: {TAKES}",
        ),
        (
            ("MovingAverageCross", "-p", "fast=x"),
            "MovingAverageCross parameter 'fast' takes a whole number, not 'x'.",
        ),
        (
            ("MovingAverageCross", "-p", "long_only=maybe"),
            "parameter 'long_only' takes true or false, not 'maybe'.",
        ),
        (
            ("RsiReversion", "-p", "lower=low"),
            "RsiReversion parameter 'lower' takes a number, not 'low'.",
        ),
        (
            ("MovingAverageCross", "-p", "fast=60"),
            "(fast=60): MovingAverageCross: fast (60) must be less than slow (50).",
        ),
        (("MovingAverageCross", "-p", "kind=wma"), "MovingAverageCross(kind=wma): "),
        (("MovingAverageCross", "--timeframe", "5x"), "Unknown timeframe '5x'"),
    ],
)
def test_a_bad_strategy_or_parameter_is_a_usage_error_naming_the_valid_ones(
    cli, isolated_env, args, message
):
    status, out, err = cli("backtest", "run", *args)
    assert status == 2
    first, hint = err.splitlines()
    assert first.startswith("error: ") and message in first
    assert hint == "Try 'workbench backtest run --help' for help."
    assert not (isolated_env / "data").exists()  # refused before the store was opened


def test_show_or_compare_an_unknown_run_fails_in_one_line(cli):
    assert cli("backtest", "run", *CROSS, *WINDOW)[0] == 0
    status, _, err = cli("backtest", "show", "9")
    expected = (
        "No backtest run 9 in the store. Newest runs: 1 (workbench backtest list shows them)."
    )
    assert (status, err) == (1, f"error: {expected}\n")
    status, _, err = cli("backtest", "compare", "1", "7", "8")
    assert status == 1 and err.startswith("error: No backtest run 7, 8 in the store.")
    assert cli("backtest", "show", "x")[0] == 2  # not an id: Typer's usage error


def test_the_installed_command_end_to_end(isolated_env):
    env = {**os.environ, "WORKBENCH_DATA_DIR": str(isolated_env / "data")}
    command = [sys.executable, "-c", "from workbench.cli import run; run()"]
    done = subprocess.run(
        [*command, "backtest", "run", *CROSS, "-s", "SOL/USDT", *WINDOW],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "recorded as run 1" in done.stdout
    listed = subprocess.run(
        [*command, "backtest", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0 and "SOL/USDT 1h sim" in listed.stdout
