"""The market-data convention, and the functions that bring outside data into it.

- **Bars**: a DataFrame indexed by a UTC ``DatetimeIndex`` named ``timestamp`` (the bar's
  open time), with float64 columns ``open, high, low, close, volume``, sorted, unique.
- **Trades**: indexed like bars by trade time, with ``price, amount`` (float64), ``side``
  ('buy'/'sell', the aggressor) and ``id`` (string) columns.
- **Order book**: an :class:`OrderBook` with bid and ask ladders (price, amount) and a time.
- **Funding**: indexed by funding time, with ``funding_rate`` and, where known,
  ``mark_price``.

Every conversion either returns data in the convention or raises
:class:`~workbench.errors.DataFormatError` saying what was wrong; nothing is filled in or
dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from workbench.errors import DataFormatError

BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
TRADE_COLUMNS: tuple[str, ...] = ("price", "amount", "side", "id")
FUNDING_COLUMNS: tuple[str, ...] = ("funding_rate", "mark_price")
TimeUnit = Literal["ms", "s", "us", "ns"]

# Epoch magnitudes of timestamps between 2001 and 2286 in each unit.
_UNIT_RANGES: dict[str, tuple[float, float]] = {
    "s": (1e9, 1e10),
    "ms": (1e12, 1e13),
    "us": (1e15, 1e16),
    "ns": (1e18, 1e19),
}


def detect_time_unit(values: np.ndarray) -> str | None:
    """Which epoch unit integer timestamps are in, judged by their magnitude."""
    finite = np.asarray(values, dtype="float64")
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None
    low, high = float(finite.min()), float(finite.max())
    for unit, (lo, hi) in _UNIT_RANGES.items():
        if lo <= low and high < hi:
            return unit
    return None


def to_utc_index(values: object, *, unit: TimeUnit = "ms", what: str = "timestamp") -> pd.DatetimeIndex:
    """Turn epoch numbers, strings or datetimes into a UTC ``DatetimeIndex`` named timestamp.

    Epoch numbers must be in ``unit``; numbers that look like another unit (seconds handed
    over as milliseconds, say) are refused rather than read as dates in 1970.
    """
    if isinstance(values, pd.DatetimeIndex):
        index = values
    else:
        series = pd.Series(values) if not isinstance(values, pd.Series) else values
        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series):
            found = detect_time_unit(series.to_numpy())
            if found != unit and len(series):
                hint = f"they look like {found}" if found else "their magnitude fits no epoch unit"
                raise DataFormatError(
                    f"The {what} column holds epoch numbers that are not in {unit}: {hint}. "
                    f"Pass unit={found!r} (CLI: --unit {found}) if that is right."
                    if found
                    else f"The {what} column holds numbers that are not epoch times in {unit} "
                    f"({hint}; first value {series.iloc[0]!r})."
                )
            index = pd.DatetimeIndex(pd.to_datetime(series.to_numpy(), unit=unit, utc=True))
        else:
            try:
                index = pd.DatetimeIndex(pd.to_datetime(series, utc=True))
            except (ValueError, TypeError) as exc:
                raise DataFormatError(f"The {what} column cannot be read as times: {exc}") from None
    if index.tz is None:
        index = index.tz_localize("UTC")
    elif str(index.tz) != "UTC":
        index = index.tz_convert("UTC")
    return index.as_unit("ns").rename("timestamp")


def _index_from(frame: pd.DataFrame, unit: TimeUnit, what: str) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    lowered = {c: str(c).strip().lower() for c in frame.columns}
    frame = frame.rename(columns=lowered)
    for name in ("timestamp", "time", "datetime", "date"):
        if name in frame.columns:
            return frame.drop(columns=name), to_utc_index(frame[name], unit=unit)
    if isinstance(frame.index, pd.DatetimeIndex):
        return frame, to_utc_index(frame.index, unit=unit)
    if frame.index.name and str(frame.index.name).lower() in ("timestamp", "time", "datetime", "date"):
        return frame, to_utc_index(frame.index.to_series(), unit=unit)
    raise DataFormatError(
        f"{what} need a time: a 'timestamp' column (epoch {unit} or datetimes) or a "
        f"DatetimeIndex. Found columns {list(frame.columns)}."
    )


def _check_order(index: pd.DatetimeIndex, what: str) -> None:
    if index.hasnans:
        raise DataFormatError(f"{what} have missing timestamps (NaT) at {int(index.isna().sum())} rows.")
    if not index.is_monotonic_increasing:
        bad = int(np.argmax(np.diff(index.asi8) < 0)) + 1
        raise DataFormatError(
            f"{what} are not in time order: row {bad} ({index[bad]}) comes before the row above "
            f"it. Sort them first (frame.sort_index()) or import with the 'repair' policy."
        )
    if index.has_duplicates:
        dup = index[index.duplicated()][0]
        raise DataFormatError(
            f"{what} have duplicate timestamps (first: {dup}); keep one row per time."
        )


def to_bars(frame: pd.DataFrame, *, unit: TimeUnit = "ms", check_order: bool = True) -> pd.DataFrame:
    """Bring a bar table into the convention, or say exactly why it cannot be.

    Accepts a ``timestamp`` (or ``time``/``date``) column of epoch numbers in ``unit`` or of
    datetimes, or a ``DatetimeIndex``; column names are matched case-insensitively; extra
    columns are dropped. With ``check_order`` (the default) rows must already be sorted
    and unique; the quality module's ``repair`` policy is the documented way to fix that.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataFormatError(f"Bars must be a pandas DataFrame, not {type(frame).__name__}.")
    frame, index = _index_from(frame, unit, "Bars")
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"Bars are missing column(s) {missing}; expected {list(BAR_COLUMNS)} plus a "
            f"timestamp. Found {list(frame.columns)}."
        )
    values = {}
    for column in BAR_COLUMNS:
        try:
            values[column] = pd.to_numeric(frame[column].to_numpy(), errors="raise").astype("float64")
        except (ValueError, TypeError) as exc:
            raise DataFormatError(f"Bar column {column!r} is not numeric: {exc}") from None
    bars = pd.DataFrame(values, index=index)
    if check_order:
        _check_order(bars.index, "Bars")
    return bars


def to_trades(frame: pd.DataFrame, *, unit: TimeUnit = "ms") -> pd.DataFrame:
    """Bring a trade tape into the convention (sorted by time; ``side`` is the aggressor)."""
    if not isinstance(frame, pd.DataFrame):
        raise DataFormatError(f"Trades must be a pandas DataFrame, not {type(frame).__name__}.")
    frame, index = _index_from(frame, unit, "Trades")
    missing = [c for c in ("price", "amount", "side") if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"Trades are missing column(s) {missing}; expected price, amount, side (and "
            f"optionally id). Found {list(frame.columns)}."
        )
    side = frame["side"].astype("string").str.lower().to_numpy()
    bad = ~np.isin(side, ["buy", "sell"])
    if bad.any():
        raise DataFormatError(
            f"Trade side must be 'buy' or 'sell' (the aggressor); found {side[bad][0]!r}."
        )
    ids = frame["id"].astype("string").to_numpy() if "id" in frame.columns else np.arange(len(frame)).astype(str)
    trades = pd.DataFrame(
        {
            "price": pd.to_numeric(frame["price"].to_numpy()).astype("float64"),
            "amount": pd.to_numeric(frame["amount"].to_numpy()).astype("float64"),
            "side": pd.array(side, dtype="string"),
            "id": pd.array(ids, dtype="string"),
        },
        index=index,
    )
    if not trades.index.is_monotonic_increasing:
        raise DataFormatError("Trades are not in time order; sort them by timestamp first.")
    return trades


def to_funding(frame: pd.DataFrame, *, unit: TimeUnit = "ms") -> pd.DataFrame:
    """Bring funding-rate history into the convention (``mark_price`` NaN where unknown)."""
    frame, index = _index_from(frame, unit, "Funding rates")
    if "funding_rate" not in frame.columns:
        raise DataFormatError(
            f"Funding rates need a 'funding_rate' column; found {list(frame.columns)}."
        )
    mark = frame["mark_price"].to_numpy() if "mark_price" in frame.columns else np.nan
    funding = pd.DataFrame(
        {"funding_rate": frame["funding_rate"].to_numpy(), "mark_price": mark}, index=index
    ).astype("float64")
    if funding["funding_rate"].isna().any():
        raise DataFormatError("Funding rates hold missing values; every funding time needs a rate.")
    _check_order(funding.index, "Funding rates")
    return funding


def empty_bars() -> pd.DataFrame:
    """A bar frame with no rows, in the convention."""
    index = pd.DatetimeIndex([], tz="UTC", name="timestamp").as_unit("ns")
    return pd.DataFrame({c: np.array([], dtype="float64") for c in BAR_COLUMNS}, index=index)


def index_from_ms(ts_ms: np.ndarray) -> pd.DatetimeIndex:
    """The convention's index (UTC, nanoseconds, named timestamp) from epoch milliseconds."""
    ns = np.asarray(ts_ms, dtype="int64") * 1_000_000
    return pd.DatetimeIndex(ns.view("datetime64[ns]"), name="timestamp").tz_localize("UTC")


def bars_from_arrays(ts_ms: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    """Bars from epoch-ms times and a (5, n) array in ``BAR_COLUMNS`` order, trusted as valid."""
    index = index_from_ms(ts_ms)
    return pd.DataFrame({c: values[i] for i, c in enumerate(BAR_COLUMNS)}, index=index, copy=False)


@dataclass(frozen=True)
class OrderBook:
    """An L2 snapshot: bids best (highest) first, asks best (lowest) first, as (price, amount)."""

    symbol: str
    timestamp: pd.Timestamp
    bids: np.ndarray = field(repr=False)
    asks: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        for side, ladder, ascending in (("bids", self.bids, False), ("asks", self.asks, True)):
            arr = np.asarray(ladder, dtype="float64").reshape(-1, 2)
            object.__setattr__(self, side, arr)
            prices = arr[:, 0]
            steps = np.diff(prices)
            if (steps <= 0).any() if ascending else (steps >= 0).any():
                raise DataFormatError(f"Order book {side} of {self.symbol} are not sorted best first.")
            if (arr <= 0).any():
                raise DataFormatError(f"Order book {side} of {self.symbol} hold non-positive prices or amounts.")
        if len(self.bids) and len(self.asks) and self.bids[0, 0] >= self.asks[0, 0]:
            raise DataFormatError(
                f"Order book of {self.symbol} is crossed: best bid {self.bids[0, 0]} >= best ask "
                f"{self.asks[0, 0]}."
            )

    @property
    def best_bid(self) -> float:
        return float(self.bids[0, 0]) if len(self.bids) else float("nan")

    @property
    def best_ask(self) -> float:
        return float(self.asks[0, 0]) if len(self.asks) else float("nan")

    @property
    def mid(self) -> float:
        return (self.best_bid + self.best_ask) / 2

    @property
    def spread(self) -> float:
        return self.best_ask - self.best_bid

    def to_frame(self) -> pd.DataFrame:
        """Both ladders in one table: side, level (0 = best), price, amount."""
        parts = [
            pd.DataFrame({"side": side, "level": np.arange(len(l)), "price": l[:, 0], "amount": l[:, 1]})
            for side, l in (("bid", self.bids), ("ask", self.asks))
        ]
        return pd.concat(parts, ignore_index=True)

    def _repr_html_(self) -> str:
        depth = 5
        rows = "".join(
            f"<tr><td>{b[1]:.6g}</td><td>{b[0]:.8g}</td><td>{a[0]:.8g}</td><td>{a[1]:.6g}</td></tr>"
            for b, a in zip(self.bids[:depth], self.asks[:depth])
        )
        return (
            f"<b>{self.symbol}</b> order book at {self.timestamp} — mid {self.mid:.8g}, "
            f"spread {self.spread:.3g}<table><tr><th>bid size</th><th>bid</th><th>ask</th>"
            f"<th>ask size</th></tr>{rows}</table>"
        )
