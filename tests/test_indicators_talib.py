"""Every indicator TA-Lib also has equals TA-Lib's output, warm-up NaNs included.

Indicator x parameter set x file: TA-Lib's defaults and at least one other set each, on
every recorded 5-minute Binance file, plus a synthetic frame built to hit the edge cases
(flat windows, bars with no range, zero volume, a zero close, tiny and huge prices).
Tolerance: 1e-9 relative, with an absolute floor of 1e-12 of the output's scale for
values that cross zero; in practice the results are bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib

import workbench.indicators as wi
from workbench.data.model import to_bars

FILES = ("ADA_BTC", "ETC_BTC", "ETH_BTC", "LTC_BTC", "NXT_BTC", "XLM_BTC")
EDGE = "edge_cases"
SMA, EMA, WMA, DEMA, TEMA, KAMA = 0, 1, 2, 3, 4, 6  # talib.MA_Type codes

Ours = Callable[[pd.DataFrame], pd.Series | pd.DataFrame]
Theirs = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], object]


def case(name: str, ours: Ours, theirs: Theirs):
    return pytest.param(ours, theirs, id=name)


CASES = [
    case("sma", lambda b: wi.sma(b.close), lambda h, lo, c, v: talib.SMA(c)),
    case("sma-10", lambda b: wi.sma(b.close, 10), lambda h, lo, c, v: talib.SMA(c, 10)),
    case("ema", lambda b: wi.ema(b.close), lambda h, lo, c, v: talib.EMA(c)),
    case("ema-9", lambda b: wi.ema(b.close, 9), lambda h, lo, c, v: talib.EMA(c, 9)),
    case("wma", lambda b: wi.wma(b.close), lambda h, lo, c, v: talib.WMA(c)),
    case("wma-7", lambda b: wi.wma(b.close, 7), lambda h, lo, c, v: talib.WMA(c, 7)),
    case("dema", lambda b: wi.dema(b.close), lambda h, lo, c, v: talib.DEMA(c)),
    case("dema-12", lambda b: wi.dema(b.close, 12), lambda h, lo, c, v: talib.DEMA(c, 12)),
    case("tema", lambda b: wi.tema(b.close), lambda h, lo, c, v: talib.TEMA(c)),
    case("tema-8", lambda b: wi.tema(b.close, 8), lambda h, lo, c, v: talib.TEMA(c, 8)),
    case("kama", lambda b: wi.kama(b.close), lambda h, lo, c, v: talib.KAMA(c)),
    case("kama-10", lambda b: wi.kama(b.close, 10), lambda h, lo, c, v: talib.KAMA(c, 10)),
    case("macd", lambda b: wi.macd(b.close), lambda h, lo, c, v: talib.MACD(c)),
    case(
        "macd-5-35-5",
        lambda b: wi.macd(b.close, 5, 35, 5),
        lambda h, lo, c, v: talib.MACD(c, 5, 35, 5),
    ),
    case(
        "macd-8-17-1",
        lambda b: wi.macd(b.close, 8, 17, 1),
        lambda h, lo, c, v: talib.MACD(c, 8, 17, 1),
    ),
    case("rsi", lambda b: wi.rsi(b.close), lambda h, lo, c, v: talib.RSI(c)),
    case("rsi-6", lambda b: wi.rsi(b.close, 6), lambda h, lo, c, v: talib.RSI(c, 6)),
    case("stoch", lambda b: wi.stoch(b), lambda h, lo, c, v: talib.STOCH(h, lo, c)),
    case(
        "stoch-14-3ema-3ema",
        lambda b: wi.stoch(b, 14, 3, "ema", 3, "ema"),
        lambda h, lo, c, v: talib.STOCH(h, lo, c, 14, 3, EMA, 3, EMA),
    ),
    case(
        "stoch-9-1-4wma",
        lambda b: wi.stoch(b, 9, 1, SMA, 4, WMA),
        lambda h, lo, c, v: talib.STOCH(h, lo, c, 9, 1, SMA, 4, WMA),
    ),
    case(
        "stoch-5-3dema-3kama",
        lambda b: wi.stoch(b, 5, 3, DEMA, 3, KAMA),
        lambda h, lo, c, v: talib.STOCH(h, lo, c, 5, 3, DEMA, 3, KAMA),
    ),
    case("stochrsi", lambda b: wi.stochrsi(b.close), lambda h, lo, c, v: talib.STOCHRSI(c)),
    case(
        "stochrsi-21-9-4ema",
        lambda b: wi.stochrsi(b.close, 21, 9, 4, EMA),
        lambda h, lo, c, v: talib.STOCHRSI(c, 21, 9, 4, EMA),
    ),
    case(
        "stochrsi-14-14-1tema",
        lambda b: wi.stochrsi(b.close, 14, 14, 1, TEMA),
        lambda h, lo, c, v: talib.STOCHRSI(c, 14, 14, 1, TEMA),
    ),
    case("willr", lambda b: wi.willr(b), lambda h, lo, c, v: talib.WILLR(h, lo, c)),
    case("willr-5", lambda b: wi.willr(b, 5), lambda h, lo, c, v: talib.WILLR(h, lo, c, 5)),
    case("cci", lambda b: wi.cci(b), lambda h, lo, c, v: talib.CCI(h, lo, c)),
    case("cci-20", lambda b: wi.cci(b, 20), lambda h, lo, c, v: talib.CCI(h, lo, c, 20)),
    case("roc", lambda b: wi.roc(b.close), lambda h, lo, c, v: talib.ROC(c)),
    case("roc-1", lambda b: wi.roc(b.close, 1), lambda h, lo, c, v: talib.ROC(c, 1)),
    case("mom", lambda b: wi.mom(b.close), lambda h, lo, c, v: talib.MOM(c)),
    case("mom-3", lambda b: wi.mom(b.close, 3), lambda h, lo, c, v: talib.MOM(c, 3)),
    case("adx", lambda b: wi.adx(b), lambda h, lo, c, v: talib.ADX(h, lo, c)),
    case("adx-7", lambda b: wi.adx(b, 7), lambda h, lo, c, v: talib.ADX(h, lo, c, 7)),
    case("plus_di", lambda b: wi.plus_di(b), lambda h, lo, c, v: talib.PLUS_DI(h, lo, c)),
    case(
        "plus_di-25", lambda b: wi.plus_di(b, 25), lambda h, lo, c, v: talib.PLUS_DI(h, lo, c, 25)
    ),
    case("minus_di", lambda b: wi.minus_di(b), lambda h, lo, c, v: talib.MINUS_DI(h, lo, c)),
    case(
        "minus_di-25",
        lambda b: wi.minus_di(b, 25),
        lambda h, lo, c, v: talib.MINUS_DI(h, lo, c, 25),
    ),
    case("aroon", lambda b: wi.aroon(b), lambda h, lo, c, v: talib.AROON(h, lo)),
    case("aroon-25", lambda b: wi.aroon(b, 25), lambda h, lo, c, v: talib.AROON(h, lo, 25)),
    case("bbands", lambda b: wi.bbands(b.close), lambda h, lo, c, v: talib.BBANDS(c)),
    case(
        "bbands-10-1.5-2.5ema",
        lambda b: wi.bbands(b.close, 10, 1.5, 2.5, EMA),
        lambda h, lo, c, v: talib.BBANDS(c, 10, 1.5, 2.5, EMA),
    ),
    case(
        "bbands-14-1-3sma",
        lambda b: wi.bbands(b.close, 14, 1.0, 3.0, SMA),
        lambda h, lo, c, v: talib.BBANDS(c, 14, 1.0, 3.0, SMA),
    ),
    case(
        "bbands-10wma",
        lambda b: wi.bbands(b.close, 10, matype="wma"),
        lambda h, lo, c, v: talib.BBANDS(c, 10, 2.0, 2.0, WMA),
    ),
    case(
        "bbands-15kama",
        lambda b: wi.bbands(b.close, 15, matype=KAMA),
        lambda h, lo, c, v: talib.BBANDS(c, 15, 2.0, 2.0, KAMA),
    ),
    case(
        "bbands-5tema",
        lambda b: wi.bbands(b.close, 5, 1.0, 1.0, TEMA),
        lambda h, lo, c, v: talib.BBANDS(c, 5, 1.0, 1.0, TEMA),
    ),
    case("atr", lambda b: wi.atr(b), lambda h, lo, c, v: talib.ATR(h, lo, c)),
    case("atr-5", lambda b: wi.atr(b, 5), lambda h, lo, c, v: talib.ATR(h, lo, c, 5)),
    case("atr-1", lambda b: wi.atr(b, 1), lambda h, lo, c, v: talib.ATR(h, lo, c, 1)),
    case("natr", lambda b: wi.natr(b), lambda h, lo, c, v: talib.NATR(h, lo, c)),
    case("natr-7", lambda b: wi.natr(b, 7), lambda h, lo, c, v: talib.NATR(h, lo, c, 7)),
    case("stddev", lambda b: wi.stddev(b.close), lambda h, lo, c, v: talib.STDDEV(c)),
    case(
        "stddev-20-2",
        lambda b: wi.stddev(b.close, 20, 2.0),
        lambda h, lo, c, v: talib.STDDEV(c, 20, 2.0),
    ),
    case("obv", lambda b: wi.obv(b), lambda h, lo, c, v: talib.OBV(c, v)),
    case("ad", lambda b: wi.ad(b), lambda h, lo, c, v: talib.AD(h, lo, c, v)),
    case("adosc", lambda b: wi.adosc(b), lambda h, lo, c, v: talib.ADOSC(h, lo, c, v)),
    case(
        "adosc-5-20",
        lambda b: wi.adosc(b, 5, 20),
        lambda h, lo, c, v: talib.ADOSC(h, lo, c, v, 5, 20),
    ),
    case(
        "adosc-12-4",
        lambda b: wi.adosc(b, 12, 4),
        lambda h, lo, c, v: talib.ADOSC(h, lo, c, v, 12, 4),
    ),
    case("mfi", lambda b: wi.mfi(b), lambda h, lo, c, v: talib.MFI(h, lo, c, v)),
    case("mfi-7", lambda b: wi.mfi(b, 7), lambda h, lo, c, v: talib.MFI(h, lo, c, v, 7)),
    case("sar", lambda b: wi.sar(b), lambda h, lo, c, v: talib.SAR(h, lo)),
    case(
        "sar-0.01-0.1",
        lambda b: wi.sar(b, 0.01, 0.1),
        lambda h, lo, c, v: talib.SAR(h, lo, 0.01, 0.1),
    ),
    case(
        "sar-0.05-0.5",
        lambda b: wi.sar(b, 0.05, 0.5),
        lambda h, lo, c, v: talib.SAR(h, lo, 0.05, 0.5),
    ),
    case("trix", lambda b: wi.trix(b.close), lambda h, lo, c, v: talib.TRIX(c)),
    case("trix-12", lambda b: wi.trix(b.close, 12), lambda h, lo, c, v: talib.TRIX(c, 12)),
    case("ultosc", lambda b: wi.ultosc(b), lambda h, lo, c, v: talib.ULTOSC(h, lo, c)),
    case(
        "ultosc-5-10-20",
        lambda b: wi.ultosc(b, 5, 10, 20),
        lambda h, lo, c, v: talib.ULTOSC(h, lo, c, 5, 10, 20),
    ),
    case(
        "ultosc-28-7-14",
        lambda b: wi.ultosc(b, 28, 7, 14),
        lambda h, lo, c, v: talib.ULTOSC(h, lo, c, 28, 7, 14),
    ),
]


def edge_case_bars() -> pd.DataFrame:
    """Bars that exercise the guards: flat stretches, H == L, zero volume and a zero close,
    prices from 1e-8 to 1e5."""
    rng = np.random.default_rng(11)
    rows = 3000
    close = np.exp(np.cumsum(rng.normal(0.0, 0.01, rows)))
    close[300:420] = close[299]  # a long flat stretch
    close[1000:1100] *= 1e-8 / close[1000:1100].mean()  # a tiny-priced stretch
    close[2000:2100] *= 1e5 / close[2000:2100].mean()  # a huge-priced stretch
    close[2500] = 0.0
    spread = np.abs(rng.normal(0.0, 0.004, rows)) * close
    spread[300:420] = 0.0
    spread[::97] = 0.0
    volume = rng.lognormal(2.0, 1.0, rows)
    volume[300:360] = 0.0
    volume[::53] = 0.0
    index = pd.date_range("2024-01-01", periods=rows, freq="5min", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {
            "open": close,
            "high": close + spread,
            "low": close - spread * 0.7,
            "close": close,
            "volume": volume,
        },
        index=index,
    )


@cache
def load(name: str, folder: Path) -> pd.DataFrame:
    if name == EDGE:
        return edge_case_bars()
    return to_bars(pd.read_parquet(folder / f"{name}.parquet"))


@pytest.fixture(scope="module")
def folder(shared_data: Path) -> Path:
    return shared_data / "binance-spot" / "5m"


def test_every_recorded_file_is_covered(folder: Path) -> None:
    assert sorted(p.stem for p in folder.glob("*.parquet")) == sorted(FILES)


def assert_matches_talib(ours: pd.Series | pd.DataFrame, theirs: object, bars: pd.DataFrame):
    expected = [theirs] if isinstance(theirs, np.ndarray) else list(theirs)
    if isinstance(ours, pd.Series):
        ours = ours.to_frame()
    assert ours.index.equals(bars.index)
    assert ours.shape[1] == len(expected)
    for column, reference in zip(ours.columns, expected, strict=True):
        values = ours[column].to_numpy()
        assert values.dtype == np.float64
        np.testing.assert_array_equal(np.isnan(values), np.isnan(reference), err_msg=column)
        valid = ~np.isnan(reference)
        scale = float(np.max(np.abs(reference[valid]), initial=1.0))
        np.testing.assert_allclose(
            values[valid], reference[valid], rtol=1e-9, atol=1e-12 * scale, err_msg=column
        )


@pytest.mark.parametrize("name", [*FILES, EDGE])
@pytest.mark.parametrize(("ours", "theirs"), CASES)
def test_equals_talib(ours: Ours, theirs: Theirs, name: str, folder: Path) -> None:
    bars = load(name, folder)
    arrays = (bars[k].to_numpy() for k in ("high", "low", "close", "volume"))
    assert_matches_talib(ours(bars), theirs(*arrays), bars)


def test_leading_nans_are_skipped_like_talib(folder: Path) -> None:
    """One indicator's warm-up can feed another, with TA-Lib's result."""
    close = load("ETH_BTC", folder).close
    strength = wi.rsi(close, 14)
    assert_matches_talib(wi.sma(strength, 10), talib.SMA(strength.to_numpy(), 10), close.to_frame())
    assert_matches_talib(wi.macd(strength), talib.MACD(strength.to_numpy()), close.to_frame())
    bars = load("LTC_BTC", folder).copy()
    bars.iloc[:25, bars.columns.get_loc("high")] = np.nan  # one column starting later
    h, lo, c = (bars[k].to_numpy() for k in ("high", "low", "close"))
    assert_matches_talib(wi.adx(bars), talib.ADX(h, lo, c), bars)
