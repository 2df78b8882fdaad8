"""A replay brings the account's state up to date only when something reads it.

The engine hands each bar to the strategy as a view of its row and leaves the clock, the
last prices and the rows until the strategy (or the venue, or the end of the run) reads
them. These tests read them at irregular moments -- on consecutive bars, after short and
long silences, across symbols with different bar times -- and compare with what an
eager replay would hold, computed here from the frames alone.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench.backtest.api import Backtest
from workbench.data.model import to_bars
from workbench.engine import Bar, EventStrategy

SYMBOLS = ("ETH/BTC", "LTC/BTC", "ADA/BTC")


@pytest.fixture(scope="module")
def frames(shared_data):
    """Three recorded symbols over the same span; ADA/BTC has gaps, and LTC/BTC is thinned
    to every third bar, so the symbols' bars interleave unevenly."""
    loaded = {
        s: to_bars(pd.read_parquet(shared_data / f"binance-spot/5m/{s.replace('/', '_')}.parquet"))
        for s in SYMBOLS
    }
    start = max(f.index[0] for f in loaded.values())
    span = {s: f.loc[start:].iloc[:1500] for s, f in loaded.items()}
    span["LTC/BTC"] = span["LTC/BTC"].iloc[::3]
    return span


class Reader(EventStrategy):
    """Reads the state on the bars ``when`` picks, and records it."""

    def __init__(self, when, **params):
        super().__init__(**params)
        self.when = when
        self.seen: list[tuple] = []
        self.bars = 0

    def on_bar(self, ctx, bar):
        self.bars += 1
        if self.when(self.bars):
            rows = {s: ctx.row(s) for s in ctx.symbols}
            last = dict(ctx.portfolio.last)
            self.seen.append((bar.symbol, bar.time, ctx.now.value, rows, last))


def expected_state(frames, symbol, time):
    """What an eager replay holds at the close of ``symbol``'s bar at ``time``: for each
    symbol its latest bar handled so far (bars at the same time count for the symbols
    given before, and including, ``symbol``)."""
    order = list(frames)
    rows, last = {}, {}
    for s, frame in frames.items():
        times = frame.index.as_unit("ns").asi8
        side = "right" if order.index(s) <= order.index(symbol) else "left"
        row = int(np.searchsorted(times, time, side=side)) - 1
        rows[s] = row
        last[s] = frame["close"].iat[row] if row >= 0 else frame["open"].iat[0]
    return rows, last


@pytest.mark.parametrize(
    "when",
    [
        lambda k: True,  # every bar: each sync moves one event
        lambda k: k % 2 == 0,  # every other bar: a few events at a time
        lambda k: k % 97 in (0, 1, 2),  # bursts after long silences: a jump, then steps
        lambda k: k in (1, 4000),  # the first bar, then once near the end
    ],
    ids=["every-bar", "every-other", "bursts", "twice"],
)
def test_state_read_at_any_moment_is_the_eager_state(frames, when):
    strategy = Reader(when)
    Backtest(frames, strategy, cash=1.0).run()
    assert strategy.seen, "the strategy never read the state"
    for symbol, time, now, rows, last in strategy.seen:
        want_rows, want_last = expected_state(frames, symbol, time)
        assert rows == want_rows, (symbol, pd.Timestamp(time, tz="UTC"))
        assert last == want_last, (symbol, pd.Timestamp(time, tz="UTC"))
        step = np.median(np.diff(frames[symbol].index.as_unit("ns").asi8))  # its timeframe
        assert now == time + step  # the close of the bar being handled


def test_warm_up_bars_are_caught_up_before_the_first_traded_bar(frames):
    """With ``start=``, the strategy is first called after the warm-up; what it reads then
    already includes every warm-up bar."""
    start = frames["ETH/BTC"].index[700]
    strategy = Reader(lambda k: k == 1)
    Backtest(frames, strategy, cash=1.0, start=start).run()
    ((symbol, time, _, rows, last),) = strategy.seen
    assert (symbol, time) == ("ETH/BTC", start.value)
    assert (rows, last) == expected_state(frames, symbol, time)


def test_orders_sized_after_a_silence_use_the_current_prices(frames):
    """A target order placed after many bars nobody read is sized at the current closes:
    the same fills as a strategy that reads the state on every bar."""

    class Target(EventStrategy):
        def __init__(self, touch_every_bar, **params):
            super().__init__(**params)
            self.touch = touch_every_bar
            self.count = 0

        def on_bar(self, ctx, bar):
            self.count += 1
            if self.touch:
                ctx.equity()
            if self.count % 500 == 0:
                ctx.order_target(bar.symbol, 0.3 if self.count % 1000 else 0.0)

    quiet = Backtest(frames, Target(False), cash=1.0, fees=0.001).run()
    busy = Backtest(frames, Target(True), cash=1.0, fees=0.001).run()
    assert len(quiet.fills) > 4
    pd.testing.assert_frame_equal(quiet.fills, busy.fills)
    assert quiet.equity.equals(busy.equity)


def test_a_bar_reads_its_row(frames):
    seen: list[Bar] = []

    class Keep(EventStrategy):
        def on_bar(self, ctx, bar):
            if len(seen) < 3 or bar.symbol == "LTC/BTC" and len(seen) < 6:
                seen.append(bar)

    Backtest(frames, Keep(), cash=1.0).run()
    for bar in seen:  # kept bars still read their own row after the run moved on
        frame = frames[bar.symbol]
        row = frame.iloc[bar.row]
        assert bar.timestamp == frame.index[bar.row]
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == tuple(row)
        step = np.median(np.diff(frame.index.as_unit("ns").asi8))
        assert bar.closes == bar.time + step
        assert repr(bar).startswith(f"Bar({bar.symbol!r}, row={bar.row}, ")
    assert {b.symbol for b in seen} >= {"ETH/BTC", "LTC/BTC"}
    assert not math.isnan(seen[-1].close)


@pytest.mark.parametrize("symbols", [SYMBOLS, SYMBOLS[:1]], ids=["three symbols", "one symbol"])
def test_bars_kept_in_any_way_keep_their_rows_while_dropped_ones_are_refilled(frames, symbols):
    """The replay refills a bar nobody kept for the next one; every way of keeping a bar
    (a list, an attribute, a dict, a closure, a tuple) must keep its row, also when the
    strategy lets go of it later. (One symbol has a replay loop of its own.)"""
    frames = {s: frames[s] for s in symbols}
    kept: dict[str, object] = {"list": [], "dict": {}, "closures": [], "tuples": []}
    checks: list[tuple[Bar, str, int]] = []  # bar, the symbol and row it had when kept

    class Keeper(EventStrategy):
        previous = None

        def on_bar(self, ctx, bar):
            if self.previous is not None:  # the bar kept last time is still the one it was
                before = self.previous
                assert before is not bar and (before.symbol, before.row) == self.previous_at
            if bar.row % 5 == 0:  # keep every fifth bar as "previous", drop it five bars on
                self.previous, self.previous_at = bar, (bar.symbol, bar.row)
            elif bar.row % 5 == 4:
                self.previous = None
            way = bar.row % 11
            if way == 1:
                kept["list"].append(bar)
            elif way == 3:
                kept["dict"][(bar.symbol, bar.row)] = bar
            elif way == 5:
                kept["closures"].append(lambda b=bar: b)
            elif way == 7:
                kept["tuples"].append((bar,))
            if way in (1, 3, 5, 7):
                checks.append((bar, bar.symbol, bar.row))

    Backtest(frames, Keeper(), cash=1.0).run()
    assert len(checks) > 500
    for bar, symbol, row in checks:
        assert (bar.symbol, bar.row) == (symbol, row)
        assert bar.close == frames[symbol]["close"].iat[row]
    held = [c() for c in kept["closures"]] + [t[0] for t in kept["tuples"]]
    assert all(bar.row % 11 in (5, 7) for bar in held)
    assert all(key == (bar.symbol, bar.row) for key, bar in kept["dict"].items())


def test_fills_at_the_first_traded_bar_see_the_warm_up(frames):
    """An order placed in ``on_start`` of a run with ``start=`` fills at the first traded
    bar; what ``on_fill`` reads then already includes the warm-up bars."""
    start = frames["ETH/BTC"].index[700]

    class Early(EventStrategy):
        seen: tuple = ()

        def on_start(self, ctx):
            ctx.buy("ETH/BTC", quantity=1.0)

        def on_fill(self, ctx, order, fill):
            self.seen = (
                ctx.row("ETH/BTC"),
                ctx.row("LTC/BTC"),
                dict(ctx.portfolio.last),
                fill.time,
            )

    strategy = Early()
    Backtest(frames, strategy, cash=1.0, start=start).run()
    eth, ltc, last, filled = strategy.seen
    assert filled == start.value  # at the open of the first traded bar
    rows, want_last = expected_state(frames, "ADA/BTC", start.value - 1)  # the bar before
    assert (eth, ltc) == (rows["ETH/BTC"], rows["LTC/BTC"]) == (699, 699 // 3)
    assert last == want_last
