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

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.backtest import metrics
from workbench.engine import (
    Engine, FeeSchedule, Instrument, OrderManager, Portfolio, ReplayFeed, RiskLimits,
    RiskManager, SimulatedVenue, SlippageModel,
)  # fmt: skip
from workbench.engine.equity import equity_frame
from workbench.engine.orders import ORDER_COLUMNS, Fill, Order

FILL_COLUMNS = ("order_id", "time", "symbol", "side", "quantity", "price", "fee", "liquidity")
from workbench.engine.portfolio import FUNDING_FIELDS, TRADE_FIELDS
from workbench.engine.strategy import EventStrategy, TargetTrader, check_strategy
from workbench.errors import ConfigError

if TYPE_CHECKING:
    import holoviews as hv

    from workbench.strategies import Strategy


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


@dataclass
class BacktestResult:
    """What a run produced: curves, trades, orders, fills, funding and the stats."""

    bars: dict[str, pd.DataFrame]
    equity: pd.Series
    cash: pd.Series
    positions: pd.DataFrame
    exposure: pd.Series
    trades: pd.DataFrame
    orders: pd.DataFrame
    fills: pd.DataFrame
    funding: pd.DataFrame
    stats: pd.Series
    strategy: object
    params: dict[str, Any]
    label: str
    settings: dict[str, Any]
    decisions: pd.DataFrame = field(repr=False)

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
    portfolio, feed = engine.portfolio, engine.feed
    account, positions = equity_frame(engine.portfolio, engine.feed)
    if backtest.start is not None:
        account, positions = account.loc[backtest.start :], positions.loc[backtest.start :]
    last_time = int(feed.times[-1])
    trades = _trades(portfolio.trades + portfolio.open_trades(), last_time)
    fills = _fills(portfolio.fills)
    orders = _orders(list(engine.orders.orders.values()))
    funding = _frame(portfolio.funding, FUNDING_FIELDS, times=("time",))
    decisions = _frame(
        engine.risk.decisions,
        ("time", "order_id", "action", "quantity", "reasons"),
        times=("time",),
    )
    equity = account["equity"].rename("equity")
    stats = metrics.stats(
        equity,
        trades,
        fees=float(fills["fee"].sum()) if len(fills) else 0.0,
        funding=float(funding["payment"].sum()) if len(funding) else 0.0,
        traded_notional=float((fills["quantity"] * fills["price"]).sum()) if len(fills) else 0.0,
        positions=positions,
    )
    strategy = backtest.strategy
    params = {k: v for k, v in strategy.param.values().items() if k != "name"}
    return BacktestResult(
        bars={s: feed.bars[s].frame for s in feed.symbols},
        equity=equity,
        cash=account["cash"].rename("cash"),
        positions=positions,
        exposure=account["exposure"].rename("exposure"),
        trades=trades,
        orders=orders,
        fills=fills,
        funding=funding,
        stats=stats,
        strategy=strategy,
        params=params,
        label=getattr(strategy, "label", type(strategy).__name__),
        settings=dict(backtest.settings),
        decisions=decisions,
    )


def _utc(time: object) -> pd.Timestamp:
    stamp = pd.Timestamp(time)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def _trades(rows: list[tuple], last_time: int) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(TRADE_FIELDS))
    frame["side"] = (
        np.where(frame["side"].to_numpy() > 0, "long", "short")
        if len(frame)
        else pd.Series(dtype=str)
    )
    is_open = frame["exit_time"].isna().to_numpy()
    entry = _times(frame["entry_time"])
    exit_ = _times(frame["exit_time"])
    frame["entry_time"], frame["exit_time"] = entry, exit_
    frame["return"] = frame["pnl"] / (frame["entry_price"] * frame["quantity"])
    end = exit_.where(~is_open, pd.Timestamp(last_time, tz="UTC"))
    frame["duration"] = end - entry
    frame["open"] = is_open
    frame = frame.sort_values(
        ["entry_time", "exit_time"], kind="stable", na_position="last"
    ).reset_index(drop=True)
    return frame.astype({"quantity": "float64", "entry_price": "float64", "exit_price": "float64"})


def _fills(fills: list[Fill]) -> pd.DataFrame:
    """One row per fill, built column by column."""
    frame = pd.DataFrame({name: [getattr(f, name) for f in fills] for name in FILL_COLUMNS})
    frame["side"] = frame["side"].astype("str")
    frame["time"] = _times(frame["time"])
    return frame


def _orders(orders: list[Order]) -> pd.DataFrame:
    """One row per order, built column by column (runs can place hundreds of thousands)."""
    frame = pd.DataFrame({name: [getattr(o, name) for o in orders] for name in ORDER_COLUMNS})
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
