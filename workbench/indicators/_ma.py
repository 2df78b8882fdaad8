"""Moving-average selection: TA-Lib's ``MAType`` codes and how a caller may name them.

Indicators that smooth with a caller-chosen average (``stoch``, ``stochrsi``, ``bbands``)
take ``matype`` as TA-Lib's integer code, a :class:`MAType` or its name (``"ema"``).
TRIMA, MAMA and T3 are not implemented and are refused rather than approximated.
"""

from __future__ import annotations

from enum import IntEnum

from workbench.errors import DataFormatError


class MAType(IntEnum):
    """TA-Lib's moving-average codes (``talib.MA_Type``) for the averages implemented here."""

    SMA = 0
    EMA = 1
    WMA = 2
    DEMA = 3
    TEMA = 4
    KAMA = 6


def parse_matype(value: MAType | int | str, name: str) -> MAType:
    """The :class:`MAType` a caller meant, or a DataFormatError naming the valid choices."""
    choices = ", ".join(f"{m.name.lower()} ({m.value})" for m in MAType)
    try:
        if isinstance(value, str):
            return MAType[value.upper()]
        if isinstance(value, bool):
            raise ValueError
        return MAType(value)
    except (KeyError, ValueError):
        raise DataFormatError(
            f"{name}={value!r} is not a supported moving average; use one of {choices}. "
            f"(TA-Lib's TRIMA, MAMA and T3 are not implemented.)"
        ) from None
