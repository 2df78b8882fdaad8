"""The checks every indicator runs first, so bad input fails loudly instead of computing.

Rules (they raise :class:`~workbench.errors.DataFormatError` with the position or value):

- A price input is a numeric pandas Series; bar inputs are a DataFrame with the lower-case
  columns the indicator needs (``high``, ``low``, ``close``, ``volume``).
- A DatetimeIndex must be strictly increasing: sorted, without duplicates.
- Leading NaNs are allowed, as in TA-Lib: the computation starts at the first row where
  every input is a number, so one indicator's warm-up can feed another. A NaN or an
  infinity after that row is refused, with its position.
- Periods are whole numbers within TA-Lib's range; the rows after the leading NaNs must
  be enough for at least one output value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from workbench.errors import DataFormatError

MAX_PERIOD = 100_000  # TA-Lib's upper bound for every period


def period(value: object, name: str, minimum: int = 1) -> int:
    """A period parameter as an int, or an error saying what a valid one looks like."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataFormatError(f"{name} must be a whole number of bars, not {value!r}.")
    if not minimum <= value <= MAX_PERIOD:
        raise DataFormatError(
            f"{name} must be between {minimum} and {MAX_PERIOD} bars; got {value}."
        )
    return int(value)


def real(value: object, name: str, *, positive: bool = False) -> float:
    """A finite, non-negative float parameter (strictly positive when ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DataFormatError(f"{name} must be a number, not {value!r}.")
    number = float(value)
    if not np.isfinite(number) or (positive and number <= 0.0) or number < 0.0:
        need = "a finite number > 0" if positive else "a finite number >= 0"
        raise DataFormatError(f"{name} must be {need}; got {value!r}.")
    return number


def call(name: str, **params: object) -> str:
    """How an indicator call reads in an error message: ``rsi(timeperiod=14)``."""
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in params.items())})"


@dataclass(frozen=True)
class Prepared:
    """Checked inputs: the index, the first usable row and each column from that row on."""

    index: pd.Index
    start: int
    columns: tuple[np.ndarray, ...]

    def output(self, rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A new output buffer (``rows`` x len, or 1-D) and the part a kernel fills.

        The rows before :attr:`start` (leading NaNs in the input) are NaN already.
        """
        full = np.empty(len(self.index) if rows is None else (rows, len(self.index)))
        full[..., : self.start] = np.nan
        return full, full[..., self.start :]

    def series(self, values: np.ndarray, name: str) -> pd.Series:
        """A Series of full-length ``values`` on the input's index."""
        return pd.Series(values, index=self.index, name=name, copy=False)

    def frame(self, values: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
        """A DataFrame whose columns ``names`` are the rows of ``values``."""
        return pd.DataFrame(dict(zip(names, values, strict=True)), index=self.index, copy=False)


def prices(values: object, what: str, lookback: int) -> Prepared:
    """Check a price Series for an indicator whose first output needs ``lookback`` bars."""
    if not isinstance(values, pd.Series):
        hint = (
            " Pass one column, e.g. bars['close'], or use bars.wb."
            if isinstance(values, pd.DataFrame)
            else ""
        )
        raise DataFormatError(
            f"{what} needs a pandas Series of prices, not {type(values).__name__}.{hint}"
        )
    label = str(values.name) if values.name is not None else "the series"
    return _prepare(values.index, [(label, values)], what, lookback)


def bars(frame: object, names: Sequence[str], what: str, lookback: int) -> Prepared:
    """Check a bar DataFrame holding ``names`` for an indicator needing ``lookback`` bars."""
    if not isinstance(frame, pd.DataFrame):
        raise DataFormatError(
            f"{what} needs a DataFrame of bars with columns {list(names)}, "
            f"not {type(frame).__name__}."
        )
    missing = [name for name in names if name not in frame.columns]
    if missing:
        lowered = {str(c).strip().lower(): c for c in frame.columns}
        near = {lowered[m]: m for m in missing if m in lowered}
        hint = f" Rename {near} (names are lower-case)." if near else ""
        raise DataFormatError(
            f"{what} needs column(s) {missing}; the frame has {list(frame.columns)}.{hint}"
        )
    repeated = [name for name in names if isinstance(frame[name], pd.DataFrame)]
    if repeated:
        raise DataFormatError(f"{what}: the frame has more than one column named {repeated}.")
    return _prepare(frame.index, [(name, frame[name]) for name in names], what, lookback)


def _prepare(
    index: pd.Index, named: list[tuple[str, pd.Series]], what: str, lookback: int
) -> Prepared:
    _check_index(index, what)
    columns = [_as_float(label, series, what) for label, series in named]
    start = _first_complete_row(tuple(columns))
    for (label, _), values in zip(named, columns, strict=True):
        bad = _first_nonfinite(values, start)
        if bad >= 0:
            raise DataFormatError(
                f"{what}: {label} is {values[bad]} at {index[bad]} (row {bad}), after "
                f"numbers from row {start} on. Only leading NaNs are accepted (such as "
                f"another indicator's warm-up); fill or drop the gap first."
            )
    usable = len(index) - start
    if usable < lookback + 1:
        skipped = f" after {start} leading NaN rows" if start else ""
        raise DataFormatError(
            f"{what} needs at least {lookback + 1} rows of data (a warm-up of {lookback} "
            f"bars plus one); got {usable}{skipped}."
        )
    return Prepared(index, start, tuple(c[start:] for c in columns))


def _check_index(index: pd.Index, what: str) -> None:
    if not isinstance(index, pd.DatetimeIndex):
        return
    if index.is_monotonic_increasing and index.is_unique:
        return
    steps = np.diff(index.asi8)
    row = int(np.argmax(steps <= 0)) + 1
    problem = "repeats the time of" if steps[row - 1] == 0 else "is earlier than"
    raise DataFormatError(
        f"{what}: the index must be sorted and unique, but row {row} ({index[row]}) "
        f"{problem} the row before it. Sort and de-duplicate the bars first."
    )


def _as_float(label: str, series: pd.Series, what: str) -> np.ndarray:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        raise DataFormatError(f"{what}: {label} must be numeric, not {dtype}.")
    if dtype == np.float64:
        return np.ascontiguousarray(series.to_numpy())
    return np.ascontiguousarray(series.to_numpy(dtype=np.float64, na_value=np.nan))


@njit(cache=True)
def _first_complete_row(columns):
    """The first row where every column is finite (len if there is none)."""
    n = columns[0].size
    for i in range(n):
        complete = True
        for column in columns:
            if not np.isfinite(column[i]):
                complete = False
        if complete:
            return i
    return n


@njit(cache=True)
def _first_nonfinite(values, start):
    """The first non-finite value at or after ``start``, or -1.

    The first loop has no early exit and indexes a zero-based view, so it vectorises;
    the second, which finds the position, only runs when there is something to report.
    """
    tail = values[start:]
    found = 0
    for i in range(tail.size):
        found |= np.int64(not abs(tail[i]) < np.inf)
    if found:
        for i in range(tail.size):
            if not np.isfinite(tail[i]):
                return start + i
    return -1
