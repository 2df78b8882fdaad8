"""Indicator speed against TA-Lib, side by side in one process.

Times every indicator TA-Lib also has over 1,000,000 seeded synthetic bars: ours through
the public pandas API (validation included), TA-Lib's C functions on the same numpy
arrays, best of several runs after a warm-up call (numba compiled). Prints a table with
both times and the ratio ours / TA-Lib, the median and maximum ratio, and, for scale, a
naive pandas implementation of the ten most used indicators. Ends with one JSON line
holding every figure.

    .venv/bin/python benchmarks/indicators.py [--bars N] [--runs R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import talib

import workbench.indicators as wi
from _synthetic import synthetic_bars


def cases(bars: pd.DataFrame) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """Each TA-Lib-shared indicator at TA-Lib's defaults: (ours, TA-Lib)."""
    c = bars["close"]
    h, lo, cc, v = (bars[k].to_numpy() for k in ("high", "low", "close", "volume"))
    return {
        "sma": (lambda: wi.sma(c), lambda: talib.SMA(cc)),
        "ema": (lambda: wi.ema(c), lambda: talib.EMA(cc)),
        "wma": (lambda: wi.wma(c), lambda: talib.WMA(cc)),
        "dema": (lambda: wi.dema(c), lambda: talib.DEMA(cc)),
        "tema": (lambda: wi.tema(c), lambda: talib.TEMA(cc)),
        "kama": (lambda: wi.kama(c), lambda: talib.KAMA(cc)),
        "macd": (lambda: wi.macd(c), lambda: talib.MACD(cc)),
        "rsi": (lambda: wi.rsi(c), lambda: talib.RSI(cc)),
        "stoch": (lambda: wi.stoch(bars), lambda: talib.STOCH(h, lo, cc)),
        "stochrsi": (lambda: wi.stochrsi(c), lambda: talib.STOCHRSI(cc)),
        "willr": (lambda: wi.willr(bars), lambda: talib.WILLR(h, lo, cc)),
        "cci": (lambda: wi.cci(bars), lambda: talib.CCI(h, lo, cc)),
        "roc": (lambda: wi.roc(c), lambda: talib.ROC(cc)),
        "mom": (lambda: wi.mom(c), lambda: talib.MOM(cc)),
        "adx": (lambda: wi.adx(bars), lambda: talib.ADX(h, lo, cc)),
        "plus_di": (lambda: wi.plus_di(bars), lambda: talib.PLUS_DI(h, lo, cc)),
        "minus_di": (lambda: wi.minus_di(bars), lambda: talib.MINUS_DI(h, lo, cc)),
        "aroon": (lambda: wi.aroon(bars), lambda: talib.AROON(h, lo)),
        "bbands": (lambda: wi.bbands(c), lambda: talib.BBANDS(cc)),
        "atr": (lambda: wi.atr(bars), lambda: talib.ATR(h, lo, cc)),
        "natr": (lambda: wi.natr(bars), lambda: talib.NATR(h, lo, cc)),
        "stddev": (lambda: wi.stddev(c), lambda: talib.STDDEV(cc)),
        "obv": (lambda: wi.obv(bars), lambda: talib.OBV(cc, v)),
        "ad": (lambda: wi.ad(bars), lambda: talib.AD(h, lo, cc, v)),
        "adosc": (lambda: wi.adosc(bars), lambda: talib.ADOSC(h, lo, cc, v)),
        "mfi": (lambda: wi.mfi(bars), lambda: talib.MFI(h, lo, cc, v)),
        "sar": (lambda: wi.sar(bars), lambda: talib.SAR(h, lo)),
        "trix": (lambda: wi.trix(c), lambda: talib.TRIX(cc)),
        "ultosc": (lambda: wi.ultosc(bars), lambda: talib.ULTOSC(h, lo, cc)),
    }


def naive_pandas(bars: pd.DataFrame) -> dict[str, Callable[[], object]]:
    """What one would write in plain pandas for the ten most used indicators (for scale)."""
    high, low, close, volume = (bars[k] for k in ("high", "low", "close", "volume"))

    def wilder(x: pd.Series, n: int) -> pd.Series:
        return x.ewm(alpha=1.0 / n, adjust=False).mean()

    def true_range() -> pd.Series:
        prev = close.shift()
        return pd.concat([high - low, (high - prev).abs(), (low - prev).abs()], axis=1).max(axis=1)

    def rsi() -> pd.Series:
        change = close.diff()
        gain, loss = wilder(change.clip(lower=0), 14), wilder(-change.clip(upper=0), 14)
        return 100 * gain / (gain + loss)

    def macd() -> pd.DataFrame:
        line = close.ewm(span=12, adjust=False).mean() - close.ewm(span=26, adjust=False).mean()
        signal = line.ewm(span=9, adjust=False).mean()
        return pd.DataFrame({"macd": line, "signal": signal, "hist": line - signal})

    def bbands() -> pd.DataFrame:
        mid, std = close.rolling(20).mean(), close.rolling(20).std(ddof=0)
        return pd.DataFrame({"upper": mid + 2 * std, "middle": mid, "lower": mid - 2 * std})

    def stoch() -> pd.DataFrame:
        lowest, highest = low.rolling(5).min(), high.rolling(5).max()
        k = (100 * (close - lowest) / (highest - lowest)).rolling(3).mean()
        return pd.DataFrame({"slowk": k, "slowd": k.rolling(3).mean()})

    def adx() -> pd.Series:
        up, down = high.diff(), -low.diff()
        plus = up.where((up > down) & (up > 0), 0.0)
        minus = down.where((down > up) & (down > 0), 0.0)
        tr = wilder(true_range(), 14)
        plus_di, minus_di = 100 * wilder(plus, 14) / tr, 100 * wilder(minus, 14) / tr
        return wilder(100 * (plus_di - minus_di).abs() / (plus_di + minus_di), 14)

    def vwap() -> pd.Series:
        typical = (high + low + close) / 3
        day = bars.index.floor("D")
        return (typical * volume).groupby(day).cumsum() / volume.groupby(day).cumsum()

    return {
        "sma": lambda: close.rolling(30).mean(),
        "ema": lambda: close.ewm(span=30, adjust=False).mean(),
        "rsi": rsi,
        "macd": macd,
        "bbands": bbands,
        "atr": lambda: wilder(true_range(), 14),
        "stoch": stoch,
        "adx": adx,
        "obv": lambda: (np.sign(close.diff()).fillna(0) * volume).cumsum(),
        "vwap": vwap,
    }


def best_of(func: Callable[[], object], runs: int) -> float:
    """Fastest of ``runs`` timed calls after one warm-up call, in milliseconds."""
    func()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return 1000.0 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    bars = synthetic_bars(args.bars)
    pandas_impl = naive_pandas(bars)

    rows: dict[str, dict[str, float]] = {}
    print(f"{args.bars:,} bars, best of {args.runs} runs (ms)\n")
    print(f"{'indicator':<10} {'ours':>9} {'TA-Lib':>9} {'ratio':>7} {'pandas':>9}")
    for name, (ours, theirs) in cases(bars).items():
        row = {"ours_ms": best_of(ours, args.runs), "talib_ms": best_of(theirs, args.runs)}
        row["ratio"] = row["ours_ms"] / row["talib_ms"]
        if name in pandas_impl:
            row["pandas_ms"] = best_of(pandas_impl[name], args.runs)
        rows[name] = row
        pandas_ms = f"{row['pandas_ms']:9.2f}" if "pandas_ms" in row else " " * 9
        print(
            f"{name:<10} {row['ours_ms']:9.2f} {row['talib_ms']:9.2f} "
            f"{row['ratio']:7.2f} {pandas_ms}"
        )

    vwap = {
        "ours_ms": best_of(lambda: wi.vwap(bars), args.runs),
        "pandas_ms": best_of(pandas_impl["vwap"], args.runs),
    }
    print(f"{'vwap':<10} {vwap['ours_ms']:9.2f} {'-':>9} {'-':>7} {vwap['pandas_ms']:9.2f}")

    ratios = [row["ratio"] for row in rows.values()]
    median, worst = statistics.median(ratios), max(ratios)
    slowest = max(rows, key=lambda name: rows[name]["ratio"])
    print(f"\nratio ours / TA-Lib: median {median:.2f}, max {worst:.2f} ({slowest})")
    summary = {
        "bars": args.bars,
        "runs": args.runs,
        "indicators": {
            name: {k: round(x, 3) for k, x in row.items()} for name, row in rows.items()
        },
        "vwap": {k: round(x, 3) for k, x in vwap.items()},
        "median_ratio": round(median, 3),
        "max_ratio": round(worst, 3),
        "max_ratio_indicator": slowest,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
