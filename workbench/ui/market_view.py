"""``MarketView``: live candlesticks and volume of one symbol, from any market source.

History comes from ``source.fetch_ohlcv``; live bars from ``source.stream_bars``, consumed
by an asyncio task on the running event loop (the Jupyter kernel's or the Panel server's),
started when the view is first shown and cancelled by :meth:`MarketView.stop` or when the
browser session ends.

Drawing is split so that streaming never redraws the figure: closed bars live in a
HoloViews ``Buffer`` (Bokeh receives each new one through ``ColumnDataSource.stream``),
the forming bar in a one-row ``Pipe`` that is replaced on every tick. Choosing another
symbol or timeframe loads its history into a fresh ``Buffer`` and so a fresh chart.

Indicator overlays and signal markers are computed from the closed bars only (never the
forming one, so nothing looks ahead) and sent through their own ``Pipe`` whenever a bar
closes: at most ``max_bars`` rows recomputed, the candles untouched. Choosing other
overlays or another strategy redraws the price chart once.
"""

from __future__ import annotations

import asyncio
import logging
import math

import numpy as np
import pandas as pd
import panel as pn
import param
from holoviews.streams import Buffer, Pipe

from workbench.data.model import BAR_COLUMNS, empty_bars
from workbench.data.sources.base import BarUpdate, MarketSource
from workbench.errors import UnknownSymbolError, WorkbenchError
from workbench.indicators import bbands, ema, sma, vwap
from workbench.strategies import BUILTIN_STRATEGIES
from workbench.ui._candles import VOLUME_HEIGHT, plot_frame, price_chart, volume_chart

log = logging.getLogger(__name__)

TIMEFRAMES = ("1m", "5m", "15m", "1h", "4h", "1d")


def _bollinger(bars: pd.DataFrame) -> pd.DataFrame:
    bands = bbands(bars["close"], 20)
    return bands.rename(columns=lambda c: f"BB {c}")[["BB upper", "BB middle", "BB lower"]]


# Each overlay: its lines (Series or DataFrame aligned with the bars) from closed bars.
OVERLAYS = {
    "SMA 20": lambda bars: sma(bars["close"], 20).rename("SMA 20"),
    "SMA 50": lambda bars: sma(bars["close"], 50).rename("SMA 50"),
    "EMA 20": lambda bars: ema(bars["close"], 20).rename("EMA 20"),
    "EMA 50": lambda bars: ema(bars["close"], 50).rename("EMA 50"),
    "Bollinger 20": _bollinger,
    "VWAP": lambda bars: vwap(bars).rename("VWAP"),
}
_OVERLAY_LINES = {"Bollinger 20": ["BB upper", "BB middle", "BB lower"]}  # else its name


class MarketView(pn.viewable.Viewer):
    """Live candlestick and volume chart of one symbol; pick symbol and timeframe.

    ``MarketView(source)`` displays itself in a notebook cell and works inside any Panel
    layout. Streaming starts on first display (or :meth:`start`); :meth:`stop` ends it.
    """

    source = param.ClassSelector(
        class_=MarketSource, constant=True, allow_None=False, doc="Where bars come from."
    )
    symbol = param.Selector(doc="The symbol shown; one of source.symbols().")
    timeframe = param.Selector(default="1m", objects=list(TIMEFRAMES), doc="Bar length.")
    max_bars = param.Integer(
        default=300,
        bounds=(20, 1000),
        doc="Closed bars shown and kept as new ones arrive; history fills them from the "
        "source's latest page of bars.",
    )
    refresh = param.Number(
        default=0.5,
        bounds=(0, None),
        doc="Least seconds between redraws of the forming bar (closed bars draw at once).",
    )
    overlays = param.ListSelector(
        default=[], objects=list(OVERLAYS), doc="Indicator lines drawn over the candles."
    )
    signals = param.Selector(
        default=None,
        objects=[None, *BUILTIN_STRATEGIES],
        doc="A built-in strategy (default parameters) whose signals are marked on the chart, "
        "with their reasons on hover.",
    )
    stream_options = param.Dict(
        default={},
        doc="Extra keyword arguments for source.stream_bars, e.g. {'speed': 30} for the "
        "simulated market.",
    )

    def __init__(self, source: MarketSource, **params: object) -> None:
        symbols = list(source.symbols())
        params.setdefault("symbol", symbols[0] if symbols else None)
        if params["symbol"] not in symbols:
            raise UnknownSymbolError(
                f"{source.name} has no symbol {params['symbol']!r}; choose one of {symbols}.",
                exchange=source.name,
                symbol=str(params["symbol"]),
            )
        super().__init__(source=source, **params)
        self.param.symbol.objects = symbols
        self.param.symbol.check_on_set = True
        self._task: asyncio.Task[None] | None = None
        self._forming = Pipe(data=plot_frame(empty_bars(), self.timeframe))
        self._closed = Buffer(self._forming.data, length=self.max_bars, index=False)
        self._price = pn.pane.HoloViews(sizing_mode="stretch_both", min_height=300)
        self._volume = pn.pane.HoloViews(sizing_mode="stretch_width", height=VOLUME_HEIGHT)
        self._lines: Pipe | None = None
        self._markers: Pipe | None = None
        self._layout = pn.Column(
            pn.Row(
                pn.widgets.Select.from_param(self.param.symbol, name="", width=140),
                pn.widgets.RadioButtonGroup.from_param(self.param.timeframe, name=""),
                pn.widgets.CheckButtonGroup.from_param(self.param.overlays, name=""),
                pn.widgets.Select.from_param(self.param.signals, name="", width=170),
                pn.pane.Markdown(
                    pn.bind(self._status, self._forming.param.data),
                    align="center",
                    stylesheets=["p { margin: 0; }"],
                ),
                sizing_mode="stretch_width",
            ),
            self._price,
            self._volume,
            sizing_mode="stretch_both",
            min_height=300 + VOLUME_HEIGHT + 60,
        )
        self._load()

    @property
    def bars(self) -> pd.DataFrame:
        """The bars on the chart (closed ones, then the forming one), in the data convention."""
        frame = pd.concat([self._closed.data, self._forming.data], ignore_index=True)
        index = pd.DatetimeIndex(frame["timestamp"], name="timestamp").tz_localize("UTC")
        return pd.DataFrame({c: frame[c].to_numpy() for c in BAR_COLUMNS}, index=index)

    @property
    def closed_bars(self) -> pd.DataFrame:
        """The closed bars on the chart (what overlays and signals are computed from)."""
        frame = self._closed.data
        index = pd.DatetimeIndex(frame["timestamp"], name="timestamp").tz_localize("UTC")
        return pd.DataFrame({c: frame[c].to_numpy() for c in BAR_COLUMNS}, index=index)

    @property
    def overlay_lines(self) -> pd.DataFrame:
        """The overlay lines drawn, one column per line, indexed like :attr:`closed_bars`."""
        data = self._lines.data if self._lines is not None else pd.DataFrame({"timestamp": []})
        index = pd.DatetimeIndex(data["timestamp"], name="timestamp").tz_localize("UTC")
        return data.drop(columns="timestamp").set_axis(index)

    @property
    def signal_markers(self) -> pd.DataFrame:
        """The signal markers drawn: time (naive UTC), price, direction and reasons."""
        if self._markers is None:
            return _markers_frame([], empty_bars())
        return self._markers.data

    @property
    def streaming(self) -> bool:
        """Whether live bars are being consumed right now."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Stream live bars into the chart on the running event loop (no-op if already on)."""
        if self.streaming:
            return
        self._task = asyncio.get_running_loop().create_task(self._follow())
        self._task.add_done_callback(self._report_failure)

    def stop(self) -> None:
        """Stop streaming; the chart keeps what it shows and :meth:`start` resumes."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def push(self, update: BarUpdate) -> None:
        """Draw one streamed bar: a newer bar is appended, the forming bar redrawn in place.

        The newest bar stays in the forming slot until it closes or a newer one arrives, so
        a bar that was still forming when history was loaded is never drawn twice.
        """
        if (update.symbol, update.timeframe) != (self.symbol, self.timeframe):
            return  # a late tick from the stream of the previous choice
        row = plot_frame(_bar_frame(update), self.timeframe)
        time = row["timestamp"].iat[0]
        closed = self._closed.data
        if len(closed) and time <= closed["timestamp"].iat[-1]:
            return  # already drawn as a closed bar
        forming = self._forming.data
        done = [forming] if len(forming) and time > forming["timestamp"].iat[0] else []
        if update.closed:
            done.append(row)
        if done:
            self._closed.send(pd.concat(done, ignore_index=True))
            self._update_studies()
        self._forming.send(row.iloc[:0] if update.closed else row)

    def __panel__(self) -> pn.viewable.Viewable:
        self._start_when_shown()
        return self._layout

    @param.depends("symbol", "timeframe", "max_bars", watch=True)
    def _reload(self) -> None:
        was_streaming = self.streaming
        self.stop()
        self._load()
        if was_streaming:
            self.start()

    def _load(self) -> None:
        """History into a fresh Buffer, so each chart's streaming starts in step with it."""
        # The source's latest page: the view need not know the source's clock (a simulated
        # present, an exchange's time).
        bars = self.source.fetch_ohlcv(self.symbol, self.timeframe).tail(self.max_bars)
        frame = plot_frame(bars, self.timeframe)
        self._closed = Buffer(frame.iloc[:-1], length=self.max_bars, index=False)
        self._forming.send(frame.iloc[-1:])
        self._volume.object = volume_chart(self._closed, self._forming)
        self._draw_price()

    @param.depends("overlays", "signals", watch=True)
    def _draw_price(self) -> None:
        """The price chart, with fresh Pipes for the chosen overlays and signals."""
        bars = self.closed_bars
        self._lines = Pipe(data=self._compute_lines(bars)) if self.overlays else None
        self._markers = Pipe(data=self._compute_markers(bars)) if self.signals else None
        self._price.object = price_chart(self._closed, self._forming, self._lines, self._markers)

    def _update_studies(self) -> None:
        """Recompute overlays and signals over the kept closed bars, after a bar closed."""
        if self._lines is None and self._markers is None:
            return
        bars = self.closed_bars
        if self._lines is not None:
            self._lines.send(self._compute_lines(bars))
        if self._markers is not None:
            self._markers.send(self._compute_markers(bars))

    def _compute_lines(self, bars: pd.DataFrame) -> pd.DataFrame:
        columns: dict[str, np.ndarray] = {}
        for name in self.overlays:
            try:
                result = OVERLAYS[name](bars)
            except WorkbenchError as exc:  # e.g. fewer bars than the period: no line yet
                log.info("Overlay %s not drawn over %d bars: %s", name, len(bars), exc)
                nan = np.full(len(bars), np.nan)  # same columns, so the chart keeps its lines
                columns.update({c: nan for c in _OVERLAY_LINES.get(name, [name])})
                continue
            frame = result.to_frame() if isinstance(result, pd.Series) else result
            columns.update({c: frame[c].to_numpy(dtype=float) for c in frame.columns})
        times = pd.DatetimeIndex(bars.index).tz_convert(None).as_unit("ns")
        return pd.DataFrame({"timestamp": times, **columns})

    def _compute_markers(self, bars: pd.DataFrame) -> pd.DataFrame:
        strategy = BUILTIN_STRATEGIES[self.signals]()
        try:
            events = strategy.events(bars, self.symbol) if len(bars) else []
        except WorkbenchError as exc:  # e.g. fewer bars than its indicators need
            log.info("Signals of %s not drawn over %d bars: %s", self.signals, len(bars), exc)
            events = []
        return _markers_frame(events, bars)

    async def _follow(self) -> None:
        """Draw closed bars at once, the forming bar at most every ``refresh`` seconds.

        A source may tick many times a second, and each redraw costs tens of milliseconds of
        server time; a held tick is drawn when due unless a newer one replaces it first.
        """
        loop = asyncio.get_running_loop()
        held: BarUpdate | None = None
        timer: asyncio.TimerHandle | None = None
        drawn_at = -math.inf

        def draw(update: BarUpdate) -> None:
            nonlocal held, timer, drawn_at
            held, timer, drawn_at = None, None, loop.time()
            self.push(update)

        updates = self.source.stream_bars([self.symbol], self.timeframe, **self.stream_options)
        try:
            async for update in updates:
                if timer is not None:
                    timer.cancel()
                    if held is not None and held.timestamp != update.timestamp:
                        draw(held)  # the last tick of its bar: draw it before the next bar
                due = drawn_at + self.refresh - loop.time()
                if update.closed or due <= 0:
                    draw(update)
                else:
                    held, timer = update, loop.call_later(due, draw, update)
        finally:
            if timer is not None:
                timer.cancel()

    def _start_when_shown(self) -> None:
        doc = pn.state.curdoc
        if doc is None:  # a notebook cell, on the kernel's running loop
            try:
                self.start()
            except RuntimeError:  # no running event loop (a plain script): history only
                log.info("No running event loop: %s shows history without streaming.", self.symbol)
        elif doc.session_context is not None:  # served: once the page is live, until it closes
            pn.state.onload(self._start_on_loop)
            pn.state.on_session_destroyed(self._session_destroyed)
        # else a document made without a browser (a liveness probe, an export): history only

    async def _start_on_loop(self) -> None:
        self.start()

    def _session_destroyed(self, session_context: object) -> None:
        self.stop()

    def _report_failure(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("Live bars of %s stopped: %s", self.symbol, task.exception())

    def _status(self, forming: pd.DataFrame) -> str:
        last = forming if len(forming) else self._closed.data.tail(1)
        head = f"{self.source.name} · **{self.symbol}** · {self.timeframe}"
        if last.empty:
            return f"{head} · no bars"
        bar = last.iloc[-1]
        return f"{head} · last **{bar['close']:,.6g}** · {bar['timestamp']:%Y-%m-%d %H:%M} UTC"


_SIDES = {1: "long", -1: "short", 0: "flat"}


def _markers_frame(events: list, bars: pd.DataFrame) -> pd.DataFrame:
    """Signal markers: ▲ under the bar's low, ▼ over its high, × at its close."""
    times = pd.DatetimeIndex([e.time for e in events], tz="UTC")
    rows = bars.reindex(times)
    direction = np.array([e.direction for e in events], dtype=int)
    price = np.select(
        [direction > 0, direction < 0],
        [rows["low"].to_numpy(), rows["high"].to_numpy()],
        rows["close"].to_numpy(),
    )
    return pd.DataFrame(
        {
            "timestamp": times.tz_convert(None).as_unit("ns"),
            "price": price.astype(float),
            "direction": direction,
            "side": [_SIDES[d] for d in direction],
            "reasons": ["; ".join(e.reasons) for e in events],
        }
    )


def _bar_frame(update: BarUpdate) -> pd.DataFrame:
    index = pd.DatetimeIndex([update.timestamp], name="timestamp")
    return pd.DataFrame({c: [float(getattr(update, c))] for c in BAR_COLUMNS}, index=index)
