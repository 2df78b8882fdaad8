"""MarketView without a server: history, streaming into the chart, reloads, the task's life."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pandas as pd
import panel as pn
import pytest
from bokeh.document import Document
from bokeh.document.events import (
    ColumnDataChangedEvent,
    ColumnsStreamedEvent,
    ModelChangedEvent,
)
from bokeh.models import ColumnDataSource, HoverTool
from panel.io.state import set_curdoc

from workbench.data.model import BAR_COLUMNS
from workbench.data.sources.base import BarUpdate
from workbench.data.sources.simulated import SimulatedMarket
from workbench.data.timeframes import timeframe_ms
from workbench.errors import UnknownSymbolError
from workbench.indicators import bbands, ema, sma, vwap
from workbench.strategies import MovingAverageCross
from workbench.ui import MarketView

MAX_BARS = 60


@pytest.fixture
def market() -> SimulatedMarket:
    return SimulatedMarket(seed=7)


@pytest.fixture
def view(market) -> MarketView:
    return MarketView(market, max_bars=MAX_BARS)


def next_bar(
    view: MarketView, *, closed: bool, close: float | None = None, step: int = 1
) -> BarUpdate:
    """A streamed bar ``step`` bars after the newest one on the chart (0: the newest itself)."""
    last = view.bars.iloc[-1]
    when = view.bars.index[-1] + step * pd.Timedelta(milliseconds=timeframe_ms(view.timeframe))
    close = float(last["close"]) * 1.01 if close is None else close
    return BarUpdate(
        view.symbol,
        view.timeframe,
        when,
        float(last["close"]),
        max(close, last["close"]),
        min(close, last["close"]),
        close,
        1.5,
        closed,
    )


def rows(source: ColumnDataSource) -> int:
    return len(next(iter(source.data.values()), []))


def test_history_is_the_sources_newest_bars_in_the_convention(view, market):
    bars = view.bars
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert len(bars) == MAX_BARS
    assert str(bars.index.tz) == "UTC" and bars.index.name == "timestamp"
    assert bars.index.is_monotonic_increasing and bars.index.is_unique
    fetched = market.fetch_ohlcv(view.symbol, "1m", start=bars.index[0], end=bars.index[-1])
    pd.testing.assert_frame_equal(bars, fetched, check_freq=False)


def test_new_bars_are_appended_and_the_oldest_scroll_out(view):
    before = view.bars
    view.push(next_bar(view, closed=False))
    after = view.bars
    assert after.index[-1] == before.index[-1] + pd.Timedelta("1min")
    pd.testing.assert_frame_equal(after.iloc[:-1], before, check_freq=False)
    view.push(next_bar(view, closed=False))  # the closed bars are now max_bars: one scrolls out
    assert len(view.bars) == MAX_BARS + 1  # plus the forming one
    assert view.bars.index[0] == before.index[1] and view.bars.index.is_unique


def test_updating_the_forming_bar_does_not_add_a_candle(view):
    view.push(next_bar(view, closed=False, close=100.0))
    times = view.bars.index
    for close in (101.0, 99.0, 102.5):
        view.push(next_bar(view, closed=False, close=close, step=0))
    assert view.bars.index.equals(times)
    assert view.bars["close"].iat[-1] == 102.5
    view.push(next_bar(view, closed=True, close=103.0, step=0))  # it closes: still one candle
    assert view.bars.index[-1] == times[-1] and view.bars.index.is_unique
    assert view.bars.index.difference(times).empty
    assert view.bars["close"].iat[-1] == 103.0


def test_a_closed_bar_is_not_drawn_again(view):
    view.push(next_bar(view, closed=True))
    bars = view.bars
    view.push(dataclasses.replace(next_bar(view, closed=True, step=0), close=1.0))
    pd.testing.assert_frame_equal(view.bars, bars)


def test_streaming_sends_one_candle_and_never_the_whole_chart(view):
    """What the browser receives: a forming tick touches only the one-row forming sources,
    a closing bar is streamed (ColumnDataSource.stream) into the history's sources."""
    doc = Document()
    doc.add_root(pn.panel(view).get_root(doc))
    events = []
    doc.on_change(events.append)
    history = {s for s in doc.select({"type": ColumnDataSource}) if rows(s) > 1}
    assert len(history) == 3  # candle bodies, wicks and volume bars

    def replaced() -> set[ColumnDataSource]:
        kinds = (ModelChangedEvent, ColumnDataChangedEvent)
        return {e.model for e in events if isinstance(e, kinds) and e.attr == "data"}

    def tick(update: BarUpdate) -> None:
        events.clear()
        with set_curdoc(doc):  # as in a served session, where the stream task runs
            view.push(update)

    for update in (next_bar(view, closed=False, step=0), next_bar(view, closed=False, step=1)):
        tick(update)  # the forming bar changes, then a new one starts after a closed one
        assert replaced() and not replaced() & history
        assert all(rows(s) == 1 for s in replaced())
        assert not [e for e in events if isinstance(e, ColumnsStreamedEvent)]
        tick(dataclasses.replace(update, closed=True))  # it closes
        streamed = [e for e in events if isinstance(e, ColumnsStreamedEvent)]
        assert {e.model for e in streamed} == history
        assert all(len(next(iter(e.data.values()))) == 1 for e in streamed)
        assert not replaced() & history


def test_changing_the_symbol_reloads_history_and_ignores_the_old_stream(view, market):
    old = view.bars
    other = market.symbols()[1]
    view.symbol = other
    new = view.bars
    assert len(new) == MAX_BARS
    assert not new["close"].equals(old["close"])
    fetched = market.fetch_ohlcv(other, "1m", start=new.index[0], end=new.index[-1])
    pd.testing.assert_frame_equal(new, fetched, check_freq=False)
    late = dataclasses.replace(next_bar(view, closed=True), symbol=market.symbols()[0])
    view.push(late)
    pd.testing.assert_frame_equal(view.bars, new)


def test_changing_the_timeframe_reloads_history(view):
    view.timeframe = "5m"
    steps = view.bars.index.to_series().diff().dropna().unique()
    assert list(steps) == [pd.Timedelta("5min")]


def test_symbols_come_from_the_source(market):
    view = MarketView(market)
    assert view.param.symbol.objects == market.symbols()
    with pytest.raises(UnknownSymbolError, match="NOPE/USDT"):
        MarketView(market, symbol="NOPE/USDT")


def test_streams_on_the_running_loop_and_stop_cancels_the_task(view):
    async def scenario() -> tuple[pd.Timestamp, bool, set[asyncio.Task]]:
        view.stream_options = {"speed": 600.0}  # a 1m bar every 0.1 s
        first = view.bars.index[-1]
        view.start()
        view.start()  # idempotent: still one task
        for _ in range(200):
            await asyncio.sleep(0.05)
            if view.bars.index[-1] > first + pd.Timedelta("1min"):
                break
        newest, was_streaming = view.bars.index[-1], view.streaming
        view.stop()
        await asyncio.sleep(0.05)
        return newest - first, was_streaming, asyncio.all_tasks() - {asyncio.current_task()}

    advanced, was_streaming, left_over = asyncio.run(scenario())
    assert was_streaming
    assert advanced >= pd.Timedelta("2min")
    assert not view.streaming and not left_over
    assert view.bars.index.is_unique and view.bars.index.is_monotonic_increasing


def test_forming_ticks_are_throttled_and_closed_bars_drawn_at_once(view, monkeypatch):
    drawn: list[BarUpdate] = []
    push = view.push
    monkeypatch.setattr(view, "push", lambda update: (drawn.append(update), push(update)))

    async def scenario() -> None:
        view.param.update(refresh=0.3, stream_options={"speed": 600.0})  # 60 ticks a second
        view.start()
        await asyncio.sleep(1.5)
        view.stop()

    asyncio.run(scenario())
    closed = [u for u in drawn if u.closed]
    assert len(closed) >= 5  # about 15 bars closed, each drawn
    assert len(drawn) - len(closed) <= 1.5 / 0.3 + 2  # of about 75 forming ticks
    steps = view.bars.index.to_series().diff().dropna()
    assert (steps == pd.Timedelta("1min")).all()  # no bar missed, none doubled


def test_a_reload_keeps_streaming_the_new_choice(view, market):
    async def scenario() -> tuple[bool, str]:
        view.stream_options = {"speed": 600.0}
        view.start()
        await asyncio.sleep(0.05)
        view.symbol = market.symbols()[1]
        streaming = view.streaming
        first = view.bars.index[-1]
        for _ in range(200):
            await asyncio.sleep(0.05)
            if view.bars.index[-1] > first:
                break
        view.stop()
        return streaming, view.bars.index[-1] > first

    streaming, advanced = asyncio.run(scenario())
    assert streaming and advanced


def test_a_failing_stream_is_logged_and_ends(view, caplog):
    async def scenario() -> bool:
        view.stream_options = {"speed": -1.0}  # the simulated market refuses it
        view.start()
        await asyncio.sleep(0.1)
        return view.streaming

    assert asyncio.run(scenario()) is False
    assert "Live bars of BTC/USDT stopped" in caplog.text
    assert "speed must be positive" in caplog.text
    assert len(view.bars) == MAX_BARS  # the chart keeps its history


def test_shown_in_a_notebook_cell_it_streams_on_the_kernels_loop(view):
    async def cell() -> bool:
        pn.panel(view)  # what displaying it does, on the kernel's running loop
        streaming = view.streaming
        view.stop()
        return streaming

    assert asyncio.run(cell())


def test_shown_without_a_loop_or_a_browser_it_shows_history_only(view):
    root = pn.panel(view).get_root()  # a plain script: no running event loop
    assert root is not None and not view.streaming
    doc = Document()  # a document no browser will load (a liveness probe, an export)
    with set_curdoc(doc):
        doc.add_root(pn.panel(view).get_root(doc))
    assert not view.streaming


def test_its_widgets_come_from_its_parameters(view, market):
    widgets = {type(w).__name__: w for w in pn.panel(view).select(pn.widgets.Widget)}
    widgets["Select"], signals = pn.panel(view).select(pn.widgets.Select)
    assert list(widgets["Select"].values) == market.symbols()
    assert list(signals.values) == list(view.param.signals.objects)
    assert list(widgets["CheckButtonGroup"].values) == list(view.param.overlays.objects)
    widgets["CheckButtonGroup"].value = ["SMA 20"]
    signals.value = "RsiReversion"
    assert view.overlays == ["SMA 20"] and view.signals == "RsiReversion"
    assert list(widgets["RadioButtonGroup"].values) == list(view.param.timeframe.objects)
    widgets["Select"].value = "SOL/USDT"
    newest = view.bars.index[-1]
    assert view.symbol == "SOL/USDT"
    fetched = market.fetch_ohlcv("SOL/USDT", "1m", newest, newest)
    assert view.bars.loc[newest, "close"] == fetched["close"].iat[0]


def closed_bars(view: MarketView) -> pd.DataFrame:
    return view.bars.iloc[:-1]  # the forming bar is never read by overlays or signals


def rendered(view: MarketView) -> list[ColumnDataSource]:
    doc = Document()
    doc.add_root(pn.panel(view).get_root(doc))
    return list(doc.select({"type": ColumnDataSource}))


def test_an_overlay_draws_the_indicator_over_the_closed_bars(view):
    view.overlays = ["SMA 20", "Bollinger 20"]
    bars = closed_bars(view)
    lines = view.overlay_lines
    assert lines.index.equals(bars.index)
    pd.testing.assert_series_equal(lines["SMA 20"], sma(bars["close"], 20), check_names=False)
    bands = bbands(bars["close"], 20)
    for band in ("upper", "middle", "lower"):
        pd.testing.assert_series_equal(lines[f"BB {band}"], bands[band], check_names=False)
    drawn = [s for s in rendered(view) if any("SMA" in k for k in s.data)]
    assert len(drawn) == 1
    column = next(k for k in drawn[0].data if "SMA" in k)
    np.testing.assert_array_equal(drawn[0].data[column], lines["SMA 20"].to_numpy())


def test_an_overlay_extends_by_one_point_when_a_bar_closes(view):
    view.overlays = ["EMA 20", "VWAP"]
    before = view.overlay_lines
    view.push(next_bar(view, closed=True, step=0))  # the forming bar closes
    after = view.overlay_lines
    assert len(after) == len(before) + 1 and after.index[-1] == view.bars.index[-1]
    expected = ema(view.bars["close"], 20)  # every bar is closed now
    pd.testing.assert_series_equal(after["EMA 20"], expected, check_names=False)
    pd.testing.assert_series_equal(after["VWAP"], vwap(view.bars), check_names=False)


def test_the_forming_bar_never_moves_an_overlay(view):
    view.overlays = ["SMA 20"]
    before = view.overlay_lines
    view.push(next_bar(view, closed=False, close=1.0, step=0))
    pd.testing.assert_frame_equal(view.overlay_lines, before)


def test_unknown_overlays_and_strategies_are_refused(view):
    with pytest.raises(ValueError):
        view.overlays = ["SMA 7"]
    with pytest.raises(ValueError):
        view.signals = "NoSuchStrategy"
    assert view.overlays == [] and view.signals is None


def test_signals_are_marked_with_their_reasons_on_hover(view):
    view.signals = "MovingAverageCross"
    events = MovingAverageCross().events(closed_bars(view), view.symbol)
    markers = view.signal_markers
    assert len(markers) == len(events) > 0
    assert list(markers["reasons"]) == ["; ".join(e.reasons) for e in events]
    assert list(markers["direction"]) == [e.direction for e in events]
    drawn = [s for s in rendered(view) if "reasons" in s.data]
    assert sum(len(s.data["reasons"]) for s in drawn) == len(events)
    doc = Document()
    doc.add_root(pn.panel(view).get_root(doc))
    tooltips = [str(h.tooltips) for h in doc.select({"type": HoverTool})]
    assert any("@{reasons}" in t for t in tooltips)


def test_signals_follow_closed_bars(view):
    view.signals = "MovingAverageCross"
    for _ in range(30):
        view.push(next_bar(view, closed=True, close=float(view.bars["close"].iat[-1]) * 0.99))
    events = MovingAverageCross().events(closed_bars(view), view.symbol)
    assert len(view.signal_markers) == len(events)
    assert view.signal_markers["timestamp"].iat[-1] == events[-1].time.tz_convert(None)
    view.signals = None
    assert view.signal_markers.empty


def test_overlays_too_long_for_the_bars_start_empty_and_fill_in(market):
    view = MarketView(market, max_bars=20, overlays=["SMA 50", "Bollinger 20"])
    lines = view.overlay_lines
    assert list(lines.columns) == ["SMA 50", "BB upper", "BB middle", "BB lower"]
    assert lines.isna().all().all() and len(lines) == 19
    view.push(next_bar(view, closed=True, step=0))  # the 20th closed bar: Bollinger 20 starts
    assert view.overlay_lines["BB middle"].iat[-1] == pytest.approx(view.bars["close"].mean())
    assert view.overlay_lines["SMA 50"].isna().all()
