"""The shipped jobs daily_report and optimize_strategy, run by the real runner on the embedded
default (the simulated market, an isolated data directory), and the best parameters they
share: saved by one, picked up by the other and by the live strategy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from workbench.backtest.api import Backtest
from workbench.backtest.records import BacktestRuns, fingerprint
from workbench.backtest.report import format_number
from workbench.backtest.walk_forward import walk_forward
from workbench.cli import main
from workbench.config import Settings, load_settings
from workbench.data.sources.simulated import SimulatedMarket
from workbench.data.store import MarketStore
from workbench.errors import ConfigError
from workbench.jobs import JobRegistry, load_schedule, run_job
from workbench.jobs.strategy_params import (
    best_params_path,
    format_params,
    load_best_params,
    parse_grid,
    parse_params,
    read_best_params,
    save_best_params,
)
from workbench.strategies import BUILTIN_STRATEGIES, MovingAverageCross

PLANTED = "PLANTED-shipped-job-secret-0123456789"
BOKEH_JS = "/* BEGIN bokeh.min.js */"  # BokehJS inlined: the report's charts need no network
ROOT_DIV = re.compile(r"<div [^>]*\bdata-root-id=")  # one per embedded figure


def headings(html: str, level: int) -> list[str]:
    """The text of the report's headings of one level (nbconvert adds an anchor link)."""
    return [
        re.sub(r"<[^>]+>|¶", "", text).strip()
        for text in re.findall(rf"<h{level}[^>]*>(.*?)</h{level}>", html, re.DOTALL)
    ]


def section(html: str, title: str) -> str:
    """The report between the heading ``title`` and the next heading of its level."""
    start = re.search(rf"<h2[^>]*>{re.escape(title)}", html).end()
    following = re.search(r"<h2[^>]*>", html[start:])
    return html[start : start + following.start()] if following else html[start:]


def assert_no_secret_written(data_dir: Path) -> None:
    written = [p for p in (data_dir / "reports").rglob("*") if p.is_file()]
    assert written
    for path in written:
        assert PLANTED not in path.read_text(encoding="utf-8"), path
    with JobRegistry(load_settings().store_url) as registry:
        assert PLANTED not in registry.runs().to_json(date_format="iso")


#: What nbconvert's page template asks the network for (require.js, MathJax); the report's
#: own content, charts included, needs nothing beyond the file.
TEMPLATE_URLS = ("https://cdnjs.cloudflare.com/ajax/libs/", "https://cdn.jsdelivr.net/npm/mathjax")
FIGURES_JS = """() => { const out = [];
  const walk = (v) => { if (v.model.type === "Figure") out.push([v.bbox.width, v.bbox.height]);
                        for (const child of v.child_views ?? []) walk(child); };
  for (const view of Object.values(Bokeh.index)) walk(view);
  return out; }"""


def look_in_browser(report: Path, screenshot: Path, documents: int) -> list[list[float]] | None:
    """Open the report in headless Chromium with the network cut off, wait for its Bokeh
    documents, save a full-page screenshot and return each figure's drawn size; None when
    there is no Chromium or playwright here."""
    from tests.served import CHROMIUM, CHROMIUM_ARGS

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path(CHROMIUM).exists():
        return None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            external: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            def offline(route):
                if route.request.url.startswith(("file:", "data:", "blob:")):
                    return route.continue_()
                external.append(route.request.url)
                return route.abort()

            page.route("**/*", offline)
            page.goto(report.as_uri())
            page.wait_for_function(
                f"() => window.Bokeh && Bokeh.documents.length === {documents}", timeout=30_000
            )
            page.wait_for_timeout(1_000)
            figures = page.evaluate(FIGURES_JS)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert all(url.startswith(TEMPLATE_URLS) for url in external), external
    return figures


def executed_text(notebook: Path) -> str:
    """Every stream and text output of an executed notebook, joined."""
    cells = nbformat.read(notebook, as_version=4).cells
    outputs = [o for c in cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    return "\n".join(o.get("text", "") for o in outputs)


# -- the daily report --------------------------------------------------------------------------


@pytest.mark.slow
def test_daily_report_runs_on_the_embedded_default_and_reads_as_a_report(
    isolated_env, monkeypatch, artifacts
):
    monkeypatch.setenv("WORKBENCH_API_SECRET", PLANTED)
    settings = load_settings()
    # BTC/USDT has saved best parameters, ETH/USDT has none; the store has one recorded run.
    save_best_params(
        "MovingAverageCross", "BTC/USDT", {"fast": 5, "slow": 20, "long_only": True},
        timeframe="1h", objective="sharpe", window={"train": "8D", "test": "4D"},
        out_of_sample={"sharpe": 0.5}, exchange="sim",
    )  # fmt: skip
    market = SimulatedMarket(seed=settings.seed)
    sample = market.fetch_ohlcv("SOL/USDT", "1h", "2024-01-01", "2024-01-05")
    with BacktestRuns.from_settings(settings) as runs:
        runs.record(Backtest(sample, MovingAverageCross(), symbol="SOL/USDT").run(), exchange="sim")

    parameters = {"symbols": "BTC/USDT,ETH/USDT", "day": "2024-03-01", "lookback_days": 10}
    run = run_job("daily_report", parameters)

    assert run.ok, run
    html = run.html.read_text(encoding="utf-8")
    (artifacts / "daily_report.html").write_text(html, encoding="utf-8")
    assert headings(html, 2) == [
        "Market summary", "Strategy and portfolio performance", "Trades of the day",
        "Data health", "Charts",
    ]  # fmt: skip
    assert "Daily report: Friday 01 March 2024 (UTC)" in headings(html, 1)
    assert "Latest recorded backtest runs" in headings(html, 3)
    assert "parse_params(" not in html  # no code in the report
    # Figures: the day's moves, the portfolio's equity, and a chart per symbol, with BokehJS
    # inlined once.
    assert html.count(BOKEH_JS) == 1 and "cdn.bokeh.org" not in html
    assert len(ROOT_DIV.findall(section(html, "Market summary"))) == 1
    assert len(ROOT_DIV.findall(section(html, "Strategy and portfolio performance"))) == 1
    assert len(ROOT_DIV.findall(section(html, "Charts"))) == 2

    # The bars came from the simulated market into the store: the lookback, nothing more.
    with MarketStore.from_settings(settings) as store:
        btc = store.bars("sim", "BTC/USDT", "1h")
        eth = store.bars("sim", "ETH/USDT", "1h")
    assert len(btc) == len(eth) == 240
    assert (btc.index[0], btc.index[-1]) == (
        pd.Timestamp("2024-02-21", tz="UTC"), pd.Timestamp("2024-03-01 23:00", tz="UTC"),
    )  # fmt: skip

    market_summary = section(html, "Market summary")
    day = btc.loc["2024-03-01"]
    assert format_number(day["open"].iloc[0]) in market_summary
    assert format_number(day["close"].iloc[-1]) in market_summary
    assert "24 of 24" in market_summary

    performance = section(html, "Strategy and portfolio performance")
    assert (
        "fast=5, slow=20, long_only=true" in performance and "saved best by sharpe" in performance
    )
    assert "SMA(10)/SMA(50)" in performance  # ETH/USDT: the strategy's defaults
    assert "SOL/USDT" in performance  # the recorded run is listed
    assert [h for h in headings(html, 3) if "·" in h] == [
        "BTC/USDT · SMA(5)/SMA(20)", "ETH/USDT · SMA(10)/SMA(50)",
    ]  # fmt: skip

    # The trades of the day are the backtest's trades entered or exited on it.
    expected = trades_on("2024-03-01", btc, MovingAverageCross(fast=5, slow=20, long_only=True))
    expected += trades_on("2024-03-01", eth, MovingAverageCross())
    trades_html = section(html, "Trades of the day")
    if expected:
        assert (
            re.search(r"<tbody>(.*?)</tbody>", trades_html, re.DOTALL).group(1).count("<tr")
            == expected
        )
    else:
        assert "No trades were entered or exited on 2024-03-01" in trades_html

    health = section(html, "Data health")
    assert health.count(">sim<") == 2 and ">ok<" in health  # both series, checked clean

    # A person opens it: every chart is drawn, as wide as the page, with no network.
    figures = look_in_browser(run.html, artifacts / "daily_report.png", documents=4)
    if figures is not None:
        assert len(figures) == 10  # the day, the equity, then price/equity/drawdown/exposure x 2
        assert all(width > 1_000 and height >= 140 for width, height in figures), figures

    assert_no_secret_written(isolated_env / "data")


def trades_on(day: str, bars: pd.DataFrame, strategy: MovingAverageCross) -> int:
    """How many trades of a 5,000 sleeve's backtest are entered or exited on ``day``."""
    trades = Backtest(bars, strategy, cash=5_000.0, fees=0.001, slippage=2.0).run().trades
    start = pd.Timestamp(day, tz="UTC")
    on = lambda times: (times >= start) & (times < start + pd.Timedelta(days=1))  # noqa: E731
    return int((on(trades["entry_time"]) | on(trades["exit_time"])).sum())


def test_both_jobs_are_on_the_shipped_schedule():
    jobs = load_schedule()
    assert jobs["daily_report"].parameters["exchange"] == "sim"
    optimize = jobs["optimize_strategy"]
    assert parse_grid("MovingAverageCross", optimize.parameters["grid"]) == {
        "fast": [5, 10, 20], "slow": [30, 50, 100],
    }  # fmt: skip


# -- parameters as text ------------------------------------------------------------------------


def test_parameters_and_grids_are_read_against_the_strategy():
    assert parse_params("MovingAverageCross", "fast=10, slow=50, long_only=true, kind=ema") == {
        "fast": 10, "slow": 50, "long_only": True, "kind": "ema",
    }  # fmt: skip
    assert parse_params("MovingAverageCross", "  ") == {}
    assert parse_params("Grid", "reference: none, spacing: 0.02") == {
        "reference": None,
        "spacing": 0.02,
    }
    assert parse_grid("RsiReversion", "lower=20,30; upper: 70,80,80") == {
        "lower": [20.0, 30.0], "upper": [70.0, 80.0],
    }  # fmt: skip
    assert format_params({"fast": 10, "long_only": True}) == "fast=10, long_only=true"


# -- saved best parameters ---------------------------------------------------------------------


def save(settings: Settings, symbol: str = "BTC/USDT", **params) -> Path:
    return save_best_params(
        "MovingAverageCross", symbol, params or {"fast": 5, "slow": 30, "long_only": True},
        timeframe="1h", objective="sharpe",
        window={"train_start": pd.Timestamp("2024-01-01", tz="UTC"), "train": "8D"},
        out_of_sample={"sharpe": float("nan"), "trades": pd.Series([3]).iloc[0]},
        exchange="sim", settings=settings, chosen={"fast": 5},
    )  # fmt: skip


def test_best_params_round_trip_with_provenance_and_build_the_strategy(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    assert load_best_params("MovingAverageCross", "BTC/USDT", settings) == {}
    assert read_best_params("MovingAverageCross", "BTC/USDT", settings) is None

    path = save(settings)
    assert (
        path
        == (tmp_path / "data" / "strategies" / "MovingAverageCross" / "BTC%2FUSDT.json").resolve()
    )
    assert [p.name for p in path.parent.iterdir()] == ["BTC%2FUSDT.json"]  # no temporary left
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["window"]["train_start"] == "2024-01-01T00:00:00+00:00"
    assert record["out_of_sample"] == {"sharpe": None, "trades": 3}  # NaN as null, numpy as int

    params = load_best_params("MovingAverageCross", "BTC/USDT", settings)
    assert params == {"fast": 5, "slow": 30, "long_only": True}
    strategy = BUILTIN_STRATEGIES["MovingAverageCross"](**params)
    assert (strategy.fast, strategy.slow, strategy.long_only) == (5, 30, True)
    saved = read_best_params("MovingAverageCross", "BTC/USDT", settings)
    assert saved.build().label == "SMA(5)/SMA(30)"
    assert saved.provenance["timeframe"] == "1h" and saved.provenance["chosen"] == {"fast": 5}
    assert saved.provenance["code"]["version"]

    save(settings, fast=8, slow=21)  # a later optimisation replaces the earlier one
    assert load_best_params("MovingAverageCross", "BTC/USDT", settings) == {"fast": 8, "slow": 21}
    assert load_best_params("MovingAverageCross", "ETH/USDT", settings) == {}  # per symbol


def test_best_params_that_do_not_fit_are_refused_at_save_and_at_load(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    with pytest.raises(ConfigError, match=r"fast \(50\) must be less than slow \(20\)"):
        save(settings, fast=50, slow=20)
    with pytest.raises(ConfigError, match="has no parameter"):
        save(settings, period=3)
    path = save(settings)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="Cannot read the saved best parameters"):
        load_best_params("MovingAverageCross", "BTC/USDT", settings)
    path.write_text(json.dumps({"symbol": "BTC/USDT", "params": {"fast": 0}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="no longer fit"):
        load_best_params("MovingAverageCross", "BTC/USDT", settings)
    path.write_text(json.dumps({"symbol": "ETH/USDT", "params": {}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="holds the parameters of 'ETH/USDT'"):
        load_best_params("MovingAverageCross", "BTC/USDT", settings)


# -- the optimisation --------------------------------------------------------------------------


@pytest.mark.slow
def test_optimize_strategy_saves_the_last_windows_choice_where_the_live_strategy_loads_it(
    isolated_env, monkeypatch, capsys, artifacts
):
    monkeypatch.setenv("WORKBENCH_API_SECRET", PLANTED)
    arguments = ["symbol=ETH/USDT", "days=24", "train=8D", "test=4D", "grid=fast=5,10;slow=20,40"]
    code = main(["jobs", "run", "optimize_strategy", *[a for p in arguments for a in ("-p", p)]])

    out = capsys.readouterr().out
    assert code == 0, out
    with JobRegistry(load_settings().store_url) as registry:
        row = registry.runs("optimize_strategy").iloc[0]
    assert row.status == "succeeded" and row.parameters["grid"] == "fast=5,10;slow=20,40"
    html = Path(row.html).read_text(encoding="utf-8")
    (artifacts / "optimize_strategy.html").write_text(html, encoding="utf-8")
    assert headings(html, 1) == ["Walk-forward optimisation: MovingAverageCross on ETH/USDT"]
    assert headings(html, 2) == [
        "Walk-forward windows", "Out-of-sample performance", "Last window's search", "Best parameters",
    ]  # fmt: skip
    assert html.count(BOKEH_JS) == 1
    assert len(ROOT_DIV.findall(section(html, "Out-of-sample performance"))) == 1  # equity, bars
    assert len(ROOT_DIV.findall(section(html, "Last window's search"))) == 1  # the heatmap

    # Saved where the live strategy picks them up; the notebook says where.
    path = best_params_path("MovingAverageCross", "ETH/USDT")
    assert path == isolated_env / "data" / "strategies" / "MovingAverageCross" / "ETH%2FUSDT.json"
    said = f"Saved the best parameters of MovingAverageCross on ETH/USDT to {path}"
    assert said in executed_text(Path(row.notebook)) and said in html
    params = load_best_params("MovingAverageCross", "ETH/USDT")
    strategy = BUILTIN_STRATEGIES["MovingAverageCross"](**params)
    assert strategy.fast in (5, 10) and strategy.slow in (20, 40) and strategy.long_only

    # With its provenance; the choice is the last window's, on the very bars the job used.
    saved = read_best_params("MovingAverageCross", "ETH/USDT")
    provenance = saved.provenance
    assert (provenance["exchange"], provenance["timeframe"], provenance["objective"]) == (
        "sim",
        "1h",
        "sharpe",
    )
    assert provenance["window"]["number"] == provenance["window"]["of"] >= 2
    assert {"sharpe", "total_return", "max_drawdown", "trades"} <= set(provenance["out_of_sample"])
    assert provenance["code"]["version"] and pd.Timestamp(provenance["saved"]).tz is not None
    with MarketStore.from_settings() as store:
        bars = store.bars(
            "sim", "ETH/USDT", "1h", provenance["data"]["start"], provenance["data"]["end"]
        )
    assert fingerprint(bars) == provenance["data"]["fingerprint"]
    again = walk_forward(
        bars, MovingAverageCross(long_only=True), {"fast": [5, 10], "slow": [20, 40]},
        train="8D", test="4D", fees=0.001, slippage=2.0, symbol="ETH/USDT", progress=False,
    )  # fmt: skip
    last = again.table.iloc[-1]
    assert provenance["chosen"] == {"fast": int(last["fast"]), "slow": int(last["slow"])}
    assert provenance["out_of_sample"]["sharpe"] == pytest.approx(
        last["out_of_sample"], nan_ok=True
    )
    assert f"fast={strategy.fast}, slow={strategy.slow}" in section(html, "Best parameters")

    figures = look_in_browser(Path(row.html), artifacts / "optimize_strategy.png", documents=2)
    if figures is not None:
        assert len(figures) == 3  # stitched equity, objective per window, the heatmap
        assert all(width > 1_000 and height >= 200 for width, height in figures), figures

    assert_no_secret_written(isolated_env / "data")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "nope=1",
            "MovingAverageCross has no parameter 'nope'; it takes: long_only, kind, fast, slow",
        ),
        ("fast=ten", r"MovingAverageCross.fast is an integer; cannot read 'ten'"),
        ("fast=0", r"MovingAverageCross.fast=0 is out of its bounds \[1, 100000\]"),
        ("kind=wma", r"MovingAverageCross.kind is one of \['sma', 'ema'\], not 'wma'"),
        ("long_only=maybe", "MovingAverageCross.long_only is a boolean; cannot read 'maybe'"),
        ("fast=60", r"fast \(60\) must be less than slow \(50\)"),
        ("fast", "cannot read 'fast'; write name=value"),
        ("fast=5, fast=6", "'fast' is given twice"),
    ],
)
def test_bad_parameters_are_refused_clearly(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_params("MovingAverageCross", text)


@pytest.mark.parametrize(
    ("strategy", "text", "message"),
    [
        (
            "MovingAverageCross",
            "",
            "grid is empty: give at least one parameter of MovingAverageCross",
        ),
        ("MovingAverageCross", "fast=", "grid: 'fast' has no values"),
        ("MovingAverageCross", "fast=5;fast=6", "'fast' is given twice"),
        (
            "MovingAverageCross",
            "fast=1.5",
            "MovingAverageCross.fast is an integer; cannot read '1.5'",
        ),
        ("RsiReversion", "lower=-5,10", r"RsiReversion.lower=-5.0 is out of its bounds \[0, 100\]"),
        ("Nope", "fast=5", "No strategy 'Nope'; the built-in strategies are: MovingAverageCross, "),
    ],
)
def test_bad_grids_are_refused_clearly(strategy, text, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid(strategy, text)


# -- failing clearly ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_bad_grid_fails_the_job_with_a_clear_error_and_saves_nothing(isolated_env):
    run = run_job("optimize_strategy", {"grid": "fast=5,10;nope=3", "days": 5})
    assert run.status == "failed"
    assert run.error == (
        "ConfigError: grid: MovingAverageCross has no parameter 'nope'; it takes: "
        "long_only, kind, fast, slow."
    )
    assert "search = parse_grid(cls, grid)" in run.failed_source
    assert not (isolated_env / "data" / "strategies").exists()


@pytest.mark.slow
def test_daily_report_refuses_a_day_without_closed_bars(isolated_env):
    run = run_job("daily_report", {"day": "2999-01-01", "symbols": "BTC/USDT"})
    assert run.status == "failed"
    assert run.error.startswith("ConfigError: day=2999-01-01 has no closed 1h bar yet")
