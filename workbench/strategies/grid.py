"""Grid trading: a ladder of levels around a centre price."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import param

from workbench.indicators import sma
from workbench.indicators._validate import MAX_PERIOD
from workbench.strategies import _rules
from workbench.strategies.base import Inputs, Strategy


class Grid(Strategy):
    """Buy one rung for every level the close is below the centre, sell one for every
    level above it: the target is ``-levels crossed / levels``, between -1 and 1.

    Levels are ``spacing`` (a fraction of the centre) apart; the centre is ``reference``
    when given, else the SMA of the last ``timeperiod`` closes (a grid that follows the
    market). Strength is the size of the target; events fire at every rung change.
    """

    levels = param.Integer(
        default=5, bounds=(1, 1000), softbounds=(1, 20), doc="Rungs on each side of the centre."
    )
    spacing = param.Number(
        default=0.01,
        bounds=(0, 1),
        inclusive_bounds=(False, False),
        softbounds=(0.001, 0.1),
        step=0.001,
        doc="Distance between levels, as a fraction of the centre.",
    )
    reference = param.Number(
        default=None,
        allow_None=True,
        bounds=(0, None),
        inclusive_bounds=(False, True),
        doc="A fixed centre price; empty: the moving SMA centre.",
    )
    timeperiod = param.Integer(
        default=100,
        bounds=(1, MAX_PERIOD),
        softbounds=(5, 500),
        doc="SMA window of the moving centre, bars.",
    )

    @property
    def label(self) -> str:
        centre = (
            f"{self.reference:.6g}" if self.reference is not None else f"SMA({self.timeperiod})"
        )
        return f"Grid({self.levels} x {self.spacing:.2%} around {centre})"

    def compute(self, bars: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
        close = bars["close"]
        if self.reference is None:
            centre = sma(close, self.timeperiod)
        else:
            centre = pd.Series(self.reference, index=close.index, dtype="float64")
        reach = centre * (self.levels * self.spacing)
        return pd.DataFrame({"centre": centre, "top": centre + reach, "bottom": centre - reach})

    def rule(self, values: pd.DataFrame) -> pd.DataFrame:
        crossed = self._crossed(values["close"].to_numpy(), values["centre"].to_numpy())
        target = -np.nan_to_num(np.clip(crossed, -self.levels, self.levels)) / self.levels
        return pd.DataFrame(
            {"direction": _rules.sign(target), "strength": np.abs(target), "target": target},
            index=values.index,
        )

    def explain(self, row: Mapping[str, Any], transition: str) -> str:
        close, centre = row["close"], row["centre"]
        crossed = int(self._crossed(close, centre))
        where = f"close={close:.6g} vs centre {centre:.6g} (levels every {self.spacing:.2%})"
        if crossed == 0:
            return f"{where}: within one level, flat"
        side, held = ("above", "short") if crossed > 0 else ("below", "long")
        rungs = min(abs(crossed), self.levels)
        return f"{where}: {abs(crossed)} level(s) {side}, {held} {rungs}/{self.levels}"

    def _crossed(self, close: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """Whole levels between the close and the centre: +n above it, -n below."""
        return np.trunc((close - centre) / (centre * self.spacing))
