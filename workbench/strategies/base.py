"""``Strategy``: bars in, a direction, strength and reason per bar out.

A strategy is a ``param.Parameterized`` class: its parameters are typed and bounded, so
``pn.Param(strategy)`` (or just ``strategy`` in a Panel layout) gives its controls, and a
value out of range, or contradicting another (``fast >= slow``), is refused as it is set.
It works on whole frames::

    strategy = MovingAverageCross(fast=10, slow=50)
    strategy.signals(bars)             # direction, strength, reason per bar
    strategy.target(bars)              # target position in [-1, 1] per bar
    strategy.events(bars, "BTC/USDT")  # Signals where the target changes, with reasons
    strategy.indicators(bars)          # the lines the rule reads, for charts

No look-ahead: the row of bar t is computed from bars up to t only, and an engine acts on
it from bar t+1. Bad bars (unsorted, NaN, missing columns, too few for the warm-up) raise
:class:`~workbench.errors.DataFormatError`, through the indicators' own checks.

Writing a strategy: subclass, declare parameters, and fill two hooks --
:meth:`Strategy.compute` (indicator values from :mod:`workbench.indicators`, aligned with
the bars) and :meth:`Strategy.rule` (direction and strength per row from those values) --
then say why in :attr:`Strategy.reasons` (templates per transition) or by overriding
:meth:`Strategy.explain`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import param

from workbench.data.model import OrderBook
from workbench.errors import ConfigError, DataFormatError, WorkbenchError
from workbench.indicators import _validate as v
from workbench.signals import _inputs
from workbench.signals.signal import Signal

if TYPE_CHECKING:
    import panel as pn

TRANSITIONS: tuple[str, ...] = (
    "long", "short", "exit_long", "exit_short", "hold_long", "hold_short", "flat",
    "start_long", "start_short",
)  # fmt: skip
"""Keys of ``Strategy.reasons``: how the rule's direction moved since the bar before.
``start_*`` is the first bar after the warm-up, when there was no rule yet (a template
may leave them out: the entry's is used)."""
_HOLD = {1: "hold_long", -1: "hold_short", 0: "flat"}
_ENTER = {1: "long", -1: "short"}
_EXIT = {1: "exit_long", -1: "exit_short"}
_START = {1: "start_long", -1: "start_short", 0: "flat"}


@dataclass(frozen=True)
class Inputs:
    """What a strategy may read besides its own symbol's bars (declared in ``requires``)."""

    trades: pd.DataFrame | None = None
    books: Sequence[OrderBook] | None = None
    universe: Mapping[str, pd.DataFrame] | None = None  # other symbols' bars, by symbol


class Strategy(param.Parameterized):
    """The base of every strategy: subclass it, declare parameters, fill ``compute`` and ``rule``.

    Class attributes a subclass sets: ``columns`` (the bar columns it reads), ``overlay``
    (whether its indicators share the price axis, for charts), ``requires``
    (extra :class:`Inputs` it needs), ``ordered`` (pairs of parameters that must be
    strictly increasing, e.g. ``("fast", "slow")``) and ``reasons`` (a template per
    transition in ``TRANSITIONS``, formatted with the row's values, the parameters and
    :meth:`terms`).
    """

    long_only = param.Boolean(
        default=False, doc="Never short: where the rule says short, stay flat (spot markets)."
    )

    columns: ClassVar[tuple[str, ...]] = ("close",)
    overlay: ClassVar[bool] = True  # indicators() are drawn over the price, not below it
    requires: ClassVar[tuple[str, ...]] = ()
    ordered: ClassVar[tuple[tuple[str, str], ...]] = ()
    reasons: ClassVar[Mapping[str, str]] = {}

    def __init__(self, **params: Any) -> None:
        params.setdefault(
            "name", type(self).__name__
        )  # the Signal source; name it to tell copies apart
        super().__init__(**params)
        self.check()
        self.param.watch(self._refuse_contradiction, [p for p in self.param if p != "name"])

    # -- hooks --------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        """A short name with the parameters that matter, e.g. ``SMA(10)/SMA(50)``."""
        return type(self).__name__

    def compute(self, bars: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
        """The indicator values the rule reads, one row per bar (NaN during warm-up)."""
        raise NotImplementedError(f"{type(self).__name__} must define compute(bars, inputs).")

    def rule(self, values: pd.DataFrame) -> pd.DataFrame:
        """``direction`` (+1/-1/0) and ``strength`` (0..1) per row, optionally ``target``.

        ``values`` holds the bar columns and :meth:`compute`'s columns. Row t may only
        read rows up to t.
        """
        raise NotImplementedError(f"{type(self).__name__} must define rule(values).")

    def terms(self) -> dict[str, object]:
        """Extra names the reason templates may use besides values and parameters."""
        return {}

    def explain(self, row: Mapping[str, Any], transition: str) -> str:
        """Why the row's rule direction is what it is, from the template for ``transition``.

        ``row`` maps the parameters, :meth:`terms` and the row's values (the bar columns,
        :meth:`compute`'s columns, ``direction``, ``strength``, ``target``) to their values.
        """
        template = self.reasons.get(transition) or self.reasons.get(
            transition.replace("start_", "")
        )
        if template is None:
            raise WorkbenchError(
                f"{type(self).__name__}.reasons has no template for {transition!r}; add one "
                f"(keys: {TRANSITIONS}) or override explain()."
            )
        return template.format_map(row)

    def check(self) -> None:
        """Raise :class:`ConfigError` if parameters contradict each other (``ordered`` pairs)."""
        for low, high in self.ordered:
            if not getattr(self, low) < getattr(self, high):
                raise ConfigError(
                    f"{type(self).__name__}: {low} ({getattr(self, low)}) must be less than "
                    f"{high} ({getattr(self, high)}). Change both at once with "
                    f"strategy.param.update({low}=..., {high}=...)."
                )

    # -- results ------------------------------------------------------------------------------

    def indicators(self, bars: pd.DataFrame, **inputs: Any) -> pd.DataFrame:
        """The indicator values the rule reads, aligned with ``bars`` (for charts)."""
        frame, given = self._prepare(bars, inputs)
        return self._compute(frame, given)

    def signals(self, bars: pd.DataFrame, **inputs: Any) -> pd.DataFrame:
        """``direction`` (int8), ``strength`` and ``reason`` for every bar.

        ``inputs`` are the keyword fields of :class:`Inputs` the strategy ``requires``.
        """
        table = self._evaluate(bars, inputs)
        reasons = self._explain(table, np.arange(len(table)))
        return pd.DataFrame(
            {
                "direction": table["direction"],
                "strength": table["strength"],
                "reason": pd.array(["; ".join(r) for r in reasons], dtype="str"),
            },
            index=table.index,
        )

    def target(self, bars: pd.DataFrame, **inputs: Any) -> pd.Series:
        """The target position per bar, in [-1, 1] ([0, 1] when ``long_only``); no reasons
        are written, so this is the fast path for sweeps."""
        return self._evaluate(bars, inputs)["target"].rename("target")

    def events(self, bars: pd.DataFrame, symbol: str, **inputs: Any) -> list[Signal]:
        """A :class:`Signal` at every bar where the target changes (for the signal
        strategies, where the direction changes), with its reasons."""
        table = self._evaluate(bars, inputs)
        target = table["target"].to_numpy()
        rows = np.flatnonzero(target != np.concatenate(([0.0], target[:-1])))
        direction, strength = table["direction"].to_numpy(), table["strength"].to_numpy()
        return [
            Signal(
                symbol,
                table.index[i],
                int(direction[i]),
                float(strength[i]),
                source=self.name,
                reasons=reasons,
            )
            for i, reasons in zip(rows, self._explain(table, rows), strict=True)
        ]

    # -- display ------------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        return (
            f"<b>{type(self).__name__}</b> &middot; {escape(self.label)}"
            f"<p><i>{escape(_summary(self))}</i></p>{self.param._repr_html_()}"
        )

    def __panel__(self) -> pn.viewable.Viewable:
        import panel as pn

        return pn.Column(
            pn.pane.Markdown(f"**{type(self).__name__}** · {_summary(self)}", width=320),
            pn.Param(
                self.param, parameters=[p for p in self.param if p != "name"], show_name=False
            ),
        )

    # -- machinery ----------------------------------------------------------------------------

    def _refuse_contradiction(self, *events: param.parameterized.Event) -> None:
        """Undo a change that contradicts another parameter, then say why."""
        try:
            self.check()
        except ConfigError:
            self.param.update({event.name: event.old for event in events})
            raise

    def _prepare(
        self, bars: pd.DataFrame, inputs: Mapping[str, Any]
    ) -> tuple[pd.DataFrame, Inputs]:
        """The checked bar columns the strategy reads, and its other inputs."""
        self.check()
        frame = _inputs.bars(bars, self.columns, self._what())
        try:
            given = Inputs(**inputs)
        except TypeError:
            raise ConfigError(
                f"{self._what()}: unknown input(s) {sorted(inputs)}; a strategy reads bars "
                f"plus trades=, books= or universe= (other symbols' bars)."
            ) from None
        missing = [name for name in self.requires if getattr(given, name) is None]
        if missing:
            needs = ", ".join(f"{m}=..." for m in missing)
            raise ConfigError(f"{self._what()} needs {needs} besides the bars.")
        return frame, given

    def _compute(self, frame: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
        try:
            values = self.compute(frame, inputs)
        except DataFormatError as exc:  # say which strategy asked, e.g. for too few bars
            raise DataFormatError(f"{self._what()}: {exc}") from None
        if not values.index.equals(frame.index):
            raise WorkbenchError(
                f"{type(self).__name__}.compute() must return rows aligned with the bars."
            )
        return values

    def _evaluate(self, bars: pd.DataFrame, inputs: Mapping[str, Any]) -> pd.DataFrame:
        """Bars and values with the rule's ``raw`` direction, and ``ready``, ``direction``,
        ``strength`` and ``target`` after the long-only cut."""
        frame, given = self._prepare(bars, inputs)
        values = self._compute(frame, given)
        table = pd.concat([frame, values], axis=1)
        raw, strength, target = self._decide(table)
        direction = np.maximum(raw, 0) if self.long_only else raw
        return table.assign(
            raw=raw,
            ready=values.notna().all(axis=1).to_numpy(),
            direction=direction,
            strength=np.where(direction != 0, strength, 0.0),
            target=np.clip(target, 0, 1) if self.long_only else target,
        )

    def _decide(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`rule`'s direction, strength and target, refused if out of range."""
        decided, who = self.rule(table), f"{type(self).__name__}.rule()"
        raw = _column(decided, "direction", who)
        if not np.isin(raw, (-1, 0, 1)).all():
            raise WorkbenchError(
                f"{who} must return directions -1, 0 or +1; got {set(np.unique(raw))}."
            )
        strength = _within(_column(decided, "strength", who), 0, 1, "strength", who)
        target = (
            _within(_column(decided, "target", who), -1, 1, "target", who)
            if "target" in decided
            else raw
        )
        return raw.astype(np.int8), strength, target

    def _explain(self, table: pd.DataFrame, rows: np.ndarray) -> list[tuple[str, ...]]:
        """The reasons of the given rows: the rule's words, and the long-only note."""
        raw, ready = table["raw"].to_numpy(), table["ready"].to_numpy()
        previous = np.concatenate(([0], raw[:-1]))
        was_ready = np.concatenate(([False], ready[:-1]))
        context = {**self.param.values(), **self.terms()}
        records = table.iloc[rows].to_dict("records")
        out = []
        for i, row in zip(rows, records, strict=True):
            if not ready[i]:
                out.append((f"{self.label}: warming up, not enough bars yet",))
                continue
            key = _transition(previous[i], raw[i]) if was_ready[i] else _START[raw[i]]
            words = (self.explain(context | row, key),)
            if raw[i] < 0 and self.long_only:
                words += ("long only: flat instead of short",)
            out.append(words)
        return out

    def _what(self) -> str:
        """The strategy as errors name it: ``MovingAverageCross(fast=10, kind='sma', ...)``."""
        settings = {k: value for k, value in self.param.values().items() if k != "name"}
        return v.call(type(self).__name__, **settings)


def _transition(previous: int, current: int) -> str:
    """The template key for a rule direction moving from ``previous`` to ``current``."""
    if previous == current:
        return _HOLD[current]
    return _ENTER[current] if current else _EXIT[previous]


def _column(decided: pd.DataFrame, column: str, who: str) -> np.ndarray:
    if column not in decided:
        raise WorkbenchError(f"{who} must return a '{column}' column.")
    return decided[column].to_numpy(dtype=np.float64)


def _within(values: np.ndarray, low: float, high: float, column: str, who: str) -> np.ndarray:
    bad = ~((values >= low) & (values <= high))  # NaN is bad too
    if bad.any():
        row = int(np.argmax(bad))
        raise WorkbenchError(
            f"{who} returned {column} {values[row]} at row {row}; it must lie in [{low}, {high}]."
        )
    return values


def _summary(strategy: Strategy) -> str:
    """The rule, as the first paragraph of the class docstring says it."""
    doc = type(strategy).__doc__ or ""
    return " ".join(doc.strip().split("\n\n")[0].split())
