"""Technical indicators over pandas bars: TA-Lib's set on numba kernels, plus a few more.

::

    from workbench.indicators import rsi, macd, atr
    rsi(bars["close"], 14)      # Series "rsi_14", aligned with bars
    macd(bars["close"])         # DataFrame: macd, signal, hist
    bars.wb.atr()               # every indicator is also a method of the "wb" accessor

Conventions

- Names, parameter names and defaults are TA-Lib's, lower-cased: ``talib.STOCH(h, l, c,
  fastk_period=9)`` is ``stoch(bars, fastk_period=9)``. Price indicators take a Series;
  the others a bar DataFrame with the lower-case ``high, low, close, volume`` columns
  they need. Results keep the input's index; multi-output ones are DataFrames.
- Values are TA-Lib 0.8's (tested to 1e-9 relative; on the recorded data they are
  bit-identical), warm-up included: the first ``lookback`` rows are NaN; EMAs are seeded with the SMA of
  their first ``period`` values and TA-Lib's default unstable period of 0 is kept, so
  early values carry that seed exactly as TA-Lib's do; ``stoch``, ``stochrsi`` and
  ``bbands`` smooth with the chosen :class:`MAType`; MACD seeds both EMAs on the same bar;
  SAR consumes the first bar.
- Bad input raises :class:`~workbench.errors.DataFormatError` saying what and where:
  a missing or non-numeric column, an unsorted or duplicated DatetimeIndex, a period
  out of range, too few rows for one output. Leading NaNs are accepted, as TA-Lib
  accepts them (the output is NaN there, so one indicator's warm-up can feed another);
  a NaN or infinity after the first complete row is refused with its position.
- Where TA-Lib silently reinterprets a parameter, it is refused instead: ``macd`` with
  fast >= slow (TA-Lib swaps them), ``sar`` with acceleration > maximum (TA-Lib lowers
  it), period 1 for ``natr``/``plus_di``/``minus_di`` (TA-Lib returns unscaled ratios),
  and MA types TRIMA, MAMA and T3, which are not implemented.

Additions TA-Lib lacks: ``vwap`` (session-anchored), ``keltner``, ``donchian``,
``ichimoku``, ``supertrend``, ``volume_profile`` and ``zscore``.
"""

from workbench.indicators import accessor as _accessor  # registers DataFrame.wb
from workbench.indicators._ma import MAType
from workbench.indicators.momentum import (
    adx,
    aroon,
    cci,
    macd,
    mfi,
    minus_di,
    mom,
    plus_di,
    roc,
    rsi,
    stoch,
    stochrsi,
    trix,
    ultosc,
    willr,
)
from workbench.indicators.overlap import (
    bbands,
    dema,
    ema,
    ichimoku,
    kama,
    sar,
    sma,
    supertrend,
    tema,
    wma,
)
from workbench.indicators.volatility import atr, donchian, keltner, natr, stddev, zscore
from workbench.indicators.volume import ad, adosc, obv, volume_profile, vwap

IndicatorAccessor = _accessor.IndicatorAccessor

__all__ = [
    "IndicatorAccessor",
    "MAType",
    "ad",
    "adosc",
    "adx",
    "aroon",
    "atr",
    "bbands",
    "cci",
    "dema",
    "donchian",
    "ema",
    "ichimoku",
    "kama",
    "keltner",
    "macd",
    "mfi",
    "minus_di",
    "mom",
    "natr",
    "obv",
    "plus_di",
    "roc",
    "rsi",
    "sar",
    "sma",
    "stddev",
    "stoch",
    "stochrsi",
    "supertrend",
    "tema",
    "trix",
    "ultosc",
    "volume_profile",
    "vwap",
    "willr",
    "wma",
    "zscore",
]
