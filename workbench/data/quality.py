"""Data-quality reports for bar series, and the policies that act on them.

Problems come in two grades:

- **errors** make bars unusable as they are: duplicate or out-of-order timestamps, NaN or
  non-positive prices, high/low that do not contain open and close, negative volume,
  open times off the timeframe's grid;
- **warnings** are worth a look but may be real: gaps (bars the timeframe implies but the
  data lacks), outlier returns (beyond ``outlier_sigma`` robust standard deviations),
  missing volume.

Policies (:func:`apply_policy`):

- ``reject``: raise :class:`~workbench.errors.DataQualityError` on any error;
- ``flag``: keep the data unchanged and return the report with it (rows are only put in
  time order, which changes no value; duplicate times still raise, since a store keyed by
  time cannot hold both rows);
- ``repair``: sort by time; of duplicate times keep the last row; drop rows with NaN or
  non-positive prices or negative volume; widen high/low to contain open and close; drop
  rows off the timeframe grid. Gaps are never filled and outliers never altered: the
  workbench does not invent prices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from workbench.data.model import BAR_COLUMNS, TimeUnit, to_bars
from workbench.data.timeframes import is_fixed, timeframe_ms
from workbench.errors import DataQualityError

Policy = Literal["reject", "flag", "repair"]
POLICIES: tuple[str, ...] = ("reject", "flag", "repair")
_PRICES = ["open", "high", "low", "close"]


@dataclass
class QualityReport:
    """What a check found in one bar series; ``issues`` lists every finding with its rows."""

    symbol: str
    timeframe: str
    rows: int
    expected_rows: int | None
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    gaps: pd.DataFrame  # start, end (first/last missing bar), missing
    issues: pd.DataFrame = field(repr=False)  # check, grade, count, examples

    @property
    def missing_bars(self) -> int:
        return int(self.gaps["missing"].sum()) if len(self.gaps) else 0

    @property
    def errors(self) -> pd.DataFrame:
        return self.issues[self.issues.grade == "error"]

    @property
    def ok(self) -> bool:
        """True when nothing makes the bars unusable (warnings may remain)."""
        return self.errors.empty

    def count(self, check: str) -> int:
        hit = self.issues.loc[self.issues.check == check, "count"]
        return int(hit.iloc[0]) if len(hit) else 0

    def findings(self) -> str:
        """The checks that found something, as ``check:count`` (empty when clean)."""
        return " ".join(f"{row.check}:{row.count}" for row in self.issues.itertuples())

    def summary(self) -> pd.Series:
        """The report in one row, a column per check, for tables across symbols."""
        counts = {check: self.count(check) for check in CHECKS}
        return pd.Series(
            {"symbol": self.symbol, "timeframe": self.timeframe, "rows": self.rows,
             "expected": self.expected_rows, "missing_bars": self.missing_bars, "gaps": len(self.gaps),
             **counts, "ok": self.ok},
            name=self.symbol,
        )

    def __str__(self) -> str:
        lines = [
            f"{self.symbol} {self.timeframe}: {self.rows} bars"
            + (f" of {self.expected_rows} expected" if self.expected_rows is not None else "")
            + f" from {self.first} to {self.last}"
        ]
        if self.gaps.shape[0]:
            lines.append(f"  gaps: {len(self.gaps)} ({self.missing_bars} missing bars)")
        for row in self.issues.itertuples():
            lines.append(f"  {row.grade}: {row.check}: {row.count} (e.g. {row.examples})")
        if len(lines) == 1:
            lines.append("  no problems found")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        status = "OK" if self.ok else "ERRORS"
        body = self.summary().to_frame().T.to_html(index=False)
        gaps = self.gaps.head(10).to_html(index=False) if len(self.gaps) else ""
        return f"<b>Quality of {self.symbol} {self.timeframe}: {status}</b>{body}{gaps}"


CHECKS: dict[str, str] = {
    "duplicate_times": "error",
    "out_of_order": "error",
    "nan_prices": "error",
    "non_positive_prices": "error",
    "high_low_inconsistent": "error",
    "negative_volume": "error",
    "off_grid_times": "error",
    "outlier_returns": "warning",
    "missing_volume": "warning",
}


def check_bars(
    raw: pd.DataFrame,
    timeframe: str,
    *,
    symbol: str = "",
    unit: TimeUnit = "ms",
    outlier_sigma: float = 20.0,
) -> QualityReport:
    """Check a bar table (in the convention or raw, as read from a file) and report."""
    bars = to_bars(raw, unit=unit, check_order=False)
    ms = bars.index.asi8 // 1_000_000
    step = timeframe_ms(timeframe)
    o, h, l, c, v = (bars[col].to_numpy() for col in BAR_COLUMNS)
    prices = bars[_PRICES].to_numpy()
    masks = {
        "duplicate_times": _duplicated(ms),
        "out_of_order": np.r_[False, np.diff(ms) < 0],
        "nan_prices": np.isnan(prices).any(axis=1),
        "non_positive_prices": (prices <= 0).any(axis=1),
        "high_low_inconsistent": (h < np.fmax(o, c)) | (l > np.fmin(o, c)) | (h < l),
        "negative_volume": v < 0,
        "off_grid_times": (ms % step != 0) if is_fixed(timeframe) else np.zeros(len(ms), bool),
        "outlier_returns": _outliers(c, outlier_sigma),
        "missing_volume": np.isnan(v),
    }
    issues = pd.DataFrame(
        [
            {"check": name, "grade": CHECKS[name], "count": int(mask.sum()),
             "examples": ", ".join(str(t) for t in bars.index[mask][:3])}
            for name, mask in masks.items() if mask.any()
        ],
        columns=["check", "grade", "count", "examples"],
    )
    unique = np.unique(ms)
    gaps = _gaps(unique, step) if is_fixed(timeframe) else _no_gaps()
    expected = int((unique[-1] - unique[0]) // step + 1) if len(unique) and is_fixed(timeframe) else None
    return QualityReport(
        symbol=symbol, timeframe=timeframe, rows=len(bars), expected_rows=expected,
        first=bars.index.min() if len(bars) else None, last=bars.index.max() if len(bars) else None,
        gaps=gaps, issues=issues,
    )


def apply_policy(
    raw: pd.DataFrame,
    timeframe: str,
    policy: Policy = "reject",
    *,
    symbol: str = "",
    unit: TimeUnit = "ms",
    outlier_sigma: float = 20.0,
) -> tuple[pd.DataFrame, QualityReport]:
    """Bars in the convention after the policy, with the report of the data as given."""
    if policy not in POLICIES:
        raise DataQualityError(f"Unknown quality policy {policy!r}; use one of {', '.join(POLICIES)}.")
    report = check_bars(raw, timeframe, symbol=symbol, unit=unit, outlier_sigma=outlier_sigma)
    bars = to_bars(raw, unit=unit, check_order=False)
    if policy == "reject" and not report.ok:
        raise DataQualityError(f"Rejected {symbol or 'bars'} (policy 'reject'):\n{report}\nFix the data, or use the 'repair' or 'flag' policy.")
    if policy == "flag":
        if report.count("duplicate_times"):
            raise DataQualityError(
                f"{symbol or 'Bars'} have {report.count('duplicate_times')} duplicate timestamps; "
                f"the 'flag' policy keeps values unchanged, so it cannot choose between them. Use 'repair'."
            )
        return bars.sort_index(kind="stable"), report
    if policy == "repair":
        bars = _repair(bars, timeframe)
    return bars, report


def _repair(bars: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    bars = bars.sort_index(kind="stable")
    bars = bars[~bars.index.duplicated(keep="last")]
    prices = bars[_PRICES]
    keep = (prices > 0).all(axis=1) & prices.notna().all(axis=1) & ~(bars["volume"] < 0)
    if is_fixed(timeframe):
        keep &= (bars.index.asi8 // 1_000_000) % timeframe_ms(timeframe) == 0
    bars = bars[keep].copy()
    bars["high"] = bars[["open", "high", "close"]].max(axis=1)
    bars["low"] = bars[["open", "low", "close"]].min(axis=1)
    return to_bars(bars)


def _duplicated(ms: np.ndarray) -> np.ndarray:
    return pd.Index(ms).duplicated(keep="first")


def _outliers(close: np.ndarray, sigma: float) -> np.ndarray:
    """Returns further than ``sigma`` robust standard deviations (MAD) from the median."""
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.diff(np.log(close))
    finite = returns[np.isfinite(returns)]
    if finite.size < 10:
        return np.zeros(len(close), bool)
    centre = np.median(finite)
    scale = 1.4826 * np.median(np.abs(finite - centre))
    if scale == 0:
        return np.zeros(len(close), bool)
    with np.errstate(invalid="ignore"):
        return np.r_[False, np.abs(returns - centre) > sigma * scale]


def _gaps(unique_ms: np.ndarray, step: int) -> pd.DataFrame:
    jumps = np.diff(unique_ms)
    at = np.flatnonzero(jumps > step)
    starts = unique_ms[at] + step
    ends = unique_ms[at + 1] - step
    return pd.DataFrame(
        {
            "start": pd.to_datetime(starts, unit="ms", utc=True),
            "end": pd.to_datetime(ends, unit="ms", utc=True),
            "missing": ((ends - starts) // step + 1).astype("int64"),
        }
    )


def _no_gaps() -> pd.DataFrame:
    return _gaps(np.empty(0, "i8"), 1)
