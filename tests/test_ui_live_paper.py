"""LivePaperView without a browser: a paper session on the simulated market (or a replay),
driven by the view's controls and buttons on a running loop, drawn incrementally and
throttled, stopped with its page, and loud about errors."""

from __future__ import annotations

import asyncio

import pandas as pd
import panel as pn
import pytest
from bokeh.document import Document
from bokeh.document.events import ColumnDataChangedEvent, ColumnsStreamedEvent, ModelChangedEvent
from bokeh.models import ColumnDataSource
from panel.io.state import set_curdoc

from workbench.config import load_settings
from workbench.data.sources.simulated import SimulatedMarket
from workbench.engine import EventStrategy
from workbench.engine.live import PaperSession
from workbench.errors import ConfigError, UnknownSymbolError
from workbench.strategies import MovingAverageCross
from workbench.ui.live_paper import (
    EQUITY_CLASS,
    FILLS_CLASS,
    ORDERS_CLASS,
    PNL_CLASS,
    POSITIONS_CLASS,
    PRICE_CLASS,
    LivePaperView,
)

NOW = "2024-03-01 12:30"  # the default strategy buys both symbols on the first bar here
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
FAST = 600.0  # a 1m bar every 0.1 s, six updates of each symbol per bar


class Busy(EventStrategy):
    """An order on every bar: buys when flat, closes when long; and one limit buy resting far
    below the market, so there is always an open order to show."""

    def on_bar(self, ctx, bar):
        if not ctx.open_orders(bar.symbol):
            ctx.buy(bar.symbol, 0.001, limit_price=round(bar.close * 0.5, 2))
        if ctx.position(bar.symbol):
            ctx.close(bar.symbol)
        else:
            ctx.buy(bar.symbol, 0.01)


class Breaks(EventStrategy):
    """Fails on the third live bar."""

    def on_bar(self, ctx, bar):
        if ctx.row(bar.symbol) >= 202:
            raise RuntimeError("the strategy broke")


@pytest.fixture
def market() -> SimulatedMarket:
    return SimulatedMarket(seed=7, now=NOW)


def make_view(market, **params) -> LivePaperView:
    params.setdefault("speed", FAST)
    params.setdefault("refresh", 0.1)
    return LivePaperView(market, symbols=SYMBOLS, **params)


def parts(view: LivePaperView) -> dict[str, pn.viewable.Viewable]:
    """The view's tables and numbers, found as a browser finds them: by CSS class."""
    found = {}
    for kind in (pn.widgets.Tabulator, pn.indicators.Number):
        for part in pn.panel(view).select(kind):
            for css in part.css_classes:
                found[css] = part
    return found


async def until(condition, timeout: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    return condition()


def other_tasks() -> set[asyncio.Task]:
    return asyncio.all_tasks() - {asyncio.current_task()}


def test_before_start_it_shows_the_history_and_a_ready_account(market):
    view = make_view(market)
    shown = parts(view)
    assert view.status == "ready" and view.session.status == "ready"
    assert shown[EQUITY_CLASS].value == 10_000.0 and shown[PNL_CLASS].value == 0.0
    last = market.fetch_ohlcv("BTC/USDT", "1m", end=pd.Timestamp(NOW) - pd.Timedelta(1))
    assert shown[PRICE_CLASS].value == last["close"].iat[-1]
    assert list(shown[POSITIONS_CLASS].value["symbol"]) == SYMBOLS
    assert shown[ORDERS_CLASS].value.empty and shown[FILLS_CLASS].value.empty
    buttons = {b.label: b for b in pn.panel(view).select(pn.widgets.Button)}
    assert not buttons["Start"].disabled
    assert all(buttons[n].disabled for n in ("Pause", "Stop", "Flatten"))


def test_it_trades_live_and_the_page_follows_then_stop_freezes_it(market):
    view = make_view(market)
    shown = parts(view)
    first_price = shown[PRICE_CLASS].value

    async def scenario():
        view.start()
        assert view.status == "running" and view.session.status == "running"
        assert await until(lambda: len(view.session.fills()) >= 2 and len(view.session.equity) > 10)
        await asyncio.sleep(0.3)  # the next redraw
        running = {
            "equity": shown[EQUITY_CLASS].value,
            "price": shown[PRICE_CLASS].value,
            "fills": len(shown[FILLS_CLASS].value),
            "positions": shown[POSITIONS_CLASS].value.copy(),
        }
        await view.stop()
        frozen = (len(view.session.equity), shown[EQUITY_CLASS].value, shown[PRICE_CLASS].value)
        await asyncio.sleep(0.4)
        later = (len(view.session.equity), shown[EQUITY_CLASS].value, shown[PRICE_CLASS].value)
        return running, frozen, later, other_tasks()

    running, frozen, later, left_over = asyncio.run(scenario())
    session = view.session
    assert running["price"] != first_price
    assert running["equity"] != 10_000.0  # bought on the first bar, marked at every tick
    assert running["fills"] >= 2
    assert (running["positions"]["quantity"] > 0).all()
    assert frozen == later, "nothing moves after stop"
    assert view.status == "stopped" and not left_over
    # the page shows the session's final state
    assert shown[EQUITY_CLASS].value == pytest.approx(session.portfolio.equity(), abs=0.005)
    assert shown[PNL_CLASS].value == pytest.approx(session.portfolio.equity() - 10_000, abs=0.01)
    assert len(shown[FILLS_CLASS].value) == len(session.fills())
    pd.testing.assert_series_equal(
        shown[POSITIONS_CLASS].value["quantity"], session.positions()["quantity"], rtol=1e-6
    )
    assert [what for _, what in session.journal] == ["start", "stop"]


def test_pause_stops_new_orders_resume_and_flatten(market):
    view = make_view(market, strategy=Busy())

    async def scenario():
        session = view.session
        view.start()
        assert await until(lambda: len(session.orders.orders) >= 6)
        view.pause()
        assert view.status == "paused"
        orders, bars = len(session.orders.orders), len(session.equity)
        await asyncio.sleep(0.6)
        paused = (len(session.orders.orders) - orders, len(session.equity) - bars)
        await asyncio.sleep(0.15)
        open_shown = len(parts(view)[ORDERS_CLASS].value)
        view.resume()
        assert await until(lambda: len(session.orders.orders) > orders)
        view.flatten()
        view.pause()  # so that the strategy does not buy again after the flatten
        assert await until(lambda: all(session.portfolio.position(s) == 0 for s in SYMBOLS))
        await asyncio.sleep(0.25)
        await view.stop()
        return paused, open_shown

    (new_orders, new_bars), open_shown = asyncio.run(scenario())
    assert new_orders == 0, "no new orders while paused"
    assert new_bars > 4, "bars kept arriving while paused"
    assert open_shown == 2  # the resting limit buy of each symbol
    shown = parts(view)
    assert (shown[POSITIONS_CLASS].value["quantity"] == 0).all()
    assert shown[ORDERS_CLASS].value.empty  # flatten cancelled the resting orders
    commands = [what for _, what in view.session.journal]
    assert commands == ["start", "pause", "resume", "flatten", "pause", "stop"]


def test_the_buttons_call_the_controls(market):
    view = make_view(market)
    buttons = {b.label: b for b in pn.panel(view).select(pn.widgets.Button)}
    start, pause, stop = buttons["Start"], buttons["Pause"], buttons["Stop"]

    async def click(button: pn.widgets.Button) -> None:
        button.clicks += 1
        await asyncio.sleep(0.05)  # async handlers run as tasks on the loop

    async def scenario():
        await click(start)
        states = [(view.status, start.disabled, pause.label)]
        await click(pause)
        states.append((view.status, start.disabled, pause.label))
        await click(pause)
        states.append((view.status, start.disabled, pause.label))
        await click(stop)
        await asyncio.sleep(0.1)
        states.append((view.status, start.disabled, start.label))
        return states, other_tasks()

    states, left_over = asyncio.run(scenario())
    assert states == [
        ("running", True, "Pause"),
        ("paused", True, "Resume"),
        ("running", True, "Pause"),
        ("stopped", False, "Restart"),
    ]
    assert not left_over


def test_redraws_are_throttled_and_incremental(market):
    """However many updates arrive, the page redraws at most once per ``refresh`` seconds,
    and a redraw streams new rows into the history's sources rather than replacing them."""
    view = make_view(market, refresh=0.25)
    doc = Document()
    doc.add_root(pn.panel(view).get_root(doc))
    sources = list(doc.select({"type": ColumnDataSource}))
    candles = {s for s in sources if "high" in s.data and len(s.data["high"]) > 1}
    (equity,) = [s for s in sources if "equity" in s.data]
    assert len(candles) == 2  # the candle bodies and their wicks
    events = []
    doc.on_change(events.append)
    draws, updates = [], []
    draw = view._draw
    view._draw = lambda: (draws.append(1), draw())
    view.session.listeners.insert(0, updates.append)

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        with set_curdoc(doc):  # as in a served session, where the button starts it
            began = loop.time()
            view.start()
            assert await until(lambda: len(updates) >= 150, timeout=20)  # 2 x 6 x 12 bars
            took = loop.time() - began
            await view.stop()
        return took

    took = asyncio.run(scenario())
    assert len(draws) <= took / 0.25 + 4  # redraws while running, plus start and stop
    streamed = {e.model for e in events if isinstance(e, ColumnsStreamedEvent)}
    assert candles | {equity} <= streamed
    replaced = {
        e.model
        for e in events
        if isinstance(e, ModelChangedEvent | ColumnDataChangedEvent) and e.attr == "data"
    }
    assert not replaced & (candles | {equity}), "history was sent again"


def test_a_replay_of_stored_bars_runs_to_its_end(market):
    bars = {s: market.fetch_ohlcv(s, "1m", "2024-03-01 06:00", "2024-03-01 11:59") for s in SYMBOLS}
    view = LivePaperView(bars=bars, history_bars=200, speed=0, refresh=0.05)

    async def scenario():
        await view.start()  # a replay ends by itself

    asyncio.run(scenario())
    session = view.session
    assert view.status == "stopped" and view.message == "The replay has ended."
    assert len(session.feed.bars["BTC/USDT"]) == 360
    assert len(session.fills()) > 2
    assert len(parts(view)[FILLS_CLASS].value) == len(session.fills())
    assert view._equity_points.data["time"].iat[-1] == pd.Timestamp("2024-03-01 11:59")


def test_an_error_in_the_session_shows_an_alert(market):
    view = make_view(market, strategy=Breaks())

    async def scenario():
        task = view.start()
        await asyncio.wait([task], timeout=10)

    asyncio.run(scenario())
    assert view.status == "stopped"
    assert view.alert_type == "danger"
    assert "RuntimeError" in view.message and "the strategy broke" in view.message
    alert = pn.panel(view).select(pn.pane.Alert)[0]
    assert alert.visible and alert.alert_type == "danger"
    assert not {b.label: b for b in pn.panel(view).select(pn.widgets.Button)}["Restart"].disabled


def test_closing_the_page_stops_the_session_and_draws_no_more(market):
    view = make_view(market)

    async def scenario():
        view.start()
        await asyncio.sleep(0.3)
        view._session_destroyed(None)  # what Panel calls when the browser session ends
        await asyncio.sleep(0.1)
        equity = parts(view)[EQUITY_CLASS].value
        return view.session.status, equity, other_tasks()

    status, equity, left_over = asyncio.run(scenario())
    assert status == "stopped" and not left_over
    assert parts(view)[EQUITY_CLASS].value == equity


def test_a_restart_is_a_fresh_session(market):
    view = make_view(market)

    async def scenario():
        view.start()
        await asyncio.sleep(0.3)
        await view.stop()
        first = view.session
        view.start()
        await asyncio.sleep(0.1)
        second = view.session
        await view.stop()
        return first, second

    first, second = asyncio.run(scenario())
    assert first is not second and isinstance(second, PaperSession)
    assert [what for _, what in second.journal] == ["start", "stop"]
    assert view.strategy.fast == 10 and second.strategy.strategy is not view.strategy


def test_controls_out_of_turn_are_refused_without_harm(market):
    view = make_view(market)
    with pytest.raises(ConfigError, match="Cannot pause: the session is ready"):
        view.pause()
    with pytest.raises(ConfigError, match="Cannot flatten"):
        view.flatten()

    async def scenario():
        view.start()  # still startable
        view.set_param("fast", 12)
        with pytest.raises(ConfigError, match="Cannot resume: the session is running"):
            view.resume()
        await view.stop()

    asyncio.run(scenario())
    assert view.session.strategy.strategy.fast == 12
    assert [what for _, what in view.session.journal] == ["start", "set fast=12", "stop"]


def test_settings_choose_the_market_and_symbols_are_checked(isolated_env, market):
    view = LivePaperView.from_settings(load_settings(seed=11))
    assert isinstance(view.source, SimulatedMarket) and view.source.seed == 11
    assert view.symbols == SimulatedMarket().symbols()[:2]
    assert isinstance(view.strategy, MovingAverageCross)
    assert (view.strategy.fast, view.strategy.slow, view.strategy.long_only) == (10, 30, True)
    with pytest.raises(UnknownSymbolError, match="NOPE/USDT"):
        LivePaperView(market, symbols=["NOPE/USDT"])
    with pytest.raises(ConfigError, match="source or stored bars"):
        LivePaperView()


def test_another_symbol_is_charted_from_the_same_session(market):
    view = make_view(market)

    async def scenario():
        view.start()
        await asyncio.sleep(0.5)
        view.symbol = "ETH/USDT"
        await asyncio.sleep(0.3)
        await view.stop()

    asyncio.run(scenario())
    price = parts(view)[PRICE_CLASS]
    assert price.label == "Last ETH/USDT"
    assert price.value == view.session.last_prices["ETH/USDT"]
    charted = view._closed.data["timestamp"]
    assert charted.is_monotonic_increasing and charted.is_unique
    assert charted.iat[-1] == view.session.feed.bars["ETH/USDT"].frame.index[-1].tz_convert(None)
