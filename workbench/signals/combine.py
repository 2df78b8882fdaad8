"""``SignalAggregator``: act on a direction only when enough sources agree, calmly.

Signals from several sources (strategies, detectors, models) come in; one decision per
signal goes out, in time order, each with its reasons:

1. **agreement** -- each source's latest signal for a symbol is its vote; a direction is
   confirmed when at least ``k`` of the ``n`` sources vote for it within ``window`` of
   each other (inclusive). The confidence is the weighted strength of the agreeing votes
   over the total weight of all ``n`` sources; the strength, their weighted mean.
2. **change** -- only a change of a symbol's confirmed direction is emitted (every
   symbol starts flat), so agreement that keeps growing is not repeated;
3. **cooldown** -- at most one emitted signal per symbol within ``cooldown``;
4. **regime** -- while BTC or ETH (``majors``) realised volatility ranks at or above the
   ``high_vol`` percentile of its recent history, signals of other symbols (altcoins)
   are blocked, or their confidence scaled by ``downweight``;
5. **confidence** -- below ``min_confidence`` nothing is emitted.

A signal at time t is decided from signals and regime bars up to t only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
import param

from workbench.errors import ConfigError, DataFormatError
from workbench.indicators import _validate as v
from workbench.indicators import stddev
from workbench.signals import _inputs
from workbench.signals.signal import Signal

LOG_COLUMNS: tuple[str, ...] = (
    "symbol", "source", "direction", "agree", "confidence", "decision", "reason",
)  # fmt: skip


class Combined(NamedTuple):
    """What :meth:`SignalAggregator.combine` returns: the emitted signals and every decision."""

    signals: list[Signal]
    log: pd.DataFrame


def volatility_rank(
    bars: pd.DataFrame, vol_window: int = 24, rank_window: int = 500
) -> pd.DataFrame:
    """Realised volatility and how it ranks against its own recent past, per bar.

    ``vol`` is the standard deviation of log returns over ``vol_window`` bars; ``rank``
    its percentile rank (0..1, 1 = the highest) among the last ``rank_window`` values,
    NaN until there are that many. Both look only backwards.
    """
    what = v.call("volatility_rank", vol_window=vol_window, rank_window=rank_window)
    window = v.period(vol_window, "vol_window", minimum=2)
    ranks = v.period(rank_window, "rank_window", minimum=2)
    close = _inputs.bars(bars, ("close",), what)["close"]
    try:
        vol = stddev(np.log(close).diff(), window)
    except DataFormatError as exc:
        raise DataFormatError(f"{what}: {exc}") from None
    rank = vol.rolling(ranks, min_periods=ranks).rank(pct=True)
    return pd.DataFrame({"vol": vol, "rank": rank})


class SignalAggregator(param.Parameterized):
    """Confirms a direction when ``k`` of ``n`` sources agree, scores it, and filters it by
    cooldown and BTC/ETH volatility regime; every decision is logged with its reasons."""

    k = param.Integer(
        default=2,
        bounds=(1, None),
        softbounds=(1, 10),
        doc="Sources that must agree on a direction.",
    )
    sources = param.List(
        default=[],
        item_type=str,
        doc="The n sources counted; empty: every source found in the input.",
    )
    window = param.String(
        default="1h", doc="Agreeing signals are at most this far apart, e.g. '30min'."
    )
    weights = param.Dict(
        default={}, doc="Confidence weight per source; a source not listed weighs 1."
    )
    min_confidence = param.Number(
        default=0.0, bounds=(0, 1), doc="Suppress confirmed signals with less confidence."
    )
    cooldown = param.String(
        default=None,
        allow_None=True,
        doc="Least time between emitted signals of one symbol, e.g. '1h'; empty: none.",
    )
    regime = param.Selector(
        default="block",
        objects=["block", "downweight", "off"],
        doc="What a high-volatility regime does to altcoin signals.",
    )
    majors = param.List(
        default=["BTC", "ETH"],
        item_type=str,
        doc="Base assets whose volatility sets the regime; other symbols are altcoins.",
    )
    vol_window = param.Integer(
        default=24,
        bounds=(2, None),
        softbounds=(2, 500),
        doc="Bars of log returns in the realised volatility.",
    )
    rank_window = param.Integer(
        default=500,
        bounds=(2, None),
        softbounds=(10, 5000),
        doc="Bars of volatility history it is ranked against.",
    )
    high_vol = param.Number(
        default=0.9, bounds=(0, 1), doc="Percentile rank from which the regime is high."
    )
    downweight = param.Number(
        default=0.5,
        bounds=(0, 1),
        doc="Confidence factor for altcoins in a high regime (regime='downweight').",
    )

    def __init__(self, **params: object) -> None:
        params.setdefault("name", "consensus")  # the source of the signals it emits
        super().__init__(**params)
        self.check()

    def check(self) -> None:
        """Raise if parameters contradict each other or a duration cannot be read."""
        self._durations()
        if self.sources and self.k > len(self.sources):
            raise ConfigError(
                f"SignalAggregator: k={self.k} sources can never agree out of {len(self.sources)} "
                f"configured ({self.sources}); lower k or add sources."
            )
        strangers = sorted(set(self.weights) - set(self.sources)) if self.sources else []
        bad = {
            s: w
            for s, w in self.weights.items()
            if not (isinstance(w, (int, float)) and 0 <= w < np.inf)
        }
        if strangers or bad:
            raise ConfigError(
                f"SignalAggregator: weights must be finite numbers >= 0 for configured sources; "
                f"unknown source(s) {strangers}, bad weight(s) {bad}."
            )

    def combine(
        self, signals: Iterable[Signal], regime_bars: Mapping[str, pd.DataFrame] | None = None
    ) -> Combined:
        """Decide on every signal in time order: the emitted ones, and a log of all decisions.

        ``regime_bars`` maps major symbols (e.g. ``"BTC/USDT"``) to their bars, of the
        signals' timeframe or a finer one (a regime bar counts from its open time); they
        are needed when the regime filter is on and altcoin signals come in.
        """
        self.check()
        ordered = sorted(_signal_list(signals), key=lambda s: s.time)
        sources = list(self.sources) or sorted({s.source for s in ordered})
        weight = {source: float(self.weights.get(source, 1.0)) for source in sources}
        if ordered and sum(weight.values()) <= 0:
            raise ConfigError(
                f"SignalAggregator: the weights of {sources} sum to zero; no signal could score."
            )
        run = _Run(self, weight, *self._durations(), self._regime(regime_bars, ordered))
        decisions = [run.decide(signal) for signal in ordered]
        emitted = [d.result for d in decisions if d.result is not None]
        times = pd.DatetimeIndex([s.time for s in ordered], tz="UTC", name="time").as_unit("ns")
        log = pd.DataFrame([d.row for d in decisions], columns=list(LOG_COLUMNS), index=times)
        return Combined(
            emitted, log.astype({"direction": "int8", "agree": "int64", "confidence": "float64"})
        )

    def regime_ranks(self, regime_bars: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """:func:`volatility_rank` of each major's bars, with this aggregator's windows."""
        strangers = [symbol for symbol in regime_bars if self.is_altcoin(symbol)]
        if strangers:
            raise ConfigError(
                f"regime_bars must be bars of the majors {self.majors}; got {strangers}."
            )
        return {
            s: volatility_rank(bars, self.vol_window, self.rank_window)
            for s, bars in regime_bars.items()
        }

    def is_altcoin(self, symbol: str) -> bool:
        """Whether the regime filter applies to ``symbol`` (its base asset is no major)."""
        return _base(symbol) not in {major.upper() for major in self.majors}

    def _regime(
        self, regime_bars: Mapping[str, pd.DataFrame] | None, signals: list[Signal]
    ) -> dict[str, pd.DataFrame]:
        if self.regime == "off":
            return {}
        altcoins = sorted({s.symbol for s in signals if self.is_altcoin(s.symbol)})
        if altcoins and not regime_bars:
            raise ConfigError(
                f"The regime filter needs bars of the majors {self.majors} for the altcoin "
                f"signals of {altcoins}: pass regime_bars={{'BTC/USDT': bars, ...}}, or set "
                f"regime='off'."
            )
        return self.regime_ranks(regime_bars or {})

    def _durations(self) -> tuple[pd.Timedelta, pd.Timedelta]:
        window = _inputs.window(self.window, "window", "SignalAggregator")
        cooldown = (
            _inputs.window(self.cooldown, "cooldown", "SignalAggregator")
            if self.cooldown
            else pd.Timedelta(0)
        )
        return window, cooldown


class _Decision(NamedTuple):
    row: tuple[object, ...]  # the log row, in LOG_COLUMNS order
    result: Signal | None  # the emitted signal, if any


@dataclass
class _Run:
    """One pass of :meth:`SignalAggregator.combine`: its settings and per-symbol state."""

    settings: SignalAggregator
    weight: dict[str, float]  # of each of the n sources
    window: pd.Timedelta
    cooldown: pd.Timedelta
    regime: dict[str, pd.DataFrame]  # volatility ranks by major symbol
    votes: defaultdict[str, dict[str, Signal]] = field(default_factory=lambda: defaultdict(dict))
    emitted: dict[str, Signal] = field(default_factory=dict)  # the last one, by symbol

    def decide(self, signal: Signal) -> _Decision:
        """Register the signal's vote, then emit or suppress it, saying why."""
        if signal.source not in self.weight:
            why = f"source {signal.source!r} is not one of the configured {sorted(self.weight)}"
            return self._log(signal, 0, 0.0, [why], None)
        votes = self.votes[signal.symbol]
        votes[signal.source] = signal
        agreeing = [
            vote for vote in votes.values()
            if vote.direction == signal.direction and signal.time - vote.time <= self.window
        ]  # fmt: skip
        confidence = sum(self.weight[a.source] * a.strength for a in agreeing) / sum(
            self.weight.values()
        )
        names = ", ".join(f"{a.source} ({a.strength:.2f})" for a in agreeing)
        reasons = [
            f"{len(agreeing)} of {len(self.weight)} sources say {signal.side} within "
            f"{self.settings.window}: {names}"
        ]
        blocks = self._agreement(signal, len(agreeing)) + self._cooldown(signal)
        regime, blocked, factor = self._regime_filter(signal)
        (blocks if blocked else reasons).extend(regime)
        confidence *= factor
        if confidence < self.settings.min_confidence:
            blocks.append(
                f"confidence {confidence:.2f} below the minimum {self.settings.min_confidence:.2f}"
            )
        if blocks:
            return self._log(signal, len(agreeing), confidence, reasons + blocks, None)
        result = self._emit(signal, agreeing, confidence, reasons)
        self.emitted[signal.symbol] = result
        return self._log(signal, len(agreeing), confidence, reasons, result)

    def _agreement(self, signal: Signal, agree: int) -> list[str]:
        blocks = []
        if agree < self.settings.k:
            blocks.append(
                f"not enough agreement: {agree} of {len(self.weight)}, need {self.settings.k}"
            )
        last = self.emitted.get(signal.symbol)
        if (last.direction if last else 0) == signal.direction:
            blocks.append(
                f"already {signal.side}"
                + (f" since {_when(last.time)}" if last else " (nothing emitted yet)")
            )
        return blocks

    def _cooldown(self, signal: Signal) -> list[str]:
        last = self.emitted.get(signal.symbol)
        if last is None or signal.time - last.time >= self.cooldown:
            return []
        ago = (signal.time - last.time) / pd.Timedelta(minutes=1)
        return [
            f"cooldown: last {signal.symbol} signal {ago:g} min ago ({_when(last.time)}), "
            f"within the {self.settings.cooldown} cooldown"
        ]

    def _regime_filter(self, signal: Signal) -> tuple[list[str], bool, float]:
        """What the regime says of the signal, whether it blocks it, the confidence factor."""
        if self.settings.regime == "off" or not self.settings.is_altcoin(signal.symbol):
            return [], False, 1.0
        state, high = self._regime_state(signal.time)
        if not high:
            return [state], False, 1.0
        if self.settings.regime == "block":
            return [f"{state}: altcoin signals blocked"], True, 1.0
        factor = self.settings.downweight
        return [f"{state}: altcoin confidence x{factor:g}"], False, factor

    def _regime_state(self, time: pd.Timestamp) -> tuple[str, bool]:
        """The volatility regime at ``time`` in words, and whether it is high."""
        threshold = self.settings.high_vol
        known, high = [], []
        for symbol, ranks in self.regime.items():
            row = ranks.index.searchsorted(time, side="right") - 1
            rank = ranks["rank"].iat[row] if row >= 0 else np.nan
            if not np.isnan(rank):
                words = (
                    f"{symbol} realised vol {ranks['vol'].iat[row]:.3g} at percentile {rank:.2f}"
                )
                known.append(words)
                if rank >= threshold:
                    high.append(words)
        if high:
            return f"regime high ({'; '.join(high)}; high from {threshold:.2f})", True
        if known:
            return f"regime normal ({'; '.join(known)}; high from {threshold:.2f})", False
        majors = sorted(self.regime)
        return (
            f"regime unknown at {_when(time)} (too few bars of {majors} yet): not filtered",
            False,
        )

    def _emit(
        self, signal: Signal, agreeing: list[Signal], confidence: float, reasons: list[str]
    ) -> Signal:
        agreed_weight = sum(self.weight[a.source] for a in agreeing)
        strength = (
            sum(self.weight[a.source] * a.strength for a in agreeing) / agreed_weight
            if agreed_weight
            else 0.0
        )
        evidence = tuple(f"{a.source}: {r}" for a in agreeing for r in a.reasons)
        return Signal(
            signal.symbol, signal.time, signal.direction, min(strength, 1.0), min(confidence, 1.0),
            source=self.settings.name, reasons=(*reasons, *evidence),
        )  # fmt: skip

    def _log(
        self,
        signal: Signal,
        agree: int,
        confidence: float,
        reasons: list[str],
        result: Signal | None,
    ) -> _Decision:
        decision = "emitted" if result is not None else "suppressed"
        row = (
            signal.symbol,
            signal.source,
            signal.direction,
            agree,
            confidence,
            decision,
            "; ".join(reasons),
        )
        return _Decision(row, result)


def _when(time: pd.Timestamp) -> str:
    return f"{time:%Y-%m-%d %H:%M:%S} UTC"


def _base(symbol: str) -> str:
    """The base asset of ``BASE/QUOTE`` (or ``BASE/QUOTE:SETTLE``)."""
    return symbol.split("/")[0].split(":")[0].upper()


def _signal_list(signals: Iterable[Signal]) -> list[Signal]:
    found = list(signals)
    strangers = [type(s).__name__ for s in found if not isinstance(s, Signal)]
    if strangers:
        raise DataFormatError(f"SignalAggregator.combine() needs Signals; got a {strangers[0]}.")
    return found
