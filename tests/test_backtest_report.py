"""The plot of a backtest result and its standalone HTML report, on real ETH/BTC 5m bars.

The result is made here by hand (a few all-in trades under the engine's fill convention), so
these tests need nothing of the engine: only the result's shape from the shared spec.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workbench.backtest.plot import CANDLE_LIMIT, plot_result
from workbench.backtest.report import TRADE_ROWS, write_report
from workbench.data.model import to_bars
from workbench.errors import WorkbenchError

FEE = 0.001
# (entry bar, exit bar or None while open, side) on the 5,760 ETH/BTC bars.
PLAN = [
    (100, 600, "long"),
    (800, 1200, "short"),
    (1500, 2300, "long"),
    (2600, 3000, "short"),
    (3400, 4500, "long"),
    (5000, None, "long"),
]
TRADE_COLUMNS = (
    "symbol side quantity entry_time entry_price exit_time exit_price fees funding pnl return "
    "duration open"
).split()


@dataclass(frozen=True)
class FakeResult:
    """The fields of ``BacktestResult`` that the plot and the report read."""

    bars: dict[str, pd.DataFrame]
    equity: pd.Series
    exposure: pd.Series
    trades: pd.DataFrame
    fills: pd.DataFrame
    stats: pd.Series
    label: str
    params: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def simulate(bars: pd.DataFrame, symbol: str, plan, cash: float = 1.0) -> FakeResult:
    """All-in trades filled at the bar's open with fees, equity marked at each close."""
    opens, closes, times = bars["open"].to_numpy(), bars["close"].to_numpy(), bars.index
    enter = {i: side for i, _, side in plan}
    leave = {j for _, j, _ in plan if j is not None}
    q, equity, gross, trades, fills, current = 0.0, [], [], [], [], None
    for t in range(len(bars)):
        p = opens[t]
        if t in leave:
            fee = abs(q) * p * FEE
            cash += q * p - fee
            pnl = q * (p - current["entry_price"]) - current["fees"] - fee
            current.update(exit_time=times[t], exit_price=p, fees=current["fees"] + fee, pnl=pnl)
            fills.append((times[t], "sell" if q > 0 else "buy", abs(q), p, fee))
            trades.append(current)
            q, current = 0.0, None
        if t in enter:
            sign = 1 if enter[t] == "long" else -1
            qty = cash / (p * (1 + FEE))
            fee = qty * p * FEE
            q = sign * qty
            cash -= q * p + fee
            current = dict(
                symbol=symbol,
                side=enter[t],
                quantity=qty,
                entry_time=times[t],
                entry_price=p,
                exit_time=pd.NaT,
                exit_price=np.nan,
                fees=fee,
            )
            fills.append((times[t], "buy" if sign > 0 else "sell", qty, p, fee))
        equity.append(cash + q * closes[t])
        gross.append(abs(q) * closes[t])
    if current is not None:
        sign = 1 if current["side"] == "long" else -1
        current["pnl"] = sign * current["quantity"] * (closes[-1] - current["entry_price"])
        current["pnl"] -= current["fees"]
        trades.append(current)
    frame = pd.DataFrame(trades)
    frame["funding"] = 0.0
    frame["return"] = frame["pnl"] / (frame["entry_price"] * frame["quantity"])
    frame["duration"] = frame["exit_time"].fillna(times[-1]) - frame["entry_time"]
    frame["open"] = frame["exit_time"].isna()
    equity = pd.Series(equity, index=bars.index, name="equity")
    exposure = pd.Series(np.array(gross) / equity.to_numpy(), index=bars.index, name="exposure")
    fills = pd.DataFrame(fills, columns=["time", "side", "quantity", "price", "fee"])
    fills.insert(0, "symbol", symbol)
    return FakeResult(
        bars={symbol: bars},
        equity=equity,
        exposure=exposure,
        trades=frame[TRADE_COLUMNS],
        fills=fills,
        stats=fake_stats(equity, frame, exposure),
        label="SMA cross (10, 50)",
        params={"fast": 10, "slow": 50},
        settings={"cash": 1.0, "currency": "BTC", "fees": FEE, "slippage": 0.0, "latency_ms": 0.0},
    )


def fake_stats(equity: pd.Series, trades: pd.DataFrame, exposure: pd.Series) -> pd.Series:
    returns = equity.pct_change().dropna()
    drawdown = equity / equity.cummax() - 1
    closed = trades[~trades["open"]]
    wins, losses = closed[closed["pnl"] > 0]["pnl"], closed[closed["pnl"] <= 0]["pnl"]
    years = 365 * 24 * 12
    return pd.Series(
        {
            "start": equity.index[0],
            "end": equity.index[-1],
            "duration": equity.index[-1] - equity.index[0],
            "initial_equity": 1.0,
            "final_equity": equity.iloc[-1],
            "total_return": equity.iloc[-1] - 1.0,
            "annual_return": 0.8123,
            "volatility": returns.std() * np.sqrt(years),
            "sharpe": returns.mean() / returns.std() * np.sqrt(years),
            "sortino": 2.345,
            "calmar": 1.5,
            "max_drawdown": drawdown.min(),
            "max_drawdown_duration": pd.Timedelta(days=6, hours=3, minutes=25),
            "win_rate": len(wins) / len(closed),
            "profit_factor": wins.sum() / -losses.sum() if len(losses) else np.inf,
            "expectancy": closed["pnl"].mean(),
            "average_win": closed["return"][closed["pnl"] > 0].mean(),
            "average_loss": closed["return"][closed["pnl"] <= 0].mean(),
            "exposure": (exposure > 0).mean(),
            "turnover": 9.87,
            "fees": trades["fees"].sum(),
            "funding": 0.0,
            "trades": len(closed),
        },
        dtype=object,
    )


@pytest.fixture(scope="module")
def eth_btc(shared_data) -> pd.DataFrame:
    return to_bars(pd.read_parquet(shared_data / "binance-spot" / "5m" / "ETH_BTC.parquet"))


@pytest.fixture(scope="module")
def result(eth_btc) -> FakeResult:
    return simulate(eth_btc, "ETH/BTC", PLAN)


def panels(layout: hv.Layout) -> dict[str, hv.Element]:
    """The layout's panels by their y dimension."""
    out = {}
    for panel in layout:
        first = panel.get(0) if isinstance(panel, hv.Overlay) else panel
        out[first.vdims[0].name] = panel
    return out


def layers(overlay: hv.Overlay) -> dict[str, hv.Element]:
    return {el.label: el for el in overlay if el.label}


# -- the plot --------------------------------------------------------------------------------


def test_plot_has_price_equity_drawdown_exposure_on_one_time_axis(result):
    layout = plot_result(result)
    assert isinstance(layout, hv.Layout) and len(layout) == 4
    found = panels(layout)
    assert list(found) == ["close", "equity", "drawdown", "exposure"]
    for panel in found.values():
        first = panel.get(0) if isinstance(panel, hv.Overlay) else panel
        assert first.kdims[0].name == "time"
    assert isinstance(found["drawdown"], hv.Area) and isinstance(found["exposure"], hv.Area)
    drawdown = found["drawdown"].dimension_values("drawdown")
    assert drawdown.max() <= 0 and drawdown.min() == pytest.approx(result.stats["max_drawdown"])

    fig = hv.render(layout, backend="bokeh")
    figures = [child[0] for child in fig.children]
    assert len({id(f.x_range) for f in figures}) == 1, "the panels do not share the time axis"
    assert all(f.sizing_mode == "stretch_width" for f in figures)


def test_markers_are_the_trades(result):
    price = panels(plot_result(result))["close"]
    assert len(result.bars["ETH/BTC"]) > CANDLE_LIMIT
    assert not any(isinstance(el, hv.Rectangles) for el in price), "too many bars for candles"
    found = layers(price)
    trades = result.trades
    long_, short = trades[trades["side"] == "long"], trades[trades["side"] == "short"]
    assert len(found["long entry"]) == len(long_) == 4
    assert len(found["short entry"]) == len(short) == 2
    assert len(found["exit"]) == (~trades["open"]).sum() == 5
    entries = found["long entry"].dimension_values("price")
    assert entries.tolist() == pytest.approx(long_["entry_price"].tolist())
    pnl = found["exit"].dimension_values("pnl")
    assert pnl.tolist() == pytest.approx(trades[~trades["open"]]["pnl"].tolist())
    assert found["short entry"].opts.get().kwargs["marker"] == "inverted_triangle"


def test_few_bars_are_candles(eth_btc):
    short = simulate(eth_btc.iloc[:1_000], "ETH/BTC", [(100, 300, "long"), (400, None, "short")])
    price = panels(plot_result(short))["close"]
    (bodies,) = [el for el in price if isinstance(el, hv.Rectangles)]
    assert len(bodies) == 1_000
    assert len(layers(price)["long entry"]) == 1 and len(layers(price)["exit"]) == 1


def test_a_run_without_trades_plots_and_reports(eth_btc, tmp_path):
    idle = simulate(eth_btc.iloc[:500], "ETH/BTC", [(10, 20, "long")])
    idle = replace(idle, trades=idle.trades.iloc[:0], stats=idle.stats[:0])
    price = panels(plot_result(idle))["close"]
    assert layers(price) == {}, "no markers, so no legend entries"
    hv.render(plot_result(idle), backend="bokeh")
    html = write_report(idle, tmp_path / "idle.html").read_text(encoding="utf-8")
    assert "No trades." in html and "No statistics." in html


def test_a_portfolio_shows_the_chosen_symbol_and_the_account(result, shared_data):
    ltc = to_bars(pd.read_parquet(shared_data / "binance-spot" / "5m" / "LTC_BTC.parquet"))
    other = simulate(ltc, "LTC/BTC", [(200, 900, "long")])
    trades = pd.concat([result.trades, other.trades], ignore_index=True)
    both = replace(result, bars={**result.bars, **other.bars}, trades=trades)
    price = panels(plot_result(both, "LTC/BTC"))["close"]
    assert "LTC/BTC" in price.opts.get().kwargs["title"]
    assert {name: len(layer) for name, layer in layers(price).items()} == {
        "long entry": 1,
        "exit": 1,
    }
    assert price.get(0).dimension_values("close")[0] == ltc["close"].iloc[0]
    equity = panels(plot_result(both, "LTC/BTC"))["equity"].get(0)
    assert len(equity) == len(result.equity)
    with pytest.raises(WorkbenchError, match="XRP/BTC"):
        plot_result(both, "XRP/BTC")


def test_long_series_are_thinned_keeping_the_extremes():
    from workbench.backtest.plot import MAX_POINTS, _thin

    rng = np.random.default_rng(7)
    values = np.cumsum(rng.normal(size=1_000_003))
    frame = pd.DataFrame({"time": np.arange(len(values)), "v": values})
    thin = _thin(frame, "v")
    assert len(thin) <= MAX_POINTS + 2
    assert thin["v"].min() == values.min() and thin["v"].max() == values.max()
    assert thin["time"].iloc[0] == 0 and thin["time"].iloc[-1] == len(values) - 1
    assert thin["time"].is_monotonic_increasing


# -- the report ------------------------------------------------------------------------------

# The plot views BokehJS laid out on the page, as (width, height), walking from the roots.
FIGURES_JS = """() => { const out = [];
  const walk = (v) => {
    if (v.model.type === "Figure") out.push([v.bbox.width, v.bbox.height, v.frame.bbox.left]);
    for (const child of v.child_views ?? []) walk(child); };
  for (const view of Object.values(Bokeh.index)) walk(view);
  return out; }"""
# Where a (time in ms, price) point of the price panel is on the page.
PRICE_POINT_JS = """([time, price]) => { let fig = null;
  const walk = (v) => { if (!fig && v.model.type === "Figure") fig = v;
                        for (const child of v.child_views ?? []) walk(child); };
  for (const view of Object.values(Bokeh.index)) walk(view);
  const box = fig.el.getBoundingClientRect();
  return [box.left + fig.frame.x_scale.compute(time), box.top + fig.frame.y_scale.compute(price)];
}"""
TOOLTIPS_JS = """() => { const out = [];
  const walk = (root) => { for (const el of root.querySelectorAll("*")) {
    if (el.classList.contains("bk-tooltip-content")) out.push(el.innerText);
    if (el.shadowRoot) walk(el.shadowRoot); } };
  walk(document); return out; }"""
EXTERNAL = re.compile(
    r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//"""
    r"""|@import\s+(?:url\()?["']?(?:https?:)?//|fonts\.googleapis""",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def report(result, tmp_path_factory) -> Path:
    return write_report(result, tmp_path_factory.mktemp("report") / "eth_btc.html")


def test_report_has_the_sections_and_opens_offline(report, result):
    html = report.read_text(encoding="utf-8")
    assert report.suffix == ".html"
    assert "<title>SMA cross (10, 50) · backtest report</title>" in html
    assert "<h1>SMA cross (10, 50)</h1>" in html
    assert "ETH/BTC · 5,760 bars of 5 min · 2018-01-10 04:55 → 2018-01-30 04:50 UTC" in html
    headings = re.findall(r"<h2>(\w+)</h2>", html)
    assert headings == ["Statistics", "Chart", "Trades", "Settings"]
    # BokehJS itself is in the file, and nothing is fetched from elsewhere.
    assert "/* BEGIN bokeh.min.js */" in html
    assert not EXTERNAL.search(html), EXTERNAL.search(html).group(0)
    assert report.stat().st_size < 2_500_000
    assert len(re.findall(r'<tr class="trade', html)) == len(result.trades)
    assert len(re.findall(r'<tr class="trade open"', html)) == 1
    # formatted stats: percentages, durations in words
    stats = result.stats
    assert f"<span>Max drawdown</span><b>{stats['max_drawdown']:.2%}</b>" in html
    assert "<span>Win rate</span><b>40.00%</b>" in html
    assert "<span>Max drawdown duration</span><b>6 d 3 h</b>" in html
    assert "<span>Duration</span><b>19 d 23 h</b>" in html  # its two largest units
    assert "<span>Trades (closed)</span><b>5</b>" in html
    assert f"<span>Average loss</span><b>{stats['average_loss']:.2%}</b>" in html
    for setting in ("fees</td><td>0.001 (0.1%)", "slippage</td><td>0 bps", "fast</td><td>10"):
        assert f"<td>{setting}</td>" in html


def test_a_long_trade_list_is_cut_with_a_note(result, tmp_path):
    many = pd.concat([result.trades] * 100, ignore_index=True)
    path = write_report(replace(result, trades=many), tmp_path / "r.html")
    html = path.read_text(encoding="utf-8")
    assert len(re.findall(r'<tr class="trade', html)) == TRADE_ROWS
    assert f"first {TRADE_ROWS:,} of {len(many):,} trades" in html


# -- in a browser ----------------------------------------------------------------------------


@pytest.mark.served
def test_report_renders_in_a_browser(report, result, artifacts):
    from tests.test_dashboard_served import CHROMIUM, CHROMIUM_ARGS

    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            external: list[str] = []
            page.on(
                "request",
                lambda r: r.url.startswith(("file:", "data:", "blob:")) or external.append(r.url),
            )
            page.goto(report.as_uri())
            page.wait_for_function(
                "() => window.Bokeh && Bokeh.documents.length > 0 && "
                "Bokeh.documents[0].roots().length > 0",
                timeout=30_000,
            )
            page.wait_for_timeout(1_000)
            figures = page.evaluate(FIGURES_JS)
            page.screenshot(path=str(artifacts / "backtest_report.png"), full_page=True)
            assert [height for _, height, _ in figures] == [380, 200, 140, 160], figures
            assert all(width > 1_000 for width, _, _ in figures), "the panels do not fill the page"
            assert len({left for _, _, left in figures}) == 1, "the time axes are not aligned"
            chart = Image.open(io.BytesIO(page.locator(".chart").screenshot())).convert("L")
            drawn = np.asarray(chart) < 200
            assert drawn.mean() > 0.05, "the chart looks empty"
            assert page.get_by_role("heading", name="Trades").is_visible()

            first = result.trades.iloc[0]  # a losing long: its exit's hover shows the pnl
            exit_ms = first["exit_time"].tz_convert(None).value / 1e6
            page.locator(".chart").scroll_into_view_if_needed()
            page.mouse.move(*page.evaluate(PRICE_POINT_JS, [exit_ms, first["exit_price"]]))
            page.wait_for_timeout(500)
            tips = [tip for tip in page.evaluate(TOOLTIPS_JS) if "pnl" in tip]
            page.locator(".chart").screenshot(path=str(artifacts / "backtest_report_hover.png"))
            assert tips and f"{first['pnl']:,.6f}".rstrip("0") in tips[0], tips
            assert f"({first['return']:+.2%})" in tips[0], tips
            assert not errors, errors
            assert not external, f"the report reached beyond the file: {external}"
        finally:
            browser.close()
