"""Backtest statistics from an equity curve and its trades, checked against quantstats and empyrical.

:func:`stats` gives the Series a :class:`BacktestResult` shows (a run gets it from
:func:`summary`, which takes the closed trades as arrays rather than a trades table). It
is built from small functions that each work alone on a per-bar returns Series
(``returns(equity)``) or, for the trade stats, on the closed trades' ``pnl`` or ``return``::

    r = returns(result.equity)
    sharpe(r), sortino(r), max_drawdown(r)            # periods per year from the bar spacing
    profit_factor(result.trades["pnl"])

Which reference each follows, where the two disagree, and why:

- ``volatility``, ``sharpe``, ``sortino``, ``annual_return``, ``max_drawdown``, ``calmar``
  and ``drawdown`` equal both quantstats 0.0.86 and empyrical 0.7.1 given the same periods
  per year (the two agree on these formulas): sample standard deviation (ddof=1); Sortino's
  downside deviation is the root mean square of the negative excess returns over *all*
  bars (the Red Rock / Sortino definition, not the standard deviation of the losing bars);
  the growth rate counts years as ``bars / periods_per_year``, as both do, so it annualises
  over the bars observed, like the volatility it is set beside, not over calendar time;
  drawdowns are measured from the starting equity, so a first bar's loss counts.
- ``risk_free`` is an *annual* rate, turned into a per-bar rate geometrically
  (``(1 + rf) ** (1 / periods) - 1``) as quantstats does; empyrical takes a per-bar rate.
- Where a ratio is undefined the result is NaN, never inf: zero volatility (empyrical
  gives inf), no downside (quantstats NaN, empyrical inf), no drawdown for Calmar
  (empyrical NaN, quantstats inf), fewer than two returns.
- ``win_rate``, ``profit_factor``, ``average_win`` and ``average_loss`` equal quantstats'
  on the same values; with nothing to count, win rate and profit factor are NaN (quantstats
  says 0.0), and profit factor is inf when there are gains but no losses.
- In :func:`stats` the trade stats use the closed trades as vectorbt reports them: win
  rate, profit factor and expectancy on ``pnl`` (quote currency), average win and loss on
  ``return`` (fractions of the entry notional).

The figures that scan a long curve (the growth, the drawdowns and their durations, the
sums of squares behind the deviations, the bar spacing) come from numba kernels that do
numpy's arithmetic in numpy's order -- its pairwise summation included -- so they equal
numpy's to the bit without the temporaries numpy needs, whose fresh memory costs more
than the arithmetic, or its slow cumulative ufuncs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

from workbench.errors import ConfigError, DataFormatError

YEAR = pd.Timedelta(days=365)

STATS_KEYS = (
    "start",
    "end",
    "duration",
    "initial_equity",
    "final_equity",
    "total_return",
    "annual_return",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration",
    "win_rate",
    "profit_factor",
    "expectancy",
    "average_win",
    "average_loss",
    "exposure",
    "turnover",
    "fees",
    "funding",
    "trades",
)
TRADE_COLUMNS = ("entry_time", "exit_time", "pnl", "return", "open")
_STATS_INDEX = pd.Index(STATS_KEYS)  # made once: building an Index costs more than the stats


def stats(
    equity: pd.Series,
    trades: pd.DataFrame,
    *,
    fees: float = 0.0,
    funding: float = 0.0,
    traded_notional: float = 0.0,
    positions: pd.DataFrame | None = None,
    periods_per_year: float | None = None,
    risk_free: float = 0.0,
) -> pd.Series:
    """The headline statistics of a run, keys in :data:`STATS_KEYS` order.

    ``fees`` and ``funding`` are the run's totals (quote currency), passed through.
    Exposure is the fraction of bars holding a position: from ``positions`` (quantity per
    symbol, same index as ``equity``) when given, else from the trades' open intervals
    (held from the bar of ``entry_time`` up to, not including, the bar of ``exit_time``).
    Turnover is ``traded_notional`` over the mean equity. Trade stats count closed trades
    only; with none, win rate, profit factor, expectancy and averages are NaN.
    """
    missing = [c for c in TRADE_COLUMNS if c not in trades.columns]
    if missing:
        raise DataFormatError(f"stats: trades lack the columns {missing}.")
    closed = trades.loc[~trades["open"].astype(bool)]
    if positions is None:
        exposure = _time_in_trades(equity.index, trades)
    else:
        exposure = time_in_market(positions, equity.index)
    return summary(
        equity,
        closed["pnl"],
        closed["return"],
        exposure=exposure,
        fees=fees,
        funding=funding,
        traded_notional=traded_notional,
        periods_per_year=periods_per_year,
        risk_free=risk_free,
    )


def summary(
    equity: pd.Series,
    pnl: pd.Series | np.ndarray,
    trade_returns: pd.Series | np.ndarray,
    *,
    exposure: float,
    fees: float = 0.0,
    funding: float = 0.0,
    traded_notional: float = 0.0,
    periods_per_year: float | None = None,
    risk_free: float = 0.0,
) -> pd.Series:
    """:func:`stats` from the closed trades' ``pnl`` and ``return`` and a worked-out
    ``exposure``, so that a run need not build its trades table to get them.

    The curve is checked and turned into returns once, and every figure comes from those
    arrays, each shared quantity (the deviation, the wealth path) worked out once; the
    values are the ones the metric functions below give one by one.
    """
    curve = _equity(equity)
    r = _values(_returns(curve), "stats")
    times = equity.index
    if periods_per_year is None:
        periods = infer_periods_per_year(times)
    else:
        periods = _positive(periods_per_year)
    growth, worst = _growth_and_worst(r)
    growth = _annualised(growth, r.size, periods)
    mean, scale, excess = _mean(r), _scale(r), _excess(r, risk_free, periods)
    deviation = _deviation(r, mean)
    if excess is r:
        excess_mean, excess_deviation = mean, deviation
    else:
        excess_mean = _mean(excess)
        excess_deviation = _deviation(excess, excess_mean)
    pnl, trade_returns = _values(pnl, "stats"), _values(trade_returns, "stats")
    first, last = times[0], times[-1]
    figures = {
        "start": first,
        "end": last,
        "duration": last - first,
        "initial_equity": float(curve[0]),
        "final_equity": float(curve[-1]),
        "total_return": float(curve[-1] / curve[0] - 1),
        "annual_return": growth,
        "volatility": _volatility(deviation, periods),
        "sharpe": _ratio(excess_mean, excess_deviation, scale, periods),
        "sortino": _ratio(excess_mean, _downside(excess), scale, periods),
        "calmar": _calmar(growth, worst),
        "max_drawdown": worst,
        "max_drawdown_duration": _max_drawdown_duration(curve, times),
        "win_rate": _win_rate(pnl),
        "profit_factor": _profit_factor(pnl),
        "expectancy": _mean(pnl),
        "average_win": _mean(trade_returns[trade_returns > 0]),
        "average_loss": _mean(trade_returns[trade_returns < 0]),
        "exposure": exposure,
        "turnover": float(traded_notional / curve.mean()),
        "fees": float(fees),
        "funding": float(funding),
        "trades": len(pnl),
    }
    values = np.empty(len(STATS_KEYS), dtype=object)
    values[:] = [figures[key] for key in STATS_KEYS]
    return pd.Series(values, index=_STATS_INDEX.copy(), name="stats", copy=False)


# -- returns and periods ----------------------------------------------------------------------


def returns(equity: pd.Series) -> pd.Series:
    """Per-bar simple returns of an equity curve (its first bar, which has none, dropped).

    The equity must be finite and positive: once an account is wiped out its later
    returns are undefined, and a silent inf would poison every ratio.
    """
    return pd.Series(_returns(_equity(equity)), index=equity.index[1:], name="returns")


def _returns(values: np.ndarray) -> np.ndarray:
    r = np.divide(values[1:], values[:-1])
    r -= 1
    return r


def _equity(equity: pd.Series) -> np.ndarray:
    if not isinstance(equity, pd.Series) or equity.empty:
        raise DataFormatError("equity must be a non-empty pandas Series.")
    if not isinstance(equity.index, pd.DatetimeIndex) or not equity.index.is_monotonic_increasing:
        raise DataFormatError("equity needs a sorted DatetimeIndex (the bar times).")
    values = equity.to_numpy(dtype=float)
    if not values.min() > 0 or values.max() == np.inf:  # (the minimum of a NaN is NaN)
        first = int(np.argmax(~np.isfinite(values) | (values <= 0)))
        raise DataFormatError(
            f"equity is {values[first]} at {equity.index[first]}; per-bar returns need a "
            "finite, positive equity on every bar."
        )
    return values


def infer_periods_per_year(index: pd.Index) -> float:
    """Bars per 365-day year from the median bar spacing (crypto trades around the clock).

    The median ignores the odd gap in the record, so 5-minute bars give 105,120.
    """
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        raise DataFormatError(
            "periods per year cannot be inferred: it needs a DatetimeIndex of at least "
            "2 bars; pass periods_per_year."
        )
    spacing = _common_spacing(index)
    if spacing is None:
        spacing = pd.Series(index).diff().median()
    if not spacing > pd.Timedelta(0):
        raise DataFormatError(
            f"periods per year cannot be inferred from a median bar spacing of {spacing}; "
            "pass periods_per_year."
        )
    return YEAR / spacing


def _common_spacing(index: pd.DatetimeIndex) -> pd.Timedelta | None:
    """The spacing of more than half of the bars, which is then their median, found
    without the sort a median takes; None if no spacing is that common."""
    if index.hasnans:
        return None
    stamps = index.asi8
    middle = (len(stamps) - 1) // 2  # of the len(stamps) - 1 steps
    guess = stamps[middle + 1] - stamps[middle]
    if 2 * _count_steps(stamps, guess) <= len(stamps) - 1:
        return None
    return pd.Timedelta(np.timedelta64(int(guess), index.unit))


def _values(returns: pd.Series | np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(returns, dtype=float)
    if values.ndim != 1 or not _finite(values):
        raise DataFormatError(
            f"{what}: expected one finite value per bar or trade (a gap's NaN must be "
            "dropped or filled first; metrics.returns(equity) gives clean returns)."
        )
    return values


def _finite(values: np.ndarray) -> bool:
    """Whether every value is finite, from two reductions rather than a mask as long as
    the values (the minimum or maximum of values holding a NaN is NaN)."""
    return values.size == 0 or bool(np.isfinite(values.min()) and np.isfinite(values.max()))


def _periods(returns: pd.Series, periods_per_year: float | None) -> float:
    if periods_per_year is None:
        return infer_periods_per_year(returns.index)
    return _positive(periods_per_year)


def _positive(periods_per_year: float) -> float:
    if not np.isfinite(periods_per_year) or periods_per_year <= 0:
        raise ConfigError(f"periods_per_year must be positive; got {periods_per_year}.")
    return float(periods_per_year)


def _excess(values: np.ndarray, risk_free: float, periods: float) -> np.ndarray:
    if not risk_free > -1:
        raise ConfigError(f"risk_free is an annual rate above -1; got {risk_free}.")
    rate = (1 + risk_free) ** (1 / periods) - 1
    return values - rate if rate else values  # x - 0.0 is x: no copy of a long series


# -- return metrics ---------------------------------------------------------------------------
# Each takes a returns Series; the underscored helpers do the arithmetic on checked arrays,
# for them and for summary().


def annual_return(returns: pd.Series, *, periods_per_year: float | None = None) -> float:
    """Compound annual growth rate, years counted as ``bars / periods_per_year``; NaN if empty."""
    values = _values(returns, "annual_return")
    growth, _ = _growth_and_worst(values)
    return _annualised(growth, values.size, _periods(returns, periods_per_year))


def _annualised(growth: float, bars: int, periods: float) -> float:
    with np.errstate(over="ignore"):  # a few hours compounded to a year can exceed a float: inf
        return float(np.float64(growth) ** (periods / bars) - 1) if bars else float("nan")


def volatility(returns: pd.Series, *, periods_per_year: float | None = None) -> float:
    """Annualised standard deviation of returns (ddof=1); NaN for fewer than 2 returns."""
    values = _values(returns, "volatility")
    return _volatility(_deviation(values, _mean(values)), _periods(returns, periods_per_year))


def _volatility(deviation: float, periods: float) -> float:
    return float(deviation * np.sqrt(periods))


def sharpe(
    returns: pd.Series, *, periods_per_year: float | None = None, risk_free: float = 0.0
) -> float:
    """Annualised Sharpe ratio of the returns in excess of ``risk_free`` (an annual rate);
    NaN when volatility is zero (not inf) or there are fewer than 2 returns."""
    values = _values(returns, "sharpe")
    periods = _periods(returns, periods_per_year)
    excess = _excess(values, risk_free, periods)
    mean = _mean(excess)
    return _ratio(mean, _deviation(excess, mean), _scale(values), periods)


def sortino(
    returns: pd.Series, *, periods_per_year: float | None = None, risk_free: float = 0.0
) -> float:
    """Annualised Sortino ratio: mean excess return (``risk_free`` annual) over the
    downside deviation.

    The downside deviation is ``sqrt(mean(min(excess, 0) ** 2))`` over all bars. NaN when
    there is no downside or fewer than 2 returns.
    """
    values = _values(returns, "sortino")
    periods = _periods(returns, periods_per_year)
    excess = _excess(values, risk_free, periods)
    return _ratio(_mean(excess), _downside(excess), _scale(values), periods)


def _deviation(values: np.ndarray, mean: float) -> float:
    """The sample standard deviation (ddof=1) about the values' ``mean``, as ``np.std``
    gives it; NaN for fewer than 2 values."""
    if values.size < 2:
        return float("nan")
    return np.sqrt(_sum_of_squares(values, mean, False) / (values.size - 1))


def _downside(values: np.ndarray) -> float:
    """The root mean square of the values below zero over all values; NaN for fewer than 2."""
    if values.size < 2:
        return float("nan")
    return np.sqrt(_sum_of_squares(values, 0.0, True) / values.size)


def _ratio(mean: float, deviation: float, scale: float, periods: float) -> float:
    """The annualised mean excess return over a deviation; NaN when that is NaN, zero or
    the floating-point residue (~1e-18 of the returns' ``scale``) that returns meant to be
    equal leave, such as a curve growing at a constant rate."""
    if not deviation > 1e-12 * scale:
        return float("nan")
    return float(mean / deviation * np.sqrt(periods))


def _scale(values: np.ndarray) -> float:
    """The largest return in size, which a negligible deviation is measured against."""
    return max(values.max(), -values.min()) if values.size else 0.0


def calmar(returns: pd.Series, *, periods_per_year: float | None = None) -> float:
    """Annual return over the absolute maximum drawdown; NaN when there is no drawdown."""
    worst = max_drawdown(returns)
    return _calmar(annual_return(returns, periods_per_year=periods_per_year), worst)


def _calmar(growth: float, worst: float) -> float:
    return growth / -worst if worst < 0 else float("nan")


# -- drawdowns --------------------------------------------------------------------------------


def drawdown(returns: pd.Series) -> pd.Series:
    """Fall from the running peak after each return (<= 0), the starting equity a peak."""
    values = _values(returns, "drawdown")
    fall = np.empty_like(values)
    _wealth_path(values, fall)
    return pd.Series(fall, index=returns.index, name="drawdown")


def max_drawdown(returns: pd.Series) -> float:
    """The deepest drawdown, negative (-0.23 is 23 % below the peak); NaN if empty."""
    _, worst = _growth_and_worst(_values(returns, "max_drawdown"))
    return worst


def _growth_and_worst(values: np.ndarray) -> tuple[float, float]:
    """What 1 grows to over the returns and their deepest drawdown; NaN for no returns."""
    if not values.size:
        return float("nan"), float("nan")
    return _wealth_path(values, None)


def max_drawdown_duration(equity: pd.Series) -> pd.Timedelta:
    """The longest time from a peak to the first bar back at it (or to the end if never).

    It takes the equity curve, not returns: the peak may be the first bar, whose time a
    returns series no longer has. Same convention as backtesting.py; 0 without a drawdown.
    """
    return _max_drawdown_duration(_equity(equity), equity.index)


def _max_drawdown_duration(values: np.ndarray, times: pd.DatetimeIndex) -> pd.Timedelta:
    longest = _longest_underwater(values, times.asi8)
    if longest < 0:
        return pd.Timedelta(0)
    return pd.Timedelta(np.timedelta64(int(longest), times.unit))


# -- trade metrics ----------------------------------------------------------------------------


def win_rate(values: pd.Series) -> float:
    """Share of winners among the values that are not exactly zero (a flat bar or a
    break-even trade is neither); NaN when there are none."""
    return _win_rate(_values(values, "win_rate"))


def _win_rate(x: np.ndarray) -> float:
    decided = np.count_nonzero(x)
    return np.count_nonzero(x > 0) / decided if decided else float("nan")


def profit_factor(values: pd.Series) -> float:
    """Gross gains over gross losses; inf with gains and no losses, NaN with neither."""
    return _profit_factor(_values(values, "profit_factor"))


def _profit_factor(x: np.ndarray) -> float:
    gains, losses = x[x > 0].sum(), -x[x < 0].sum()
    if losses == 0:
        return float("inf") if gains > 0 else float("nan")
    return float(gains / losses)


def expectancy(values: pd.Series) -> float:
    """Mean value per trade (per bar for returns); NaN when empty."""
    return _mean(_values(values, "expectancy"))


def average_win(values: pd.Series) -> float:
    """Mean of the positive values; NaN when there are none."""
    x = _values(values, "average_win")
    return _mean(x[x > 0])


def average_loss(values: pd.Series) -> float:
    """Mean of the negative values (itself negative); NaN when there are none."""
    x = _values(values, "average_loss")
    return _mean(x[x < 0])


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else float("nan")


# -- exposure ---------------------------------------------------------------------------------


def time_in_market(positions: pd.DataFrame, index: pd.DatetimeIndex) -> float:
    """The fraction of bars holding any position, from ``positions`` (quantity per symbol
    on the equity's ``index``)."""
    if not positions.index.equals(index):
        raise DataFormatError("stats: positions must have the equity's index.")
    return float((positions.to_numpy() != 0).any(axis=1).mean())


def _time_in_trades(index: pd.DatetimeIndex, trades: pd.DataFrame) -> float:
    """The fraction of bars inside any trade, from its entry bar up to its exit bar."""
    if trades.empty:
        return 0.0
    start = index.searchsorted(pd.DatetimeIndex(trades["entry_time"]))
    exit_time = pd.DatetimeIndex(trades["exit_time"])
    stop = np.where(exit_time.isna(), len(index), index.searchsorted(exit_time))
    held = np.zeros(len(index) + 1, dtype=np.int64)
    np.add.at(held, start, 1)
    np.add.at(held, stop, -1)
    return float((np.cumsum(held[:-1]) > 0).mean())


# -- kernels ----------------------------------------------------------------------------------
# numpy's arithmetic in numpy's order, compiled: the values are numpy's to the bit.


@njit(cache=True, nogil=True)
def _wealth_path(returns: np.ndarray, falls: np.ndarray | None) -> tuple[float, float]:
    """What 1 grows to over the returns (``np.prod(1 + returns)``) and the deepest fall
    from the running peak, the start a peak (``cumprod`` over ``maximum.accumulate``, at
    least 1, minus 1); each return's fall is written to ``falls`` unless it is None.

    Between two peaks the peak is fixed, and rounding keeps order, so the lowest wealth
    there gives the lowest ratio: one division per peak, not per bar.
    """
    wealth = peak = trough = lowest = 1.0
    for i in range(returns.size):
        wealth *= returns[i] + 1.0
        if wealth > peak:
            lowest = np.minimum(lowest, trough / peak)
            peak = trough = wealth
        elif wealth < trough:
            trough = wealth
        if falls is not None:
            falls[i] = wealth / peak - 1.0
    return wealth, np.minimum(lowest, trough / peak) - 1.0


@njit(cache=True, nogil=True)
def _longest_underwater(values: np.ndarray, stamps: np.ndarray) -> int:
    """The longest time (in ``stamps``) from a peak of ``values`` -- one at or above all
    before it -- to the next peak, or to the last value if none follows, among the
    stretches with a value below their peak; -1 if there are none."""
    peak, since, longest = values[0], 0, -1
    for i in range(1, values.size):
        if values[i] >= peak:
            if i > since + 1:
                longest = max(longest, stamps[i] - stamps[since])
            peak, since = values[i], i
    last = values.size - 1
    if last > since + 1:
        longest = max(longest, stamps[last] - stamps[since])
    return longest


@njit(cache=True, nogil=True)
def _count_steps(stamps: np.ndarray, step: int) -> int:
    """How many of the steps between consecutive stamps are ``step``."""
    count = 0
    for i in range(stamps.size - 1):
        count += stamps[i + 1] - stamps[i] == step
    return count


@njit(cache=True, nogil=True)
def _sum_of_squares(values: np.ndarray, center: float, below: bool) -> float:
    """The sum of ``(x - center) ** 2`` over the values, or of ``min(x - center, 0) ** 2``
    when ``below``, as ``np.sum`` adds up that array: numpy's pairwise summation, which
    sums a run of up to 128 directly (:func:`_run_sum`) and a longer one as its two halves,
    the first a multiple of 8 long. Walked with a stack rather than by recursion: numba
    crashes loading a recursive kernel from its cache."""
    right_start = np.empty(64, np.int64)  # per level: the right half still to sum,
    right_count = np.empty(64, np.int64)
    left_sum = np.empty(64)  # the left half's sum once known
    left_done = np.zeros(64, np.bool_)
    start, count, depth = 0, values.size, 0
    while True:
        while count > 128:
            half = count // 2
            half -= half % 8
            right_start[depth], right_count[depth] = start + half, count - half
            left_done[depth] = False
            depth += 1
            count = half
        total = _run_sum(values, center, below, start, count)
        while depth > 0 and left_done[depth - 1]:
            depth -= 1
            total = left_sum[depth] + total
        if depth == 0:
            return total
        left_sum[depth - 1], left_done[depth - 1] = total, True
        start, count = right_start[depth - 1], right_count[depth - 1]


@njit(inline="always")
def _run_sum(values: np.ndarray, center: float, below: bool, start: int, count: int) -> float:
    """numpy's sum of a run of at most 128 squares: under 8 added in turn; else in eight
    running sums, combined as ``((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))``, and
    the last ``count % 8`` added in turn."""
    if count < 8:
        total = 0.0
        for i in range(start, start + count):
            total += _square(values[i], center, below)
        return total
    s0 = _square(values[start], center, below)
    s1 = _square(values[start + 1], center, below)
    s2 = _square(values[start + 2], center, below)
    s3 = _square(values[start + 3], center, below)
    s4 = _square(values[start + 4], center, below)
    s5 = _square(values[start + 5], center, below)
    s6 = _square(values[start + 6], center, below)
    s7 = _square(values[start + 7], center, below)
    stop = start + count - count % 8
    for i in range(start + 8, stop, 8):
        s0 += _square(values[i], center, below)
        s1 += _square(values[i + 1], center, below)
        s2 += _square(values[i + 2], center, below)
        s3 += _square(values[i + 3], center, below)
        s4 += _square(values[i + 4], center, below)
        s5 += _square(values[i + 5], center, below)
        s6 += _square(values[i + 6], center, below)
        s7 += _square(values[i + 7], center, below)
    total = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for i in range(stop, start + count):
        total += _square(values[i], center, below)
    return total


@njit(inline="always")
def _square(x: float, center: float, below: bool) -> float:
    d = x - center
    if below:
        d = min(d, 0.0)
    return d * d
