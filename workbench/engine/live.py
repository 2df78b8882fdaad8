"""Paper trading: the backtest engine fed bar by bar from a stream, with the controls a
dashboard or a notebook calls.

``PaperSession`` wires the same parts a :class:`~workbench.backtest.api.Backtest` does --
strategy, order manager, risk, portfolio, :class:`SimulatedVenue` -- to a ``LiveFeed`` that
grows as closed bars arrive, so a paper run over the same bars makes the same orders and
fills as the backtest (a test proves it). Only the feed and the clock differ: bars come
from a source's ``stream_bars`` (the simulated market by default, or a ccxt stream) or from
:func:`replay` of stored history at any speed, and the loop runs on the caller's event loop
(a notebook's own kernel loop, or the Panel server's).

Controls: ``start``, ``pause`` (bars keep arriving, resting orders keep filling and equity
keeps moving, but the strategy is not asked), ``resume``, ``stop``, ``flatten`` (cancel every
open order and close every position at the next bar), and ``set_param`` for the strategy's
parameters. Every operator command is journaled in ``session.journal``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from workbench.data.model import BAR_COLUMNS
from workbench.data.sources.base import BarUpdate
from workbench.data.timeframes import timeframe_ms
from workbench.engine.engine import Engine
from workbench.engine.fills import FeeSchedule, SlippageModel
from workbench.engine.instruments import Instrument
from workbench.engine.order_manager import OrderManager
from workbench.engine.portfolio import Portfolio
from workbench.engine.risk import RiskLimits, RiskManager
from workbench.engine.strategy import Bar, BarColumns, EventStrategy, check_strategy
from workbench.engine.venue import SimulatedVenue
from workbench.errors import ConfigError, DataFormatError

Status = Literal["ready", "running", "paused", "stopped"]


class LiveBars:
    """One symbol's bars so far; grows by one closed bar at a time."""

    def __init__(self, symbol: str, history: pd.DataFrame, timeframe: int) -> None:
        if history.empty:
            raise DataFormatError(f"{symbol}: a live feed needs some history to start from.")
        self.symbol = symbol
        self.timeframe = timeframe
        self.columns = BarColumns(
            history.index.as_unit("ns").asi8.tolist(),
            {c: history[c].to_numpy(dtype=np.float64).tolist() for c in BAR_COLUMNS},
            timeframe,
        )
        self._frame: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.columns.time)

    @property
    def times(self) -> np.ndarray:
        return np.asarray(self.columns.time, dtype=np.int64)

    @property
    def frame(self) -> pd.DataFrame:
        """The bars so far, in the data convention (built when asked, then kept until the next bar)."""
        if self._frame is None:
            index = pd.DatetimeIndex(
                self.times.view("datetime64[ns]"), name="timestamp"
            ).tz_localize("UTC")
            columns = {c: getattr(self.columns, c) for c in BAR_COLUMNS}
            self._frame = pd.DataFrame(columns, index=index, copy=True)
        return self._frame

    def append(self, time: int, values: Sequence[float]) -> int:
        """Add a closed bar; returns its row. Refuses one that is not newer than the last."""
        times = self.columns.time
        if time <= times[-1]:
            raise DataFormatError(
                f"{self.symbol}: a bar at {pd.Timestamp(time, tz='UTC')} arrived after "
                f"{pd.Timestamp(times[-1], tz='UTC')}; a live feed only moves forward."
            )
        times.append(time)
        for column, value in zip(BAR_COLUMNS, values, strict=True):
            getattr(self.columns, column).append(float(value))
        self._frame = None
        return len(times) - 1


class LiveFeed:
    """Closed bars as they arrive, appended to each symbol's history."""

    live = True

    def __init__(self, history: Mapping[str, pd.DataFrame], timeframe: str) -> None:
        if not history:
            raise ConfigError("A live feed needs at least one symbol.")
        step = timeframe_ms(timeframe) * 1_000_000
        self.timeframe = timeframe
        self.symbols: list[str] = list(history)
        self.bars = {s: LiveBars(s, frame, step) for s, frame in history.items()}
        self.columns = {s: b.columns for s, b in self.bars.items()}
        self.times = np.array([min(int(b.times[0]) for b in self.bars.values())], dtype=np.int64)
        self._events = {s: [-1] * len(b) for s, b in self.bars.items()}  # history: no events
        self._count = 0

    def bar(self, update: BarUpdate) -> Bar:
        """The engine's :class:`Bar` for a closed update, after appending it to the history."""
        if update.symbol not in self.bars:
            raise ConfigError(
                f"A bar of {update.symbol!r} arrived; this feed carries {self.symbols}."
            )
        bars = self.bars[update.symbol]
        time = pd.Timestamp(update.timestamp).value
        values = (update.open, update.high, update.low, update.close, update.volume)
        row = bars.append(time, values)
        self._events[update.symbol].append(self._count)
        self._count += 1
        return Bar(update.symbol, row, bars.columns)

    def event(self, symbol: str, row: int) -> int:
        """The index of ``symbol``'s bar ``row`` among the bars that arrived."""
        return self._events[symbol][row]


async def replay(
    bars: Mapping[str, pd.DataFrame], timeframe: str, *, speed: float = 0.0
) -> AsyncIterator[BarUpdate]:
    """Stored bars as a stream of closed updates in time order, ``speed`` bar-times per
    wall second (0: as fast as the loop allows, still yielding to it between bars)."""
    step = timeframe_ms(timeframe) / 1000
    merged = (
        pd.concat({s: frame for s, frame in bars.items()}, names=["symbol"])
        .swaplevel()
        .sort_index(level=0, sort_remaining=False, kind="stable")
    )
    previous = None
    for (timestamp, symbol), row in zip(merged.index, merged.itertuples(index=False), strict=True):
        if previous is not None and timestamp != previous:
            await asyncio.sleep(step / speed if speed > 0 else 0)
        previous = timestamp
        yield BarUpdate(
            symbol, timeframe, timestamp, row.open, row.high, row.low, row.close, row.volume, True
        )


class _Pausable(EventStrategy):
    """Forwards to the session's strategy unless the session is paused."""

    def __init__(self, inner: EventStrategy) -> None:
        super().__init__(name=inner.name)
        self.inner = inner
        self.paused = False

    @property
    def label(self) -> str:
        return self.inner.label

    def on_start(self, ctx) -> None:
        self.inner.on_start(ctx)

    def on_bar(self, ctx, bar: Bar) -> None:
        if not self.paused:
            self.inner.on_bar(ctx, bar)

    def on_fill(self, ctx, order, fill) -> None:
        self.inner.on_fill(ctx, order, fill)

    def on_stop(self, ctx) -> None:
        self.inner.on_stop(ctx)


class PaperSession:
    """A strategy trading a stream on the simulated venue, controlled from a UI or a notebook."""

    def __init__(
        self,
        strategy: object,
        stream: AsyncIterator[BarUpdate],
        history: Mapping[str, pd.DataFrame],
        timeframe: str,
        *,
        cash: float | Mapping[str, float] = 10_000.0,
        currency: str | None = None,
        fees: float | FeeSchedule = 0.0,
        slippage: float | SlippageModel = 0.0,
        latency_ms: float = 0.0,
        participation: float | None = None,
        leverage: float = 1.0,
        risk: RiskLimits | RiskManager | None = None,
        instruments: Mapping[str, Instrument] | None = None,
    ) -> None:
        self.feed = LiveFeed(history, timeframe)
        given = dict(instruments or {})
        self.instruments = {s: given.get(s) or Instrument.parse(s) for s in self.feed.symbols}
        self.strategy = check_strategy(strategy)
        self._pausable = _Pausable(self.strategy)
        portfolio = Portfolio(cash, self.instruments, currency=currency)
        venue = SimulatedVenue(
            fees=fees, slippage=slippage, latency_ms=latency_ms, participation=participation
        )
        manager = risk if isinstance(risk, RiskManager) else RiskManager(risk)
        self.orders = OrderManager(portfolio, venue, manager, leverage=leverage)
        self.engine = Engine(self.feed, self._pausable, self.orders, funding=False)
        self.portfolio = portfolio
        self.status: Status = "ready"
        self.journal: list[tuple[datetime, str]] = []
        self.equity: list[tuple[pd.Timestamp, float]] = []  # after each bar time
        self.forming: dict[str, BarUpdate] = {}  # the latest update per symbol, forming or closed
        self.listeners: list[Callable[[PaperSession], None]] = []
        self.error: BaseException | None = None
        self._stream = stream
        self._task: asyncio.Task | None = None
        self._stopping = False

    @classmethod
    def from_source(
        cls,
        source: Any,
        symbols: Sequence[str],
        timeframe: str,
        strategy: object,
        *,
        speed: float = 1.0,
        history_bars: int = 500,
        start: object = None,
        **settings: Any,
    ) -> PaperSession:
        """A session on a source's live stream (``SimulatedMarket`` by default), with the
        ``history_bars`` before the stream's start as the strategy's history."""
        begin = pd.Timestamp(start if start is not None else source.now).floor(
            f"{timeframe_ms(timeframe)}ms"
        )
        span = pd.Timedelta(milliseconds=timeframe_ms(timeframe) * history_bars)
        history = {
            s: source.fetch_ohlcv(s, timeframe, begin - span, begin - pd.Timedelta(1))
            for s in symbols
        }
        stream = source.stream_bars(symbols, timeframe, speed, start=begin)
        return cls(strategy, stream, history, timeframe, **settings)

    # -- controls (the same calls from a notebook and from the dashboard) -----------------------

    def start(self) -> asyncio.Task:
        """Start trading on the running event loop; returns the task."""
        if self.status != "ready":
            raise ConfigError(f"The session is {self.status}; a session starts once.")
        self._command("start")
        self.engine.begin(int(self.feed.times[0]))
        self._set_status("running")
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self._task

    def pause(self) -> None:
        self._require("pause", "running")
        self._command("pause")
        self._pausable.paused = True
        self._set_status("paused")

    def resume(self) -> None:
        self._require("resume", "paused")
        self._command("resume")
        self._pausable.paused = False
        self._set_status("running")

    async def stop(self) -> None:
        """Stop consuming the stream; the account stays as it is (flatten first to close)."""
        self._command("stop")
        self._stopping = True
        if (
            self._task is not None
            and not self._task.done()
            and self._task is not asyncio.current_task()
        ):
            self._task.cancel()
            await asyncio.wait([self._task])
        if self.status != "stopped":
            self.engine.finish(self.orders.now)
            self._set_status("stopped")

    def flatten(self) -> None:
        """Cancel every open order and close every position with market orders (they fill
        at the next bar)."""
        self._require("flatten", "running", "paused")
        self._command("flatten")
        for order in self.orders.open_orders():
            self.orders.cancel(order, "cancelled by flatten")
        for symbol in self.feed.symbols:
            if self.portfolio.position(symbol):
                self.engine.ctx.close(symbol)

    def set_param(self, name: str, value: Any) -> None:
        """Change one of the strategy's parameters while it runs."""
        target = getattr(
            self.strategy, "strategy", self.strategy
        )  # a TargetTrader's signal strategy
        if name not in target.param or name == "name":
            raise ConfigError(f"{type(target).__name__} has no parameter {name!r}.")
        self._command(f"set {name}={value!r}")
        target.param.update({name: value})

    # -- state for views ----------------------------------------------------------------------

    @property
    def last_prices(self) -> dict[str, float]:
        return dict(self.portfolio.last)

    def positions(self) -> pd.DataFrame:
        rows = [
            {"symbol": s, "quantity": p.quantity, "entry_price": p.entry_price if p.quantity else math.nan,
             "last": self.portfolio.last[s], "value": self.portfolio.value(s)}
            for s, p in self.portfolio.positions.items()
        ]  # fmt: skip
        return pd.DataFrame(rows)

    def open_orders(self) -> pd.DataFrame:
        rows = [
            {"id": o.id, "symbol": o.symbol, "side": str(o.side), "type": str(o.type), "quantity": o.quantity,
             "filled": o.filled, "limit_price": o.limit_price, "stop_price": o.stop_price, "status": str(o.status)}
            for o in self.orders.open_orders()
        ]  # fmt: skip
        return pd.DataFrame(rows)

    def fills(self) -> pd.DataFrame:
        rows = [
            (
                pd.Timestamp(f.time, tz="UTC"),
                f.symbol,
                str(f.side),
                f.quantity,
                f.price,
                f.fee,
                f.liquidity,
            )
            for f in self.portfolio.fills
        ]
        return pd.DataFrame(
            rows, columns=["time", "symbol", "side", "quantity", "price", "fee", "liquidity"]
        )

    # -- machinery ----------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            async for update in self._stream:
                self.forming[update.symbol] = update
                if update.closed:
                    self.engine.step(self.feed.bar(update))
                    point = (pd.Timestamp(update.timestamp), self.portfolio.equity())
                    if self.equity and self.equity[-1][0] == point[0]:
                        self.equity[-1] = point  # one point per bar time, after all its symbols
                    else:
                        self.equity.append(point)
                else:  # a forming bar moves the marks, not the strategy
                    self.portfolio.last[update.symbol] = update.close
                for listener in self.listeners:
                    listener(self)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            return  # stopped on request: the task ends normally
        except Exception as exc:  # the session stops loudly: the error is kept and re-raised
            self.error = exc
            self._command(f"stopped by an error: {type(exc).__name__}: {exc}")
            self._set_status("stopped")
            raise
        else:
            self.engine.finish(self.orders.now)
            self._set_status("stopped")

    def _require(self, command: str, *statuses: Status) -> None:
        if self.status not in statuses:
            raise ConfigError(f"Cannot {command} a session that is {self.status}.")

    def _set_status(self, status: Status) -> None:
        """Change the status and tell the listeners (a view redraws its buttons)."""
        self.status = status
        for listener in self.listeners:
            listener(self)

    def _command(self, what: str) -> None:
        self.journal.append((datetime.now(UTC), what))
