"""How the event engine fills orders, checked on small hand-made bars.

Every bar frame here is a handful of 1-minute bars; every expected fill price, time,
quantity and fee is worked out by hand from the rules in ``workbench/engine/venue.py``
(a market order decided at bar t's close fills at bar t+1's open; limits, stops and
trailing stops as its docstring says), ``order_manager.py`` (brackets, target orders,
the spot cash cap) and ``portfolio.py`` (cash, average entry, realised P&L, round trips).

The helpers (``frame``, ``at``, ``Script``, ``run``) are shared with
``test_engine_risk.py`` and ``test_engine_bad_input.py``.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from workbench.backtest.api import Backtest
from workbench.data.model import OrderBook
from workbench.engine import BookSlippage, EventStrategy, FeeSchedule, VolumeSlippage

T0 = pd.Timestamp("2024-01-01 00:00", tz="UTC")
MINUTE = pd.Timedelta("1min")
REL = 1e-12


def frame(rows, start: pd.Timestamp = T0) -> pd.DataFrame:
    """1-minute bars from ``start``: rows of (open, high, low, close[, volume=1000])."""
    index = pd.date_range(start, periods=len(rows), freq="1min", name="timestamp")
    rows = [tuple(r) if len(r) == 5 else (*r, 1000.0) for r in rows]
    return pd.DataFrame(
        rows, index=index, columns=["open", "high", "low", "close", "volume"], dtype="float64"
    )


def at(row: int, start: pd.Timestamp = T0) -> pd.Timestamp:
    """The open of bar ``row`` (and the close of bar ``row - 1``)."""
    return start + row * MINUTE


class Script(EventStrategy):
    """At the close of bar ``row`` runs each ``action(ctx)`` in ``script[row]`` and keeps
    what it returns (the order placed) in ``placed``; keeps every fill with the order's
    status right after it in ``fills``, and per bar what the strategy saw in ``seen``."""

    def __init__(self, script=None, start=None, **params):
        super().__init__(**params)
        self.script = script or {}
        self.start_actions = start or ()
        self.placed: list = []
        self.fills: list = []
        self.seen: list = []

    def on_start(self, ctx):
        for action in self.start_actions:
            self.placed.append(action(ctx))

    def on_bar(self, ctx, bar):
        p = ctx.portfolio.positions[bar.symbol]
        self.seen.append((bar.row, ctx.now, p.quantity, p.entry_price, p.realised, ctx.cash()))
        for action in self.script.get(bar.row, ()):
            self.placed.append(action(ctx))

    def on_fill(self, ctx, order, fill):
        self.fills.append((order.id, order.status.value, fill))


def run(rows, script=None, *, start=T0, **settings):
    """Backtest ``Script(script)`` over ``frame(rows, start)``; returns (result, strategy)."""
    strategy = Script(script)
    result = Backtest(frame(rows, start), strategy, **settings).run()
    return result, strategy


def fills_of(result) -> list[tuple]:
    """The fills as (order id, time, side, quantity, price, fee, liquidity)."""
    f = result.fills
    return list(
        zip(
            f["order_id"],
            f["time"],
            f["side"],
            f["quantity"],
            f["price"],
            f["fee"],
            f["liquidity"],
            strict=True,
        )
    )


def order_row(result, order_id: int) -> pd.Series:
    return result.orders.set_index("id").loc[order_id]


def buy(quantity, **how):
    return lambda ctx: ctx.buy(None, quantity, **how)


def sell(quantity, **how):
    return lambda ctx: ctx.sell(None, quantity, **how)


BASE = [
    (100.0, 101.0, 99.0, 100.0),
    (102.0, 104.0, 101.0, 103.0),
    (103.0, 105.0, 102.0, 104.0),
    (104.0, 106.0, 103.0, 105.0),
]


# -- market orders, fees, slippage -------------------------------------------------------------


def test_market_order_decided_at_a_close_fills_at_the_next_open_with_the_taker_fee():
    fees = FeeSchedule(maker=0.001, taker=0.002)
    result, strategy = run(BASE, {0: [buy(10)], 2: [sell(10)]}, fees=fees)

    assert strategy.seen[0][1] == at(1)  # decided at bar 0's close ...
    assert strategy.seen[0][2] == 0.0  # ... with nothing held yet
    assert fills_of(result) == [
        (
            1,
            at(1),
            "buy",
            10.0,
            102.0,
            pytest.approx(10 * 102 * 0.002, rel=REL),
            "taker",
        ),  # ... filled at bar 1's open
        (2, at(3), "sell", 10.0, 104.0, pytest.approx(10 * 104 * 0.002, rel=REL), "taker"),
    ]
    cash_1 = 10_000 - 1020 - 2.04
    cash_3 = cash_1 + 1040 - 2.08
    assert result.cash.tolist() == pytest.approx([10_000, cash_1, cash_1, cash_3], rel=REL)
    assert result.equity.tolist() == pytest.approx(
        [10_000, cash_1 + 1030, cash_1 + 1040, cash_3], rel=REL
    )
    assert result.positions["asset"].tolist() == [0.0, 10.0, 10.0, 0.0]

    first = order_row(result, 1)
    assert (first["status"], first["filled"], first["average_price"]) == ("filled", 10.0, 102.0)
    assert first["fees"] == pytest.approx(2.04, rel=REL)
    assert (first["created"], first["updated"]) == (at(1), at(1))

    (trade,) = result.trades.itertuples(index=False)
    assert (trade.side, trade.quantity, trade.entry_time, trade.entry_price) == (
        "long",
        10.0,
        at(1),
        102.0,
    )
    assert (trade.exit_time, trade.exit_price, trade.open) == (at(3), 104.0, False)
    assert trade.fees == pytest.approx(4.12, rel=REL)
    assert trade.pnl == pytest.approx(20 - 4.12, rel=REL)
    assert trade.duration == 2 * MINUTE


def test_fixed_slippage_moves_each_fill_against_the_order():
    result, _ = run(BASE, {0: [buy(10)], 2: [sell(10)]}, fees=0.001, slippage=25)

    bought, sold = 102 * (1 + 0.0025), 104 * (1 - 0.0025)
    assert fills_of(result) == [
        (
            1,
            at(1),
            "buy",
            10.0,
            pytest.approx(bought, rel=REL),
            pytest.approx(10 * bought * 0.001, rel=REL),
            "taker",
        ),
        (
            2,
            at(3),
            "sell",
            10.0,
            pytest.approx(sold, rel=REL),
            pytest.approx(10 * sold * 0.001, rel=REL),
            "taker",
        ),
    ]
    assert result.trades["pnl"].iat[0] == pytest.approx(
        10 * (sold - bought) - 0.001 * 10 * (bought + sold), rel=REL
    )
    assert result.equity.iat[-1] == pytest.approx(10_000 + result.trades["pnl"].iat[0], rel=REL)


def test_volume_slippage_follows_the_square_root_of_the_bars_volume_share():
    rows = [
        (100.0, 101.0, 99.0, 100.0, 1000.0),
        (102.0, 104.0, 101.0, 103.0, 400.0),  # 4 of 400: 1 % of the volume
        (103.0, 105.0, 102.0, 104.0, 1000.0),
        (104.0, 106.0, 103.0, 105.0, 1600.0),  # 4 of 1600: 0.25 %
    ]
    result, _ = run(rows, {0: [buy(4)], 2: [sell(4)]}, slippage=VolumeSlippage(impact=0.1))

    assert result.fills["price"].tolist() == pytest.approx(
        [102 * (1 + 0.1 * math.sqrt(0.01)), 104 * (1 - 0.1 * math.sqrt(0.0025))], rel=REL
    )


def book(time, bids, asks):
    return OrderBook("asset", time, bids, asks)


def test_book_slippage_walks_the_levels_of_the_book_recorded_before_the_fill():
    books = [
        book(
            at(0) + pd.Timedelta("30s"),
            [(101.5, 5), (101.0, 5)],
            [(102.0, 3), (102.5, 4), (103.0, 10)],
        ),
        book(at(2) + pd.Timedelta("10s"), [(103.9, 2), (103.5, 10)], [(104.1, 5)]),
        book(at(3) + pd.Timedelta("1s"), [(50.0, 100)], [(60.0, 100)]),  # after the fill: unseen
    ]
    result, _ = run(BASE, {0: [buy(8)], 2: [sell(8)]}, slippage=BookSlippage(books), fees=0.001)

    bought = (3 * 102.0 + 4 * 102.5 + 1 * 103.0) / 8
    sold = (2 * 103.9 + 6 * 103.5) / 8
    assert fills_of(result) == [
        (
            1,
            at(1),
            "buy",
            8.0,
            pytest.approx(bought, rel=REL),
            pytest.approx(8 * bought * 0.001, rel=REL),
            "taker",
        ),
        (
            2,
            at(3),
            "sell",
            8.0,
            pytest.approx(sold, rel=REL),
            pytest.approx(8 * sold * 0.001, rel=REL),
            "taker",
        ),
    ]


def test_book_depth_limits_a_fill_and_the_rest_waits_for_the_next_bar():
    books = [
        book(at(0) + pd.Timedelta("30s"), [(101.0, 5)], [(102.0, 3), (103.0, 2)]),  # 5 shown
        book(at(1) + pd.Timedelta("30s"), [(103.0, 1)], [(104.0, 10)]),
    ]
    result, strategy = run(BASE, {0: [buy(8)]}, slippage=BookSlippage(books))

    assert [(i, status, f.time, f.quantity, f.price) for i, status, f in strategy.fills] == [
        (1, "partially_filled", at(1).value, 5.0, pytest.approx((3 * 102 + 2 * 103) / 5, rel=REL)),
        (1, "filled", at(2).value, 3.0, 104.0),
    ]
    order = order_row(result, 1)
    assert (order["status"], order["filled"]) == ("filled", 8.0)
    assert order["average_price"] == pytest.approx((3 * 102 + 2 * 103 + 3 * 104) / 8, rel=REL)


def test_a_fill_or_kill_order_larger_than_the_book_gets_nothing():
    books = [book(at(0) + pd.Timedelta("30s"), [(101.0, 5)], [(102.0, 3), (103.0, 2)])]
    result, _ = run(BASE, {0: [buy(8, time_in_force="fok")]}, slippage=BookSlippage(books))

    order = order_row(result, 1)
    assert (order["status"], order["filled"]) == ("cancelled", 0.0)
    assert order["reason"] == "fill or kill: only 5 of 8 available"
    assert result.fills.empty and result.positions["asset"].iat[-1] == 0.0


# -- latency, participation, time in force -----------------------------------------------------


@pytest.mark.parametrize(
    ("latency_ms", "filled_on"),
    [(0, 1), (59_999, 1), (60_000, 2), (90_000, 2), (120_000, 3)],
)
def test_latency_of_a_bar_or_more_makes_an_order_meet_a_later_bar(latency_ms, filled_on):
    rows = [(100.0 + k, 101.0 + k, 99.0 + k, 100.0 + k) for k in range(5)]
    result, _ = run(rows, {0: [buy(1)]}, latency_ms=latency_ms)

    # placed at bar 0's close (00:01); it meets the first bar that closes after it arrives
    assert fills_of(result) == [(1, at(filled_on), "buy", 1.0, 100.0 + filled_on, 0.0, "taker")]


def test_participation_spreads_a_large_order_over_several_bars():
    rows = [
        (100.0, 101.0, 99.0, 100.0, 1000.0),
        (101.0, 102.0, 100.0, 101.0, 50.0),  # 10 % of 50: 5
        (102.0, 103.0, 101.0, 102.0, 30.0),  # 3
        (103.0, 104.0, 102.0, 103.0, 100.0),  # 10 allowed, 2 left
        (104.0, 105.0, 103.0, 104.0, 100.0),
    ]
    result, strategy = run(rows, {0: [buy(10)]}, participation=0.1, fees=0.001)

    assert [(status, f.time, f.quantity, f.price) for _, status, f in strategy.fills] == [
        ("partially_filled", at(1).value, 5.0, 101.0),
        ("partially_filled", at(2).value, 3.0, 102.0),
        ("filled", at(3).value, 2.0, 103.0),
    ]
    assert result.fills["fee"].tolist() == pytest.approx([0.505, 0.306, 0.206], rel=REL)
    order = order_row(result, 1)
    assert order["average_price"] == pytest.approx((505 + 306 + 206) / 10, rel=REL)
    assert order["fees"] == pytest.approx(1.017, rel=REL)
    assert result.positions["asset"].tolist() == [0.0, 5.0, 8.0, 10.0, 10.0]


def test_participation_is_shared_by_the_orders_meeting_one_bar():
    rows = [
        (100.0, 101.0, 99.0, 100.0, 1000.0),
        (101.0, 102.0, 100.0, 101.0, 50.0),
        (102.0, 103.0, 101.0, 102.0, 1000.0),
    ]
    result, _ = run(rows, {0: [buy(4), buy(4)]}, participation=0.1)

    # 5 may trade in bar 1: the first order takes 4, the second 1 (its other 3 in bar 2)
    assert [(i, t, q, p) for i, t, _, q, p, _, _ in fills_of(result)] == [
        (1, at(1), 4.0, 101.0),
        (2, at(1), 1.0, 101.0),
        (2, at(2), 3.0, 102.0),
    ]


IOC_ROWS = [
    (100.0, 101.0, 99.0, 100.0, 1000.0),
    (101.0, 102.0, 100.0, 101.0, 50.0),
    (102.0, 103.0, 101.0, 102.0, 1000.0),
]


def test_immediate_or_cancel_keeps_what_its_first_bar_fills_and_cancels_the_rest():
    result, strategy = run(IOC_ROWS, {0: [buy(10, time_in_force="ioc")]}, participation=0.1)

    assert fills_of(result) == [(1, at(1), "buy", 5.0, 101.0, 0.0, "taker")]
    order = order_row(result, 1)
    assert (order["status"], order["filled"], order["updated"]) == ("cancelled", 5.0, at(1))
    assert order["reason"] == "ioc: not filled in the first bar"
    assert result.positions["asset"].tolist() == [0.0, 5.0, 5.0]


def test_immediate_or_cancel_limit_not_reached_in_its_first_bar_is_cancelled_unfilled():
    result, _ = run(IOC_ROWS, {0: [buy(1, limit_price=99.0, time_in_force="ioc")]})

    order = order_row(result, 1)
    assert (order["status"], order["filled"]) == (
        "cancelled",
        0.0,
    )  # bar 2's low 101 never mattered
    assert result.fills.empty


def test_fill_or_kill_fills_all_in_its_first_bar_or_nothing():
    result, _ = run(
        IOC_ROWS,
        {0: [buy(10, time_in_force="fok"), buy(5, time_in_force="fok")]},
        participation=0.1,
    )

    kill, fill = order_row(result, 1), order_row(result, 2)
    assert (kill["status"], kill["filled"]) == ("cancelled", 0.0)
    assert kill["reason"] == "fill or kill: only 5 of 10 available"
    assert (fill["status"], fill["filled"], fill["average_price"]) == ("filled", 5.0, 101.0)
    assert fills_of(result) == [(2, at(1), "buy", 5.0, 101.0, 0.0, "taker")]


def test_a_day_order_expires_when_the_utc_day_ends_and_a_gtc_order_does_not():
    start = pd.Timestamp("2024-01-01 23:57", tz="UTC")
    rows = [
        (100.0, 101.0, 99.0, 100.0),  # 23:57
        (100.0, 101.0, 99.0, 100.0),  # 23:58: the 99.5 day order fills
        (100.0, 101.0, 98.0, 100.0),  # 23:59
        (96.0, 97.0, 94.0, 95.0),  # 00:00 on the 2nd: would reach 95
        (96.0, 97.0, 94.0, 95.0),  # 00:01: the expired order stays as it ended
    ]
    script = {
        0: [
            buy(1, limit_price=95.0, time_in_force="day"),
            buy(1, limit_price=99.5, time_in_force="day"),
            buy(1, limit_price=95.0),
        ]
    }
    result, _ = run(rows, script, start=start, fees=FeeSchedule(maker=0.001, taker=0.002))

    expired = order_row(result, 1)
    assert (expired["status"], expired["filled"]) == ("expired", 0.0)
    assert expired["updated"] == pd.Timestamp("2024-01-02 00:00", tz="UTC")
    assert expired["reason"] == "day order: the UTC day ended"
    assert fills_of(result) == [
        (2, at(1, start), "buy", 1.0, 99.5, pytest.approx(0.0995, rel=REL), "maker"),
        (3, at(3, start), "buy", 1.0, 95.0, pytest.approx(0.095, rel=REL), "maker"),
    ]


# -- limit orders ------------------------------------------------------------------------------


def test_limit_buys_marketable_resting_and_gapped_through():
    rows = [
        (100.0, 101.0, 99.0, 100.0),
        (102.0, 104.0, 101.0, 103.0),
        (103.0, 104.0, 99.5, 100.0),
        (98.0, 99.0, 97.0, 98.0),
    ]
    fees = FeeSchedule(maker=0.001, taker=0.002)
    script = {0: [buy(1, limit_price=105.0), buy(1, limit_price=100.0), buy(1, limit_price=99.0)]}
    result, _ = run(rows, script, fees=fees)

    assert fills_of(result) == [
        # marketable when it arrived: takes liquidity at the open
        (1, at(1), "buy", 1.0, 102.0, pytest.approx(0.204, rel=REL), "taker"),
        # resting: bar 1's low 101 misses 100, bar 2's low 99.5 reaches it
        (2, at(2), "buy", 1.0, 100.0, pytest.approx(0.1, rel=REL), "maker"),
        # resting through bar 2 (low 99.5 > 99); bar 3 opens below it: filled at the open
        (3, at(3), "buy", 1.0, 98.0, pytest.approx(0.098, rel=REL), "maker"),
    ]


def test_limit_sells_marketable_resting_and_gapped_through():
    rows = [
        (100.0, 101.0, 99.0, 100.0),
        (102.0, 104.0, 101.0, 103.0),
        (103.0, 104.0, 102.0, 103.0),
        (106.0, 107.0, 105.0, 106.0),
    ]
    fees = FeeSchedule(maker=0.001, taker=0.002)
    script = {
        0: [
            buy(3),
            sell(1, limit_price=101.5),
            sell(1, limit_price=103.5),
            sell(1, limit_price=104.5),
        ]
    }
    result, _ = run(rows, script, fees=fees)

    assert fills_of(result) == [
        (1, at(1), "buy", 3.0, 102.0, pytest.approx(0.612, rel=REL), "taker"),
        (2, at(1), "sell", 1.0, 102.0, pytest.approx(0.204, rel=REL), "taker"),
        (3, at(1), "sell", 1.0, 103.5, pytest.approx(0.1035, rel=REL), "maker"),
        (4, at(3), "sell", 1.0, 106.0, pytest.approx(0.106, rel=REL), "maker"),
    ]
    assert result.positions["asset"].tolist() == [0.0, 1.0, 1.0, 0.0]


def test_slippage_never_takes_a_marketable_limit_past_its_price():
    result, _ = run(BASE, {0: [buy(1, limit_price=102.1), buy(1, limit_price=103.0)]}, slippage=25)

    # 102 slipped 25 bps is 102.255: the first order is held to 102.1, the second is not limited
    assert result.fills["price"].tolist() == pytest.approx([102.1, 102.255], rel=REL)


# -- stops -------------------------------------------------------------------------------------

STOP_ROWS = [
    (100.0, 101.0, 99.0, 100.0),
    (101.0, 104.0, 100.0, 103.0),
]


@pytest.mark.parametrize(
    ("bar_2", "price"),
    [
        ((103.0, 106.0, 102.0, 105.0), 105.0),  # the high trades through 105: filled at the stop
        ((107.0, 108.0, 106.0, 107.0), 107.0),  # opens above it: filled at the open
    ],
)
def test_a_buy_stop_triggers_at_the_stop_or_at_a_gapping_open(bar_2, price):
    result, _ = run([*STOP_ROWS, bar_2], {0: [buy(2, stop_price=105.0)]}, fees=0.001)

    assert fills_of(result) == [
        (1, at(2), "buy", 2.0, price, pytest.approx(2 * price * 0.001, rel=REL), "taker")
    ]


@pytest.mark.parametrize(
    ("bar_2", "price"),
    [((99.0, 100.0, 94.0, 96.0), 95.0), ((93.0, 94.0, 92.0, 93.0), 93.0)],
)
def test_a_sell_stop_triggers_at_the_stop_or_at_a_gapping_open(bar_2, price):
    result, _ = run([*STOP_ROWS, bar_2], {0: [buy(10), sell(10, stop_price=95.0)]})

    assert fills_of(result)[1] == (2, at(2), "sell", 10.0, price, 0.0, "taker")
    assert result.positions["asset"].tolist() == [0.0, 10.0, 0.0]


def test_a_stop_limit_fills_at_the_trigger_when_within_its_limit():
    bars = [*STOP_ROWS, (103.0, 106.0, 102.0, 105.0)]
    result, _ = run(bars, {0: [buy(1, stop_price=105.0, limit_price=105.5)]})

    assert order_row(result, 1)["type"] == "stop_limit"
    assert fills_of(result) == [(1, at(2), "buy", 1.0, 105.0, 0.0, "taker")]


def test_a_stop_limit_opening_within_its_limit_fills_at_the_open():
    bars = [*STOP_ROWS, (105.2, 106.0, 105.0, 105.5)]
    result, _ = run(bars, {0: [buy(1, stop_price=105.0, limit_price=105.5)]})

    assert fills_of(result) == [(1, at(2), "buy", 1.0, 105.2, 0.0, "taker")]


def test_a_stop_limit_triggered_beyond_its_limit_rests_as_a_limit():
    bars = [*STOP_ROWS, (107.0, 108.0, 106.0, 107.0), (106.0, 106.5, 105.2, 106.0)]
    script = {2: [lambda ctx: [(o.id, o.triggered, o.status.value) for o in ctx.open_orders()]]}
    result, strategy = run(bars, {0: [buy(1, stop_price=105.0, limit_price=105.5)], **script},
                           fees=FeeSchedule(maker=0.001, taker=0.002))  # fmt: skip

    assert strategy.placed[1] == [(1, True, "open")]  # triggered at 107 in bar 2, above 105.5
    assert fills_of(result) == [
        (1, at(3), "buy", 1.0, 105.5, pytest.approx(0.1055, rel=REL), "maker")
    ]


def test_a_triggered_stop_fills_its_rest_at_the_next_open():
    rows = [
        (100.0, 101.0, 99.0, 100.0, 1000.0),
        (101.0, 104.0, 100.0, 103.0, 1000.0),
        (103.0, 106.0, 102.0, 105.0, 50.0),  # triggers at 105; 5 of 10 may trade
        (107.0, 108.0, 106.0, 107.0, 1000.0),  # a market order now: the rest at the open
        (108.0, 109.0, 107.0, 108.0, 1000.0),
    ]
    result, strategy = run(rows, {0: [buy(10, stop_price=105.0)]}, participation=0.1)

    assert [(status, f.time, f.quantity, f.price) for _, status, f in strategy.fills] == [
        ("partially_filled", at(2).value, 5.0, 105.0),
        ("filled", at(3).value, 5.0, 107.0),
    ]


# -- trailing stops ----------------------------------------------------------------------------


def test_a_trailing_stop_follows_the_highest_high_and_is_checked_before_the_bar_moves_it():
    rows = [
        (100.0, 100.0, 100.0, 100.0),
        (
            100.0,
            101.0,
            99.0,
            100.0,
        ),  # the buy fills at 100; the trailing stop is placed at the close
        (100.0, 110.0, 99.0, 108.0),  # its first bar: stop 100 * 0.95 = 95, then the best is 110
        (108.0, 109.0, 105.0, 106.0),  # stop 104.5: the low 105 misses it
        (112.0, 115.0, 111.0, 114.0),  # stop 104.5 (best still 110); the best becomes 115
        (
            113.0,
            125.0,
            109.0,
            110.0,
        ),  # stop 109.25 -- reached by the low before the high of 125 counts
        (110.0, 111.0, 109.0, 110.0),
    ]
    stops = {}

    def watch(ctx):
        stops.update({o.id: o.stop_price for o in ctx.open_orders()})

    script = {0: [buy(10)], 1: [sell(10, trail=0.05)], 2: [watch], 3: [watch]}
    result, strategy = run(rows, script)

    assert order_row(result, 2)["type"] == "trailing_stop"
    assert stops == {2: pytest.approx(104.5, rel=REL)}
    assert fills_of(result)[1] == (
        2,
        at(5),
        "sell",
        10.0,
        pytest.approx(115 * 0.95, rel=REL),
        0.0,
        "taker",
    )
    assert order_row(result, 2)["stop_price"] == pytest.approx(109.25, rel=REL)


def test_a_trailing_stop_gapped_through_fills_at_the_open():
    rows = [
        (100.0, 100.0, 100.0, 100.0),
        (100.0, 101.0, 99.0, 100.0),
        (100.0, 110.0, 99.0, 108.0),
        (100.0, 120.0, 99.0, 100.0),  # opens below 104.5
    ]
    result, _ = run(rows, {0: [buy(10)], 1: [sell(10, trail=0.05)]})

    assert fills_of(result)[1] == (2, at(3), "sell", 10.0, 100.0, 0.0, "taker")


def test_a_buy_trailing_stop_follows_the_lowest_low():
    rows = [
        (100.0, 100.0, 100.0, 100.0),
        (100.0, 101.0, 99.0, 100.0),  # the short fills at 100
        (100.0, 101.0, 90.0, 92.0),  # stop 110, then the best is 90
        (92.0, 99.5, 91.0, 99.0),  # stop 99: reached by the high
    ]
    result, _ = run(rows, {0: [sell(10)], 1: [buy(10, trail=0.1)]}, leverage=2)

    assert fills_of(result) == [
        (1, at(1), "sell", 10.0, 100.0, 0.0, "taker"),
        (2, at(3), "buy", 10.0, pytest.approx(99.0, rel=REL), 0.0, "taker"),
    ]
    assert result.trades["pnl"].tolist() == pytest.approx([10.0], rel=1e-9)


def test_a_partly_filled_trailing_stop_fills_its_rest_at_the_next_open():
    rows = [
        (100.0, 100.0, 100.0, 100.0, 1000.0),
        (100.0, 101.0, 99.0, 100.0, 1000.0),
        (100.0, 101.0, 94.0, 95.0, 20.0),  # stop 95: 2 of 10 may trade
        (
            96.0,
            97.0,
            95.5,
            96.0,
            1000.0,
        ),  # above the stop, but it has triggered: the rest at the open
        (96.0, 97.0, 95.5, 96.0, 1000.0),
    ]
    result, _ = run(rows, {0: [buy(10)], 1: [sell(10, trail=0.05)]}, participation=0.1)

    assert [(t, q, p) for _, t, side, q, p, _, _ in fills_of(result) if side == "sell"] == [
        (at(2), 2.0, pytest.approx(95.0, rel=REL)),
        (at(3), 8.0, 96.0),
    ]


# -- brackets ----------------------------------------------------------------------------------

BRACKET_FEES = FeeSchedule(maker=0.001, taker=0.002)


@pytest.mark.parametrize(
    ("bar_2", "winner", "price", "liquidity"),
    [
        ((103.0, 111.0, 101.0, 110.0), "take_profit", 110.0, "maker"),
        ((101.0, 103.0, 94.0, 95.0), "stop_loss", 95.0, "taker"),
        # both reached inside one bar, path unknown: the stop-loss is assumed first
        ((100.0, 112.0, 94.0, 100.0), "stop_loss", 95.0, "taker"),
        # opens through the take-profit: that happened first, whatever the low did next
        ((112.0, 113.0, 94.0, 100.0), "take_profit", 112.0, "maker"),
        # opens through the stop-loss: filled at the open
        ((93.0, 111.0, 92.0, 100.0), "stop_loss", 93.0, "taker"),
    ],
)
def test_a_bracket_exits_through_one_leg_and_cancels_the_other(bar_2, winner, price, liquidity):
    rows = [BASE[0], (102.0, 104.0, 101.0, 103.0), bar_2, (100.0, 100.0, 100.0, 100.0)]
    result, _ = run(rows, {0: [buy(10, stop_loss=95.0, take_profit=110.0)]}, fees=BRACKET_FEES)

    legs = result.orders.set_index("tag")
    assert legs.loc["stop_loss", "type"] == "stop" and legs.loc["take_profit", "type"] == "limit"
    won, lost = (
        legs.loc[winner],
        legs.loc[{"stop_loss": "take_profit", "take_profit": "stop_loss"}[winner]],
    )
    assert (won["status"], won["filled"], won["average_price"]) == ("filled", 10.0, price)
    assert (lost["status"], lost["filled"]) == ("cancelled", 0.0)
    assert lost["reason"] == f"OCO: order {won['id']} filled"
    fee = 10 * price * BRACKET_FEES.rate(liquidity)
    assert fills_of(result)[1] == (
        won["id"],
        at(2),
        "sell",
        10.0,
        price,
        pytest.approx(fee, rel=REL),
        liquidity,
    )
    assert result.positions["asset"].iat[-1] == 0.0
    assert result.trades["pnl"].tolist() == pytest.approx(
        [10 * (price - 102) - 2.04 - fee], rel=REL
    )


def test_a_bracket_entered_at_the_open_can_exit_in_the_same_bar():
    rows = [BASE[0], (102.0, 103.0, 94.0, 96.0), (96.0, 97.0, 95.0, 96.0)]
    result, _ = run(rows, {0: [buy(10, stop_loss=95.0, take_profit=110.0)]})

    # bought at bar 1's open; its low of 94 came later and went through the stop
    assert fills_of(result) == [
        (1, at(1), "buy", 10.0, 102.0, 0.0, "taker"),
        (2, at(1), "sell", 10.0, 95.0, 0.0, "taker"),
    ]
    assert order_row(result, 3)["status"] == "cancelled"


def test_a_short_bracket_mirrors_the_long_one():
    rows = [BASE[0], (100.0, 101.0, 99.0, 100.0), (99.0, 100.0, 94.0, 96.0)]
    result, _ = run(
        rows, {0: [sell(10, stop_loss=105.0, take_profit=95.0)]}, leverage=2, fees=BRACKET_FEES
    )

    assert fills_of(result) == [
        (1, at(1), "sell", 10.0, 100.0, pytest.approx(2.0, rel=REL), "taker"),
        (3, at(2), "buy", 10.0, 95.0, pytest.approx(0.95, rel=REL), "maker"),
    ]
    assert order_row(result, 2)["status"] == "cancelled"
    assert result.trades["pnl"].tolist() == pytest.approx([50.0 - 2.95], rel=REL)


def test_bracket_exits_wait_for_the_entry_and_cover_what_it_filled():
    rows = [
        (100.0, 101.0, 99.0, 100.0, 1000.0),
        (102.0, 104.0, 101.0, 103.0, 1000.0),  # the limit entry at 99 is not reached
        (100.0, 101.0, 98.0, 99.0, 40.0),  # reached: 4 of 10 fill
        (
            99.0,
            100.0,
            94.0,
            96.0,
            1000.0,
        ),  # the entry buys its last 6 at the open, then the stop sells 10
        (96.0, 97.0, 95.0, 96.0, 1000.0),
    ]
    seen = {}

    def legs(ctx):
        seen[ctx.now] = sorted(
            (o.tag, o.status.value, o.quantity) for o in ctx.open_orders() if o.tag
        )

    script = {
        0: [buy(10, limit_price=99.0, stop_loss=95.0, take_profit=110.0)],
        1: [legs],
        2: [legs],
    }
    result, _ = run(rows, script, participation=0.1)

    assert seen[at(2)] == [("stop_loss", "pending", 0.0), ("take_profit", "pending", 0.0)]
    assert seen[at(3)] == [("stop_loss", "open", 4.0), ("take_profit", "open", 4.0)]
    assert [(i, t, side, q, p) for i, t, side, q, p, _, _ in fills_of(result)] == [
        (1, at(2), "buy", 4.0, 99.0),
        (1, at(3), "buy", 6.0, 99.0),
        (2, at(3), "sell", 10.0, 95.0),
    ]


def test_bracket_exits_are_not_cancelled_when_a_partly_filled_entry_ends():
    rows = [
        (100.0, 101.0, 99.0, 100.0, 1000.0),
        (102.0, 104.0, 101.0, 103.0, 50.0),  # 5 of the IOC entry fill; the rest is cancelled
        (101.0, 103.0, 94.0, 95.0, 1000.0),  # the stop-loss protects the 5 held
    ]
    result, _ = run(
        rows,
        {0: [buy(10, time_in_force="ioc", stop_loss=95.0, take_profit=110.0)]},
        participation=0.1,
    )

    entry, stop, take = order_row(result, 1), order_row(result, 2), order_row(result, 3)
    assert (entry["status"], entry["filled"]) == ("cancelled", 5.0)
    assert (stop["status"], stop["filled"], stop["average_price"]) == ("filled", 5.0, 95.0)
    assert (take["status"], take["reason"]) == ("cancelled", "OCO: order 2 filled")
    assert result.positions["asset"].tolist() == [0.0, 5.0, 0.0]


@pytest.mark.timeout(60)  # the venue once matched these exits against one bar forever
def test_two_entries_filled_at_one_open_send_their_exits_to_that_bar_once():
    """Entry A half fills at bar 1's open (its exits go on the book); entry B is placed at
    bar 1's close; at bar 2's open both fill. Each bracket's exits meet bar 2 once."""
    rows = [
        (100.0, 101.0, 99.0, 100.0, 1000.0),
        (100.0, 101.0, 99.0, 100.0, 50.0),  # 5 of A's 10 fill at the open
        (100.0, 101.0, 99.0, 100.0, 1000.0),  # A's last 5 and B's 10 fill at the open
    ]
    script = {
        0: [buy(10, stop_loss=90.0, take_profit=120.0)],
        1: [buy(10, stop_loss=90.0, take_profit=120.0)],
    }
    result, _ = run(rows, script, participation=0.1)

    assert [(i, t, q, p) for i, t, _, q, p, _, _ in fills_of(result)] == [
        (1, at(1), 5.0, 100.0),
        (1, at(2), 5.0, 100.0),
        (4, at(2), 10.0, 100.0),
    ]
    exits = result.orders[result.orders["tag"] != ""].set_index("id")
    assert exits["status"].tolist() == ["open"] * 4  # nothing reached 90 or 120
    assert exits["quantity"].tolist() == [10.0, 10.0, 10.0, 10.0]


def test_reduce_only_exits_do_nothing_once_the_position_is_gone():
    rows = [
        BASE[0],
        (102.0, 104.0, 101.0, 103.0),  # the entry fills; the strategy then sells everything itself
        (103.0, 104.0, 102.0, 103.0),
        (99.0, 100.0, 94.0, 96.0),  # the stop-loss triggers with nothing left to sell
        (100.0, 111.0, 99.0, 100.0),  # the take-profit is reached with nothing left
    ]
    result, _ = run(rows, {0: [buy(10, stop_loss=95.0, take_profit=110.0)], 1: [sell(10)]})

    stop, take = order_row(result, 2), order_row(result, 3)
    assert (stop["status"], stop["filled"]) == ("rejected", 0.0)
    assert stop["reason"] == "reduce-only: no position left to reduce"
    assert (take["status"], take["filled"]) == ("cancelled", 0.0)
    assert (take["reason"], take["updated"]) == ("OCO: order 2 rejected", at(3))
    assert result.positions["asset"].tolist() == [0.0, 10.0, 0.0, 0.0, 0.0]  # never short
    assert len(result.fills) == 2


def test_cancel_stops_an_order_and_its_bracket_before_they_fill():
    rows = [
        (100.0, 101.0, 99.0, 100.0),
        (100.0, 101.0, 99.5, 100.0),
        (100.0, 101.0, 99.5, 100.0),
        (100.0, 101.0, 89.0, 95.0),  # would fill both limits
    ]
    snapshots = []

    def look(ctx):
        snapshots.append(sorted(o.id for o in ctx.open_orders()))

    def cancel_both(ctx):
        ctx.cancel(1)
        ctx.cancel(ctx.open_orders()[0])  # order 2, the bracket's entry

    script = {
        0: [buy(1, limit_price=90.0), buy(1, limit_price=91.0, stop_loss=85.0, take_profit=120.0)],
        1: [look],
        2: [cancel_both, look],
    }
    result, _ = run(rows, script)

    assert snapshots == [[1, 2, 3, 4], []]
    assert result.fills.empty
    orders = result.orders.set_index("id")
    assert orders["status"].tolist() == ["cancelled"] * 4
    assert orders.loc[[1, 2], "reason"].tolist() == ["cancelled by the strategy"] * 2
    assert orders.loc[[3, 4], "reason"].tolist() == ["parent order 2 cancelled"] * 2
    assert (orders["updated"] == at(3)).all()


def test_an_order_placed_in_on_start_is_created_at_the_first_bar():
    strategy = Script(start=[buy(1, limit_price=99.5, time_in_force="day")])
    result = Backtest(frame(BASE), strategy).run()

    order = order_row(result, 1)
    assert order["created"] == at(0)
    assert (order["status"], order["average_price"]) == ("filled", 99.5)


# -- the portfolio after fills -----------------------------------------------------------------


def test_adds_average_the_entry_and_a_reduction_realises_pnl_and_splits_the_trade():
    rows = [
        (100.0, 100.0, 100.0, 100.0),
        (100.0, 101.0, 99.0, 100.0),  # buy 10 at 100
        (106.0, 107.0, 105.0, 106.0),  # buy 5 at 106: 15 at 102
        (110.0, 111.0, 109.0, 110.0),  # sell 6 at 110: +48 realised
        (108.0, 109.0, 107.0, 108.0),
    ]
    result, strategy = run(rows, {0: [buy(10)], 1: [buy(5)], 2: [sell(6)]}, fees=0.001)

    # (row, quantity, entry price, realised) after each bar's close
    assert [(row, q, pytest.approx(e, rel=REL), r) for row, _, q, e, r, _ in strategy.seen] == [
        (0, 0.0, 0.0, 0.0),
        (1, 10.0, 100.0, 0.0),
        (2, 15.0, 102.0, 0.0),
        (3, 9.0, 102.0, pytest.approx(48.0, rel=REL)),
        (4, 9.0, 102.0, pytest.approx(48.0, rel=REL)),
    ]
    cash = 10_000 - 1000 - 1.0 - 530 - 0.53 + 660 - 0.66
    assert result.cash.iat[-1] == pytest.approx(cash, rel=REL)
    assert result.equity.iat[-1] == pytest.approx(cash + 9 * 108, rel=REL)

    closed, still_open = result.trades.itertuples(index=False)
    assert (closed.quantity, closed.entry_time, closed.exit_time, closed.exit_price) == (
        6.0,
        at(1),
        at(3),
        110.0,
    )
    assert closed.entry_price == pytest.approx(102.0, rel=REL)
    assert closed.fees == pytest.approx(1.53 * 6 / 15 + 0.66, rel=REL)
    assert closed.pnl == pytest.approx(48 - (1.53 * 6 / 15 + 0.66), rel=REL)
    assert closed.open == False  # noqa: E712
    assert (still_open.quantity, still_open.open, still_open.entry_time) == (9.0, True, at(1))
    assert pd.isna(still_open.exit_time) and math.isnan(still_open.exit_price)
    assert still_open.fees == pytest.approx(1.53 * 9 / 15, rel=REL)
    assert still_open.pnl == pytest.approx(9 * (108 - 102) - 1.53 * 9 / 15, rel=REL)
    assert still_open.duration == 3 * MINUTE
    assert result.trades["pnl"].sum() == pytest.approx(result.equity.iat[-1] - 10_000, rel=1e-9)


def test_a_reversal_through_zero_splits_the_trade_and_shares_its_fee():
    rows = [
        (100.0, 100.0, 100.0, 100.0),
        (100.0, 101.0, 99.0, 100.0),  # buy 10 at 100
        (110.0, 111.0, 109.0, 110.0),  # sell 15 at 110: closes 10, opens 5 short
        (104.0, 105.0, 103.0, 104.0),  # buy 5 at 104: closes the short
        (100.0, 101.0, 99.0, 100.0),
    ]
    result, strategy = run(rows, {0: [buy(10)], 1: [sell(15)], 2: [buy(5)]}, fees=0.001, leverage=2)

    assert [(q, e) for _, _, q, e, _, _ in strategy.seen[1:4]] == [
        (10.0, 100.0),
        (-5.0, 110.0),
        (0.0, 0.0),
    ]
    long_, short = result.trades.itertuples(index=False)
    reversal_fee = 15 * 110 * 0.001
    assert (long_.side, long_.quantity, long_.entry_price, long_.exit_time, long_.exit_price) == (
        "long", 10.0, 100.0, at(2), 110.0,
    )  # fmt: skip
    assert long_.fees == pytest.approx(1.0 + reversal_fee * 10 / 15, rel=REL)
    assert long_.pnl == pytest.approx(100 - 1.0 - reversal_fee * 10 / 15, rel=REL)
    assert (short.side, short.quantity, short.entry_time, short.entry_price, short.exit_price) == (
        "short", 5.0, at(2), 110.0, 104.0,
    )  # fmt: skip
    assert short.fees == pytest.approx(reversal_fee * 5 / 15 + 0.52, rel=REL)
    assert short.pnl == pytest.approx(30 - reversal_fee * 5 / 15 - 0.52, rel=REL)
    assert result.equity.iat[-1] == pytest.approx(
        10_000 - 1000 - 1 + 1650 - 1.65 - 520 - 0.52, rel=REL
    )
    assert result.trades["pnl"].sum() == pytest.approx(result.equity.iat[-1] - 10_000, rel=1e-9)


def test_a_buy_the_cash_cannot_pay_for_is_rejected_with_the_reason():
    result, _ = run(BASE, {0: [buy(98)]}, fees=0.001)

    order = order_row(result, 1)
    # 98 x 102 x 1.001 = 10,005.996 > 10,000
    assert (order["status"], order["filled"], order["updated"]) == ("rejected", 0.0, at(1))
    assert order["reason"] == "insufficient USD: 98 asset at 102 costs 10006, cash is 10000"
    assert result.fills.empty and (result.cash == 10_000).all()


def test_a_target_order_is_capped_so_cash_never_goes_negative():
    result, _ = run(BASE, {0: [lambda ctx: ctx.order_target(None, 1.0)]}, fees=0.001, slippage=10)

    price = 102 * 1.001
    quantity = 10_000 / (price * 1.001)  # all the cash buys, after the fee
    assert fills_of(result) == [
        (1, at(1), "buy", pytest.approx(quantity, rel=REL), pytest.approx(price, rel=REL),
         pytest.approx(quantity * price * 0.001, rel=REL), "taker"),
    ]  # fmt: skip
    assert result.cash.iat[1] == pytest.approx(0.0, abs=1e-8)
    assert (result.cash >= 0).all()  # not even a float rounding below zero
    assert order_row(result, 1)["status"] == "filled"


def test_a_target_order_within_the_cash_buys_the_fraction_of_equity_at_the_fill_price():
    result, _ = run(
        BASE,
        {0: [lambda ctx: ctx.order_target(None, 0.5)], 2: [lambda ctx: ctx.close()]},
        fees=0.001,
    )

    q = 0.5 * 10_000 / 102
    assert result.fills["quantity"].tolist() == pytest.approx([q, q], rel=REL)
    assert result.fills["price"].tolist() == [102.0, 104.0]
    assert result.positions["asset"].iat[-1] == 0.0


def test_spot_cannot_be_sold_short_without_leverage():
    result, _ = run(BASE, {0: [sell(5)], 1: [buy(3)], 2: [sell(4)]})

    short, held, more = order_row(result, 1), order_row(result, 2), order_row(result, 3)
    assert (short["status"], short["filled"]) == ("rejected", 0.0)
    assert short["reason"] == (
        "cannot sell 5 asset: 0 held, and short selling spot needs a margin account (leverage > 1)"
    )
    assert held["status"] == "filled"
    assert (more["status"], more["reason"]) == (
        "rejected",
        "cannot sell 4 asset: 3 held, and short selling spot needs a margin account (leverage > 1)",
    )
    assert result.positions["asset"].tolist() == [0.0, 0.0, 3.0, 3.0]


def test_a_spot_short_with_leverage_is_limited_by_it():
    result, _ = run(BASE, {0: [sell(250)], 1: [sell(150)]}, leverage=2)

    # equity 10,000 x 2 allows 20,000 of short: 250 x 102 is too much, 150 x 103 is not
    too_big, fits = order_row(result, 1), order_row(result, 2)
    assert (too_big["status"], too_big["filled"]) == ("rejected", 0.0)
    assert too_big["reason"].startswith("insufficient margin: 250 asset")
    assert (fits["status"], fits["filled"], fits["average_price"]) == ("filled", 150.0, 103.0)
    assert result.cash.iat[-1] == pytest.approx(10_000 + 150 * 103, rel=REL)
    assert result.equity.iat[-1] == pytest.approx(10_000 + 150 * 103 - 150 * 105, rel=REL)
