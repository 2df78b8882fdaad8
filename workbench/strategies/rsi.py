"""RSI mean reversion."""

from __future__ import annotations

from typing import ClassVar

import pandas as pd
import param

from workbench.indicators import rsi
from workbench.indicators._validate import MAX_PERIOD
from workbench.strategies import _rules
from workbench.strategies.base import Inputs, Strategy


class RsiReversion(Strategy):
    """Buy when the RSI falls below ``lower`` (oversold), sell when it rises to ``exit``;
    short when it rises above ``upper`` (overbought), cover when it falls to ``exit``.

    Strength: how much of the way back to ``exit`` is still to go (1 at the threshold).
    """

    timeperiod = param.Integer(
        default=14, bounds=(2, MAX_PERIOD), softbounds=(2, 100), doc="RSI period, bars."
    )
    lower = param.Number(default=30.0, bounds=(0, 100), doc="Oversold: buy below this RSI.")
    exit = param.Number(
        default=50.0, bounds=(0, 100), doc="Close the position when the RSI gets back here."
    )
    upper = param.Number(default=70.0, bounds=(0, 100), doc="Overbought: short above this RSI.")

    overlay: ClassVar = False
    ordered: ClassVar = (("lower", "exit"), ("exit", "upper"))
    reasons: ClassVar = {
        "long": "RSI({timeperiod})={rsi:.1f} below {lower:g}: oversold, long until {exit:g}",
        "short": "RSI({timeperiod})={rsi:.1f} above {upper:g}: overbought, short until {exit:g}",
        "exit_long": "RSI({timeperiod})={rsi:.1f} back at {exit:g} or above: exit long",
        "exit_short": "RSI({timeperiod})={rsi:.1f} back at {exit:g} or below: exit short",
        "hold_long": "RSI({timeperiod})={rsi:.1f} still below {exit:g}: hold long",
        "hold_short": "RSI({timeperiod})={rsi:.1f} still above {exit:g}: hold short",
        "flat": "RSI({timeperiod})={rsi:.1f} between {lower:g} and {upper:g}: no trade",
    }

    @property
    def label(self) -> str:
        return f"RSI({self.timeperiod}) {self.lower:g}/{self.exit:g}/{self.upper:g}"

    def compute(self, bars: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
        return rsi(bars["close"], self.timeperiod).rename("rsi").to_frame()

    def rule(self, values: pd.DataFrame) -> pd.DataFrame:
        level = values["rsi"].to_numpy()
        direction = _rules.latch(
            level < self.lower, level >= self.exit, level > self.upper, level <= self.exit
        )
        strength = _rules.band_strength(
            level, self.lower, self.exit, self.upper, direction, toward=-1
        )
        return pd.DataFrame({"direction": direction, "strength": strength}, index=values.index)
