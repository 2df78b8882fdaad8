"""``Backtest``: run a strategy over history on the event engine and get a result to study.

    result = Backtest(bars, MovingAverageCross(fast=10, slow=50, long_only=True),
                      cash=10_000, fees=0.001).run()
    result.stats; result.trades; result.equity; result.plot(); result.to_html("run.html")

``data`` is one bar frame (traded as ``symbol``) or a mapping of symbol to frames for a
portfolio. The run is the paper and live engine with a replay feed and a simulated venue:
signals computed on bar t act at bar t+1's open; see :mod:`workbench.engine.venue` for how
orders fill and ``docs/backtesting.md`` for the conventions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from workbench.backtest import metrics
from workbench.engine import (
    Engine, FeeSchedule, Instrument, OrderManager, Portfolio, ReplayFeed, RiskLimits,
    RiskManager, SimulatedVenue, SlippageModel,
)  # fmt: skip
from workbench.engine.equity import account_curves
from workbench.engine.orders import ORDER_COLUMNS, Fill, Order
from workbench.engine.ledger import TRADE_FIELDS, FillLog, RoundTrips, round_trips
from workbench.engine.portfolio import FUNDING_FIELDS
from workbench.engine.strategy import EventStrategy, TargetTrader, check_strategy
from workbench.errors import ConfigError

if TYPE_CHECKING:
    import holoviews as hv

    from workbench.strategies import Strategy

Column = TypeVar("Column", np.ndarray, pd.Series)

DECISION_FIELDS = ("time", "order_id", "action", "quantity", "reasons")


class Backtest:
    """A strategy, the data it runs over, and the account and venue it trades with.

    ``cash``: starting cash in the account ``currency`` (default: the first symbol's quote
    currency; a mapping gives several currencies). ``fees``: a fraction of traded value
    (0.001 = 0.1 %), or a :class:`FeeSchedule` for maker/taker. ``slippage``: basis points,
    or a :class:`SlippageModel` (volume or order-book based). ``latency_ms`` delays orders;
    ``participation`` caps fills at that fraction of each bar's volume. ``leverage`` (>1)
    allows margin and spot shorts. ``risk``: :class:`RiskLimits` or a :class:`RiskManager`.
    ``funding``/``marks``: per perpetual symbol, funding rates and mark-price bars.
    ``weights``: the share of equity a signal strategy trades per symbol (default equal).
    ``start``: trade from this time on; the bars before it only warm the indicators up
    (walk-forward windows use it), and the results begin there.
    """

    def __init__(
        self,
        data: pd.DataFrame | Mapping[str, pd.DataFrame],
        strategy: Strategy | EventStrategy,
        *,
        cash: float | Mapping[str, float] = 10_000.0,
        currency: str | None = None,
        fees: float | FeeSchedule = 0.0,
        slippage: float | SlippageModel | Mapping[str, SlippageModel] = 0.0,
        latency_ms: float = 0.0,
        participation: float | None = None,
        leverage: float = 1.0,
        risk: RiskLimits | RiskManager | None = None,
        funding: Mapping[str, pd.DataFrame] | bool | None = None,
        marks: Mapping[str, pd.DataFrame] | None = None,
        instruments: Mapping[str, Instrument] | None = None,
        weights: Mapping[str, float] | None = None,
        symbol: str = "asset",
        start: object = None,
    ) -> None:
        self.feed = ReplayFeed(data, symbol=symbol)
        self.start = None if start is None else _utc(start)
        if self.start is not None and not self.feed.index[0] <= self.start <= self.feed.index[-1]:
            raise ConfigError(
                f"start={self.start} lies outside the data ({self.feed.index[0]} to {self.feed.index[-1]})."
            )
        given = dict(instruments or {})
        self.instruments = {s: given.get(s) or Instrument.parse(s) for s in self.feed.symbols}
        self.strategy = strategy
        self._engine_strategy = check_strategy(strategy)
        if weights is not None:
            if not isinstance(self._engine_strategy, TargetTrader):
                raise ConfigError(
                    "weights= applies to signal strategies; an EventStrategy sizes its own orders."
                )
            self._engine_strategy.weights = dict(weights)
        self.settings: dict[str, Any] = {
            "cash": cash, "currency": currency, "fees": fees, "slippage": slippage,
            "latency_ms": latency_ms, "participation": participation, "leverage": leverage,
        }  # fmt: skip
        self.risk = risk
        self.funding = funding
        self.marks = marks
        Portfolio(cash, self.instruments, currency=currency)  # refuse bad cash now, not at run()
        SimulatedVenue(
            fees=fees, slippage=slippage, latency_ms=latency_ms, participation=participation
        )

    def run(self) -> BacktestResult:
        """Replay the data; raises on bad input or a failing strategy, never half-runs."""
        s = self.settings
        portfolio = Portfolio(s["cash"], self.instruments, currency=s["currency"])
        venue = SimulatedVenue(
            fees=s["fees"],
            slippage=s["slippage"],
            latency_ms=s["latency_ms"],
            participation=s["participation"],
        )
        risk = self.risk if isinstance(self.risk, RiskManager) else RiskManager(self.risk)
        orders = OrderManager(portfolio, venue, risk, leverage=s["leverage"])
        engine = Engine(
            self.feed,
            self._engine_strategy,
            orders,
            funding=self.funding,
            marks=self.marks,
            start=None if self.start is None else self.start.value,
        )
        engine.run()
        return _result(self, engine)


class _Lazy:
    """A result field made from the run's records on first read, then kept.

    Most runs are judged by their stats and equity alone, and building the orders, fills
    and trades frames, or the cash, exposure and positions curves, would cost more than
    the rest of a result. A field set to a zero-argument function is built by calling it;
    one set to a frame or series is kept as it is.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.slot = name, f"_{name}"

    def __get__(self, result: object, owner: type | None = None) -> pd.DataFrame | pd.Series:
        if result is None:  # no class-level default: the dataclass field stays required
            raise AttributeError(self.name)
        value = result.__dict__[self.slot]
        if callable(value):
            value = result.__dict__[self.slot] = value()
        return value

    def __set__(
        self, result: object, value: pd.DataFrame | pd.Series | Callable[[], object]
    ) -> None:
        result.__dict__[self.slot] = value


@dataclass
class BacktestResult:
    """What a run produced: curves, trades, orders, fills, funding and the stats.

    ``cash``, ``positions``, ``exposure``, ``trades``, ``orders``, ``fills``, ``funding``
    and ``decisions`` are built when first read.
    """

    bars: dict[str, pd.DataFrame]
    equity: pd.Series
    cash: pd.Series = _Lazy()
    positions: pd.DataFrame = _Lazy()
    exposure: pd.Series = _Lazy()
    trades: pd.DataFrame = _Lazy()
    orders: pd.DataFrame = _Lazy()
    fills: pd.DataFrame = _Lazy()
    funding: pd.DataFrame = _Lazy()
    stats: pd.Series
    strategy: object
    params: dict[str, Any]
    label: str
    settings: dict[str, Any]
    decisions: pd.DataFrame = _Lazy()

    def plot(self, symbol: str | None = None) -> hv.Layout:
        """Price with entries and exits, equity, drawdown and exposure, on one time axis."""
        from workbench.backtest.plot import plot_result

        return plot_result(self, symbol)

    def to_html(self, path: str | Path) -> Path:
        """A standalone HTML report (opens offline): stats, the plot, trades, settings."""
        from workbench.backtest.report import write_report

        return write_report(self, path)

    def _repr_html_(self) -> str:
        table = self.stats.to_frame().to_html(header=False)
        return f"<b>{self.label}</b> &middot; {len(self.trades)} trades{table}"

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"<BacktestResult {self.label}: total return {s['total_return']:.2%}, sharpe "
            f"{s['sharpe']:.2f}, max drawdown {s['max_drawdown']:.2%}, {s['trades']} trades>"
        )


def _result(backtest: Backtest, engine: Engine) -> BacktestResult:
    """The result of a finished run: equity and stats now, the rest when first read.

    The tables keep the run's own record lists, which nothing changes once the run is
    over -- except a :class:`RiskManager` the caller passed in, which the next run adds
    its decisions to, so those are copied.
    """
    portfolio, feed = engine.portfolio, engine.feed
    start = None if backtest.start is None else backtest.start.value
    account = account_curves(portfolio, feed, start)
    last = np.array([portfolio.last[s] for s in portfolio.symbols])
    trips = round_trips(portfolio.fill_log, len(portfolio.symbols), last)
    fees, traded_notional = _fill_totals(portfolio.fill_log)
    stats = metrics.summary(
        account.equity,
        *_closed_trades(trips),
        exposure=account.time_in_market(),
        fees=fees,
        funding=_funding_total(portfolio.funding),
        traded_notional=traded_notional,
    )
    strategy = backtest.strategy
    params = {k: v for k, v in strategy.param.values().items() if k != "name"}
    return BacktestResult(
        bars={s: feed.bars[s].frame for s in feed.symbols},
        equity=account.equity,
        cash=account.cash,
        positions=account.positions,
        exposure=account.exposure,
        trades=functools.partial(_trades, trips, portfolio.symbols, int(feed.times[-1])),
        orders=functools.partial(_orders, engine.orders.orders),
        fills=functools.partial(_fills, portfolio.fills),
        funding=functools.partial(_frame, portfolio.funding, FUNDING_FIELDS, times=("time",)),
        stats=stats,
        strategy=strategy,
        params=params,
        label=getattr(strategy, "label", type(strategy).__name__),
        settings=dict(backtest.settings),
        decisions=functools.partial(
            _frame, list(engine.risk.decisions), DECISION_FIELDS, times=("time",)
        ),
    )


def _field(
    rows: list[tuple], fields: tuple[str, ...], name: str, dtype: type = float
) -> np.ndarray:
    """One field of record tuples (in ``fields`` order) as an array, read straight into
    numpy: a field at a time is the quickest way from tuples to arrays."""
    return np.fromiter(map(itemgetter(fields.index(name)), rows), dtype, len(rows))


def _closed_trades(trips: RoundTrips) -> tuple[np.ndarray, np.ndarray]:
    """The closed trades' pnl and return, in the trades table's order (by entry, then exit
    time), for the stats: the values the table's columns would hold."""
    closed = {name: column[: trips.closed] for name, column in trips.columns.items()}
    order = np.lexsort((closed["exit_time"], closed["entry_time"]))
    pnl, price, quantity = (closed[name][order] for name in ("pnl", "entry_price", "quantity"))
    return pnl, _trade_returns(pnl, price, quantity)


def _trade_returns(pnl: Column, entry_price: Column, quantity: Column) -> Column:
    """Each trade's P&L as a fraction of its entry notional."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return pnl / (entry_price * quantity)


def _fill_totals(log: FillLog) -> tuple[float, float]:
    """Fees paid and value traded over the fills, summed as their table's columns would be."""
    _, _, quantities, prices, fees = log.arrays()
    return float(fees.sum()), float((np.abs(quantities) * prices).sum())


def _funding_total(rows: list[tuple]) -> float:
    """Funding received (negative: paid), summed as its table's column would be."""
    return float(_field(rows, FUNDING_FIELDS, "payment").sum())


def _utc(time: object) -> pd.Timestamp:
    stamp = pd.Timestamp(time)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def _trades(trips: RoundTrips, symbols: list[str], last_time: int) -> pd.DataFrame:
    columns = trips.columns
    frame = pd.DataFrame({name: columns[name] for name in TRADE_FIELDS})
    frame["symbol"] = pd.array(np.array(symbols, dtype=object)[columns["symbol"]], dtype="str")
    frame["side"] = np.where(columns["side"] > 0, "long", "short")
    is_open = np.arange(len(frame)) >= trips.closed
    entry = _times(frame["entry_time"])
    exit_ = _times(pd.Series(pd.arrays.IntegerArray(columns["exit_time"], is_open)))
    frame["entry_time"], frame["exit_time"] = entry, exit_
    frame["return"] = _trade_returns(frame["pnl"], frame["entry_price"], frame["quantity"])
    end = exit_.where(~is_open, pd.Timestamp(last_time, tz="UTC"))
    frame["duration"] = end - entry
    frame["open"] = is_open
    frame = frame.sort_values(
        ["entry_time", "exit_time"], kind="stable", na_position="last"
    ).reset_index(drop=True)
    return frame.astype({"quantity": "float64", "entry_price": "float64", "exit_price": "float64"})


def _fills(fills: list[Fill]) -> pd.DataFrame:
    """One row per fill, built column by column."""
    frame = pd.DataFrame(fills, columns=list(Fill._fields))
    frame["side"] = frame["side"].astype("str")
    frame["time"] = _times(frame["time"])
    return frame


def _orders(orders: dict[int, Order]) -> pd.DataFrame:
    """One row per order, built column by column (runs can place hundreds of thousands)."""
    frame = pd.DataFrame(
        {name: [getattr(o, name) for o in orders.values()] for name in ORDER_COLUMNS}
    )
    for name in ("side", "type", "time_in_force", "status"):
        frame[name] = frame[name].astype("str")
    frame["average_price"] = frame["average_price"].where(frame["filled"] > 0)
    for name in ("created", "updated"):
        frame[name] = _times(frame[name])
    return frame


def _frame(rows: list, columns: tuple[str, ...] | None, *, times: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns) if columns else None)
    for name in times:
        if name in frame:
            frame[name] = _times(frame[name])
    return frame


def _times(ns: pd.Series) -> pd.Series:
    """Epoch nanoseconds (None for none) as UTC timestamps, without a lossy float step."""
    return pd.to_datetime(pd.Series(ns, dtype="Int64"), utc=True, unit="ns")
