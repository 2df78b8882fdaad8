"""Moving-average crossover."""

from __future__ import annotations

from typing import ClassVar

import pandas as pd
import param

from workbench.indicators import ema, sma
from workbench.indicators._validate import MAX_PERIOD
from workbench.strategies import _rules
from workbench.strategies.base import Inputs, Strategy

AVERAGES = {"sma": sma, "ema": ema}


class MovingAverageCross(Strategy):
    """Long while the fast moving average is above the slow one, short while below.

    Strength: the gap between the averages in standard deviations of the close over the
    slow window, capped at 1.
    """

    kind = param.Selector(
        default="sma", objects=list(AVERAGES), doc="Simple or exponential averages."
    )
    fast = param.Integer(
        default=10, bounds=(1, MAX_PERIOD), softbounds=(2, 200), doc="Fast average, bars."
    )
    slow = param.Integer(
        default=50, bounds=(2, MAX_PERIOD), softbounds=(5, 400), doc="Slow average, bars."
    )

    ordered: ClassVar = (("fast", "slow"),)
    reasons: ClassVar = _rules.crossing_reasons(
        "{ma}({fast})={fast_ma:.6g}", "{ma}({slow})={slow_ma:.6g}"
    )

    @property
    def label(self) -> str:
        return f"{self.kind.upper()}({self.fast})/{self.kind.upper()}({self.slow})"

    def terms(self) -> dict[str, object]:
        return {"ma": self.kind.upper()}

    def compute(self, bars: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
        average = AVERAGES[self.kind]
        close = bars["close"]
        return pd.DataFrame(
            {"fast_ma": average(close, self.fast), "slow_ma": average(close, self.slow)}
        )

    def rule(self, values: pd.DataFrame) -> pd.DataFrame:
        return _rules.crossing(values["fast_ma"], values["slow_ma"], values["close"], self.slow)
