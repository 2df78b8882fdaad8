"""MACD trend."""

from __future__ import annotations

from typing import ClassVar

import pandas as pd
import param

from workbench.indicators import macd
from workbench.indicators._validate import MAX_PERIOD
from workbench.strategies import _rules
from workbench.strategies.base import Inputs, Strategy


class MacdTrend(Strategy):
    """Long while the MACD line is above its signal line, short while below.

    Strength: the histogram (MACD - signal) in standard deviations of the close over the
    slow window, capped at 1.
    """

    fastperiod = param.Integer(
        default=12, bounds=(2, MAX_PERIOD), softbounds=(2, 100), doc="Fast EMA, bars."
    )
    slowperiod = param.Integer(
        default=26, bounds=(3, MAX_PERIOD), softbounds=(5, 200), doc="Slow EMA, bars."
    )
    signalperiod = param.Integer(
        default=9,
        bounds=(1, MAX_PERIOD),
        softbounds=(1, 50),
        doc="Signal-line EMA of the MACD, bars.",
    )

    overlay: ClassVar = False
    ordered: ClassVar = (("fastperiod", "slowperiod"),)
    reasons: ClassVar = _rules.crossing_reasons(
        "MACD({fastperiod},{slowperiod})={macd:.6g}", "signal({signalperiod})={signal:.6g}"
    )

    @property
    def label(self) -> str:
        return f"MACD({self.fastperiod},{self.slowperiod},{self.signalperiod})"

    def compute(self, bars: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
        return macd(bars["close"], self.fastperiod, self.slowperiod, self.signalperiod)

    def rule(self, values: pd.DataFrame) -> pd.DataFrame:
        return _rules.crossing(values["macd"], values["signal"], values["close"], self.slowperiod)
