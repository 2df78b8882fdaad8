"""The vectorised fast path: a signal strategy's whole run in one numba loop over arrays.

::

    from workbench.backtest.vectorized import run_vectorized
    from workbench.strategies import MovingAverageCross

    result = run_vectorized(bars, MovingAverageCross(fast=10, slow=50, long_only=True), fees=0.001)
    result.equity, result.trades, result.fills, result.summary

It follows the engine's fill convention exactly (``workbench.backtest._kernels`` says it
step by step): the target decided on bar t's close acts at bar t+1's open, only when it
changes; all-in buys are capped so the cash account never goes negative; fees and
slippage are charged against the trader; a spot account holds no short, so a negative
target sells down to flat. ``units=`` sizes positions in fixed units
(``target * units``) instead of as a fraction of equity, which is how backtesting.py sizes.

Speed comes from never leaving numpy: a strategy with a registered fast path
(:data:`FAST_PATHS`; :class:`~workbench.strategies.MovingAverageCross` has one) has its
target computed by numba kernels from the same moving-average kernels as the indicators,
equal value for value to ``strategy.target(bars)`` (:func:`fast_target`); any other
strategy falls back to ``strategy.target(bars)``. Register a fast path for another
crossing strategy with :func:`register_fast_path`. The run keeps fill and trade records;
the equity curve, cash, positions and the pandas tables are built from them when first
read.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from html import escape
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from numba import njit, prange

from workbench.backtest import _kernels as k
from workbench.engine.orders import Fill
from workbench.errors import ConfigError, DataFormatError
from workbench.indicators import _validate as v
from workbench.indicators._kernels_overlap import ma
from workbench.indicators._ma import MAType
from workbench.strategies import MovingAverageCross, Strategy

YEAR = pd.Timedelta(days=365)
TRADE_COLUMNS = (
    "symbol", "side", "quantity", "entry_time", "entry_price", "exit_time", "exit_price",
    "fees", "funding", "pnl", "return", "duration", "open",
)  # fmt: skip
FILL_COLUMNS = Fill._fields  # the engine's fill records, as a table


# -- fast paths -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrossFastPath:
    """How to compute a crossing strategy's target without pandas.

    The strategy's target must be the crossing rule of two lines (+1 while line a is above
    line b, -1 below, 0 when equal or during warm-up; 0 instead of -1 when ``long_only``).
    ``lines(params)`` names the two lines of a parameter set by hashable keys, so a sweep
    computes each distinct line once; ``compute(keys, close, out, parallel)`` fills the
    rows of ``out`` (len(keys) x bars) with those lines, from the close prices;
    ``warmup(params)`` is the fewest bars the strategy accepts (fewer fall back to
    ``strategy.target``, which raises its own error). ``changes(params, close, bars,
    targets)``, optional, records the target's changes straight from the close prices, as
    ``_kernels.changes`` records them from the lines, and returns how many (None for a
    parameter set it does not cover): a single run then never writes the lines out.
    """

    lines: Callable[[Mapping[str, Any]], tuple[Hashable, Hashable]]
    compute: Callable[[Sequence[Hashable], np.ndarray, np.ndarray, bool], None]
    warmup: Callable[[Mapping[str, Any]], int]
    changes: (
        Callable[[Mapping[str, Any], np.ndarray, np.ndarray, np.ndarray], int | None] | None
    ) = None


FAST_PATHS: dict[type[Strategy], CrossFastPath] = {}
"""Fast paths by exact strategy class (a subclass may change the rule, so it is not inherited)."""


def register_fast_path(cls: type[Strategy], path: CrossFastPath) -> None:
    """Let :func:`run_vectorized` and sweeps compute ``cls``'s target with ``path``."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"register_fast_path needs a Strategy subclass, not {cls!r}.")
    FAST_PATHS[cls] = path


@njit(cache=True, parallel=True)
def _averages_parallel(x, periods, matypes, out):
    for row in prange(periods.size):
        ma(x, periods[row], matypes[row], out[row])


@njit(cache=True, nogil=True)
def _averages_serial(x, periods, matypes, out):
    for row in range(periods.size):
        ma(x, periods[row], matypes[row], out[row])


_MATYPES = {"sma": int(MAType.SMA), "ema": int(MAType.EMA)}


def _average_lines(params: Mapping[str, Any]) -> tuple[Hashable, Hashable]:
    kind = _MATYPES[params["kind"]]
    return (kind, int(params["fast"])), (kind, int(params["slow"]))


def _compute_averages(
    keys: Sequence[Hashable], close: np.ndarray, out: np.ndarray, parallel: bool
) -> None:
    matypes = np.array([key[0] for key in keys], dtype=np.int64)
    periods = np.array([key[1] for key in keys], dtype=np.int64)
    (_averages_parallel if parallel else _averages_serial)(close, periods, matypes, out)


@njit(cache=True, nogil=True)
def _sma_total(x, period, stop):
    """SMA(period)'s running total as the indicator kernel leaves it before bar ``stop``."""
    total = 0.0
    for i in range(period - 1):
        total += x[i]
    for i in range(period - 1, stop):
        total += x[i]
        total -= x[i - period + 1]
    return total


@njit(cache=True, nogil=True)
def _sma_cross_changes(x, fast, slow, long_only, bars, targets):
    """``_kernels.changes`` of SMA(fast) crossing SMA(slow) over ``x``, without the lines.

    Both running totals take the indicator kernel's steps in its order
    (``workbench.indicators._kernels_overlap.sma``), so every average, and so every
    target, is the same to the bit. Each total is a chain of dependent additions, which
    sets the pace; the two chains overlap in one loop, and no 2 x bars array of lines is
    written and read back. Needs ``x.size >= max(fast, slow) - 1``.
    """
    start = max(fast, slow) - 1  # the first bar with both averages; the target is 0 before
    total_a = _sma_total(x, fast, start)
    total_b = _sma_total(x, slow, start)
    now, gone_a, gone_b = x[start:], x[start - fast + 1 :], x[start - slow + 1 :]
    count = 0
    previous = 0.0
    for i in range(now.size):
        total_a += now[i]
        total_b += now[i]
        target = k.cross_value(total_a / fast, total_b / slow, long_only)
        total_a -= gone_a[i]
        total_b -= gone_b[i]
        bars[count] = start + i  # written on every bar, kept on a change: no branch
        targets[count] = target
        count += target != previous
        previous = target
    return count


def _average_changes(
    params: Mapping[str, Any], close: np.ndarray, bars: np.ndarray, targets: np.ndarray
) -> int | None:
    if params["kind"] != "sma":
        return None
    fast, slow, long_only = int(params["fast"]), int(params["slow"]), bool(params["long_only"])
    return _sma_cross_changes(close, fast, slow, long_only, bars, targets)


register_fast_path(
    MovingAverageCross,
    CrossFastPath(
        lines=_average_lines,
        compute=_compute_averages,
        warmup=lambda params: max(int(params["fast"]), int(params["slow"])),
        changes=_average_changes,
    ),
)


def fast_target(strategy: Strategy, bars: pd.DataFrame) -> pd.Series | None:
    """``strategy.target(bars)`` from its fast path (float64), or None if it has none.

    Equal value for value to ``strategy.target(bars)``, warm-up 0 included.
    """
    path = FAST_PATHS.get(type(strategy))
    if path is None:
        return None
    _, close = _checked_bars(bars, _what(strategy))
    strategy.check()
    params = strategy.param.values()
    if close.size < path.warmup(params):  # strategy.target raises its own error
        return strategy.target(bars).astype(np.float64)
    lines = _lines(path, params, close)
    target = np.empty(close.size)
    k.cross_target(lines[0], lines[1], bool(params["long_only"]), target)
    return pd.Series(target, index=bars.index, name="target", copy=False)


def _lines(path: CrossFastPath, params: Mapping[str, Any], close: np.ndarray) -> np.ndarray:
    """The two lines of a parameter set (over at least ``path.warmup(params)`` bars)."""
    lines = np.empty((2, close.size))
    # in this thread: a parallel region would wait on a second core that a busy machine
    # may not give it for milliseconds, longer than computing both lines here takes
    path.compute(path.lines(params), close, lines, False)
    return lines


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class VectorizedResult:
    """One vectorised run: per-bar equity, cash and position, the trades and the fills.

    Like vectorbt's portfolio, the run itself keeps records (each fill with the cash and
    position after it, each trade) and the final equity; ``equity``, ``cash``,
    ``positions``, ``trades``, ``fills`` and ``summary`` (the headline figures, as a
    sweep's table has them, defined as :mod:`workbench.backtest.metrics` defines them)
    are built from them when first read.
    """

    bars: pd.DataFrame
    symbol: str
    strategy: Strategy
    settings: dict[str, Any]
    final_equity: float
    figures: np.ndarray = field(repr=False)  # the kernel's trade figures and exposure
    fill_records: np.ndarray = field(repr=False)  # _kernels.FILL_FIELDS x fills
    trade_records: np.ndarray = field(repr=False)  # _kernels.TRADE_FIELDS x trades

    @cached_property
    def equity(self) -> pd.Series:
        """Equity after each bar's close: cash + position x close."""
        close = self.bars["close"].to_numpy(dtype=np.float64)
        values = np.empty(close.size)
        fills = self.fill_records
        k.mark(close, fills[0], fills[4], fills[5], self.settings["cash"], values)
        return pd.Series(values, index=self.bars.index, name="equity", copy=False)

    @cached_property
    def summary(self) -> pd.Series:
        """The headline figures, as a sweep's table has them (``_kernels.FIGURES``)."""
        values = self.figures.copy()
        equity = self.equity.to_numpy()
        k.equity_figures(equity, self.settings["cash"], self.periods_per_year, values)
        return summary_series(values)

    @cached_property
    def periods_per_year(self) -> float:
        """Bars per year for the annualised figures: as given, or from the bar spacing."""
        given = self.settings["periods_per_year"]
        return infer_periods_per_year(self.bars.index) if given is None else given

    @cached_property
    def cash(self) -> pd.Series:
        """Cash after each bar (quote currency)."""
        return self._steps(4, self.settings["cash"], "cash")

    @cached_property
    def positions(self) -> pd.DataFrame:
        """Quantity held after each bar, one column per symbol."""
        return self._steps(5, 0.0, self.symbol).to_frame()

    @cached_property
    def trades(self) -> pd.DataFrame:
        """One row per round trip, in the engine's trades columns."""
        return _trades_frame(
            self.trade_records, self.bars.index, float(self.bars["close"].iloc[-1]), self.symbol
        )

    @cached_property
    def fills(self) -> pd.DataFrame:
        """One row per fill (each order fills at once, as a taker)."""
        return _fills_frame(self.fill_records, self.bars.index, self.symbol)

    @property
    def exposure(self) -> pd.Series:
        """Gross position value over equity after each bar."""
        value = np.abs(self.positions[self.symbol].to_numpy() * self.bars["close"].to_numpy())
        return pd.Series(value / self.equity.to_numpy(), index=self.equity.index, name="exposure")

    def _steps(self, row: int, start: float, name: str) -> pd.Series:
        """A value recorded after each fill, held until the next one, per bar."""
        bars = self.fill_records[0].astype(np.int64)
        counts = np.diff(np.concatenate(([0], bars, [len(self.bars)])))
        values = np.repeat(np.concatenate(([start], self.fill_records[row])), counts)
        return pd.Series(values, index=self.bars.index, name=name)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{escape(str(name))}</th><td>{value:.6g}</td></tr>"
            for name, value in self.summary.items()
        )
        return (
            f"<b>VectorizedResult</b> &middot; {escape(self.strategy.label)} on "
            f"{escape(self.symbol)} &middot; {len(self.bars):,} bars, "
            f"{self.fill_records.shape[1]:,} fills<table>{rows}</table>"
        )


def run_vectorized(
    bars: pd.DataFrame,
    strategy: Strategy | type[Strategy],
    *,
    cash: float = 10_000.0,
    fees: float = 0.0,
    slippage: float = 0.0,
    symbol: str = "asset",
    units: float | None = None,
    periods_per_year: float | None = None,
) -> VectorizedResult:
    """Run a signal strategy over one symbol's bars with the engine's fill convention.

    ``fees`` is a fraction of the traded notional (0.001 = 0.1 %), ``slippage`` in basis
    points against the trader, ``units`` a fixed position size in base units (default:
    the target is a fraction of equity). The account is a spot cash account: a negative
    target sells down to flat, never short, as the event engine does without leverage.
    ``periods_per_year`` (for the annualised figures) is inferred from the median bar
    spacing over a 365-day year when :attr:`VectorizedResult.summary` is first read.
    """
    if isinstance(strategy, type) and issubclass(strategy, Strategy):
        strategy = strategy()
    if not isinstance(strategy, Strategy):
        raise ConfigError(f"run_vectorized needs a Strategy, not {type(strategy).__name__}.")
    settings = check_settings(cash=cash, fees=fees, slippage=slippage, units=units)
    open_, close = _checked_bars(bars, _what(strategy))
    if periods_per_year is not None:  # else inferred when the summary is first read
        periods_per_year = _positive(periods_per_year, "periods_per_year")
    settings["periods_per_year"] = periods_per_year
    at = np.empty(close.size - 1, dtype=np.int64)  # the last bar's target never acts
    targets = np.empty(close.size - 1)
    changes = _target_changes(strategy, bars, close, at, targets)
    cash0, fee, slip, size, _ = kernel_settings(settings)
    figures = np.full(k.N_FIGURES, np.nan)
    fills = np.empty((len(k.FILL_FIELDS), changes))
    trades = np.empty((len(k.TRADE_FIELDS), changes + 1))
    n_fills, n_trades = k.run(
        open_, close, at[:changes], targets[:changes], cash0, fee, slip, size, fills, trades,
        figures,
    )  # fmt: skip
    return VectorizedResult(
        bars=bars,
        symbol=symbol,
        strategy=strategy,
        settings=settings,
        final_equity=float(figures[0]),
        figures=figures,
        # copied only where some room is left over: a change that did not trade
        fill_records=np.ascontiguousarray(fills[:, :n_fills]),
        trade_records=np.ascontiguousarray(trades[:, :n_trades]),
    )


def _target_changes(
    strategy: Strategy, bars: pd.DataFrame, close: np.ndarray, at: np.ndarray, targets: np.ndarray
) -> int:
    """Record the target's changes over all bars but the last (``_kernels.changes``) in
    ``at`` and ``targets``; return how many. From the strategy's fast path, without the
    lines where it can, else from ``strategy.target(bars)``."""
    path = FAST_PATHS.get(type(strategy))
    if path is not None:
        strategy.check()
        params = strategy.param.values()
        if close.size >= path.warmup(params):  # else strategy.target raises its own error
            count = path.changes(params, close[:-1], at, targets) if path.changes else None
            if count is None:  # no direct route for these parameters: through the lines
                a, b = _lines(path, params, close)[:, :-1]
                count = k.changes(a, b, k.CROSS, bool(params["long_only"]), at, targets)
            return count
    target = _target_array(strategy.target(bars), close.size)[:-1]
    return k.changes(target, target, k.TARGET, False, at, targets)


def summary_series(values: np.ndarray) -> pd.Series:
    """The kernel's figures as a Series named by ``FIGURES``, ``trades`` as an int."""
    out = pd.Series(values, index=list(k.FIGURES), dtype=object, name="summary")
    out["trades"] = int(values[k.FIGURES.index("trades")])
    return out


def _strings(values: Sequence[str], codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``values[codes]`` as a pandas string array, without a Python loop per row."""
    return pd.array(pa.array(list(values), type=pa.large_string()).take(codes), dtype="str")


def _trades_frame(
    records: np.ndarray, index: pd.DatetimeIndex, last_close: float, symbol: str
) -> pd.DataFrame:
    entry_bar = records[0].astype(np.int64)
    exit_bar = records[1].astype(np.int64)
    side, quantity, entry_price, exit_price, fees = records[2:7]
    is_open = exit_bar < 0
    mark = np.where(is_open, last_close, exit_price)
    pnl = side * (mark - entry_price) * quantity - fees + 0.0  # + funding (none on spot)
    entry_time = index[entry_bar]
    exit_time = index[np.where(is_open, 0, exit_bar)].where(~is_open)
    until = index[np.where(is_open, len(index) - 1, exit_bar)]
    rows = np.zeros(len(side), dtype=np.int32)
    return pd.DataFrame(
        {
            "symbol": _strings([symbol], rows),
            "side": _strings(["long", "short"], (side < 0).astype(np.int32)),
            "quantity": quantity,
            "entry_time": entry_time,
            "entry_price": entry_price,
            "exit_time": exit_time,
            "exit_price": exit_price,
            "fees": fees,
            "funding": np.zeros(len(side)),
            "pnl": pnl,
            "return": pnl / (entry_price * quantity),
            "duration": until - entry_time,
            "open": is_open,
        },
        columns=list(TRADE_COLUMNS),
    )


def _fills_frame(records: np.ndarray, index: pd.DatetimeIndex, symbol: str) -> pd.DataFrame:
    quantity = records[1]
    rows = np.zeros(quantity.size, dtype=np.int32)
    return pd.DataFrame(
        {
            "order_id": np.arange(1, quantity.size + 1, dtype=np.int64),
            "time": index[records[0].astype(np.int64)],
            "symbol": _strings([symbol], rows),
            "side": _strings(["buy", "sell"], (quantity < 0).astype(np.int32)),
            "quantity": np.abs(quantity),
            "price": records[2],
            "fee": records[3],
            "liquidity": _strings(["taker"], rows),
        },
        columns=list(FILL_COLUMNS),
    )


# -- checks -----------------------------------------------------------------------------------


def check_settings(
    *, cash: float, fees: float, slippage: float, units: float | None
) -> dict[str, Any]:
    """The run settings, checked: a clear ConfigError for a negative cash and the like."""
    cash = _positive(cash, "cash")
    fees = _number(fees, "fees")
    if not 0.0 <= fees < 1.0:
        raise ConfigError(
            f"fees is a fraction of the notional in [0, 1) (0.001 = 0.1 %); got {fees}."
        )
    slippage = _number(slippage, "slippage")
    if not 0.0 <= slippage < 10_000.0:
        raise ConfigError(f"slippage is in basis points, in [0, 10000); got {slippage}.")
    if units is not None:
        units = _positive(units, "units")
    return {"cash": cash, "fees": fees, "slippage": slippage, "units": units}


def kernel_settings(settings: Mapping[str, Any]) -> tuple[float, ...]:
    """(cash, fee rate, slippage fraction, units or 0, periods per year) for the kernels."""
    return (
        settings["cash"],
        settings["fees"],
        settings["slippage"] / 1e4,
        settings["units"] or 0.0,
        settings["periods_per_year"],
    )


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, not {value!r}.")
    number = float(value)
    if not np.isfinite(number):
        raise ConfigError(f"{name} must be finite; got {value!r}.")
    return number


def _positive(value: object, name: str) -> float:
    number = _number(value, name)
    if number <= 0.0:
        raise ConfigError(f"{name} must be positive; got {value!r}.")
    return number


def _what(strategy: Strategy) -> str:
    return f"run_vectorized({strategy.label})"


def _checked_bars(bars: object, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The open and close prices as contiguous float64 arrays, or a DataFormatError:
    bars on a sorted, unique DatetimeIndex with finite, positive prices."""
    if not isinstance(bars, pd.DataFrame):
        raise DataFormatError(f"{what} needs a DataFrame of bars, not {type(bars).__name__}.")
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataFormatError(
            f"{what} needs bars on a DatetimeIndex; bring them into the convention with "
            f"workbench.data.model.to_bars first."
        )
    if len(index) == 0:
        raise DataFormatError(f"{what} got no bars; there is nothing to backtest.")
    if index.hasnans:
        raise DataFormatError(f"{what}: the index has missing times (NaT).")
    v._check_index(index, what)  # sorted and unique (pandas caches both on the index)
    columns = []
    for name in ("open", "close"):
        if name not in bars.columns or isinstance(bars[name], pd.DataFrame):
            raise DataFormatError(
                f"{what} needs one column {name!r} (lower-case); the frame has "
                f"{list(bars.columns)}."
            )
        columns.append(v._as_float(name, bars[name], what))
    open_, close = columns
    row = _first_bad_price(open_, close)
    if row >= 0:
        bad_open = not 0.0 < open_[row] < np.inf
        name, value = ("open", open_[row]) if bad_open else ("close", close[row])
        raise DataFormatError(
            f"{what}: {name} is {value} at {index[row]} (row {row}); prices must be finite and "
            f"positive. Fill or drop the bad bars first."
        )
    return open_, close


_INF_BITS = np.array(np.inf).view(np.int64).item()


@njit(cache=True)
def _first_bad_price(open_, close):
    """The first row whose open or close is not a finite positive number, or -1.

    A float64 is finite and positive exactly when its bits, read as an int64, lie strictly
    between those of 0.0 and of inf (NaN lies above, negative numbers and -0.0 below), so
    the first loop takes an integer minimum and maximum, which vectorise at the speed of
    memory; the second, which finds the row, only runs when there is something to report.
    """
    low = high = 1  # the bits of the smallest positive number: a good price
    open_bits, close_bits = open_.view(np.int64), close.view(np.int64)
    for i in range(open_bits.size):
        low = min(low, open_bits[i], close_bits[i])
        high = max(high, open_bits[i], close_bits[i])
    if low > 0 and high < _INF_BITS:
        return -1
    for i in range(open_.size):
        if not (0.0 < open_[i] < np.inf and 0.0 < close[i] < np.inf):
            return i
    return -1


def _target_array(target: object, n: int) -> np.ndarray:
    """A strategy's target as float64, NaN (warm-up) as 0, checked to lie in [-1, 1]."""
    values = np.nan_to_num(np.asarray(target, dtype=np.float64), nan=0.0)
    if values.shape != (n,):
        raise ConfigError(f"strategy.target() gave {values.shape[0]} values for {n} bars.")
    if not ((values >= -1.0) & (values <= 1.0)).all():
        raise ConfigError("strategy.target() must lie in [-1, 1] (a fraction of equity).")
    return np.ascontiguousarray(values)


@njit(cache=True)
def _common_step(times):
    """The spacing held by more than half of the steps of ``times`` (then it is their
    median), or -1 if no spacing is (Boyer-Moore majority vote, no sort, no copy)."""
    candidate, count = -1, 0
    for i in range(1, times.size):
        step = times[i] - times[i - 1]
        if count == 0:
            candidate, count = step, 1
        elif step == candidate:
            count += 1
        else:
            count -= 1
    seen = 0
    for i in range(1, times.size):
        if times[i] - times[i - 1] == candidate:
            seen += 1
    return candidate if 2 * seen > times.size - 1 else -1


def infer_periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per 365-day year from the median bar spacing, as ``metrics`` infers it.

    Regular bars (more than half the spacings equal) need no sort, so this stays fast on
    millions of bars.
    """
    if len(index) < 2:
        raise DataFormatError(
            "periods per year cannot be inferred from fewer than 2 bars; pass periods_per_year."
        )
    common = _common_step(index.asi8)
    if common > 0:
        spacing = pd.Timedelta(int(common), unit=index.unit)
    else:
        spacing = pd.Series(index).diff().median()
    if not spacing > pd.Timedelta(0):
        raise DataFormatError(f"periods per year cannot be inferred from a spacing of {spacing}.")
    return YEAR / spacing
