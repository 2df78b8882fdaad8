"""Numba kernels of the vectorised backtest: the fill convention, once, for runs and sweeps.

:func:`_fill` follows the engine spec's fill convention step for step: the target decided
on bar t's close is acted on at bar t+1's open, only when it differs from the target
decided the bar before (the target before the first bar is 0); the fill price carries the
slippage against the trader; desired quantity ``target * E / p`` with ``E = cash + q * p``;
a buy is capped at ``cash / (p * (1 + f))`` so the cash account never goes negative;
target 0 closes the whole position; the fee ``|d| * p * f`` is paid from cash; equity is
marked at each bar's close. A buy the cap binds spends exactly all the cash, computed as
vectorbt computes it: ``cash / (1 + f)`` buys ``cash / (1 + f) / p`` and the rest,
``cash - cash / (1 + f)``, is the fee (``d * p * f`` up to rounding), leaving a cash of
exactly 0 rather than a rounding residue of either sign; an account that shrinks a
million-fold would otherwise carry its early residues as a visible share of equity.
A single run (:func:`run`, over the target changes :func:`changes` records) and a sweep
(:func:`sweep_parallel`) share :func:`_next_change`, :func:`_fill`, :func:`_target_at` and
:func:`_track`, so the same parameters give the same figures to the last bit.

The target comes either from an array (``mode == TARGET``: the strategy's own target) or
from two lines crossing (``mode == CROSS``: +1 while ``a > b``, -1 while below, 0 when
equal or NaN; -1 becomes 0 when long only), so a sweep never materialises a target array.

Trades follow the average-cost rule: adding to a position averages the entry price into
the open trade (its entry time stays the first fill's), a reduction closes a trade of the
reduced quantity (entry fees prorated). The account is a spot cash account, as the
event engine's without leverage: a negative target sells down to flat, never short.

Figures (``FIGURES``, in order) are the headline statistics of
:mod:`workbench.backtest.metrics` from running sums: returns are
``equity[t] / equity[t - 1] - 1``; Sharpe and volatility use the sample deviation
(ddof=1); Sortino's downside deviation is the root mean square of the negative returns
over all bars; drawdowns are measured from the starting equity; trade figures count
closed trades only. Nothing is compiled with fastmath: results are IEEE arithmetic in a
fixed order. The per-bar loops are kept small on purpose (what happens at a fill lives in
arrays touched only at fills), which is what keeps them near the speed of a bare loop;
the helpers they call are inlined (no call, no reference counting, per fill).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

TARGET, CROSS = 0, 1

FIGURES = (
    "final_equity",
    "total_return",
    "annual_return",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "win_rate",
    "profit_factor",
    "expectancy",
    "exposure",
    "fees",
    "trades",
)
N_FIGURES = len(FIGURES)
FILL_FIELDS = ("bar", "quantity", "price", "fee", "cash", "position")  # rows of fill records
TRADE_FIELDS = ("entry_bar", "exit_bar", "side", "quantity", "entry_price", "exit_price", "fees")
# the state a fill reads and writes, kept in a small array off the per-bar path
AVG, ENTRY_BAR, ENTRY_FEES, FILLS, TRADES, CLOSED, WINS, LOSSES, GAINS, LOST, PNL, FEES = range(12)
LEDGER = 12


@njit(cache=True, nogil=True)
def cross_value(a, b, long_only):
    """The crossing rule's target from two line values (``workbench.strategies._rules``)."""
    gap = a - b
    if gap > 0.0:
        return 1.0
    if gap < 0.0 and not long_only:
        return -1.0
    return 0.0


@njit(cache=True, nogil=True)
def cross_target(a, b, long_only, out):
    """Fill ``out`` with the crossing rule's target."""
    for t in range(out.size):
        out[t] = cross_value(a[t], b[t], long_only)


@njit(cache=True, nogil=True)
def changes(a, b, mode, long_only, bars, targets):
    """Record each bar whose target differs from the bar before's (0 before the first
    bar) in ``bars`` and its new target in ``targets``; return how many there are.

    ``bars`` and ``targets`` need room for one change per bar. :func:`run` then visits
    only these bars, so its loop neither scans nor branches per bar.
    """
    count = 0
    previous = 0.0
    i = _next_change(a, b, 0, mode, long_only, previous)
    while i < a.size:
        previous = _target_at(a, b, i, mode, long_only)
        bars[count] = i
        targets[count] = previous
        count += 1
        i = _next_change(a, b, i + 1, mode, long_only, previous)
    return count


@njit(inline="always")
def _next_change(a, b, start, mode, long_only, previous):
    """The first bar from ``start`` on whose target differs from ``previous`` (``a.size``
    if none). ``previous`` is fixed during the scan, so nothing carries from one bar to
    the next and the loop stays tight."""
    a, b = a[start:], b[start:]  # zero-based views: no negative-index handling per bar
    if mode == CROSS:
        for i in range(a.size):
            if cross_value(a[i], b[i], long_only) != previous:
                return start + i
    else:
        for i in range(a.size):
            if a[i] != previous:
                return start + i
    return start + a.size


@njit(inline="always")
def _target_at(a, b, t, mode, long_only):
    if mode == CROSS:
        return cross_value(a[t], b[t], long_only)
    return a[t]


@njit(inline="always")
def order(target, q, cash, price, fee, slip, units):
    """The signed quantity and fill price of the order moving position ``q`` to ``target``,
    and whether the cash cap bound it (then it spends all the cash).

    ``units > 0`` sizes in fixed units (``target * units``), otherwise as a fraction of
    the equity at the fill price. A spot account holds no short, so a sell stops at flat
    (as the event engine's does without leverage). With slippage the buy price is tried
    first, then the sell price; ``(0.0, 0.0, False)`` when there is nothing to trade.
    """
    if target == 0.0:
        if q == 0.0:
            return 0.0, 0.0, False
        d = -q
        return d, price * (1.0 + slip) if d > 0.0 else price * (1.0 - slip), False
    p = price * (1.0 + slip)
    if units > 0.0:
        d = target * units - q
    else:
        equity = cash + q * p
        d = target * equity / p - q
    if d > 0.0:
        if cash <= 0.0:
            return 0.0, 0.0, False
        cap = cash / (1.0 + fee) / p
        if d >= cap:
            return cap, p, True
        return d, p, False
    p = price * (1.0 - slip)
    if units > 0.0:
        d = target * units - q
    else:
        equity = cash + q * p
        d = target * equity / p - q
    d = max(d, -q) if q > 0.0 else 0.0
    if d < 0.0:
        return d, p, False
    return 0.0, 0.0, False


@njit(inline="always")
def _fill(t, target, q, cash, price, fee, slip, units, ledger, fills, trades):
    """Act on a changed target at bar t's open; return the new ``(q, cash)``.

    Updates the ledger (open trade, counts, trade figures) and, where the record arrays
    have room (a single run; a sweep passes none), writes the fill and any closed trade.
    """
    d, p, capped = order(target, q, cash, price, fee, slip, units)
    if d == 0.0:
        return q, cash
    size = abs(d)
    if capped:  # all the cash: cash / (1 + f) buys, the rest is the fee
        paid = cash - cash / (1.0 + fee)
        cash = 0.0
    else:
        paid = size * p * fee
        if d > 0.0:
            cash = cash - d * p - paid
        else:
            cash = cash + size * p - paid
    ledger[FEES] += paid
    held = abs(q)
    if q == 0.0 or (q > 0.0) == (d > 0.0):  # open or add: average in
        if q == 0.0:
            ledger[AVG] = p
            ledger[ENTRY_BAR] = t
            ledger[ENTRY_FEES] = paid
        else:
            ledger[AVG] = (ledger[AVG] * held + p * size) / (held + size)
            ledger[ENTRY_FEES] += paid
        q += d
    else:  # reduce or close (a spot sell stops at flat: no reversal)
        side = 1.0 if q > 0.0 else -1.0
        shut = min(size, held)
        entry_part = ledger[ENTRY_FEES] if shut == held else ledger[ENTRY_FEES] * shut / held
        exit_part = paid if shut == size else paid * shut / size
        charged = entry_part + exit_part
        pnl = side * (p - ledger[AVG]) * shut - charged
        row = int(ledger[TRADES])
        if row < trades.shape[1]:
            trades[0, row] = ledger[ENTRY_BAR]
            trades[1, row] = t
            trades[2, row] = side
            trades[3, row] = shut
            trades[4, row] = ledger[AVG]
            trades[5, row] = p
            trades[6, row] = charged
        ledger[TRADES] += 1
        ledger[CLOSED] += 1
        ledger[PNL] += pnl
        if pnl > 0.0:
            ledger[WINS] += 1
            ledger[GAINS] += pnl
        elif pnl < 0.0:
            ledger[LOSSES] += 1
            ledger[LOST] -= pnl
        if size >= held:
            q = 0.0
            ledger[ENTRY_FEES] = 0.0
        else:
            q += d
            ledger[ENTRY_FEES] -= entry_part
    row = int(ledger[FILLS])
    if row < fills.shape[1]:
        fills[0, row] = t
        fills[1, row] = d
        fills[2, row] = p
        fills[3, row] = paid
        fills[4, row] = cash
        fills[5, row] = q
    ledger[FILLS] += 1
    return q, cash


@njit(cache=True, nogil=True)
def run(open_, close, bars, targets, cash0, fee, slip, units, fills, trades, out):
    """A single run from the target's changes (:func:`changes`: a change decided on bar
    ``bars[j] < close.size - 1`` acts at the next bar's open): the fill and trade
    records, and in ``out`` the final equity, the trade figures, exposure and fees.
    Returns ``(number of fills, number of trades)``; a change fills at most once and a
    fill closes at most one trade, so records as wide as the changes (trades one wider,
    for the open one) have room for all.

    Between two fills cash and position are constant, so the equity curve follows from
    the fill records (:func:`mark`, when it is asked for) and the return figures from the
    curve (:func:`equity_figures`).
    """
    n = close.size
    ledger = np.zeros(LEDGER)
    q = 0.0
    cash = cash0
    exposed = 0
    start = 0
    for j in range(bars.size):
        t = bars[j] + 1  # decided on that bar's close, filled at bar t's open
        exposed += (t - start) * (q != 0.0)
        q, cash = _fill(t, targets[j], q, cash, open_[t], fee, slip, units, ledger, fills, trades)
        start = t
    exposed += (n - start) * (q != 0.0)
    _finish(q, ledger, trades, exposed, n, out)
    out[0] = cash + q * close[n - 1]
    return int(ledger[FILLS]), int(ledger[TRADES])


@njit(cache=True, nogil=True)
def mark(close, fill_bars, fill_cash, fill_position, cash0, equity):
    """The equity after each bar, ``cash + position * close``, from the fill records (cash
    and position after each fill) -- the same arithmetic as the simulation's."""
    start = 0
    cash = cash0
    q = 0.0
    for k in range(fill_bars.size + 1):
        stop = int(fill_bars[k]) if k < fill_bars.size else close.size
        dst, src = equity[start:stop], close[start:stop]  # zero-based views vectorise
        for t in range(dst.size):
            dst[t] = cash + q * src[t]
        if k < fill_bars.size:
            start = stop
            cash = fill_cash[k]
            q = fill_position[k]


@njit(cache=True, nogil=True)
def _finish(q, ledger, trades, exposed, n, out):
    """Record the open trade (marked later at the last close) and the trade figures."""
    if q != 0.0:
        row = int(ledger[TRADES])
        if row < trades.shape[1]:
            trades[0, row] = ledger[ENTRY_BAR]
            trades[1, row] = -1
            trades[2, row] = 1.0 if q > 0.0 else -1.0
            trades[3, row] = abs(q)
            trades[4, row] = ledger[AVG]
            trades[5, row] = np.nan
            trades[6, row] = ledger[ENTRY_FEES]
        ledger[TRADES] += 1
    decided = ledger[WINS] + ledger[LOSSES]
    out[8] = ledger[WINS] / decided if decided else np.nan
    if ledger[LOST] > 0.0:
        out[9] = ledger[GAINS] / ledger[LOST]
    else:
        out[9] = np.inf if ledger[GAINS] > 0.0 else np.nan
    out[10] = ledger[PNL] / ledger[CLOSED] if ledger[CLOSED] else np.nan
    out[11] = exposed / n
    out[12] = ledger[FEES]
    out[13] = ledger[CLOSED]


@njit(inline="always")
def _track(t, equity, last, peak, worst, s1, s2, down2, low, high):
    """Advance the running return and drawdown statistics by the equity after bar t.

    Written as selects rather than branches: the signs of returns are coin flips that a
    branch predictor cannot learn.
    """
    if t > 0:
        r = equity / last - 1.0
        s1 += r
        s2 += r * r
        negative = r if r < 0.0 else 0.0
        down2 += negative * negative
        low = r if r < low else low
        high = r if r > high else high
    peak = equity if equity > peak else peak
    fall = equity / peak - 1.0
    worst = fall if fall < worst else worst
    return peak, worst, s1, s2, down2, low, high


@njit(cache=True, nogil=True)
def equity_figures(equity, cash0, ppy, out):
    """The return and drawdown figures of a stored equity curve, exactly as a sweep
    computes them in its loop."""
    peak = cash0
    worst = 0.0
    s1 = 0.0
    s2 = 0.0
    down2 = 0.0
    low = np.inf
    high = -np.inf
    last = cash0
    for t in range(equity.size):
        value = equity[t]
        peak, worst, s1, s2, down2, low, high = _track(
            t, value, last, peak, worst, s1, s2, down2, low, high
        )
        last = value
    _figures(out, equity.size, last, cash0, ppy, s1, s2, down2, low, high, worst)


@njit(cache=True, nogil=True)
def _figures(out, n, final, cash0, ppy, s1, s2, down2, low, high, worst):
    """The return and drawdown figures from the running sums (NaN where undefined)."""
    m = n - 1
    out[0] = final
    out[1] = final / cash0 - 1.0
    out[2] = (final / cash0) ** (ppy / m) - 1.0 if m > 0 else np.nan
    mean = s1 / m if m > 0 else np.nan
    if m >= 2:
        var = max((s2 - s1 * mean) / (m - 1), 0.0)
        out[3] = np.sqrt(var) * np.sqrt(ppy)
        out[4] = mean / np.sqrt(var) * np.sqrt(ppy) if low != high else np.nan
        downside = np.sqrt(down2 / m)
        out[5] = mean / downside * np.sqrt(ppy) if downside > 0.0 else np.nan
    else:
        out[3] = np.nan
        out[4] = np.nan
        out[5] = np.nan
    out[6] = out[2] / -worst if worst < 0.0 else np.nan
    out[7] = worst if m > 0 else np.nan


@njit(cache=True, nogil=True)
def summarise(open_, close, a, b, mode, long_only, cash0, fee, slip, units, ppy, out):
    """One combination's figures, from a loop that stores nothing per bar.

    Scans for the target changes :func:`changes` records for :func:`run`; the statistics
    advance over each stretch between fills. A flat stretch has a constant equity, so
    after its first bar every return is exactly 0 and the drawdown cannot change: those
    bars are skipped with the same result as visiting them.
    """
    n = close.size
    ledger = np.zeros(LEDGER)
    none = np.empty((0, 0))
    q = 0.0
    cash = cash0
    previous = 0.0
    exposed = 0
    start = 0
    stats = np.zeros(STATS)
    stats[LAST] = cash0
    stats[PEAK] = cash0
    stats[LOW] = np.inf
    stats[HIGH] = -np.inf
    decided_a, decided_b = a[: n - 1], b[: n - 1]
    i = _next_change(decided_a, decided_b, 0, mode, long_only, previous)
    while i < n - 1:
        target = _target_at(decided_a, decided_b, i, mode, long_only)
        t = i + 1
        _stretch(stats, close, start, t, q, cash)
        exposed += (t - start) * (q != 0.0)
        q, cash = _fill(t, target, q, cash, open_[t], fee, slip, units, ledger, none, none)
        start = t
        previous = target
        i = _next_change(decided_a, decided_b, t, mode, long_only, previous)
    _stretch(stats, close, start, n, q, cash)
    exposed += (n - start) * (q != 0.0)
    _finish(q, ledger, none, exposed, n, out)
    _figures(
        out, n, stats[LAST], cash0, ppy, stats[S1], stats[S2], stats[DOWN2], stats[LOW],
        stats[HIGH], stats[WORST],
    )  # fmt: skip


LAST, PEAK, WORST, S1, S2, DOWN2, LOW, HIGH = range(8)
STATS = 8


@njit(cache=True, nogil=True)
def _stretch(stats, close, start, stop, q, cash):
    """Advance the statistics over bars ``start`` to ``stop`` (exclusive), held at
    position ``q`` with ``cash``."""
    last, peak, worst = stats[LAST], stats[PEAK], stats[WORST]
    s1, s2, down2, low, high = stats[S1], stats[S2], stats[DOWN2], stats[LOW], stats[HIGH]
    flat = q == 0.0
    src = close[start : min(stop, start + 1) if flat else stop]
    for i in range(src.size):
        equity = cash + q * src[i]
        peak, worst, s1, s2, down2, low, high = _track(
            start + i, equity, last, peak, worst, s1, s2, down2, low, high
        )
        last = equity
    if flat and stop - start > 1:
        # the other flat bars: equity equal to the bar before, so a return of exactly 0
        # (adding 0 to the sums changes nothing) and no new peak or fall
        low = 0.0 if 0.0 < low else low
        high = 0.0 if 0.0 > high else high
    stats[LAST], stats[PEAK], stats[WORST] = last, peak, worst
    stats[S1], stats[S2], stats[DOWN2], stats[LOW], stats[HIGH] = s1, s2, down2, low, high


@njit(cache=True, nogil=True)
def _sweep_one(open_, close, lines, pairs, flags, settings, out, c):
    cross = pairs[c, 1] >= 0
    a = lines[pairs[c, 0]]
    b = lines[pairs[c, 1]] if cross else a
    summarise(
        open_, close, a, b, CROSS if cross else TARGET, flags[c], settings[0], settings[1],
        settings[2], settings[3], settings[4], out[c],
    )  # fmt: skip


@njit(cache=True, parallel=True)
def sweep_parallel(open_, close, lines, pairs, flags, settings, out):
    """Figures of every combination: ``lines[pairs[c, 0]]`` crossing ``lines[pairs[c, 1]]``
    (or, where ``pairs[c, 1] < 0``, the target array ``lines[pairs[c, 0]]``), long only
    where ``flags[c]``; ``settings`` = (cash, fee, slippage fraction, units, periods per
    year). Combinations run in parallel threads; nothing per combination is stored."""
    for c in prange(out.shape[0]):
        _sweep_one(open_, close, lines, pairs, flags, settings, out, c)


@njit(cache=True, nogil=True)
def sweep_serial(open_, close, lines, pairs, flags, settings, out):
    """:func:`sweep_parallel` in the calling thread (for Dask workers, which bring their own
    parallelism); it releases the GIL."""
    for c in range(out.shape[0]):
        _sweep_one(open_, close, lines, pairs, flags, settings, out, c)
