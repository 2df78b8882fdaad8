"""The ``wb`` DataFrame accessor: every indicator as a method of a bar frame, for notebooks.

``bars.wb.rsi(14)`` is ``rsi(bars["close"], 14)`` and ``bars.wb.atr()`` is ``atr(bars)``.
Price indicators take ``on=`` to read another column (``bars.wb.sma(20, on="volume")``).
The methods carry the functions' signatures and docstrings, so ``?`` and tab completion
work as on the functions.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import pandas as pd

from workbench.errors import DataFormatError
from workbench.indicators import momentum, overlap, volatility, volume

PRICE_INDICATORS: tuple[Callable[..., object], ...] = (
    overlap.sma,
    overlap.ema,
    overlap.wma,
    overlap.dema,
    overlap.tema,
    overlap.kama,
    overlap.bbands,
    momentum.macd,
    momentum.rsi,
    momentum.stochrsi,
    momentum.roc,
    momentum.mom,
    momentum.trix,
    volatility.stddev,
    volatility.zscore,
)
BAR_INDICATORS: tuple[Callable[..., object], ...] = (
    overlap.sar,
    overlap.ichimoku,
    overlap.supertrend,
    momentum.stoch,
    momentum.willr,
    momentum.cci,
    momentum.adx,
    momentum.plus_di,
    momentum.minus_di,
    momentum.aroon,
    momentum.ultosc,
    momentum.mfi,
    volatility.atr,
    volatility.natr,
    volatility.keltner,
    volatility.donchian,
    volume.obv,
    volume.ad,
    volume.adosc,
    volume.vwap,
    volume.volume_profile,
)


@pd.api.extensions.register_dataframe_accessor("wb")
class IndicatorAccessor:
    """Indicators of this bar frame: ``bars.wb.<indicator>(...)``."""

    def __init__(self, bars: pd.DataFrame) -> None:
        self._bars = bars


def _signature(func: Callable[..., object], extra: list[inspect.Parameter]) -> inspect.Signature:
    """``func``'s signature with its data argument replaced by ``self`` (plus ``extra``)."""
    signature = inspect.signature(func)
    params = list(signature.parameters.values())[1:]
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return signature.replace(parameters=[this, *params, *extra])


def _on_price(func: Callable[..., object]) -> Callable[..., object]:
    @functools.wraps(func)
    def method(self: IndicatorAccessor, *args: object, on: str = "close", **kwargs: object):
        if on not in self._bars.columns:
            raise DataFormatError(
                f"{func.__name__}: the frame has no column {on!r} (on={on!r}); it has "
                f"{list(self._bars.columns)}."
            )
        return func(self._bars[on], *args, **kwargs)

    on = inspect.Parameter("on", inspect.Parameter.KEYWORD_ONLY, default="close", annotation="str")
    method.__signature__ = _signature(func, [on])  # type: ignore[attr-defined]
    return method


def _on_bars(func: Callable[..., object]) -> Callable[..., object]:
    @functools.wraps(func)
    def method(self: IndicatorAccessor, *args: object, **kwargs: object):
        return func(self._bars, *args, **kwargs)

    method.__signature__ = _signature(func, [])  # type: ignore[attr-defined]
    return method


for _func in PRICE_INDICATORS:
    setattr(IndicatorAccessor, _func.__name__, _on_price(_func))
for _func in BAR_INDICATORS:
    setattr(IndicatorAccessor, _func.__name__, _on_bars(_func))
del _func
