"""Bollinger-band breakout and reversion: one pair of bands, opposite bets."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import param

from workbench.indicators import bbands
from workbench.indicators._validate import MAX_PERIOD
from workbench.strategies import _rules
from workbench.strategies.base import Inputs, Strategy


class _Bollinger(Strategy):
    """Bands ``nbdev`` population standard deviations around the SMA of ``timeperiod`` bars."""

    timeperiod = param.Integer(
        default=20, bounds=(2, MAX_PERIOD), softbounds=(5, 200), doc="Band window, bars."
    )
    nbdev = param.Number(
        default=2.0,
        bounds=(0, None),
        inclusive_bounds=(False, True),
        softbounds=(0.5, 4),
        step=0.1,
        doc="Band half-width in standard deviations.",
    )

    # +1: a long bets on the upper band (breakout); -1: on the lower one (reversion)
    toward: ClassVar[int]

    @property
    def label(self) -> str:
        return f"BB({self.timeperiod},{self.nbdev:g})"

    def terms(self) -> dict[str, object]:
        return {"bb": self.label}

    def compute(self, bars: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
        return bbands(bars["close"], self.timeperiod, self.nbdev, self.nbdev)

    def rule(self, values: pd.DataFrame) -> pd.DataFrame:
        close, upper, middle, lower = (
            values[c].to_numpy() for c in ("close", "upper", "middle", "lower")
        )
        direction = self._position(close, upper, middle, lower)
        strength = _rules.band_strength(close, lower, middle, upper, direction, self.toward)
        return pd.DataFrame({"direction": direction, "strength": strength}, index=values.index)

    def _position(
        self, close: np.ndarray, upper: np.ndarray, middle: np.ndarray, lower: np.ndarray
    ) -> np.ndarray:
        """The position the bands call for, bar by bar (entries and exits latched)."""
        raise NotImplementedError


class BollingerBreakout(_Bollinger):
    """Buy when the close breaks above the upper band, short when it breaks below the
    lower band; close either when the close crosses back over the middle band.

    Strength: how far the close is from the middle toward the band it broke (1 at the band).
    """

    toward: ClassVar = 1
    reasons: ClassVar = {
        "long": "close={close:.6g} broke above {bb} upper band {upper:.6g}",
        "short": "close={close:.6g} broke below {bb} lower band {lower:.6g}",
        "exit_long": "close={close:.6g} fell below {bb} middle band {middle:.6g}: exit long",
        "exit_short": "close={close:.6g} rose above {bb} middle band {middle:.6g}: exit short",
        "hold_long": "close={close:.6g} above {bb} middle band {middle:.6g}: hold long",
        "hold_short": "close={close:.6g} below {bb} middle band {middle:.6g}: hold short",
        "flat": "close={close:.6g} inside {bb} [{lower:.6g}, {upper:.6g}]: no breakout",
    }

    def _position(self, close, upper, middle, lower):
        return _rules.latch(close > upper, close < middle, close < lower, close > middle)


class BollingerReversion(_Bollinger):
    """Buy when the close falls below the lower band, short when it rises above the upper
    band; close either when the close gets back to the middle band.

    Strength: how far the close still is from the middle band (1 at the band or beyond).
    """

    toward: ClassVar = -1
    reasons: ClassVar = {
        "long": "close={close:.6g} below {bb} lower band {lower:.6g}: long back to {middle:.6g}",
        "short": "close={close:.6g} above {bb} upper band {upper:.6g}: short back to {middle:.6g}",
        "exit_long": "close={close:.6g} back at {bb} middle band {middle:.6g}: exit long",
        "exit_short": "close={close:.6g} back at {bb} middle band {middle:.6g}: exit short",
        "hold_long": "close={close:.6g} below {bb} middle band {middle:.6g}: hold long",
        "hold_short": "close={close:.6g} above {bb} middle band {middle:.6g}: hold short",
        "flat": "close={close:.6g} inside {bb} [{lower:.6g}, {upper:.6g}]: nothing to fade",
    }

    def _position(self, close, upper, middle, lower):
        return _rules.latch(close < lower, close >= middle, close > upper, close <= middle)
