"""Round trips paired after a run from the fill log: partial closes, reversals, fees and
funding shared in proportion, worked out by hand here."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.engine.ledger import FillLog, round_trips


def log_of(*events: tuple) -> FillLog:
    """Fills as (time, symbol position, signed quantity, price, fee), in order with funding
    payments as ("pay", symbol position, amount)."""
    log = FillLog()
    for event in events:
        if event[0] == "pay":
            log.pay(event[1], event[2])
            continue
        time, symbol, quantity, price, fee = event
        log.times.append(time)
        log.symbols.append(symbol)
        log.quantities.append(quantity)
        log.prices.append(price)
        log.fees.append(fee)
    return log


def rows(trips) -> list[dict]:
    c = trips.columns
    return [{name: c[name][k].item() for name in c} for k in range(len(c["side"]))]


def test_a_partial_close_then_a_reversal():
    # buy 10 @ 100 (fee 1); sell 4 @ 110 (fee 0.4); sell 10 @ 90 (fee 0.9): closes 6, opens 4 short
    log = log_of((1, 0, 10.0, 100.0, 1.0), (2, 0, -4.0, 110.0, 0.4), (3, 0, -10.0, 90.0, 0.9))
    trips = round_trips(log, 1, np.array([95.0]))
    first, second, short = rows(trips)
    assert trips.closed == 2
    assert first == pytest.approx(
        dict(symbol=0, side=1, quantity=4.0, entry_time=1, entry_price=100.0, exit_time=2,
             exit_price=110.0, fees=0.4 + 0.4, funding=0.0, pnl=40.0 - 0.8)
    )  # fmt: skip
    assert second == pytest.approx(
        dict(symbol=0, side=1, quantity=6.0, entry_time=1, entry_price=100.0, exit_time=3,
             exit_price=90.0, fees=0.6 + 0.54, funding=0.0, pnl=-60.0 - 1.14)
    )  # fmt: skip
    assert short["side"] == -1 and short["quantity"] == pytest.approx(4.0)
    assert short["entry_time"] == 3 and short["exit_time"] == -1 and np.isnan(short["exit_price"])
    assert short["fees"] == pytest.approx(0.36)  # the rest of the reversing fill's fee
    assert short["pnl"] == pytest.approx(-4.0 * (95.0 - 90.0) - 0.36)  # marked at the last price


def test_adding_averages_the_entry_and_funding_is_shared_by_quantity():
    log = log_of(
        (1, 0, 2.0, 100.0, 0.0),
        (5, 0, 2.0, 110.0, 0.0),
        ("pay", 0, -8.0),  # paid after the second fill
        (9, 0, -1.0, 120.0, 0.0),
    )
    trips = round_trips(log, 1, np.array([120.0]))
    closed, still_open = rows(trips)
    assert closed["entry_price"] == pytest.approx(105.0)
    assert closed["funding"] == pytest.approx(-2.0)  # a quarter of the position closed
    assert closed["pnl"] == pytest.approx(15.0 - 2.0)
    assert still_open["quantity"] == pytest.approx(3.0)
    assert still_open["funding"] == pytest.approx(-6.0)


def test_funding_reaches_the_trade_open_when_it_was_paid_not_by_its_time():
    """Payments are placed among the fills by when they were paid (several symbols'
    funding times need not be in order), and a payment with no trade open is nobody's."""
    log = log_of(
        ("pay", 0, 5.0),  # before any fill
        (10, 0, 1.0, 100.0, 0.0),
        ("pay", 0, -1.0),  # during the first trade
        ("pay", 1, -7.0),  # (symbol 1 has no trade open yet)
        (20, 0, -1.0, 100.0, 0.0),
        (30, 1, 1.0, 50.0, 0.0),
        ("pay", 1, 2.0),  # after the last fill
    )
    trips = round_trips(log, 2, np.array([100.0, 60.0]))
    first, second = rows(trips)
    assert first["funding"] == pytest.approx(-1.0)
    assert second["symbol"] == 1 and second["funding"] == pytest.approx(2.0)
    assert second["pnl"] == pytest.approx(10.0 + 2.0)


def test_no_fills_no_trades():
    trips = round_trips(FillLog(), 3, np.array([1.0, 2.0, 3.0]))
    assert trips.closed == 0 and all(len(c) == 0 for c in trips.columns.values())
