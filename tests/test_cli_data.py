"""`workbench data ...` end to end on the embedded store: import, list, check, bad input."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.cli import main
from workbench.data.store import MarketStore


@pytest.fixture
def cli(isolated_env, capsys):
    """Run the CLI in-process; returns (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        status = main([str(a) for a in args])
        out = capsys.readouterr()
        return status, out.out, out.err

    return run


def stored(isolated_env) -> pd.DataFrame:
    with MarketStore(f"sqlite:///{isolated_env / 'data' / 'workbench.db'}") as store:
        return store.list()


def test_import_the_shared_files_then_list_and_check(cli, shared_data, isolated_env):
    files = sorted(shared_data.glob("binance-*/*/*.parquet"))
    status, out, err = cli("data", "import", *files)
    assert status == 0, err
    listed = stored(isolated_env).set_index(["kind", "symbol", "timeframe"])
    assert listed.loc[("bars", "ADA/BTC", "5m"), "missing"] == 40
    assert listed.loc[("bars", "ETH/BTC", "5m"), "rows"] == 5760
    assert listed.loc[("mark", "XRP/USDT:USDT", "1h"), "rows"] == 100
    assert listed.loc[("trades", "ETH/USDT:USDT", ""), "rows"] == 1000

    status, out, _ = cli("data", "list")
    assert status == 0 and "ADA/BTC" in out and "XRP/USDT:USDT" in out

    status, out, _ = cli("data", "check")
    assert status == 0
    report = {tuple(line.split()[1:3]): line.split() for line in out.splitlines()[1:]}
    assert report[("bars", "ADA/BTC")][5:8] == ["40", "5", "outlier_returns:2"]
    assert report[("bars", "ETH/BTC")][5:8] == ["0", "0", "True"]
    assert report[("mark", "XRP/USDT:USDT")][-2:] == ["missing_volume:100", "True"]

    # importing again is idempotent
    assert cli("data", "import", *files)[0] == 0
    pd.testing.assert_frame_equal(stored(isolated_env), listed.reset_index()[stored(isolated_env).columns])


def test_check_files_directly(cli, shared_data):
    status, out, _ = cli("data", "check", shared_data / "binance-spot/5m/ADA_BTC.parquet", "-v")
    assert status == 0 and "40 missing bars" in out


def test_csv_with_a_missing_column_changes_nothing(cli, tmp_path, isolated_env, shared_data):
    good = pd.read_parquet(shared_data / "binance-spot/5m/ETH_BTC.parquet")
    good.to_csv(tmp_path / "good.csv", index=False)
    good.drop(columns="low").to_csv(tmp_path / "bad.csv", index=False)
    status, _, err = cli("data", "import", tmp_path / "good.csv", tmp_path / "bad.csv",
                         "--exchange", "binance", "--symbol", "ETH/BTC", "--timeframe", "5m")
    assert status == 1 and "missing column(s) ['low']" in err
    assert stored(isolated_env).empty  # the good file was not written either


def test_seconds_timestamps_are_detected(cli, tmp_path, isolated_env, shared_data):
    frame = pd.read_parquet(shared_data / "binance-spot/5m/ETH_BTC.parquet")
    frame.assign(timestamp=frame.timestamp // 1000).to_csv(tmp_path / "secs.csv", index=False)
    args = ("data", "import", tmp_path / "secs.csv", "--exchange", "x", "--symbol", "ETH/BTC", "--timeframe", "5m")
    status, _, err = cli(*args)
    assert status == 1 and "look like s" in err and "--unit s" in err
    assert stored(isolated_env).empty
    assert cli(*args, "--unit", "s")[0] == 0
    assert stored(isolated_env).rows.tolist() == [5760]


def test_a_file_whose_path_says_nothing_needs_options(cli, tmp_path, shared_data):
    pd.read_parquet(shared_data / "binance-spot/5m/ETH_BTC.parquet").to_parquet(tmp_path / "bars.parquet")
    status, _, err = cli("data", "import", tmp_path / "bars.parquet")
    assert status == 1 and "--exchange" in err and "--timeframe" in err


def test_a_database_that_cannot_connect(cli, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", "postgresql+psycopg://trader:hunter2@127.0.0.1:9/wb")
    status, _, err = cli("data", "list")
    assert status == 1 and "Cannot open the market store at postgresql+psycopg://trader:***@127.0.0.1:9/wb" in err
    assert "hunter2" not in err


def test_config_shows_no_secret(cli, monkeypatch):
    monkeypatch.setenv("WORKBENCH_API_SECRET", "PLANTED-secret-value")
    status, out, _ = cli("config")
    assert status == 0 and "api_secret       set" in out and "PLANTED" not in out


def test_fetch_from_the_simulated_market_then_only_what_is_missing(cli, isolated_env):
    args = ("data", "fetch", "BTC/USDT", "ETH/USDT", "--exchange", "sim", "--timeframe", "1h",
            "--start", "2024-01-01", "--end", "2024-01-03")
    status, out, err = cli(*args)
    assert status == 0, err
    assert stored(isolated_env).rows.tolist() == [49, 49]
    status, out, _ = cli(*args[:-2], "--end", "2024-01-04")
    assert status == 0 and out.split() == ["symbol", "new_bars", "BTC/USDT", "24", "ETH/USDT", "24"]


@pytest.mark.parametrize(
    ("exchange", "symbol", "message"),
    [
        ("binanse", "BTC/USDT", "no exchange 'binanse'; did you mean binance"),
        ("sim", "NOPE/USDT", "NOPE/USDT"),
    ],
)
def test_fetch_refuses_unknown_exchanges_and_symbols(cli, isolated_env, exchange, symbol, message):
    status, _, err = cli("data", "fetch", symbol, "--exchange", exchange, "--start", "2024-01-01", "--end", "2024-01-02")
    assert status == 1 and message in err
    assert stored(isolated_env).empty


def test_usage_errors_are_short_and_not_tracebacks(cli):
    status, _, err = cli("nonsense")
    assert status == 2 and "No such command" in err and "Traceback" not in err
