"""The compiled pass of :func:`workbench.engine.ledger.round_trips`, in a module of its own
so that numba loads only when a run's trades are first paired."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def pair(
    times, codes, quantities, prices, fees, f_after, f_codes, f_payments, symbols, which,
    ints, floats,
):  # fmt: skip
    """The pairing (see :mod:`workbench.engine.ledger`), in the order and arithmetic the
    trades have always been booked with. Writes the closed trades, then the open ones
    (exit time -1, exit price NaN), and returns (closed, closed + open)."""
    is_open = np.zeros(symbols, dtype=np.bool_)
    o_side = np.zeros(symbols, dtype=np.int64)
    o_time = np.zeros(symbols, dtype=np.int64)
    o_quantity = np.zeros(symbols)
    o_price = np.zeros(symbols)
    o_fees = np.zeros(symbols)
    o_funding = np.zeros(symbols)
    count = 0
    j = 0
    for i in range(times.size):
        time, s, price, fee = times[i], codes[i], prices[i], fees[i]
        while j < f_after.size and f_after[j] <= i:  # the funding paid before this fill
            if is_open[f_codes[j]]:
                o_funding[f_codes[j]] += f_payments[j]
            j += 1
        side = 1 if quantities[i] > 0 else -1
        quantity = abs(quantities[i])
        remaining, fee_left = quantity, fee
        if is_open[s] and o_side[s] != side:
            held = o_quantity[s]
            closed = held if held < remaining else remaining
            share = closed / held
            trade_fees = o_fees[s] * share + fee * closed / quantity
            trade_funding = o_funding[s] * share
            pnl = o_side[s] * closed * (price - o_price[s]) - trade_fees + trade_funding
            which[count] = s
            ints[0, count], ints[1, count], ints[2, count] = o_side[s], o_time[s], time
            floats[0, count], floats[1, count], floats[2, count] = closed, o_price[s], price
            floats[3, count], floats[4, count], floats[5, count] = (
                trade_fees, trade_funding, pnl,
            )  # fmt: skip
            count += 1
            remaining -= closed
            fee_left -= fee * closed / quantity
            left = held - closed
            if left <= 1e-12 * closed:  # closed in full
                is_open[s] = False
            else:
                o_quantity[s] = left
                o_fees[s] -= o_fees[s] * share
                o_funding[s] -= trade_funding
        if remaining <= 1e-12 * quantity:
            continue
        if not is_open[s]:
            is_open[s] = True
            o_side[s], o_time[s], o_quantity[s], o_price[s] = side, time, remaining, price
            o_fees[s], o_funding[s] = fee_left, 0.0
        else:
            total = o_quantity[s] + remaining
            o_price[s] = (o_quantity[s] * o_price[s] + remaining * price) / total
            o_quantity[s] = total
            o_fees[s] += fee_left
    while j < f_after.size:  # after the last fill
        if is_open[f_codes[j]]:
            o_funding[f_codes[j]] += f_payments[j]
        j += 1
    closed_count = count
    for s in range(symbols):
        if is_open[s]:
            which[count] = s
            ints[0, count], ints[1, count], ints[2, count] = o_side[s], o_time[s], -1
            floats[0, count], floats[1, count], floats[2, count] = (
                o_quantity[s], o_price[s], np.nan,
            )  # fmt: skip
            floats[3, count], floats[4, count], floats[5, count] = o_fees[s], o_funding[s], 0.0
            count += 1
    return closed_count, count
