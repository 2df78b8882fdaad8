"""Indicators beyond TA-Lib against plain pandas, no look-ahead anywhere, bad input refused,
and the ``wb`` accessor."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import workbench.indicators as wi
from workbench.data.model import to_bars
from workbench.errors import DataFormatError, WorkbenchError

FILES = ("ADA_BTC", "ETH_BTC", "NXT_BTC")


@pytest.fixture(scope="module", params=FILES)
def bars(request: pytest.FixtureRequest, shared_data: Path) -> pd.DataFrame:
    folder = shared_data / "binance-spot" / "5m"
    return to_bars(pd.read_parquet(folder / f"{request.param}.parquet"))


@pytest.fixture(scope="module")
def eth(shared_data: Path) -> pd.DataFrame:
    return to_bars(pd.read_parquet(shared_data / "binance-spot" / "5m" / "ETH_BTC.parquet"))


def close_enough(
    ours: pd.Series | pd.DataFrame, expected: pd.Series | pd.DataFrame, atol: float = 0.0
) -> None:
    """Same index, names, NaN layout; values to 1e-9 relative (floor 1e-12 of scale)."""
    assert ours.index.equals(expected.index)
    ours_frame, expected_frame = pd.DataFrame(ours), pd.DataFrame(expected)
    assert list(ours_frame.columns) == list(expected_frame.columns)
    a, b = ours_frame.to_numpy(), expected_frame.to_numpy(dtype=float)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    valid = ~np.isnan(b)
    scale = float(np.max(np.abs(b[valid]), initial=1.0))
    np.testing.assert_allclose(a[valid], b[valid], rtol=1e-9, atol=max(atol, 1e-12 * scale))


# -- plain pandas references for the indicators TA-Lib lacks ---------------------------


def seeded_ema(x: pd.Series, period: int) -> pd.Series:
    """EMA seeded with the SMA of the first ``period`` values (TA-Lib's convention)."""
    seeded = x.copy()
    seeded.iloc[: period - 1] = np.nan
    seeded.iloc[period - 1] = x.iloc[:period].mean()
    return (
        seeded.iloc[period - 1 :].ewm(alpha=2 / (period + 1), adjust=False).mean().reindex(x.index)
    )


def wilder_atr(bars: pd.DataFrame, period: int) -> pd.Series:
    prev = bars.close.shift()
    ranges = pd.concat(
        [bars.high - bars.low, (bars.high - prev).abs(), (bars.low - prev).abs()], axis=1
    ).max(axis=1, skipna=False)
    seeded = ranges.copy()
    seeded.iloc[:period] = np.nan
    seeded.iloc[period] = ranges.iloc[1 : period + 1].mean()
    return seeded.iloc[period:].ewm(alpha=1 / period, adjust=False).mean().reindex(bars.index)


@pytest.mark.parametrize(
    ("anchor", "tz"),
    [("D", "UTC"), ("4h", "UTC"), ("D", "America/New_York"), ("W-MON", "UTC"), (None, "UTC")],
)
def test_vwap_is_the_running_session_average(bars: pd.DataFrame, anchor: str | None, tz: str):
    typical = (bars.high + bars.low + bars.close) / 3
    clock = bars.index.tz_convert(tz).tz_localize(None)
    if anchor is None:
        session = np.zeros(len(bars))
    elif anchor == "4h":  # fixed-length sessions start on multiples of 4h
        session = clock.floor(anchor)
    else:
        session = clock.to_period(anchor)
    expected = (
        (typical * bars.volume).groupby(session).cumsum() / bars.volume.groupby(session).cumsum()
    ).rename("vwap")
    close_enough(wi.vwap(bars, anchor=anchor, tz=tz), expected)


@pytest.mark.parametrize(("period", "atr_period", "multiplier"), [(20, 10, 2.0), (10, 14, 1.5)])
def test_keltner_is_ema_plus_minus_atr(bars: pd.DataFrame, period, atr_period, multiplier):
    middle = seeded_ema(bars.close, period)
    width = multiplier * wilder_atr(bars, atr_period)
    expected = pd.DataFrame({"upper": middle + width, "middle": middle, "lower": middle - width})
    close_enough(wi.keltner(bars, period, atr_period, multiplier), expected)


@pytest.mark.parametrize("period", [20, 55])
def test_donchian_is_the_rolling_extremes(bars: pd.DataFrame, period: int):
    upper, lower = bars.high.rolling(period).max(), bars.low.rolling(period).min()
    expected = pd.DataFrame({"upper": upper, "middle": (upper + lower) / 2, "lower": lower})
    close_enough(wi.donchian(bars, period), expected)


@pytest.mark.parametrize("periods", [(9, 26, 52, 26), (7, 22, 44, 22), (9, 26, 52, 0)])
def test_ichimoku_lines_are_window_midpoints(bars: pd.DataFrame, periods):
    tenkan, kijun, senkou, shift = periods

    def midpoint(n: int) -> pd.Series:
        return (bars.high.rolling(n).max() + bars.low.rolling(n).min()) / 2

    expected = pd.DataFrame(
        {
            "tenkan": midpoint(tenkan),
            "kijun": midpoint(kijun),
            "senkou_a": ((midpoint(tenkan) + midpoint(kijun)) / 2).shift(shift),
            "senkou_b": midpoint(senkou).shift(shift),
        }
    )
    close_enough(wi.ichimoku(bars, *periods), expected)


def reference_supertrend(bars: pd.DataFrame, period: int, multiplier: float) -> pd.DataFrame:
    """The textbook loop, written plainly over pandas values."""
    atr = wilder_atr(bars, period).to_numpy()
    high, low, close = bars.high.to_numpy(), bars.low.to_numpy(), bars.close.to_numpy()
    names = ("supertrend", "direction", "upper", "lower")
    rows = {name: np.full(len(bars), np.nan) for name in names}
    upper = lower = direction = None
    for i in range(period, len(bars)):
        mid = (high[i] + low[i]) / 2
        basic_upper, basic_lower = mid + multiplier * atr[i], mid - multiplier * atr[i]
        if upper is None:
            upper, lower, direction = basic_upper, basic_lower, -1
        else:
            upper = basic_upper if basic_upper < upper or close[i - 1] > upper else upper
            lower = basic_lower if basic_lower > lower or close[i - 1] < lower else lower
            if direction == -1:
                direction = 1 if close[i] > upper else -1
            else:
                direction = -1 if close[i] < lower else 1
        rows["supertrend"][i] = upper if direction == -1 else lower
        rows["direction"][i], rows["upper"][i], rows["lower"][i] = direction, upper, lower
    return pd.DataFrame(rows, index=bars.index)


@pytest.mark.parametrize(("period", "multiplier"), [(10, 3.0), (7, 2.0)])
def test_supertrend_follows_the_textbook_loop(bars: pd.DataFrame, period, multiplier):
    ours = wi.supertrend(bars, period, multiplier)
    close_enough(ours, reference_supertrend(bars, period, multiplier))
    assert set(ours.direction.dropna().unique()) == {-1.0, 1.0}


@pytest.mark.parametrize(("bins", "price_range"), [(24, None), (7, None), (10, "middle")])
def test_volume_profile_spreads_each_bar_over_its_range(bars: pd.DataFrame, bins, price_range):
    if price_range == "middle":  # an explicit range that cuts bars off at both ends
        lo, hi = bars.low.quantile(0.25), bars.high.quantile(0.75)
    else:
        lo, hi = bars.low.min(), bars.high.max()
    edges = np.linspace(lo, hi, bins + 1)
    high, low, volume = bars.high.to_numpy(), bars.low.to_numpy(), bars.volume.to_numpy()
    spread = high - low
    overlap = np.clip(
        np.minimum(high[:, None], edges[None, 1:]) - np.maximum(low[:, None], edges[None, :-1]),
        0,
        None,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.nansum(
            np.where(spread[:, None] > 0, overlap / spread[:, None], 0) * volume[:, None], axis=0
        )
    for price, amount in zip(low[spread == 0], volume[spread == 0], strict=True):
        if lo <= price <= hi:
            expected[min(np.searchsorted(edges, price, side="right") - 1, bins - 1)] += amount

    profile = wi.volume_profile(bars, bins, None if price_range is None else (lo, hi))
    np.testing.assert_allclose(profile.volume.to_numpy(), expected, rtol=1e-9)
    assert profile.index.name == "price" and len(profile) == bins
    np.testing.assert_allclose(profile.index.left.to_numpy(), edges[:-1])
    if price_range is None:
        assert profile.volume.sum() == pytest.approx(bars.volume.sum(), rel=1e-12)


@pytest.mark.parametrize("period", [20, 5])
def test_zscore_is_distance_from_the_rolling_mean_in_deviations(bars: pd.DataFrame, period):
    windows = sliding_window_view(bars.close.to_numpy(), period)
    mean, std = windows.mean(axis=1), windows.std(axis=1)
    latest = windows[:, -1]
    score = np.divide(latest - mean, std, out=np.zeros_like(mean), where=std > 0)
    expected = pd.Series(
        np.r_[np.full(period - 1, np.nan), score], bars.index, name=f"zscore_{period}"
    )
    # Where the close sits on its mean, z is ~0 and both sides carry the rounding of the
    # mean divided by the deviation (~1e-12 here): compare z, a dimensionless O(1)
    # number, to 1e-9 absolute there.
    close_enough(wi.zscore(bars.close, period), expected, atol=1e-9)


def test_flat_windows_read_zero_rather_than_dividing_by_zero() -> None:
    index = pd.date_range("2024-01-01", periods=60, freq="1min", tz="UTC")
    flat = pd.DataFrame({c: 2.5 for c in ("open", "high", "low", "close")}, index=index)
    flat["volume"] = 1.0
    assert (wi.zscore(flat.close, 10).dropna() == 0).all()
    assert (wi.stoch(flat).dropna() == 0).all().all()
    assert (wi.willr(flat).dropna() == 0).all()
    assert (wi.stddev(flat.close).dropna() == 0).all()


# -- no look-ahead ---------------------------------------------------------------------

INDICATORS: dict[str, Callable[[pd.DataFrame], pd.Series | pd.DataFrame]] = {
    "sma": lambda b: wi.sma(b.close),
    "ema": lambda b: wi.ema(b.close),
    "wma": lambda b: wi.wma(b.close),
    "dema": lambda b: wi.dema(b.close),
    "tema": lambda b: wi.tema(b.close),
    "kama": lambda b: wi.kama(b.close),
    "macd": lambda b: wi.macd(b.close),
    "rsi": lambda b: wi.rsi(b.close),
    "stoch": wi.stoch,
    "stochrsi": lambda b: wi.stochrsi(b.close),
    "willr": wi.willr,
    "cci": wi.cci,
    "roc": lambda b: wi.roc(b.close),
    "mom": lambda b: wi.mom(b.close),
    "adx": wi.adx,
    "plus_di": wi.plus_di,
    "minus_di": wi.minus_di,
    "aroon": wi.aroon,
    "bbands": lambda b: wi.bbands(b.close),
    "atr": wi.atr,
    "natr": wi.natr,
    "stddev": lambda b: wi.stddev(b.close),
    "obv": wi.obv,
    "ad": wi.ad,
    "adosc": wi.adosc,
    "mfi": wi.mfi,
    "sar": wi.sar,
    "trix": lambda b: wi.trix(b.close),
    "ultosc": wi.ultosc,
    "vwap": wi.vwap,
    "keltner": wi.keltner,
    "donchian": wi.donchian,
    "ichimoku": wi.ichimoku,
    "supertrend": wi.supertrend,
    "zscore": lambda b: wi.zscore(b.close),
}


def altered_after(bars: pd.DataFrame, t: int) -> pd.DataFrame:
    """The same bars up to row t; every later bar moved and re-sized at random."""
    rng = np.random.default_rng(t)
    changed = bars.copy()
    later = len(bars) - t - 1
    factor = np.exp(rng.normal(0.0, 0.05, later))
    for column in ("open", "high", "low", "close"):
        changed.iloc[t + 1 :, changed.columns.get_loc(column)] *= factor
    changed.iloc[t + 1 :, changed.columns.get_loc("volume")] *= rng.uniform(0.1, 10.0, later)
    return changed


@pytest.mark.parametrize("t", [700, 2900])
@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_no_look_ahead(eth: pd.DataFrame, name: str, t: int) -> None:
    """Values up to bar t do not change when the bars after t are removed or altered."""
    indicator = INDICATORS[name]
    full = pd.DataFrame(indicator(eth)).iloc[: t + 1]
    truncated = pd.DataFrame(indicator(eth.iloc[: t + 1]))
    altered = pd.DataFrame(indicator(altered_after(eth, t))).iloc[: t + 1]
    assert full.notna().any().all()
    pd.testing.assert_frame_equal(truncated, full, check_exact=True)
    pd.testing.assert_frame_equal(altered, full, check_exact=True)


def test_volume_profile_bins_each_bar_on_its_own(eth: pd.DataFrame) -> None:
    """A profile has no time axis; its no-look-ahead property is that each bar only adds
    its own volume, so the profile of bars up to t ignores every later bar."""
    price_range = (eth.low.min(), eth.high.max())
    t = 2000
    whole = wi.volume_profile(eth, 30, price_range).volume
    before = wi.volume_profile(eth.iloc[: t + 1], 30, price_range).volume
    after = wi.volume_profile(eth.iloc[t + 1 :], 30, price_range).volume
    altered = wi.volume_profile(altered_after(eth, t).iloc[: t + 1], 30, price_range).volume
    np.testing.assert_allclose(before + after, whole, rtol=1e-9)
    pd.testing.assert_series_equal(altered, before, check_exact=True)


# -- bad input -------------------------------------------------------------------------


def refused(call: Callable[[], object], *fragments: str) -> None:
    with pytest.raises(DataFormatError) as caught:
        call()
    assert isinstance(caught.value, WorkbenchError)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def test_too_short_for_the_period(eth: pd.DataFrame) -> None:
    refused(
        lambda: wi.rsi(eth.close.iloc[:14], 14), "rsi(timeperiod=14)", "at least 15 rows", "got 14"
    )
    refused(lambda: wi.adx(eth.iloc[:27]), "at least 28 rows")
    refused(lambda: wi.sma(eth.close.iloc[:0]), "got 0")
    assert wi.rsi(eth.close.iloc[:15], 14).notna().sum() == 1


def test_nan_or_infinity_inside_the_data_says_where(eth: pd.DataFrame) -> None:
    gap = eth.copy()
    gap.iloc[100, gap.columns.get_loc("low")] = np.nan
    refused(lambda: wi.atr(gap), "low is nan", str(gap.index[100]), "row 100")
    refused(lambda: wi.sma(gap.low), "nan", "row 100", "leading NaNs")
    spike = eth.close.copy()
    spike.iloc[50] = np.inf
    refused(lambda: wi.ema(spike), "inf", "row 50")
    assert wi.atr(gap.iloc[101:]).notna().any()  # the rows after the gap are fine alone


def test_leading_nans_are_accepted_and_stay_nan(eth: pd.DataFrame) -> None:
    warm = eth.close.copy()
    warm.iloc[:40] = np.nan
    ours = wi.ema(warm, 10)
    assert ours.iloc[:49].isna().all() and ours.iloc[49:].notna().all()
    pd.testing.assert_series_equal(ours.iloc[40:], wi.ema(eth.close.iloc[40:], 10))
    refused(lambda: wi.ema(warm.iloc[:45], 10), "after 40 leading NaN rows")


def test_index_must_be_sorted_and_unique(eth: pd.DataFrame) -> None:
    swapped = eth.iloc[[0, 1, 3, 2, *range(4, len(eth))]]
    refused(lambda: wi.atr(swapped), "sorted and unique", "row 3", "is earlier than")
    refused(lambda: wi.rsi(swapped.close), "row 3")
    repeated = eth.iloc[[0, 1, 2, 2, *range(3, len(eth))]]
    refused(lambda: wi.obv(repeated), "row 3", "repeats the time")


def test_columns_must_be_there_numeric_and_lower_case(eth: pd.DataFrame) -> None:
    refused(lambda: wi.atr(eth.drop(columns="low")), "needs column(s) ['low']")
    refused(
        lambda: wi.mfi(eth.rename(columns={"Volume": "x", "volume": "Volume"})),
        "['volume']",
        "Rename",
        "lower-case",
    )
    text = eth.assign(close=eth.close.astype(str))
    refused(lambda: wi.cci(text), "close must be numeric")
    refused(lambda: wi.rsi(text.close), "must be numeric")
    refused(lambda: wi.rsi(eth), "needs a pandas Series", "bars['close']")
    refused(lambda: wi.atr(eth.close), "needs a DataFrame of bars")
    doubled = pd.concat([eth, eth.close], axis=1)
    refused(lambda: wi.willr(doubled), "more than one column named ['close']")


@pytest.mark.parametrize("bad", [0, -3, 14.5, True, "14", 100_001])
def test_periods_must_be_whole_numbers_in_range(eth: pd.DataFrame, bad: object) -> None:
    refused(lambda: wi.sma(eth.close, bad), "timeperiod")
    refused(lambda: wi.atr(eth, bad), "timeperiod")
    refused(lambda: wi.macd(eth.close, signalperiod=bad), "signalperiod")


def test_parameters_talib_would_silently_reinterpret_are_refused(eth: pd.DataFrame) -> None:
    refused(lambda: wi.rsi(eth.close, 1), "between 2 and")
    refused(lambda: wi.natr(eth, 1), "between 2 and")
    refused(lambda: wi.plus_di(eth, 1), "between 2 and")
    refused(lambda: wi.macd(eth.close, 26, 12), "fastperiod (26) must be shorter")
    refused(lambda: wi.sar(eth, 0.3, 0.2), "must not exceed maximum")
    refused(lambda: wi.sar(eth, 0.0), "acceleration must be a finite number > 0")
    refused(lambda: wi.bbands(eth.close, nbdevup=-1), "nbdevup")
    refused(lambda: wi.stddev(eth.close, nbdev=float("nan")), "nbdev")
    refused(lambda: wi.supertrend(eth, multiplier=0), "multiplier")


@pytest.mark.parametrize("bad", [5, 7, 8, "trima", "hull", -1, None])
def test_unknown_or_unimplemented_moving_averages_are_refused(eth: pd.DataFrame, bad):
    refused(lambda: wi.bbands(eth.close, matype=bad), "matype", "not a supported")
    refused(lambda: wi.stoch(eth, slowd_matype=bad), "slowd_matype")


def test_moving_average_type_by_code_enum_or_name(eth: pd.DataFrame) -> None:
    by_code = wi.stochrsi(eth.close, fastd_matype=1)
    pd.testing.assert_frame_equal(by_code, wi.stochrsi(eth.close, fastd_matype="EMA"))
    pd.testing.assert_frame_equal(by_code, wi.stochrsi(eth.close, fastd_matype=wi.MAType.EMA))


def test_vwap_anchor_needs_times(eth: pd.DataFrame) -> None:
    numbered = eth.reset_index(drop=True)
    refused(lambda: wi.vwap(numbered), "needs a DatetimeIndex", "anchor=None")
    assert wi.vwap(numbered, anchor=None).notna().all()
    refused(lambda: wi.vwap(eth, anchor="fortnightly"), "cannot anchor")
    refused(lambda: wi.vwap(eth, tz="Mars/Olympus"), "cannot anchor")


def test_volume_profile_needs_a_price_range(eth: pd.DataFrame) -> None:
    flat = eth.assign(high=1.0, low=1.0)
    refused(lambda: wi.volume_profile(flat), "low < high", "pass price_range")
    refused(lambda: wi.volume_profile(eth, price_range=(2.0, 1.0)), "low < high")
    refused(lambda: wi.volume_profile(eth, bins=0), "bins")
    refused(lambda: wi.volume_profile(eth, price_range=("low", "high")), "(low, high) numbers")


# -- outputs and the accessor ----------------------------------------------------------


def test_outputs_are_aligned_named_float_series_and_frames(eth: pd.DataFrame) -> None:
    shuffled_names = eth.rename_axis("time")
    out = wi.rsi(shuffled_names.close, 9)
    assert out.name == "rsi_9" and out.index.equals(shuffled_names.index)
    assert out.index.name == "time" and out.dtype == np.float64
    assert list(wi.macd(eth.close).columns) == ["macd", "signal", "hist"]
    assert list(wi.bbands(eth.close).columns) == ["upper", "middle", "lower"]
    assert list(wi.aroon(eth).columns) == ["aroondown", "aroonup"]
    assert wi.ultosc(eth, 5, 10, 20).name == "ultosc_5_10_20"
    integers = eth.close.mul(1e8).round().astype("int64")
    pd.testing.assert_series_equal(wi.sma(integers, 5), wi.sma(integers.astype(float), 5))


PUBLIC = sorted(set(wi.__all__) - {"MAType", "IndicatorAccessor"})


def test_every_indicator_is_on_the_accessor() -> None:
    missing = [name for name in PUBLIC if not hasattr(wi.IndicatorAccessor, name)]
    assert missing == []


def test_accessor_reads_the_columns_itself(eth: pd.DataFrame) -> None:
    pd.testing.assert_series_equal(eth.wb.rsi(14), wi.rsi(eth.close, 14))
    pd.testing.assert_series_equal(eth.wb.atr(), wi.atr(eth))
    pd.testing.assert_frame_equal(eth.wb.macd(5, 35), wi.macd(eth.close, 5, 35))
    pd.testing.assert_frame_equal(eth.wb.stoch(fastk_period=9), wi.stoch(eth, fastk_period=9))
    pd.testing.assert_series_equal(eth.wb.sma(20, on="volume"), wi.sma(eth.volume, 20))
    refused(lambda: eth.wb.sma(20, on="vol"), "no column 'vol'")


def test_accessor_methods_document_themselves(eth: pd.DataFrame) -> None:
    rsi = inspect.signature(eth.wb.rsi)
    assert list(rsi.parameters) == ["timeperiod", "on"]
    assert rsi.parameters["timeperiod"].default == 14
    assert list(inspect.signature(eth.wb.atr).parameters) == ["timeperiod"]
    assert eth.wb.bbands.__doc__ == wi.bbands.__doc__
