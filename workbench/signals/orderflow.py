"""Order flow from a trade tape: who is aggressing, and how hard.

A tape is a trades DataFrame in the data convention (:func:`workbench.data.model.to_trades`):
a sorted DatetimeIndex (equal times allowed, as exchanges print several trades in one
millisecond), an ``amount`` and the aggressor's ``side``. A per-trade value is what was
known once that trade printed: it counts the trades up to and including it in tape order,
never a later one, even at the same time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.errors import DataFormatError
from workbench.indicators import _validate as v
from workbench.signals import _inputs
from workbench.signals._kernels import rolling_corr


def trade_delta(trades: pd.DataFrame) -> pd.Series:
    """Signed aggressor volume per trade, ``delta``: +amount when a buyer lifted the offer,
    -amount when a seller hit the bid."""
    return _inputs.signed_volume(trades, "trade_delta()")


def cvd(trades: pd.DataFrame) -> pd.Series:
    """Cumulative volume delta after each trade, ``cvd``, counted from the tape's start.

    Its level depends on where the tape begins; its changes are what carry meaning.
    """
    return _inputs.signed_volume(trades, "cvd()").cumsum().rename("cvd")


def volume_delta(trades: pd.DataFrame, freq: str | pd.Timedelta = "1min") -> pd.DataFrame:
    """Aggressor volume per time bucket: ``buy_volume``, ``sell_volume``, ``delta``, ``cvd``.

    Buckets are aligned to the epoch and labelled by their open time, as bars are, with
    empty ones (all zero) kept so the grid is regular. A bucket is complete only at its
    close (label + freq): act on it from the next bucket on.
    """
    what = v.call("volume_delta", freq=freq)
    span = _inputs.window(freq, "freq", what)
    sides = _split_sides(_inputs.signed_volume(trades, what))
    buckets = sides.resample(span, origin="epoch").sum()
    buckets["delta"] = buckets["buy_volume"] - buckets["sell_volume"]
    buckets["cvd"] = buckets["delta"].cumsum()
    return buckets


def flow_imbalance(trades: pd.DataFrame, window: str | pd.Timedelta = "15s") -> pd.DataFrame:
    """Aggressor volume over the trailing ``window`` after each trade: ``buy_volume``,
    ``sell_volume`` and ``imbalance`` = (buy - sell) / (buy + sell), in [-1, 1].

    The window is the time span (t - window, t] and looks only backwards; +1 means every
    aggressor in it bought. A window holding only zero-size trades has a NaN imbalance.
    """
    return _flow(trades, window, v.call("flow_imbalance", window=window))


def imbalance_events(
    trades: pd.DataFrame,
    window: str | pd.Timedelta = "15s",
    threshold: float = 0.6,
    min_volume: float = 0.0,
    rearm: float | None = None,
) -> pd.DataFrame:
    """The trades at which one side starts to dominate the flow: ``direction`` (+1 buyers,
    -1 sellers), ``imbalance`` and ``volume`` (traded in the window), indexed by trade time.

    A spell starts when ``|imbalance| >= threshold`` over the trailing ``window`` with at
    least ``min_volume`` traded in it, and lasts until ``|imbalance|`` falls below
    ``rearm`` (default: half the threshold). Each spell is one event at its first trade;
    the gap between the two levels keeps an imbalance hovering at the threshold from
    firing again and again. Raise ``min_volume`` to ignore a lone trade in a quiet
    window, whose imbalance is always +-1.
    """
    what = v.call(
        "imbalance_events", window=window, threshold=threshold, min_volume=min_volume, rearm=rearm
    )
    level = v.real(threshold, "threshold", positive=True)
    calm = level / 2 if rearm is None else v.real(rearm, "rearm")
    if level > 1.0 or calm > level:
        raise DataFormatError(f"{what}: need 0 <= rearm <= threshold <= 1.")
    floor = v.real(min_volume, "min_volume")
    flow = _flow(trades, window, what)
    imbalance, volume = flow["imbalance"], flow["buy_volume"] + flow["sell_volume"]
    strong = (imbalance.abs() >= level) & (volume >= floor)
    marks = np.sign(imbalance).where(strong).mask(imbalance.abs() < calm, 0.0)
    state = marks.ffill().fillna(0.0).astype("int8")  # NaN marks: the spell goes on
    fired = state.ne(0) & state.ne(state.shift(1, fill_value=0))
    return pd.DataFrame(
        {"direction": state[fired], "imbalance": imbalance[fired], "volume": volume[fired]}
    )


def volume_confirmation(
    bars: pd.DataFrame, window: int = 20, k: float = 2.0, m: float = 1.5
) -> pd.DataFrame:
    """Price moves backed by volume: ``return`` (log, close to close), ``volume_ratio``,
    ``corr`` and ``confirmed``.

    ``corr`` is the rolling correlation of |return| and volume over ``window`` bars: high
    when big moves come on big volume. A move is ``confirmed`` when |return| exceeds ``k``
    standard deviations of the previous ``window`` returns and volume exceeds ``m`` times
    the median of the previous ``window`` volumes (``volume_ratio`` is volume over that
    median). The baselines exclude the bar judged, so a spike cannot dilute itself.
    """
    what = v.call("volume_confirmation", window=window, k=k, m=m)
    length = v.period(window, "window", minimum=2)
    sigmas, multiple = v.real(k, "k"), v.real(m, "m")
    frame = _inputs.bars(bars, ("close", "volume"), what)
    close, volume = frame["close"], frame["volume"]
    if (close <= 0).any():
        raise DataFormatError(f"{what}: close must be positive to take log returns.")
    change = np.log(close).diff()
    size = change.abs()
    ratio = volume / volume.rolling(length).median().shift(1)
    spread = change.rolling(length).std().shift(1)
    corr = np.empty(len(frame))
    rolling_corr(size.to_numpy(), volume.to_numpy(), length, corr)
    return pd.DataFrame(
        {
            "return": change,
            "volume_ratio": ratio,
            "corr": pd.Series(corr, index=frame.index),
            "confirmed": (size > sigmas * spread) & (ratio > multiple),
        }
    )


def _flow(trades: pd.DataFrame, window: str | pd.Timedelta, what: str) -> pd.DataFrame:
    span = _inputs.window(window, "window", what)
    flow = _split_sides(_inputs.signed_volume(trades, what)).rolling(span).sum()
    buy, sell = flow["buy_volume"], flow["sell_volume"]
    flow["imbalance"] = (buy - sell) / (buy + sell)
    return flow


def _split_sides(delta: pd.Series) -> pd.DataFrame:
    """Signed volume as two non-negative columns, ``buy_volume`` and ``sell_volume``."""
    return pd.DataFrame(
        {"buy_volume": delta.clip(lower=0.0), "sell_volume": (-delta).clip(lower=0.0)}
    )
