"""``Signal``: one trading opinion about one symbol at one time, with the reasons for it.

A signal is what a strategy or the aggregator hands on to risk and execution, and what
the journal records. It says which way (``direction`` +1 long, -1 short, 0 flat), how hard
(``strength``, 0..1), how much to trust it (``confidence``, 0..1), who said so
(``source``) and why, in words with the numbers (``reasons``). ``time`` is the bar (its
open time, as bars are indexed) whose close produced the signal: act from the next bar.

:func:`signals_to_frame` and :func:`signals_from_frame` turn a list of signals into a
DataFrame (one row per signal, indexed by ``time``) and back, for analysis and storage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import DataFormatError

SIDES: dict[int, str] = {1: "long", -1: "short", 0: "flat"}
FRAME_COLUMNS: tuple[str, ...] = (
    "symbol",
    "direction",
    "strength",
    "confidence",
    "source",
    "reasons",
)


@dataclass(frozen=True)
class Signal:
    """A direction for ``symbol`` at ``time`` with its strength, confidence, source and reasons.

    Values are checked on creation (a :class:`~workbench.errors.DataFormatError` says which
    one is wrong); ``time`` is brought to a UTC Timestamp (a naive time is read as UTC, as
    bar times are) and ``reasons`` to a tuple of strings. ``confidence`` is 1 for a single
    rule's signal; the aggregator scores it from the sources that agree.
    """

    symbol: str
    time: pd.Timestamp
    direction: int
    strength: float = 1.0
    confidence: float = 1.0
    source: str = "manual"
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("symbol", "source"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise DataFormatError(f"Signal {name} must be a non-empty string, not {value!r}.")
        where = f"signal of {self.symbol} from {self.source}"
        checked = {
            "time": _utc(self.time, where),
            "direction": _direction(self.direction, where),
            "strength": _unit(self.strength, "strength", where),
            "confidence": _unit(self.confidence, "confidence", where),
            "reasons": _reasons(self.reasons, where),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: normalise once, here

    @property
    def side(self) -> str:
        """``'long'``, ``'short'`` or ``'flat'``."""
        return SIDES[self.direction]


def signals_to_frame(signals: Iterable[Signal]) -> pd.DataFrame:
    """One row per signal, indexed by ``time`` (UTC), in the order given.

    Columns: ``symbol``, ``direction`` (int8), ``strength``, ``confidence``, ``source`` and
    ``reasons`` (a tuple of strings per row).
    """
    rows = list(signals)
    strangers = [type(s).__name__ for s in rows if not isinstance(s, Signal)]
    if strangers:
        raise DataFormatError(f"signals_to_frame() needs Signals; got a {strangers[0]}.")
    reasons = np.empty(len(rows), dtype=object)  # one tuple per cell, not a 2-D array
    reasons[:] = [s.reasons for s in rows]
    index = pd.DatetimeIndex([s.time for s in rows], tz="UTC", name="time").as_unit("ns")
    return pd.DataFrame(
        {
            "symbol": pd.array([s.symbol for s in rows], dtype="str"),
            "direction": np.array([s.direction for s in rows], dtype="int8"),
            "strength": np.array([s.strength for s in rows], dtype="float64"),
            "confidence": np.array([s.confidence for s in rows], dtype="float64"),
            "source": pd.array([s.source for s in rows], dtype="str"),
            "reasons": reasons,
        },
        index=index,
    )


def signals_from_frame(frame: pd.DataFrame) -> list[Signal]:
    """The signals in a frame shaped like :func:`signals_to_frame`'s, each checked again.

    The time comes from the index or a ``time`` column; ``symbol`` and ``direction`` are
    required, the other columns take :class:`Signal`'s defaults when absent; ``reasons``
    may hold tuples, lists or arrays of strings (as Parquet returns them) or one string.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataFormatError(
            f"signals_from_frame() needs a DataFrame, not {type(frame).__name__}."
        )
    table = frame.reset_index() if "time" not in frame.columns else frame
    if "time" not in table.columns:
        raise DataFormatError(
            "signals_from_frame() needs the times in the index (named 'time') or a 'time' "
            f"column; found index {frame.index.name!r} and columns {list(frame.columns)}."
        )
    missing = [c for c in ("symbol", "direction") if c not in table.columns]
    unknown = [c for c in table.columns if c not in ("time", *FRAME_COLUMNS)]
    if missing or unknown:
        raise DataFormatError(
            f"signals_from_frame(): missing column(s) {missing}, unexpected column(s) "
            f"{unknown}; expected {['time', *FRAME_COLUMNS]} (lower-case)."
        )
    return [Signal(**{k: _plain(k, v) for k, v in row.items()}) for row in table.to_dict("records")]


def _utc(value: object, where: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"The time of the {where} cannot be read: {exc}") from None
    if stamp is pd.NaT:
        raise DataFormatError(f"The {where} has no time (NaT).")
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def _direction(value: object, where: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float)):
        raise DataFormatError(f"The {where} needs direction +1, -1 or 0, not {value!r}.")
    if value not in SIDES:
        raise DataFormatError(
            f"The {where} needs direction +1 (long), -1 (short) or 0 (flat); got {value!r}."
        )
    return int(value)


def _unit(value: object, name: str, where: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise DataFormatError(f"The {where} needs a {name} between 0 and 1, not {value!r}.")
    number = float(value)
    if not 0.0 <= number <= 1.0:  # also refuses NaN
        raise DataFormatError(f"The {where} needs a {name} between 0 and 1; got {number}.")
    return number


def _reasons(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, (Sequence, np.ndarray)):
        raise DataFormatError(
            f"The reasons of the {where} must be strings, not {type(value).__name__}."
        )
    found = tuple(value)
    strangers = [r for r in found if not isinstance(r, str)]
    if strangers:
        raise DataFormatError(
            f"The reasons of the {where} must be strings; found {strangers[0]!r}."
        )
    return found


def _plain(column: str, value: Any) -> Any:
    """A frame cell as Signal wants it: NumPy scalars as Python ones, missing reasons as none."""
    if column == "reasons" and (value is None or (isinstance(value, float) and math.isnan(value))):
        return ()
    return value.item() if isinstance(value, np.generic) else value
