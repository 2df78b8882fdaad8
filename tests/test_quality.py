"""Data-quality reports on real recorded data and on planted problems; the three policies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.data.quality import apply_policy, check_bars
from workbench.errors import DataQualityError

BASE = 1_700_000_040_000  # on the 1-minute grid
SPOT = ["ADA_BTC", "ETC_BTC", "ETH_BTC", "LTC_BTC", "NXT_BTC", "XLM_BTC"]


@pytest.mark.parametrize("name", SPOT)
def test_real_spot_files(shared_data, name):
    raw = pd.read_parquet(shared_data / f"binance-spot/5m/{name}.parquet")
    report = check_bars(raw, "5m", symbol=name)
    assert report.ok
    if name == "ADA_BTC":
        assert report.missing_bars == 40
        assert report.expected_rows == len(raw) + 40
        # every reported gap really is absent, and the bars either side are present
        present = set(pd.to_datetime(raw.timestamp, unit="ms", utc=True))
        for gap in report.gaps.itertuples():
            missing = pd.date_range(gap.start, gap.end, freq="5min")
            assert len(missing) == gap.missing and not present & set(missing)
            assert gap.start - pd.Timedelta("5min") in present and gap.end + pd.Timedelta("5min") in present
    else:
        assert report.missing_bars == 0 and report.gaps.empty


def planted() -> pd.DataFrame:
    ts = BASE + 60_000 * np.arange(10)
    close = np.linspace(100, 101, 10)
    frame = pd.DataFrame({"timestamp": ts, "open": close, "high": close + 0.5, "low": close - 0.5, "close": close, "volume": 1.0})
    frame.loc[2, "high"] = frame.loc[2, "low"] - 1  # high below low
    frame.loc[4, "close"] = np.nan
    frame.loc[5, ["open", "low"]] = 0.0
    frame.loc[7, "timestamp"] = frame.loc[6, "timestamp"]  # duplicate time
    frame = pd.concat([frame.iloc[:8], frame.iloc[[9, 8]]])  # out of order at the end
    return frame.drop(index=[3])  # and a gap


def test_planted_problems_are_each_found():
    report = check_bars(planted(), "1m")
    counts = {check: report.count(check) for check in
              ("high_low_inconsistent", "nan_prices", "non_positive_prices", "duplicate_times", "out_of_order")}
    assert counts == {"high_low_inconsistent": 1, "nan_prices": 1, "non_positive_prices": 1,
                      "duplicate_times": 1, "out_of_order": 1}
    assert report.missing_bars == 2 and not report.ok  # row 3 dropped; row 7 moved onto 6
    assert "error: nan_prices: 1" in str(report)


def test_outlier_returns_are_warnings():
    close = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 1e-3, 500)))
    close[250:] *= 1.5  # a 50% jump
    frame = pd.DataFrame({"timestamp": BASE + 60_000 * np.arange(500), "open": close,
                          "high": close, "low": close, "close": close, "volume": 1.0})
    frame.loc[250, "open"] = frame.loc[250, "low"] = close[249]
    report = check_bars(frame, "1m")
    assert report.count("outlier_returns") == 1 and report.ok


def test_reject_raises_and_flag_keeps_values():
    with pytest.raises(DataQualityError, match="policy 'reject'"):
        apply_policy(planted(), "1m", "reject")
    with pytest.raises(DataQualityError, match="duplicate timestamps"):
        apply_policy(planted(), "1m", "flag")
    no_dupes = planted().drop_duplicates("timestamp")
    bars, report = apply_policy(no_dupes, "1m", "flag")
    assert not report.ok and len(bars) == len(no_dupes) and bars.index.is_monotonic_increasing
    assert np.isnan(bars.close).sum() == 1  # nothing repaired


def test_repair_is_documented_behaviour():
    bars, report = apply_policy(planted(), "1m", "repair")
    assert not report.ok  # the report describes the data as given
    after = check_bars(bars, "1m")
    assert after.ok and after.missing_bars >= 1  # gaps stay gaps: nothing is invented
    assert bars.index.is_unique and bars.index.is_monotonic_increasing
    # 8 distinct times (the later duplicate kept), less the NaN and the zero prices; the
    # high-below-low bar is widened, not dropped
    assert len(bars) == 6 and after.missing_bars == 4
    row = bars.loc[pd.Timestamp(BASE + 120_000, unit="ms", tz="UTC")]
    assert row.high == max(row.open, row.close) and row.low <= min(row.open, row.close)
