"""``LivePaperView``: a strategy paper-trading a live stream, watched and steered from a page.

The view runs a :class:`~workbench.engine.live.PaperSession` -- the backtest's engine fed
bar by bar -- on the simulated venue. Bars come from a market source's live stream (the
seeded simulated market by default, accelerated by ``speed``) or, given ``bars``, from a
replay of stored history. It shows the price of one of the traded symbols with the fills
marked on it, the equity curve, big numbers for equity, P&L and the last price, and the
positions, open orders and recent fills. *Start*, *Pause*/*Resume*, *Stop* and *Flatten*
call the view's :meth:`~LivePaperView.start`, :meth:`~LivePaperView.pause`,
:meth:`~LivePaperView.resume`, :meth:`~LivePaperView.stop` and
:meth:`~LivePaperView.flatten`, which call the session's own controls, the API a notebook
calls too (``view.session`` is the running :class:`PaperSession`).

The page stays cheap however fast the bars come: the session calls the view back after
every update, but the view only notes it and redraws at most once per ``refresh`` seconds,
all at once. Redraws are incremental: closed candles, fills and equity points are streamed
into HoloViews ``Buffer`` s (``ColumnDataSource.stream`` in the browser), the forming candle
replaces a one-row ``Pipe``, the fills table streams its new rows, and the other tables and
numbers are sent only when they change.

The session runs on the running event loop: the Panel server's (stopped when the browser
session is destroyed) or a notebook kernel's. An error inside the session stops it and
shows an alert.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import DateFormatter, NumberFormatter
from holoviews.streams import Buffer, Pipe

from workbench.config import Settings, load_settings
from workbench.data.model import BAR_COLUMNS, empty_bars
from workbench.data.sources.base import BarUpdate, MarketSource
from workbench.data.sources.simulated import SimulatedMarket
from workbench.data.timeframes import timeframe_ms
from workbench.engine.live import PaperSession, replay
from workbench.engine.strategy import EventStrategy
from workbench.errors import ConfigError, UnknownSymbolError
from workbench.strategies import MovingAverageCross, Strategy
from workbench.ui._candles import DOWN, PADDING, UP, _numeral_y_ticks, candles, plot_frame
from workbench.ui.market_view import TIMEFRAMES

log = logging.getLogger(__name__)

#: CSS classes of the parts a browser test (or a stylesheet) reads.
EQUITY_CLASS = "live-paper-equity"
PNL_CLASS = "live-paper-pnl"
PRICE_CLASS = "live-paper-last-price"
STATUS_CLASS = "live-paper-status"
POSITIONS_CLASS = "live-paper-positions"
ORDERS_CLASS = "live-paper-orders"
FILLS_CLASS = "live-paper-fills"

POSITION_COLUMNS = ("symbol", "quantity", "entry_price", "last", "value")
ORDER_COLUMNS = (
    "id", "symbol", "side", "type", "quantity", "filled", "limit_price", "stop_price", "status",
)  # fmt: skip
FILL_COLUMNS = ("time", "symbol", "side", "quantity", "price", "fee", "liquidity")
#: Recent fills kept in the fills table and on the chart.
MAX_FILLS = 500
#: Equity points kept on the equity curve.
MAX_EQUITY = 5_000
#: Fill markers: blue triangles up for buys, amber triangles down for sells (not the
#: candles' green and red, so they stand out on them).
BUY_COLOR, SELL_COLOR = "#1565c0", "#ff8f00"
#: Significant digits prices and quantities are shown with.
DIGITS = 7

_DENSE = [":host .tabulator { font-size: 13px; }"]
_TIME = DateFormatter(format="%Y-%m-%d %H:%M", text_align="right")
_QUANTITY = NumberFormatter(format="0,0.[00000000]", text_align="right")
_PRICE = NumberFormatter(format="0,0.[00000000]", text_align="right")
_MONEY = NumberFormatter(format="0,0.00", text_align="right")


def default_strategy() -> MovingAverageCross:
    """What the view trades unless told otherwise: a long-only 10/30 moving-average cross."""
    return MovingAverageCross(fast=10, slow=30, long_only=True)


class LivePaperView(pn.viewable.Viewer):
    """Paper trading shown live: price with fills, equity, P&L, positions and orders, and
    the buttons that start, pause, resume, stop and flatten the session.

    ``LivePaperView(source)`` trades ``symbols`` of a market source's live stream (the
    simulated market: ``LivePaperView.from_settings()``); ``LivePaperView(bars={...})``
    replays stored bars instead, the first ``history_bars`` of each frame being history.
    :meth:`start` needs a running event loop (a notebook cell has the kernel's); each start
    after a stop begins a fresh session, so changes to the strategy, symbols, timeframe,
    speed or account take effect at the next start. ``view.session`` is the current session.
    """

    source = param.ClassSelector(
        class_=MarketSource, constant=True, doc="The live stream traded (unless bars are given)."
    )
    bars = param.Dict(
        default=None, constant=True, doc="Stored bars per symbol to replay instead of a source."
    )
    strategy = param.ClassSelector(
        class_=(Strategy, EventStrategy), doc="The strategy; each session trades a copy of it."
    )
    symbols = param.List(item_type=str, constant=True, doc="The symbols traded.")
    symbol = param.Selector(doc="The symbol on the price chart; one of the symbols traded.")
    timeframe = param.Selector(default="1m", objects=list(TIMEFRAMES), doc="Bar length.")
    speed = param.Number(
        default=30.0, bounds=(0, None),
        doc="Simulated seconds per wall second (30: a 1m bar every 2 s). A replay at 0 runs "
        "as fast as it can.",
    )  # fmt: skip
    history_bars = param.Integer(
        default=200, bounds=(2, 10_000), doc="Bars of history the strategy starts from."
    )
    cash = param.Number(
        default=10_000.0, bounds=(0, None), inclusive_bounds=(False, True), doc="Starting cash."
    )
    fees = param.Number(default=0.001, bounds=(0, 0.05), doc="Fee, a fraction of traded value.")
    slippage = param.Number(default=2.0, bounds=(0, 500), doc="Slippage, basis points.")
    max_bars = param.Integer(default=120, bounds=(20, 2_000), doc="Candles kept on the chart.")
    refresh = param.Number(
        default=0.5, bounds=(0, None), doc="Least seconds between two redraws of the page."
    )
    session = param.ClassSelector(
        class_=PaperSession, constant=True, doc="The current paper session (read only)."
    )
    status = param.String(default="ready", constant=True, doc="The session's status as shown.")
    message = param.String(default="", doc="An alert shown above the view (errors, notices).")
    alert_type = param.Selector(default="info", objects=["info", "success", "warning", "danger"])

    def __init__(
        self,
        source: MarketSource | None = None,
        *,
        bars: Mapping[str, pd.DataFrame] | None = None,
        **params: Any,
    ) -> None:
        if (source is None) == (bars is None):
            raise ConfigError("LivePaperView needs a market source or stored bars, not both.")
        if bars is not None:
            bars = dict(bars)
            params.setdefault("symbols", list(bars))
            available = list(bars)
        else:
            available = list(source.symbols())
            params.setdefault("symbols", available[:2])
        symbols = list(params["symbols"])
        unknown = [s for s in symbols if s not in available]
        if unknown or not symbols:
            raise UnknownSymbolError(
                f"Trade some of {available}, not {unknown or symbols}.",
                exchange=getattr(source, "name", "replay"),
                symbol=str(unknown[0] if unknown else ""),
            )
        params.setdefault("symbol", symbols[0])
        params.setdefault("strategy", default_strategy())
        super().__init__(source=source, bars=bars, **params)
        self.param.symbol.objects = symbols
        self.param.symbol.check_on_set = True
        self._task: asyncio.Task[None] | None = None
        self._latest: dict[str, BarUpdate] = {}  # the newest update per symbol, closed or not
        self._flush_handle: asyncio.Handle | None = None
        self._flushed_at = -math.inf
        self._detached = False  # closed: the page is gone, nothing more is drawn
        self._drawn: dict[str, int] = {}  # rows of each kind already drawn
        self._build_widgets()
        self._new_session()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **params: Any) -> LivePaperView:
        """On the simulated market seeded from the settings (the embedded default)."""
        settings = settings or load_settings()
        return cls(SimulatedMarket(seed=settings.seed), **params)

    # -- controls (the buttons call these; so can a notebook) ---------------------------------

    def start(self) -> asyncio.Task[None]:
        """Start trading on the running event loop; after a stop, in a fresh session."""
        if self.session.status != "ready":
            self._new_session()
        _warm_up(self.session.strategy, self.session.feed.bars[self.symbols[0]].frame)
        self._task = self.session.start()
        self._task.add_done_callback(self._session_ended)
        self._tell("", "info")
        self._draw()
        return self._task

    def pause(self) -> None:
        """The strategy is no longer asked; bars, resting orders and equity keep moving."""
        self._expect("running", "pause")
        self.session.pause()
        self._draw()

    def resume(self) -> None:
        """The strategy is asked again from the next bar."""
        self._expect("paused", "resume")
        self.session.resume()
        self._draw()

    def toggle_pause(self) -> None:
        """Pause a running session, resume a paused one (what the Pause/Resume button does)."""
        if self.session.status == "paused":
            self.resume()
        elif self.session.status == "running":
            self.pause()

    async def stop(self) -> None:
        """Stop the session (the account stays as it is: flatten first to close)."""
        await self.session.stop()
        self._draw()

    def flatten(self) -> None:
        """Cancel the open orders and close the positions (they fill at the next bar)."""
        self._expect(("running", "paused"), "flatten")
        self.session.flatten()
        self._draw()

    def set_param(self, name: str, value: Any) -> None:
        """Change one of the running strategy's parameters."""
        self.session.set_param(name, value)

    def close(self) -> None:
        """Stop the session and draw no more (the browser session ended); synchronous, it
        schedules the stop on the session's loop."""
        self._detached = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        session = self.session
        if self._on_update in session.listeners:
            session.listeners.remove(self._on_update)
        if session.status in ("running", "paused"):
            loop = self._task.get_loop() if self._task is not None else None
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(lambda: loop.create_task(session.stop()))

    def __panel__(self) -> pn.viewable.Viewable:
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:  # served: stop with the page
            pn.state.on_session_destroyed(self._session_destroyed)
        return self._layout

    # -- sessions -----------------------------------------------------------------------------

    def _new_session(self) -> None:
        """A fresh session (history, venue, account) and charts drawn from its history."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        strategy = copy.deepcopy(self.strategy)
        settings = {"cash": self.cash, "fees": self.fees, "slippage": self.slippage}
        self._latest = {}
        if self.bars is not None:
            session = self._replay_session(strategy, settings)
        else:
            session = PaperSession.from_source(
                _Tapped(self.source, self._latest), self.symbols, self.timeframe, strategy,
                speed=self.speed, history_bars=self.history_bars, **settings,
            )  # fmt: skip
        session.listeners.append(self._on_update)
        with param.edit_constant(self):
            self.session = session
        self._history_rows = len(session.feed.bars[self.symbols[0]])
        self._table_fills = 0
        self._fills_table.value = _fill_table(pd.DataFrame(columns=list(FILL_COLUMNS)))
        self._reload()

    def _replay_session(self, strategy: object, settings: dict[str, float]) -> PaperSession:
        frames = {s: self.bars[s] for s in self.symbols}
        short = [s for s, f in frames.items() if len(f) <= self.history_bars]
        if short:
            raise ConfigError(
                f"Replaying needs more than history_bars={self.history_bars} bars; "
                f"{short} have fewer."
            )
        history = {s: f.iloc[: self.history_bars] for s, f in frames.items()}
        live = {s: f.iloc[self.history_bars :] for s, f in frames.items()}
        per_bar = self.speed / (timeframe_ms(self.timeframe) / 1000)  # bars per wall second
        stream = _tap(replay(live, self.timeframe, speed=per_bar), self._latest)
        return PaperSession(strategy, stream, history, self.timeframe, **settings)

    def _on_update(self, session: PaperSession) -> None:
        """The session's listener: called after every update, it only schedules a redraw."""
        if session is not self.session or self._flush_handle is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._flushed_at + self.refresh - loop.time())
        self._flush_handle = loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        """Redraw once for all the updates since the last redraw. Served, the redraw runs as
        a callback of the page's document (holding its lock), and every change it makes goes
        to the browser in one batch when it ends."""
        self._flush_handle = None
        self._flushed_at = asyncio.get_running_loop().time()
        if not self._detached:
            pn.state.execute(self._redraw)

    def _redraw(self) -> None:
        if self._detached:
            return
        try:
            with pn.io.hold():
                self._draw()
        except Exception as exc:  # a drawing bug must not go unseen, nor stop the session
            log.exception("Drawing the live paper view failed")
            self._tell(f"**Drawing failed.** {type(exc).__name__}: {exc}", "danger")

    def _session_ended(self, task: asyncio.Task[None]) -> None:
        if task is not self._task:  # an earlier session's
            return
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("The paper session stopped with an error: %s", exc)
            self._tell(
                f"**The session stopped with an error.** {type(exc).__name__}: {exc}", "danger"
            )
        elif self.session.journal[-1][1] != "stop" and self.bars is not None:
            self._tell("The replay has ended.", "info")
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()  # the final state, at once

    def _expect(self, status: str | tuple[str, ...], what: str) -> None:
        """Refuse a control the session is not in a state for (a session paused or flattened
        before it started could never start; one stopped has no next bar to close at)."""
        if self.session.status not in ((status,) if isinstance(status, str) else status):
            raise ConfigError(f"Cannot {what}: the session is {self.session.status}.")

    def _session_destroyed(self, session_context: object) -> None:
        self.close()

    def _tell(self, message: str, alert_type: str) -> None:
        self.param.update(message=message, alert_type=alert_type)

    # -- drawing ------------------------------------------------------------------------------

    @param.depends("symbol", watch=True)
    def _reload(self) -> None:
        """The charted symbol's candles and fills into fresh buffers, so a fresh chart."""
        bars = self.session.feed.bars[self.symbol].frame.tail(self.max_bars)
        frame = plot_frame(bars, self.timeframe)
        self._closed = Buffer(frame, length=self.max_bars, index=False)
        self._forming = Pipe(data=plot_frame(empty_bars(), self.timeframe))
        self._fill_marks = Buffer(
            _fill_marks(self.session.fills(), self.symbol), length=MAX_FILLS, index=False
        )
        first = pd.DataFrame({"time": [bars.index[-1].tz_convert(None)], "equity": [self.cash]})
        if len(self.session.equity):
            first = _equity_frame(self.session.equity)
        self._equity_points = Buffer(first, length=MAX_EQUITY, index=False)
        self._drawn = {
            "bars": len(self.session.feed.bars[self.symbol]),
            "fills": len(self.session.portfolio.fills),
            "equity": len(self.session.equity),
        }
        self._shown_forming: BarUpdate | None = None
        self._price_pane.object = _price_chart(self._closed, self._forming, self._fill_marks)
        self._equity_pane.object = _equity_chart(self._equity_points, self.cash)
        fmt = _price_format(float(bars["close"].iat[-1]))
        self._last_price.param.update(label=f"Last {self.symbol}", format=fmt)
        self._draw()

    def _draw(self) -> None:
        """Everything that changed since the last redraw, sent incrementally."""
        session = self.session
        self._draw_candles(session)
        count = len(session.portfolio.fills)
        if count > min(self._drawn["fills"], self._table_fills):
            fills = session.fills()
            marks = _fill_marks(fills.iloc[self._drawn["fills"] :], self.symbol)
            if len(marks):
                self._fill_marks.send(marks)
            self._fills_table.stream(
                _fill_table(fills.iloc[self._table_fills :]), rollover=MAX_FILLS, follow=True
            )
            self._drawn["fills"] = self._table_fills = count
        if len(session.equity) > self._drawn["equity"]:
            points = _equity_frame(session.equity[self._drawn["equity"] :])
            last = self._equity_points.data["time"]
            if len(last):
                points = points[points["time"] > last.iat[-1]]
            if len(points):
                self._equity_points.send(points)
            self._drawn["equity"] = len(session.equity)
        _replace_if_changed(self._positions, _positions(session))
        orders = _frame(session.open_orders(), ORDER_COLUMNS)
        if len(orders):
            orders = _significant(orders, ["quantity", "filled", "limit_price", "stop_price"])
        _replace_if_changed(self._orders, orders)
        equity = session.portfolio.equity()
        if np.isfinite(equity):
            self._equity.value = round(equity, 2)
            self._pnl.value = round(equity - self.cash, 2)
        price = session.last_prices.get(self.symbol, math.nan)
        if not np.isfinite(price):
            price = float(session.feed.bars[self.symbol].frame["close"].iat[-1])
        self._last_price.value = price
        self._show_status(session)

    def _draw_candles(self, session: PaperSession) -> None:
        closed = session.feed.bars[self.symbol]
        if len(closed) > self._drawn["bars"]:
            new = closed.frame.iloc[self._drawn["bars"] :]
            self._closed.send(plot_frame(new, self.timeframe))
            self._drawn["bars"] = len(closed)
        update = self._latest.get(self.symbol)
        if update is self._shown_forming:
            return
        self._shown_forming = update
        last_closed = closed.frame.index[-1]
        if update is None or update.closed or pd.Timestamp(update.timestamp) <= last_closed:
            if len(self._forming.data):
                self._forming.send(self._forming.data.iloc[:0])
            return
        self._forming.send(plot_frame(_bar_frame(update), self.timeframe))

    def _show_status(self, session: PaperSession) -> None:
        status = session.status
        with param.edit_constant(self):
            self.status = status
        live = status in ("running", "paused")
        self._start.disabled = live
        self._start.label = "Restart" if status == "stopped" else "Start"
        self._pause.disabled = self._stop.disabled = self._flatten.disabled = not live
        self._pause.label = "Resume" if status == "paused" else "Pause"
        bars = len(session.feed.bars[self.symbols[0]]) - self._history_rows
        self._status_pane.object = (
            f"**{status}** · {session.strategy.label} on {_names(self.symbols)} · "
            f"{self.timeframe} · {_speed_text(self.speed)} · {max(bars, 0)} new bars · "
            f"{len(session.portfolio.fills)} fills"
        )

    # -- building blocks ----------------------------------------------------------------------

    def _build_widgets(self) -> None:
        self._start = pn.widgets.Button(label="Start", color="success", width=100)
        self._pause = pn.widgets.Button(label="Pause", color="warning", width=100)
        self._stop = pn.widgets.Button(label="Stop", color="danger", width=100)
        self._flatten = pn.widgets.Button(label="Flatten", color="primary", width=100)
        self._start.on_click(self._on_start)
        self._pause.on_click(lambda _: self.toggle_pause())
        self._stop.on_click(self._on_stop)
        self._flatten.on_click(lambda _: self.flatten())
        self._status_pane = pn.pane.Markdown(
            "", css_classes=[STATUS_CLASS], align="center", stylesheets=["p { margin: 0; }"],
            sizing_mode="stretch_width", min_width=300,
        )  # fmt: skip
        number = {"font_size": "28pt", "title_size": "11pt", "width": 230}
        self._equity = pn.indicators.Number(
            label="Equity", value=self.cash, format="{value:,.2f}", css_classes=[EQUITY_CLASS],
            **number,
        )  # fmt: skip
        self._pnl = pn.indicators.Number(
            label="P&L", value=0.0, format="{value:+,.2f}", css_classes=[PNL_CLASS],
            colors=[(-1e-9, DOWN), (1e-9, "#555555"), (math.inf, UP)], **number,
        )  # fmt: skip
        self._last_price = pn.indicators.Number(
            label="Last", value=0.0, format="{value:,.2f}", css_classes=[PRICE_CLASS], **number
        )
        self._price_pane = pn.pane.HoloViews(sizing_mode="stretch_width", height=380)
        self._equity_pane = pn.pane.HoloViews(sizing_mode="stretch_width", height=200)
        table = {
            "show_index": False, "disabled": True, "selectable": False, "sortable": False,
            "stylesheets": _DENSE,
        }  # fmt: skip
        self._positions = pn.widgets.Tabulator(
            _frame(pd.DataFrame(), POSITION_COLUMNS), css_classes=[POSITIONS_CLASS],
            layout="fit_columns", sizing_mode="stretch_width", height=170,
            formatters={"quantity": _QUANTITY, "entry_price": _PRICE, "last": _PRICE, "value": _MONEY},
            titles={"entry_price": "entry price"}, **table,
        )  # fmt: skip
        self._orders = pn.widgets.Tabulator(
            _frame(pd.DataFrame(), ORDER_COLUMNS), css_classes=[ORDERS_CLASS],
            layout="fit_columns", sizing_mode="stretch_width", height=170,
            formatters={"quantity": _QUANTITY, "filled": _QUANTITY, "limit_price": _PRICE,
                        "stop_price": _PRICE},
            titles={"quantity": "qty", "limit_price": "limit", "stop_price": "stop"},
            **table,
        )  # fmt: skip
        self._fills_table = pn.widgets.Tabulator(
            _fill_table(pd.DataFrame(columns=list(FILL_COLUMNS))), css_classes=[FILLS_CLASS],
            layout="fit_columns", sizing_mode="stretch_width", height=220,
            formatters={"time": _TIME, "quantity": _QUANTITY, "price": _PRICE, "fee": _MONEY},
            **table,
        )  # fmt: skip
        self._layout = pn.Column(
            pn.pane.Alert(
                self.param.message, alert_type=self.param.alert_type,
                visible=self.param.message.rx.bool(), sizing_mode="stretch_width",
            ),
            pn.Row(
                self._start, self._pause, self._stop, self._flatten,
                pn.widgets.Select.from_param(self.param.symbol, name="", width=140),
                self._status_pane, sizing_mode="stretch_width",
            ),
            pn.Row(self._equity, self._pnl, self._last_price, sizing_mode="stretch_width"),
            self._price_pane,
            self._equity_pane,
            pn.Row(
                pn.Column("#### Positions", self._positions, sizing_mode="stretch_width"),
                pn.Column("#### Open orders", self._orders, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            ),
            pn.Column("#### Recent fills", self._fills_table, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )  # fmt: skip

    async def _on_start(self, event: object) -> None:
        try:
            self.start()
        except Exception as exc:  # e.g. a source that cannot stream: say so on the page
            log.exception("Starting the paper session failed")
            self._tell(f"**Could not start.** {type(exc).__name__}: {exc}", "danger")

    async def _on_stop(self, event: object) -> None:
        await self.stop()


class _Tapped:
    """A market source whose live stream also records each update it yields, so the view
    can draw the forming bar (the session's listeners are not told the update itself)."""

    def __init__(self, source: MarketSource, latest: dict[str, BarUpdate]) -> None:
        self._source, self._latest = source, latest

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def stream_bars(
        self, symbols: Sequence[str], timeframe: str, speed: float = 1.0, **options: Any
    ) -> AsyncIterator[BarUpdate]:
        stream = self._source.stream_bars(symbols, timeframe, speed, **options)
        return _tap(stream, self._latest)


async def _tap(
    stream: AsyncIterator[BarUpdate], latest: dict[str, BarUpdate]
) -> AsyncIterator[BarUpdate]:
    async for update in stream:
        latest[update.symbol] = update
        yield update


def _warm_up(strategy: object, history: pd.DataFrame) -> None:
    """Compute a signal strategy's target once on the history before the stream starts: the
    first computation in a process loads its compiled indicators (about a second), which
    would otherwise hold the event loop when the first live bar closes and make the stream
    catch up in a burst."""
    strategy = getattr(strategy, "strategy", strategy)  # a TargetTrader's signal strategy
    if isinstance(strategy, Strategy):
        try:
            strategy.target(history)
        except Exception:  # the session meets it again and reports it
            log.debug("Warming %s up failed", strategy, exc_info=True)


def _price_chart(closed: Buffer, forming: Pipe, fills: Buffer) -> hv.DynamicMap:
    """Candles (closed ones streamed, the forming one replaced) with the fills marked."""
    layers = (
        hv.DynamicMap(candles, streams=[closed])
        * hv.DynamicMap(candles, streams=[forming])
        * hv.DynamicMap(_fill_points, streams=[fills])
    )
    return layers.opts(
        responsive=True,
        height=380,
        padding=PADDING,
        xlabel="",
        ylabel="price",
        show_grid=True,
        active_tools=["pan", "wheel_zoom"],
        hooks=[_numeral_y_ticks("0,0.[0000]")],
    )


def _fill_points(data: pd.DataFrame) -> hv.Scatter:
    return hv.Scatter(data, "timestamp", ["price", "side", "quantity", "color", "marker"]).opts(
        color="color",
        marker="marker",
        size=15,
        line_color="#111111",
        line_width=1.5,
        tools=["hover"],
        hover_tooltips=[
            ("fill", "@side @quantity{0,0.[000000]}"),
            ("price", "@price{0,0.[0000]}"),
            ("time (UTC)", "@timestamp{%F %H:%M}"),
        ],
        hover_formatters={"@timestamp": "datetime"},
    )


def _equity_chart(points: Buffer, cash: float) -> hv.DynamicMap:
    def curve(data: pd.DataFrame) -> hv.Curve:
        return hv.Curve(data, "time", "equity").opts(color="#1f77b4", line_width=2)

    start = hv.HLine(cash).opts(color="#999999", line_dash="dashed", line_width=1)
    return (hv.DynamicMap(curve, streams=[points]) * start).opts(
        responsive=True,
        height=200,
        xlabel="",
        ylabel="equity",
        show_grid=True,
        framewise=True,
        hooks=[_numeral_y_ticks("0,0.00")],
    )


def _fill_marks(fills: pd.DataFrame, symbol: str) -> pd.DataFrame:
    mine = fills[fills["symbol"] == symbol] if len(fills) else fills
    buy = mine["side"].astype(str).eq("buy").to_numpy()
    times = pd.DatetimeIndex(mine["time"]).tz_convert(None) if len(mine) else []
    return pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(times).as_unit("ns"),
            "price": mine["price"].to_numpy(dtype=float),
            "side": mine["side"].astype(str).to_numpy(),
            "quantity": mine["quantity"].to_numpy(dtype=float),
            "color": np.where(buy, BUY_COLOR, SELL_COLOR).astype(object),
            "marker": np.where(buy, "triangle", "inverted_triangle").astype(object),
        }
    )


def _equity_frame(points: Sequence[tuple[pd.Timestamp, float]]) -> pd.DataFrame:
    """Equity after each closed bar, the last value of each bar time (symbols share times)."""
    frame = pd.DataFrame(list(points), columns=["time", "equity"])
    frame["time"] = pd.DatetimeIndex(frame["time"]).tz_convert(None).as_unit("ns")
    return frame.drop_duplicates("time", keep="last").reset_index(drop=True)


def _fill_table(fills: pd.DataFrame) -> pd.DataFrame:
    frame = _frame(fills, FILL_COLUMNS)
    if len(frame):
        frame["time"] = pd.DatetimeIndex(frame["time"]).tz_convert(None)
        frame = _significant(frame, ["quantity", "price"])
    return frame.reset_index(drop=True)


def _positions(session: PaperSession) -> pd.DataFrame:
    frame = _frame(session.positions(), POSITION_COLUMNS)
    return _significant(frame, ["quantity", "entry_price", "last"]).round({"value": 2})


def _significant(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Prices and quantities to ``DIGITS`` significant digits (55,918.81, 3,279.656, 0.6151234)."""
    frame = frame.copy()
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(values == 0, 0, np.floor(np.log10(np.abs(values))))
        decimals = np.clip(DIGITS - 1 - np.nan_to_num(scale), 0, 12)
        frame[column] = [
            round(v, int(d)) if np.isfinite(v) else v for v, d in zip(values, decimals, strict=True)
        ]
    return frame


def _frame(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The frame with exactly these columns (a session's empty frames have none)."""
    if frame.empty and not len(frame.columns):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return frame.reindex(columns=list(columns))


def _replace_if_changed(table: pn.widgets.Tabulator, frame: pd.DataFrame) -> None:
    current = table.value
    if current is None or list(current.columns) != list(frame.columns) or not current.equals(frame):
        table.value = frame


def _bar_frame(update: BarUpdate) -> pd.DataFrame:
    index = pd.DatetimeIndex([pd.Timestamp(update.timestamp)], name="timestamp")
    return pd.DataFrame({c: [float(getattr(update, c))] for c in BAR_COLUMNS}, index=index)


def _price_format(price: float) -> str:
    if not np.isfinite(price) or price >= 100:
        return "{value:,.2f}"
    if price >= 1:
        return "{value:,.4f}"
    return "{value:,.6g}"


def _names(symbols: Sequence[str]) -> str:
    return ", ".join(symbols) if len(symbols) <= 4 else f"{len(symbols)} symbols"


def _speed_text(speed: float) -> str:
    return "as fast as it goes" if speed == 0 else f"{speed:g}× speed"
