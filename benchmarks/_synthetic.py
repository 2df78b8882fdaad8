"""The seeded synthetic bars the benchmarks share."""

from __future__ import annotations

import numpy as np
import pandas as pd


def synthetic_bars(rows: int, seed: int = 7, *, gap: float = 0.0) -> pd.DataFrame:
    """A geometric random walk in the bar convention (UTC minute index, float64 OHLCV).

    Each bar opens at the previous close, moved by a lognormal gap of scale ``gap`` when
    it is not 0 (so fills at the next open differ from the signal bar's close)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, rows)))
    open_ = np.r_[close[0], close[:-1]]
    if gap:
        open_ = open_ * np.exp(rng.normal(0.0, gap, rows))
    wick = np.abs(rng.normal(0.0, 5e-4, (2, rows)))
    index = pd.date_range("2024-01-01", periods=rows, freq="1min", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1.0 + wick[0]),
            "low": np.minimum(open_, close) * (1.0 - wick[1]),
            "close": close,
            "volume": rng.lognormal(3.0, 1.0, rows),
        },
        index=index,
    )
