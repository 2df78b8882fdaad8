"""Paper trading runs the backtest's engine bar by bar: the same orders and fills.

DESIGN principle 1: a backtest and a paper run over the same replayed bars make the same
orders and fills -- only the feed (a replay known in advance vs bars arriving one by one)
and the clock differ. Then the controls a dashboard calls: pause, resume, flatten, stop,
a parameter change, all journaled.
"""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

from workbench.backtest.api import Backtest
from workbench.data.model import to_bars
from workbench.engine import EventStrategy
from workbench.engine.live import PaperSession, replay
from workbench.errors import ConfigError
from workbench.strategies import MovingAverageCross

SYMBOL = "ETH/BTC"
SETTINGS = {"cash": 1.0, "fees": 0.001, "slippage": 2.0}


@pytest.fixture(scope="module")
def bars(shared_data):
    frame = to_bars(pd.read_parquet(shared_data / "binance-spot/5m/ETH_BTC.parquet"))
    return frame.iloc[:2200]


class Breakout(EventStrategy):
    """Buys a break of the last 20 bars' high with a bracket, read from the history so far
    (works the same on a replay and on a live feed)."""

    def on_bar(self, ctx, bar):
        recent = ctx.history(bars=21)
        if len(recent) < 21 or ctx.position() or ctx.open_orders():
            return
        if bar.close > recent["high"].iloc[:-1].max():
            ctx.buy(quantity=2.0, stop_loss=bar.close * 0.99, take_profit=bar.close * 1.015)


def paper_run(bars, start, strategy, **controls):
    history, live = {SYMBOL: bars.loc[: start - pd.Timedelta(1)]}, {SYMBOL: bars.loc[start:]}
    session = PaperSession(strategy, replay(live, "5m"), history, "5m", **SETTINGS)
    for listener in controls.get("listeners", ()):
        session.listeners.append(listener)

    async def main():
        await session.start()

    asyncio.run(main())
    return session


def same_fills(backtest, session):
    ours = backtest.fills.drop(columns="order_id").reset_index(drop=True)
    paper = session.fills()
    assert len(ours) == len(paper) > 5
    pd.testing.assert_frame_equal(ours[paper.columns], paper, check_dtype=False, rtol=0, atol=0)


@pytest.mark.parametrize(
    "strategy",
    [lambda: MovingAverageCross(fast=10, slow=50, long_only=True), lambda: Breakout()],
    ids=["signal strategy", "event strategy with brackets"],
)
def test_a_paper_run_makes_the_backtests_orders_and_fills(bars, strategy):
    start = bars.index[600]
    backtest = Backtest(bars, strategy(), symbol=SYMBOL, start=start, **SETTINGS).run()
    session = paper_run(bars, start, strategy())

    same_fills(backtest, session)
    paper_orders = pd.DataFrame(
        [
            (o.id, str(o.side), str(o.type), o.quantity, str(o.status), o.filled)
            for o in session.orders.orders.values()
        ],
        columns=["id", "side", "type", "quantity", "status", "filled"],
    )
    pd.testing.assert_frame_equal(
        backtest.orders[paper_orders.columns], paper_orders, check_dtype=False
    )
    assert session.status == "stopped"
    assert session.equity[-1][1] == pytest.approx(backtest.equity.iloc[-1], rel=1e-12)


def test_pause_resume_flatten_and_stop_are_obeyed_and_journaled(bars):
    start = bars.index[600]
    seen = []

    def operator(session):
        seen.append(session.feed.bars[SYMBOL].frame.index[-1])
        n = len(seen)
        if n == 200:
            session.pause()
        elif n == 400:
            session.resume()
        elif n == 600 and session.portfolio.position(SYMBOL) == 0:
            session.engine.ctx.buy(SYMBOL, 1.0)  # make sure there is something to flatten
        elif n == 601:
            session.flatten()
        elif n == 700:
            asyncio.get_running_loop().create_task(session.stop())

    session = paper_run(
        bars, start, MovingAverageCross(fast=10, slow=50, long_only=True), listeners=[operator]
    )

    paused_from, paused_to = seen[199], seen[399]
    created = [pd.Timestamp(o.created, tz="UTC") for o in session.orders.orders.values()]
    assert not [t for t in created if paused_from < t <= paused_to], "no orders while paused"
    assert session.portfolio.position(SYMBOL) == 0  # flattened
    assert len(seen) < 702 and session.status == "stopped"  # stopped well before the data ran out
    assert [what for _, what in session.journal] == ["start", "pause", "resume", "flatten", "stop"]


def test_a_parameter_changes_while_running_and_bad_ones_are_refused(bars):
    history = {SYMBOL: bars.iloc[:600]}
    session = PaperSession(
        MovingAverageCross(long_only=True),
        replay({SYMBOL: bars.iloc[600:610]}, "5m"),
        history,
        "5m",
    )
    session.set_param("fast", 12)
    assert session.strategy.strategy.fast == 12
    with pytest.raises(ConfigError, match="no parameter"):
        session.set_param("nonsense", 1)
    assert session.journal[-1][1] == "set fast=12"


def test_a_strategy_cannot_read_the_future_of_a_live_feed(bars):
    class Peeker(EventStrategy):
        def on_start(self, ctx):
            ctx.history(full=True)

    session = PaperSession(
        Peeker(), replay({SYMBOL: bars.iloc[600:610]}, "5m"), {SYMBOL: bars.iloc[:600]}, "5m"
    )

    async def main():
        session.start()

    with pytest.raises(ConfigError, match="live feed"):
        asyncio.run(main())
