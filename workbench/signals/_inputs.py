"""The checks every detector runs first, so bad input fails loudly instead of computing.

Each raises :class:`~workbench.errors.DataFormatError` naming the detector, what was wrong
and where. Bar checks reuse the indicators' rules (:mod:`workbench.indicators._validate`)
and add two: the index is a ``DatetimeIndex`` and there are no leading NaNs, because a
detector's output must line up with every bar it was given.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import numpy as np
import pandas as pd

from workbench.data.model import OrderBook
from workbench.errors import DataFormatError
from workbench.indicators import _validate as v

TAPE_HINT = "Bring the tape into the convention with workbench.data.model.to_trades first."


def window(value: object, name: str, what: str) -> pd.Timedelta:
    """A positive duration with a unit ("15s", "5min", a Timedelta); a bare number is refused
    because pandas would read "15" as 15 nanoseconds."""
    span = None
    if isinstance(value, str) and any(ch.isalpha() for ch in value):
        try:
            span = pd.Timedelta(value)
        except ValueError:
            pass
    elif isinstance(value, (pd.Timedelta, datetime.timedelta, np.timedelta64)):
        span = pd.Timedelta(value)
    if span is None or span is pd.NaT or span <= pd.Timedelta(0):
        raise DataFormatError(
            f"{what}: {name} must be a positive duration with a unit, such as '15s' or "
            f"'5min' (or a Timedelta); got {value!r}."
        )
    return span


def times(index: object, what: str) -> pd.DatetimeIndex:
    """A non-empty DatetimeIndex without missing times."""
    if not isinstance(index, pd.DatetimeIndex):
        raise DataFormatError(f"{what} needs a DatetimeIndex of times, not {type(index).__name__}.")
    if len(index) == 0:
        raise DataFormatError(f"{what} got no rows; there is nothing to compute on.")
    if index.hasnans:
        raise DataFormatError(f"{what}: the index has missing times (NaT).")
    return index


def time_index(index: object, what: str, *, unique: bool) -> pd.DatetimeIndex:
    """A non-empty, sorted DatetimeIndex (repeated times allowed unless ``unique``)."""
    index = times(index, what)
    steps = np.diff(index.asi8)
    bad = steps <= 0 if unique else steps < 0
    if bad.any():
        row = int(np.argmax(bad)) + 1
        problem = "repeats the time of" if steps[row - 1] == 0 else "is earlier than"
        order = "sorted and unique" if unique else "sorted"
        raise DataFormatError(
            f"{what}: the index must be {order}, but row {row} ({index[row]}) {problem} the "
            f"row before it. Sort it first (frame.sort_index())."
        )
    return index


def signed_volume(trades: object, what: str) -> pd.Series:
    """The tape's aggressor volume, signed: +amount for a buy, -amount for a sell."""
    if not isinstance(trades, pd.DataFrame):
        raise DataFormatError(f"{what} needs a DataFrame of trades, not {type(trades).__name__}.")
    missing = [c for c in ("amount", "side") if c not in trades.columns]
    if missing:
        raise DataFormatError(
            f"{what}: trades need column(s) {missing}; found {list(trades.columns)}. {TAPE_HINT}"
        )
    index = time_index(trades.index, what, unique=False)
    amount = _finite(trades["amount"], "amount", what)
    if (amount < 0).any():
        row = int(np.argmax(amount < 0))
        raise DataFormatError(f"{what}: amount is negative ({amount[row]}) at row {row}.")
    side = trades["side"]
    buy, sell = side.isin(["buy"]).to_numpy(), side.isin(["sell"]).to_numpy()
    if not (buy | sell).all():
        row = int(np.argmin(buy | sell))
        raise DataFormatError(
            f"{what}: side must be 'buy' or 'sell' (the aggressor); row {row} has "
            f"{side.iloc[row]!r}. {TAPE_HINT}"
        )
    return pd.Series(np.where(buy, amount, -amount), index=index, name="delta")


def bars(frame: object, names: Sequence[str], what: str) -> pd.DataFrame:
    """The columns ``names`` of complete bars on a sorted, unique DatetimeIndex, as float64."""
    if isinstance(frame, pd.DataFrame):
        time_index(frame.index, what, unique=True)
    data = v.bars(frame, names, what, 0)
    if data.start:
        raise DataFormatError(
            f"{what}: the first {data.start} rows hold NaNs; detectors need complete bars, so "
            f"drop the warm-up rows first."
        )
    return pd.DataFrame(dict(zip(names, data.columns)), index=data.index)


def series(values: object, what: str) -> pd.Series:
    """A float64 Series of finite numbers on a sorted, unique DatetimeIndex."""
    if not isinstance(values, pd.Series):
        raise DataFormatError(f"{what} needs a pandas Series, not {type(values).__name__}.")
    index = time_index(values.index, what, unique=True)
    label = str(values.name) if values.name is not None else "the series"
    return pd.Series(_finite(values, label, what), index=index, name=values.name)


def books(values: object, what: str) -> list[OrderBook]:
    """A non-empty sequence of OrderBooks in time order."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise DataFormatError(
            f"{what} needs an OrderBook or a sequence of them, not {type(values).__name__}."
        )
    found = list(values)
    strangers = [type(b).__name__ for b in found if not isinstance(b, OrderBook)]
    if strangers:
        raise DataFormatError(f"{what} needs OrderBooks; got {strangers[0]}.")
    time_index(pd.DatetimeIndex([b.timestamp for b in found]), what, unique=False)
    return found


def _finite(values: pd.Series, label: str, what: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values.dtype):
        raise DataFormatError(f"{what}: {label} must be numeric, not {values.dtype}.")
    array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isfinite(array).all():
        row = int(np.argmin(np.isfinite(array)))
        raise DataFormatError(f"{what}: {label} is {array[row]} at row {row}; fill or drop it.")
    return array
