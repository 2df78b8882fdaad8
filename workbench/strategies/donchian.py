"""Donchian channel breakout (the Turtle rule)."""

from __future__ import annotations

from typing import ClassVar

import pandas as pd
import param

from workbench.indicators import donchian
from workbench.indicators._validate import MAX_PERIOD
from workbench.strategies import _rules
from workbench.strategies.base import Inputs, Strategy


class DonchianBreakout(Strategy):
    """Buy when the close breaks above the highest high of the previous ``timeperiod``
    bars, short below their lowest low; close a long below the lowest low of the previous
    ``exit_period`` bars, a short above their highest high.

    The channels end at the bar before: a close can never exceed a high that includes
    its own bar. Strength: how far the close is from the entry channel's middle toward
    the side it broke (1 at the channel edge).
    """

    timeperiod = param.Integer(
        default=20, bounds=(2, MAX_PERIOD), softbounds=(5, 200), doc="Entry channel, bars."
    )
    exit_period = param.Integer(
        default=10, bounds=(1, MAX_PERIOD), softbounds=(2, 100), doc="Exit channel, bars."
    )

    columns: ClassVar = ("high", "low", "close")
    ordered: ClassVar = (("exit_period", "timeperiod"),)
    reasons: ClassVar = {
        "long": "close={close:.6g} broke above the {timeperiod}-bar high {upper:.6g}",
        "short": "close={close:.6g} broke below the {timeperiod}-bar low {lower:.6g}",
        "exit_long": "close={close:.6g} fell below the {exit_period}-bar low {exit_lower:.6g}",
        "exit_short": "close={close:.6g} rose above the {exit_period}-bar high {exit_upper:.6g}",
        "hold_long": "close={close:.6g} above the {exit_period}-bar low {exit_lower:.6g}: hold",
        "hold_short": "close={close:.6g} below the {exit_period}-bar high {exit_upper:.6g}: hold",
        "flat": "close={close:.6g} inside the {timeperiod}-bar channel [{lower:.6g}, {upper:.6g}]",
    }

    @property
    def label(self) -> str:
        return f"Donchian({self.timeperiod}/{self.exit_period})"

    def compute(self, bars: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
        entry = donchian(bars, self.timeperiod).shift(1)
        exit_ = donchian(bars, self.exit_period).shift(1)
        return entry.assign(exit_upper=exit_["upper"], exit_lower=exit_["lower"])

    def rule(self, values: pd.DataFrame) -> pd.DataFrame:
        close, upper, middle, lower, exit_upper, exit_lower = (
            values[c].to_numpy()
            for c in ("close", "upper", "middle", "lower", "exit_upper", "exit_lower")
        )
        direction = _rules.latch(
            close > upper, close < exit_lower, close < lower, close > exit_upper
        )
        strength = _rules.band_strength(close, lower, middle, upper, direction, toward=1)
        return pd.DataFrame({"direction": direction, "strength": strength}, index=values.index)
