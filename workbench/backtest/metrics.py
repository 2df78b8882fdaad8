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
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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
    arrays; the values are the ones the metric functions below give one by one.
    """
    curve = _equity(equity)
    r = _values(_returns(curve), "stats")
    times = equity.index
    if periods_per_year is None:
        periods = infer_periods_per_year(times)
    else:
        periods = _positive(periods_per_year)
    growth, worst = _annual_return(r, periods), _max_drawdown(r)
    pnl, trade_returns = _values(pnl, "stats"), _values(trade_returns, "stats")
    figures = {
        "start": times[0],
        "end": times[-1],
        "duration": times[-1] - times[0],
        "initial_equity": float(curve[0]),
        "final_equity": float(curve[-1]),
        "total_return": float(curve[-1] / curve[0] - 1),
        "annual_return": growth,
        "volatility": _volatility(r, periods),
        "sharpe": _sharpe(r, periods, risk_free),
        "sortino": _sortino(r, periods, risk_free),
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
    return pd.Series(
        [figures[key] for key in STATS_KEYS], index=list(STATS_KEYS), dtype=object, name="stats"
    )


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
    steps = np.diff(index.asi8)
    guess = steps[len(steps) // 2]
    if 2 * np.count_nonzero(steps == guess) <= len(steps):
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
# Each takes a returns Series; its underscored twin does the arithmetic on checked arrays.


def annual_return(returns: pd.Series, *, periods_per_year: float | None = None) -> float:
    """Compound annual growth rate, years counted as ``bars / periods_per_year``; NaN if empty."""
    values = _values(returns, "annual_return")
    return _annual_return(values, _periods(returns, periods_per_year))


def _annual_return(values: np.ndarray, periods: float) -> float:
    if values.size == 0:
        return float("nan")
    with np.errstate(over="ignore"):  # a few hours compounded to a year can exceed a float: inf
        return float(np.prod(1 + values) ** (periods / values.size) - 1)


def volatility(returns: pd.Series, *, periods_per_year: float | None = None) -> float:
    """Annualised standard deviation of returns (ddof=1); NaN for fewer than 2 returns."""
    values = _values(returns, "volatility")
    return _volatility(values, _periods(returns, periods_per_year))


def _volatility(values: np.ndarray, periods: float) -> float:
    if values.size < 2:
        return float("nan")
    return float(np.std(values, ddof=1) * np.sqrt(periods))


def sharpe(
    returns: pd.Series, *, periods_per_year: float | None = None, risk_free: float = 0.0
) -> float:
    """Annualised Sharpe ratio of the returns in excess of ``risk_free`` (an annual rate);
    NaN when volatility is zero (not inf) or there are fewer than 2 returns."""
    values = _values(returns, "sharpe")
    return _sharpe(values, _periods(returns, periods_per_year), risk_free)


def _sharpe(values: np.ndarray, periods: float, risk_free: float) -> float:
    excess = _excess(values, risk_free, periods)
    deviation = np.std(excess, ddof=1) if values.size >= 2 else 0.0
    if _negligible(deviation, values):
        return float("nan")
    return float(excess.mean() / deviation * np.sqrt(periods))


def sortino(
    returns: pd.Series, *, periods_per_year: float | None = None, risk_free: float = 0.0
) -> float:
    """Annualised Sortino ratio: mean excess return (``risk_free`` annual) over the
    downside deviation.

    The downside deviation is ``sqrt(mean(min(excess, 0) ** 2))`` over all bars. NaN when
    there is no downside or fewer than 2 returns.
    """
    values = _values(returns, "sortino")
    return _sortino(values, _periods(returns, periods_per_year), risk_free)


def _sortino(values: np.ndarray, periods: float, risk_free: float) -> float:
    excess = _excess(values, risk_free, periods)
    if values.size >= 2:
        losses = np.minimum(excess, 0.0)
        downside = np.sqrt(np.mean(np.square(losses, out=losses)))
    else:
        downside = 0.0
    if _negligible(downside, values):
        return float("nan")
    return float(excess.mean() / downside * np.sqrt(periods))


def _negligible(deviation: float, values: np.ndarray) -> bool:
    """Whether a deviation is zero or the floating-point residue (~1e-18) that returns
    meant to be equal leave, such as a curve growing at a constant rate."""
    return deviation <= 1e-12 * (max(values.max(), -values.min()) if values.size else 0.0)


def calmar(returns: pd.Series, *, periods_per_year: float | None = None) -> float:
    """Annual return over the absolute maximum drawdown; NaN when there is no drawdown."""
    worst = max_drawdown(returns)
    return _calmar(annual_return(returns, periods_per_year=periods_per_year), worst)


def _calmar(growth: float, worst: float) -> float:
    return growth / -worst if worst < 0 else float("nan")


# -- drawdowns --------------------------------------------------------------------------------


def drawdown(returns: pd.Series) -> pd.Series:
    """Fall from the running peak after each return (<= 0), the starting equity a peak."""
    fall = _drawdown(_values(returns, "drawdown"))
    return pd.Series(fall, index=returns.index, name="drawdown")


def _drawdown(values: np.ndarray) -> np.ndarray:
    fall = _of_peak(values)
    fall -= 1
    return fall


def _of_peak(values: np.ndarray) -> np.ndarray:
    """The wealth after each return as a fraction of the running peak (the start a peak)."""
    wealth = np.add(values, 1)
    np.cumprod(wealth, out=wealth)
    peak = np.maximum.accumulate(wealth)
    np.maximum(peak, 1.0, out=peak)
    return np.divide(wealth, peak, out=peak)


def max_drawdown(returns: pd.Series) -> float:
    """The deepest drawdown, negative (-0.23 is 23 % below the peak); NaN if empty."""
    return _max_drawdown(_values(returns, "max_drawdown"))


def _max_drawdown(values: np.ndarray) -> float:
    # min(x - 1) is min(x) - 1 to the bit (rounding keeps order), a pass fewer
    return float(_of_peak(values).min() - 1) if values.size else float("nan")


def max_drawdown_duration(equity: pd.Series) -> pd.Timedelta:
    """The longest time from a peak to the first bar back at it (or to the end if never).

    It takes the equity curve, not returns: the peak may be the first bar, whose time a
    returns series no longer has. Same convention as backtesting.py; 0 without a drawdown.
    """
    return _max_drawdown_duration(_equity(equity), equity.index)


def _max_drawdown_duration(values: np.ndarray, times: pd.DatetimeIndex) -> pd.Timedelta:
    at_peak = np.flatnonzero(values >= np.maximum.accumulate(values))
    ends = np.append(at_peak[1:], len(values) - 1)
    underwater = ends > at_peak + 1
    if not underwater.any():
        return pd.Timedelta(0)
    stamps = times.asi8
    longest = (stamps[ends[underwater]] - stamps[at_peak[underwater]]).max()
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
