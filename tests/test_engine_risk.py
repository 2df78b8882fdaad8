"""The risk seam in a run: every order is approved, resized or rejected, with reasons.

``Backtest(..., risk=RiskLimits(...))`` checks each order when it is placed, at the last
price (the close the strategy decided on). The caps are in base units (``max_position``),
in the account currency (``max_notional``), or gross exposure over equity
(``max_leverage``); the halts (``max_drawdown`` from the peak, ``daily_loss_limit`` below
the UTC day's start) reject orders that add exposure and let reducing ones through. Every
expected decision below is worked out by hand from ``workbench/engine/risk.py``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.test_engine_orders import (
    BASE,
    REL,
    Script,
    at,
    buy,
    fills_of,
    frame,
    order_row,
    run,
    sell,
)
from workbench.backtest.api import Backtest
from workbench.engine import RiskLimits, RiskManager


def decisions(result) -> list[tuple]:
    d = result.decisions
    return list(
        zip(d["time"], d["order_id"], d["action"], d["quantity"], d["reasons"], strict=True)
    )


def cap_reason(position: float, cap: float, limits: str) -> str:
    return f"asset: a position of {position:.6g} would exceed the cap of {cap:.6g} units ({limits})"


# -- caps --------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_position", [5.0, {"asset": 5.0}])
def test_max_position_resizes_rejects_and_lets_reductions_through(max_position):
    limits = RiskLimits(max_position=max_position)
    result, _ = run(BASE, {0: [buy(8)], 1: [buy(3), sell(2)]}, risk=limits)

    over = cap_reason(8, 5, "max_position")
    assert decisions(result) == [
        (at(1), 1, "resize", 5.0, over),
        (at(2), 2, "reject", 0.0, over),
        (at(2), 3, "approve", 2.0, "reduces the position"),
    ]
    resized, rejected = order_row(result, 1), order_row(result, 2)
    assert (resized["quantity"], resized["filled"], resized["status"]) == (5.0, 5.0, "filled")
    assert resized["reason"] == "resized: " + over
    assert (rejected["status"], rejected["filled"], rejected["reason"]) == ("rejected", 0.0, over)
    assert (rejected["updated"]) == at(2)
    assert result.positions["asset"].tolist() == [0.0, 5.0, 3.0, 3.0]


def test_max_notional_caps_the_position_at_the_last_price():
    result, _ = run(BASE, {0: [buy(15)]}, risk=RiskLimits(max_notional=1000.0))

    # 1,000 at the close of 100 the strategy decided on: 10 units (filled at the next open, 102)
    assert decisions(result) == [(at(1), 1, "resize", 10.0, cap_reason(15, 10, "max_notional"))]
    assert fills_of(result) == [(1, at(1), "buy", 10.0, 102.0, 0.0, "taker")]


def test_max_leverage_caps_gross_exposure_over_equity():
    result, _ = run(BASE, {0: [buy(80)], 1: [buy(1)]}, risk=RiskLimits(max_leverage=0.5))

    # flat, equity 10,000: half of it is 50 units at 100. Then 50 held at 103 with cash
    # 10,000 - 50 x 102 = 4,900: equity 10,050, so the cap is 0.5 x 10,050 / 103 units
    cap = 0.5 * (4900 + 50 * 103) / 103
    assert decisions(result) == [
        (at(1), 1, "resize", 50.0, cap_reason(80, 50, "leverage 0.5x")),
        (at(2), 2, "reject", 0.0, cap_reason(51, cap, "leverage 0.5x")),
    ]
    assert result.positions["asset"].iat[-1] == 50.0


def test_a_reversal_is_resized_to_the_cap_on_the_other_side():
    result, _ = run(
        BASE, {0: [buy(5)], 1: [sell(12)]}, risk=RiskLimits(max_position=5.0), leverage=2
    )

    assert decisions(result) == [
        (at(1), 1, "approve", 5.0, "within limits"),
        (at(2), 2, "resize", 10.0, cap_reason(7, 5, "max_position")),
    ]
    assert result.positions["asset"].tolist() == [0.0, 5.0, -5.0, -5.0]


def test_a_target_order_resized_by_risk_fills_only_the_resized_quantity():
    result, _ = run(
        BASE, {0: [lambda ctx: ctx.order_target(None, 1.0)]}, risk=RiskLimits(max_position=5.0)
    )

    # all of 10,000 at the close of 100 would be 100 units
    assert decisions(result) == [(at(1), 1, "resize", 5.0, cap_reason(100, 5, "max_position"))]
    order = order_row(result, 1)
    assert (order["status"], order["filled"]) == ("filled", 5.0)
    assert order["reason"] == "resized: " + cap_reason(100, 5, "max_position")
    assert result.positions["asset"].iat[-1] == 5.0


def test_orders_placed_before_any_price_are_checked_when_they_fill():
    strategy = Script(start=[lambda ctx: ctx.buy(None, 8)])
    result = Backtest(frame(BASE), strategy, risk=RiskLimits(max_position=5.0)).run()

    # placed in on_start, with no price to judge by: judged at the first bar's open
    assert decisions(result) == [(at(0), 1, "resize", 5.0, cap_reason(8, 5, "max_position"))]
    assert fills_of(result) == [(1, at(0), "buy", 5.0, 100.0, 0.0, "taker")]


def test_without_limits_every_order_is_approved_and_recorded():
    result, _ = run(BASE, {0: [buy(8)], 1: [sell(3)]})

    assert decisions(result) == [
        (at(1), 1, "approve", 8.0, "no limits set"),
        (at(2), 2, "approve", 3.0, "no limits set"),
    ]


def test_a_risk_manager_object_is_used_as_given():
    manager = RiskManager(RiskLimits(max_position=5.0))
    result, _ = run(BASE, {0: [buy(8)]}, risk=manager)

    assert manager.decisions == [(at(1).value, 1, "resize", 5.0, cap_reason(8, 5, "max_position"))]
    assert result.positions["asset"].iat[-1] == 5.0


# -- halts -------------------------------------------------------------------------------------


def flat(close: float) -> tuple[float, float, float, float]:
    return (close, close, close, close)


def test_the_drawdown_halt_rejects_adding_orders_for_the_rest_of_the_run():
    rows = [flat(100), flat(100), (100.0, 100.0, 77.0, 78.0), (78.0, 95.0, 78.0, 95.0), flat(95)]
    script = {0: [buy(50)], 2: [buy(1), sell(10)], 3: [buy(1)]}
    result, _ = run(rows, script, risk=RiskLimits(max_drawdown=0.1))

    # 50 bought at 100 of 10,000: at bar 2's close of 78 equity is 5,000 + 50 x 78 = 8,900,
    # more than 10 % below the peak -- the orders placed at that very close are judged by it
    halt = "drawdown halt: equity 8900 is more than 10.0% below its peak 10000"
    assert decisions(result) == [
        (at(1), 1, "approve", 50.0, "within limits"),
        (at(3), 2, "reject", 0.0, halt),
        (at(3), 3, "approve", 10.0, "reduces the position"),
        (at(4), 4, "reject", 0.0, halt),  # equity back at 9,580: still halted
    ]
    assert order_row(result, 2)["reason"] == halt
    assert result.equity.iat[3] == pytest.approx(5000 + 10 * 78 + 40 * 95, rel=REL)
    assert result.positions["asset"].tolist() == [0.0, 50.0, 50.0, 40.0, 40.0]


def test_the_daily_loss_halt_lifts_at_the_next_utc_day():
    start = pd.Timestamp("2024-01-01 23:56", tz="UTC")
    rows = [flat(100), flat(100), (100.0, 100.0, 88.0, 88.0), flat(88), flat(88), flat(88)]
    script = {0: [buy(50)], 2: [buy(1), sell(5)], 3: [buy(1)]}
    result, _ = run(rows, script, start=start, risk=RiskLimits(daily_loss_limit=0.05))

    # equity 9,400 at 23:59 is 6 % below the day's start; the bar closing at midnight
    # belongs to the 2nd, which starts at 9,400 with no halt
    halt = "daily loss halt: equity 9400 is more than 5.0% below the day's start 10000"
    assert decisions(result) == [
        (at(1, start), 1, "approve", 50.0, "within limits"),
        (at(3, start), 2, "reject", 0.0, halt),
        (at(3, start), 3, "approve", 5.0, "reduces the position"),
        (at(4, start), 4, "approve", 1.0, "within limits"),
    ]
    assert at(4, start) == pd.Timestamp("2024-01-02 00:00", tz="UTC")
    assert fills_of(result)[-1] == (4, at(4, start), "buy", 1.0, 88.0, 0.0, "taker")


def test_a_drawdown_breached_during_a_daily_halt_still_halts_the_rest_of_the_run():
    start = pd.Timestamp("2024-01-01 23:54", tz="UTC")
    # equity 10,000 -> 9,400 (daily halt) -> 8,800 (12 % drawdown) -> 9,200, then a new day
    rows = [flat(100), flat(100), flat(88), flat(76), flat(84), flat(84), flat(84), flat(84)]
    result, _ = run(rows, {0: [buy(50)], 6: [buy(1)]}, start=start,
                    risk=RiskLimits(daily_loss_limit=0.05, max_drawdown=0.1))  # fmt: skip

    assert decisions(result)[-1] == (
        at(7, start), 2, "reject", 0.0, "drawdown halt: equity 8800 is more than 10.0% below its peak 10000",
    )  # fmt: skip
    assert result.positions["asset"].iat[-1] == 50.0
