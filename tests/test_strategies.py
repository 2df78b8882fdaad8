"""Built-in strategies against plain-pandas versions of their rules, on real Binance bars.

Each reference below computes the indicators with pandas (rolling means, seeded
``ewm``) and the position with a plain loop, then the strategy must agree on every bar's
direction, strength and, at every event, the numbers in its reason. Every built-in is
checked for look-ahead (cutting or altering the bars after t leaves rows up to t as they
were), for bounded parameters and for bad input.
"""

from __future__ import annotations

import itertools
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import panel as pn
import param
import pytest

from workbench.data.model import to_bars
from workbench.errors import ConfigError, DataFormatError, WorkbenchError
from workbench.indicators import sma
from workbench.signals.signal import Signal
from workbench.strategies import (
    BUILTIN_STRATEGIES,
    BollingerBreakout,
    BollingerReversion,
    DonchianBreakout,
    Grid,
    MacdTrend,
    MovingAverageCross,
    RsiReversion,
    Strategy,
)

SYMBOL = "ETH/BTC"


@pytest.fixture(scope="module")
def eth(shared_data: Path) -> pd.DataFrame:
    return to_bars(pd.read_parquet(shared_data / "binance-spot" / "5m" / "ETH_BTC.parquet"))


# -- plain pandas references ----------------------------------------------------------------


def seeded_ema(x: pd.Series, period: int) -> pd.Series:
    """EMA seeded with the mean of the first ``period`` values, as TA-Lib seeds it."""
    first = x.first_valid_index()
    start = x.index.get_loc(first)
    seeded = x.iloc[start + period - 1 :].copy()
    seeded.iloc[0] = x.iloc[start : start + period].mean()
    return seeded.ewm(alpha=2 / (period + 1), adjust=False).mean().reindex(x.index)


def wilder_rsi(close: pd.Series, period: int) -> pd.Series:
    change = close.diff()
    averages = []
    for moves in (change.clip(lower=0), -change.clip(upper=0)):
        seeded = moves.iloc[period:].copy()
        seeded.iloc[0] = moves.iloc[1 : period + 1].mean()
        averages.append(seeded.ewm(alpha=1 / period, adjust=False).mean())
    gain, loss = averages
    return (100 * gain / (gain + loss)).reindex(close.index)


def held(enter_long, exit_long, enter_short, exit_short) -> np.ndarray:
    """The position an entry opens and its exit closes, bar by bar."""
    state, out = 0, []
    for el, xl, es, xs in zip(enter_long, exit_long, enter_short, exit_short, strict=True):
        if (state == 1 and xl) or (state == -1 and xs):
            state = 0
        if el != es:
            state = 1 if el else -1
        out.append(state)
    return np.array(out)


def toward(x, lower, middle, upper, direction, sign) -> pd.Series:
    """The distance from the middle toward the band bet on, in band widths, 0..1."""
    up = direction * sign > 0
    ratio = np.where(up, (x - middle) / (upper - middle), (middle - x) / (middle - lower))
    return pd.Series(np.where(direction != 0, np.clip(ratio, 0, 1), 0.0), index=x.index)


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def says(reason: str, expected: str) -> bool:
    """Whether ``reason`` holds ``expected``, its numbers equal to their 6 printed digits."""
    pattern = r"(-?[\d.e+-]+)".join(re.escape(part) for part in NUMBER.split(expected))
    found = re.search(pattern, reason)
    wanted = [float(x) for x in NUMBER.findall(expected)]
    return found is not None and np.allclose(
        [float(x) for x in found.groups()], wanted, rtol=1e-5, atol=0
    )


def event_words(direction: np.ndarray, say: Callable[[int, int], str]) -> list[str]:
    """What the reason of each row must contain when the row is an event."""
    previous = np.concatenate(([0], direction[:-1]))
    changed = direction != previous
    return [
        say(i, int(d)) if c else "" for i, (d, c) in enumerate(zip(direction, changed, strict=True))
    ]


def ref_moving_average_cross(bars, kind="sma", fast=10, slow=50):
    close = bars["close"]
    average = (lambda x, n: x.rolling(n).mean()) if kind == "sma" else seeded_ema
    a, b = average(close, fast), average(close, slow)
    direction = np.sign(a - b).fillna(0).to_numpy()
    strength = ((a - b).abs() / close.rolling(slow).std(ddof=0)).clip(upper=1).fillna(0)
    K = kind.upper()
    crossed = (a - b).shift().notna()  # not on the first bar with both averages: no cross yet

    def say(i: int, d: int) -> str:
        verb = ("crossed " if crossed.iat[i] else "") + ("above" if d > 0 else "below")
        return f"{K}({fast})={a.iat[i]:.6g} {verb} {K}({slow})={b.iat[i]:.6g}"

    words = event_words(direction, say)
    settled = (a - b).abs() > 1e-12 * close  # away from exact ties, where rounding may decide
    return direction, strength, words, settled


def ref_rsi_reversion(bars, timeperiod=14, lower=30, exit=50, upper=70):
    rsi = wilder_rsi(bars["close"], timeperiod)
    direction = held(rsi < lower, rsi >= exit, rsi > upper, rsi <= exit)
    strength = toward(rsi, lower, exit, upper, direction, -1)
    says = {
        1: f"below {lower:g}: oversold",
        -1: f"above {upper:g}: overbought",
        0: f"back at {exit:g}",
    }
    words = event_words(direction, lambda i, d: f"RSI({timeperiod})={rsi.iat[i]:.1f} {says[d]}")
    return direction, strength, words, rsi.notna()


def ref_macd_trend(bars, fast=12, slow=26, signal=9):
    close = bars["close"]
    line = close.ewm(span=fast, adjust=False).mean() - close.ewm(span=slow, adjust=False).mean()
    trigger = line.ewm(span=signal, adjust=False).mean()
    hist = line - trigger
    direction = np.sign(hist).to_numpy()
    strength = (hist.abs() / close.rolling(slow).std(ddof=0)).clip(upper=1)

    def say(i: int, d: int) -> str:
        side = "above" if d > 0 else "below"
        macd, trig = line.iat[i], trigger.iat[i]
        return f"MACD({fast},{slow})={macd:.6g} crossed {side} signal({signal})={trig:.6g}"

    words = event_words(direction, say)
    settled = (np.arange(len(close)) >= 1500) & (hist.abs() > 1e-12 * close)  # seeds forgotten
    return direction, strength, words, settled


def bollinger(bars, timeperiod=20, nbdev=2.0):
    close = bars["close"]
    middle = close.rolling(timeperiod).mean()
    width = nbdev * close.rolling(timeperiod).std(ddof=0)
    return close, middle + width, middle, middle - width


def ref_bollinger_breakout(bars, timeperiod=20, nbdev=2.0):
    close, upper, middle, lower = bollinger(bars, timeperiod, nbdev)
    direction = held(close > upper, close < middle, close < lower, close > middle)
    strength = toward(close, lower, middle, upper, direction, 1)
    bb = f"BB({timeperiod},{nbdev:g})"
    says = {
        1: lambda i: f"close={close.iat[i]:.6g} broke above {bb} upper band {upper.iat[i]:.6g}",
        -1: lambda i: f"close={close.iat[i]:.6g} broke below {bb} lower band {lower.iat[i]:.6g}",
        0: lambda i: f"{bb} middle band {middle.iat[i]:.6g}: exit",
    }
    return direction, strength, event_words(direction, lambda i, d: says[d](i)), middle.notna()


def ref_bollinger_reversion(bars, timeperiod=20, nbdev=2.0):
    close, upper, middle, lower = bollinger(bars, timeperiod, nbdev)
    direction = held(close < lower, close >= middle, close > upper, close <= middle)
    strength = toward(close, lower, middle, upper, direction, -1)
    bb = f"BB({timeperiod},{nbdev:g})"
    says = {
        1: lambda i: f"close={close.iat[i]:.6g} below {bb} lower band {lower.iat[i]:.6g}",
        -1: lambda i: f"close={close.iat[i]:.6g} above {bb} upper band {upper.iat[i]:.6g}",
        0: lambda i: f"back at {bb} middle band {middle.iat[i]:.6g}: exit",
    }
    return direction, strength, event_words(direction, lambda i, d: says[d](i)), middle.notna()


def ref_donchian_breakout(bars, timeperiod=20, exit_period=10):
    close = bars["close"]
    upper = bars["high"].rolling(timeperiod).max().shift(1)
    lower = bars["low"].rolling(timeperiod).min().shift(1)
    exit_upper = bars["high"].rolling(exit_period).max().shift(1)
    exit_lower = bars["low"].rolling(exit_period).min().shift(1)
    direction = held(close > upper, close < exit_lower, close < lower, close > exit_upper)
    strength = toward(close, lower, (upper + lower) / 2, upper, direction, 1)
    says = {
        1: lambda i: f"broke above the {timeperiod}-bar high {upper.iat[i]:.6g}",
        -1: lambda i: f"broke below the {timeperiod}-bar low {lower.iat[i]:.6g}",
        0: lambda i: f"-bar {'low' if close.iat[i] < exit_lower.iat[i] else 'high'}",
    }
    return direction, strength, event_words(direction, lambda i, d: says[d](i)), upper.notna()


def ref_grid(bars, levels=5, spacing=0.01, reference=None, timeperiod=100):
    close = bars["close"]
    centre = (
        close.rolling(timeperiod).mean()
        if reference is None
        else pd.Series(reference, index=close.index)
    )
    crossed = np.trunc((close - centre) / (centre * spacing))
    target = (-crossed.clip(-levels, levels) / levels).fillna(0)
    direction = np.sign(target).to_numpy()
    previous = np.concatenate(([0.0], target.to_numpy()[:-1]))

    def say(i: int) -> str:
        n = crossed.iat[i]
        return (
            "within one level, flat"
            if n == 0
            else f"{abs(n):.0f} level(s) {'above' if n > 0 else 'below'}"
        )

    words = [
        say(i) if t != p else "" for i, (t, p) in enumerate(zip(target, previous, strict=True))
    ]
    return direction, target.abs(), words, centre.notna(), target


CASES: dict[str, tuple[Strategy, Callable]] = {
    "sma_cross": (MovingAverageCross(), ref_moving_average_cross),
    "ema_cross": (
        MovingAverageCross(kind="ema", fast=12, slow=48),
        lambda b: ref_moving_average_cross(b, "ema", 12, 48),
    ),
    "rsi": (RsiReversion(), ref_rsi_reversion),
    "rsi_tight": (
        RsiReversion(timeperiod=7, lower=20, exit=45, upper=75),
        lambda b: ref_rsi_reversion(b, 7, 20, 45, 75),
    ),
    "macd": (MacdTrend(), ref_macd_trend),
    "bollinger_breakout": (BollingerBreakout(), ref_bollinger_breakout),
    "bollinger_reversion": (
        BollingerReversion(timeperiod=30, nbdev=1.5),
        lambda b: ref_bollinger_reversion(b, 30, 1.5),
    ),
    "donchian": (DonchianBreakout(), ref_donchian_breakout),
    "grid": (Grid(), ref_grid),
    "grid_fixed": (
        Grid(levels=3, spacing=0.02, reference=0.1),
        lambda b: ref_grid(b, 3, 0.02, 0.1),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_builtins_follow_their_rule_bar_by_bar(eth, case):
    strategy, reference = CASES[case]
    direction, strength, _, settled, *target = reference(eth)
    ours = strategy.signals(eth)
    rows = np.asarray(settled)
    assert ours.index.equals(eth.index)
    assert list(ours.columns) == ["direction", "strength", "reason"]
    np.testing.assert_array_equal(ours["direction"].to_numpy()[rows], direction[rows])
    np.testing.assert_allclose(
        ours["strength"].to_numpy()[rows], np.asarray(strength)[rows], atol=1e-9
    )
    expected_target = target[0] if target else direction
    np.testing.assert_allclose(
        strategy.target(eth).to_numpy()[rows], np.asarray(expected_target)[rows], atol=1e-12
    )
    assert {-1, 1} <= set(direction[rows]), "the data should take the rule both ways"


@pytest.mark.parametrize("case", CASES)
def test_events_fire_where_the_position_changes_and_say_why_with_the_numbers(eth, case):
    strategy, reference = CASES[case]
    _, _, words, settled, *_ = reference(eth)
    events = strategy.events(eth, SYMBOL)
    settled = pd.Series(np.asarray(settled), index=eth.index)
    expected = {t: w for t, w in zip(eth.index, words, strict=True) if w and settled[t]}
    found = {e.time: e for e in events}
    assert len(expected) > 20
    assert {t for t in found if settled[t]} == set(expected)
    for time, text in expected.items():
        assert says(found[time].reasons[0], text), (time, text, found[time].reasons)
    signals = strategy.signals(eth)
    for event in events[:50]:
        assert event.symbol == SYMBOL and event.source == type(strategy).__name__
        assert event.direction == signals.at[event.time, "direction"]
        assert event.strength == signals.at[event.time, "strength"]
        assert event.reasons[0] in signals.at[event.time, "reason"]


@pytest.mark.parametrize("name", BUILTIN_STRATEGIES)
def test_every_row_has_a_reason_and_warm_up_rows_say_so(eth, name):
    signals = BUILTIN_STRATEGIES[name]().signals(eth)
    assert (signals["reason"].str.len() > 10).all()
    assert "warming up" in signals["reason"].iat[0]
    assert (signals.loc[signals["direction"] == 0, "strength"] == 0).all()


@pytest.mark.parametrize("name", BUILTIN_STRATEGIES)
@pytest.mark.parametrize("t", [120, 2500])
def test_no_look_ahead(eth, name, t):
    strategy = BUILTIN_STRATEGIES[name]()
    full = strategy.signals(eth).iloc[: t + 1]
    cut = strategy.signals(eth.iloc[: t + 1])
    shock = np.where(
        np.arange(len(eth)) > t, np.random.default_rng(t).uniform(0.5, 2.0, len(eth)), 1.0
    )
    altered = eth.assign(**{c: eth[c] * shock for c in ("open", "high", "low", "close")})
    changed = strategy.signals(altered).iloc[: t + 1]
    pd.testing.assert_frame_equal(cut, full)
    pd.testing.assert_frame_equal(changed, full)
    assert strategy.events(eth.iloc[: t + 1], SYMBOL) == [
        e for e in strategy.events(altered, SYMBOL) if e.time <= eth.index[t]
    ]


@pytest.mark.parametrize("name", BUILTIN_STRATEGIES)
def test_long_only_never_shorts_and_says_so(eth, name):
    strategy = BUILTIN_STRATEGIES[name](long_only=True)
    both = BUILTIN_STRATEGIES[name]().signals(eth)
    signals = strategy.signals(eth)
    target = strategy.target(eth)
    assert signals["direction"].min() == 0 and target.min() == 0
    shorts = both["direction"] < 0
    assert (signals.loc[~shorts, "direction"] == both.loc[~shorts, "direction"]).all()
    assert signals.loc[shorts, "reason"].str.endswith("long only: flat instead of short").all()


def test_grid_holds_a_ladder_of_rungs(eth):
    grid = Grid(levels=4, spacing=0.005)
    target = grid.target(eth)
    rungs = set(np.round(target.unique() * 4, 9))
    assert rungs <= set(range(-4, 5)) and len(rungs) > 5
    assert (np.sign(target) == grid.signals(eth)["direction"]).all()
    assert (np.diff(target.loc[[e.time for e in grid.events(eth, SYMBOL)]]) != 0).all()


# -- parameters -------------------------------------------------------------------------------


def bounded(strategy: Strategy) -> list[tuple[str, object]]:
    """An out-of-range value for every bounded or listed parameter."""
    bad = []
    for name, p in strategy.param.objects("existing").items():
        if isinstance(p, param.Selector):
            bad.append((name, "no-such-choice"))
        elif isinstance(p, param.Number) and p.bounds is not None:
            low, high = p.bounds
            bad.append((name, (high + 1) if high is not None else (low - 1)))
            bad.append((name, "ten"))
    return bad


@pytest.mark.parametrize("name", BUILTIN_STRATEGIES)
def test_out_of_range_parameters_are_refused_as_they_are_set(name):
    strategy = BUILTIN_STRATEGIES[name]()
    before = strategy.param.values()
    cases = bounded(strategy)
    assert cases
    for parameter, value in cases:
        with pytest.raises(ValueError):
            setattr(strategy, parameter, value)
    assert strategy.param.values() == before


@pytest.mark.parametrize(
    ("cls", "contradiction", "message"),
    [
        (
            MovingAverageCross,
            {"fast": 50, "slow": 10},
            r"fast \(50\) must be less than slow \(10\)",
        ),
        (MovingAverageCross, {"fast": 20, "slow": 20}, "fast"),
        (MacdTrend, {"fastperiod": 30}, "fastperiod"),
        (RsiReversion, {"lower": 55}, r"lower \(55\) must be less than exit \(50.0\)"),
        (RsiReversion, {"upper": 40}, "exit"),
        (DonchianBreakout, {"exit_period": 30}, "exit_period"),
    ],
)
def test_contradicting_parameters_are_refused(cls, contradiction, message):
    with pytest.raises(ConfigError, match=message):
        cls(**contradiction)
    strategy = cls()
    before = strategy.param.values()
    with pytest.raises(ConfigError, match=message.split()[0]):
        strategy.param.update(**contradiction)
    assert strategy.param.values() == before  # the change was undone


def test_parameters_that_move_together_change_at_once():
    strategy = MovingAverageCross()
    strategy.param.update(fast=60, slow=120)
    assert (strategy.fast, strategy.slow) == (60, 120)
    strategy.slow = 200
    strategy.fast = 150
    assert strategy.label == "SMA(150)/SMA(200)"


def test_registry_lists_every_builtin_by_name():
    assert set(BUILTIN_STRATEGIES) == {
        "MovingAverageCross", "RsiReversion", "MacdTrend", "BollingerBreakout",
        "BollingerReversion", "DonchianBreakout", "Grid",
    }  # fmt: skip
    for name, cls in BUILTIN_STRATEGIES.items():
        assert cls.__name__ == name and issubclass(cls, Strategy)
        assert len(cls.__doc__.split()) > 15, f"{name} should state its rule"


@pytest.mark.parametrize("name", BUILTIN_STRATEGIES)
def test_strategies_show_their_rule_and_parameters(name):
    strategy = BUILTIN_STRATEGIES[name]()
    html = strategy._repr_html_()
    assert name in html and "long_only" in html
    assert strategy.__doc__.split()[0] in html  # the rule, in words
    widgets = pn.panel(strategy)
    controls = [w for w in widgets.select(pn.widgets.Widget)]
    assert {w.name for w in controls} >= {
        strategy.param[p].label for p in strategy.param if p != "name"
    }


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN_STRATEGIES)
def test_too_few_bars_for_the_warm_up_are_refused(eth, name):
    with pytest.raises(DataFormatError, match="at least"):
        BUILTIN_STRATEGIES[name]().signals(eth.iloc[:8])


def test_too_short_names_the_strategy_and_the_indicator(eth):
    with pytest.raises(
        DataFormatError,
        match=r"MovingAverageCross\(fast=10, .*\): sma\(timeperiod=50\) needs at least 50 rows",
    ):
        MovingAverageCross().signals(eth.iloc[:30])


@pytest.mark.parametrize("name", BUILTIN_STRATEGIES)
def test_a_nan_among_the_bars_says_where(eth, name):
    holed = eth.copy()
    holed.iloc[700, holed.columns.get_loc("close")] = np.nan
    with pytest.raises(DataFormatError, match=r"close is nan at .* \(row 700\)"):
        BUILTIN_STRATEGIES[name]().signals(holed)


@pytest.mark.parametrize("name", BUILTIN_STRATEGIES)
def test_unsorted_or_duplicated_times_are_refused(eth, name):
    strategy = BUILTIN_STRATEGIES[name]()
    with pytest.raises(DataFormatError, match=r"row 301 \(.*\) is earlier than"):
        strategy.signals(eth.iloc[np.r_[0:300, 301, 300, 302:1000]])
    with pytest.raises(DataFormatError, match="repeats the time"):
        strategy.signals(eth.iloc[np.r_[0:300, 299:1000]])


@pytest.mark.parametrize("name", BUILTIN_STRATEGIES)
def test_wrong_column_names_are_refused_with_a_hint(eth, name):
    with pytest.raises(DataFormatError, match=r"Rename .* lower-case"):
        BUILTIN_STRATEGIES[name]().signals(eth.rename(columns=str.capitalize))


def test_bars_must_be_a_frame_with_times(eth):
    with pytest.raises(DataFormatError, match="needs a DataFrame of bars"):
        MovingAverageCross().signals(eth["close"])
    with pytest.raises(DataFormatError, match="DatetimeIndex"):
        MovingAverageCross().signals(eth.reset_index(drop=True))


# -- writing one's own ----------------------------------------------------------------------


class FollowTheLeader(Strategy):
    """Long while the leader's close is above its SMA, short while below."""

    timeperiod = param.Integer(default=20, bounds=(2, 1000))
    leader = param.String(default="BTC/USDT")
    requires: ClassVar = ("universe",)
    reasons: ClassVar = {
        "long": "{leader} close {leader_close:.6g} crossed above its SMA {leader_sma:.6g}",
        "short": "{leader} close {leader_close:.6g} crossed below its SMA {leader_sma:.6g}",
        "hold_long": "{leader} above its SMA",
        "hold_short": "{leader} below its SMA",
        **dict.fromkeys(("exit_long", "exit_short", "flat"), "{leader} at its SMA"),
    }

    def compute(self, bars, inputs):
        leader = inputs.universe[self.leader]["close"].reindex(bars.index)
        return pd.DataFrame({"leader_close": leader, "leader_sma": sma(leader, self.timeperiod)})

    def rule(self, values):
        gap = values["leader_close"] - values["leader_sma"]
        return pd.DataFrame({"direction": np.sign(gap).fillna(0), "strength": gap.notna() * 1.0})


def test_a_strategy_may_read_other_symbols_bars(eth, shared_data):
    ltc = to_bars(pd.read_parquet(shared_data / "binance-spot" / "5m" / "LTC_BTC.parquet"))
    strategy = FollowTheLeader(leader="LTC/BTC")
    events = strategy.events(eth, SYMBOL, universe={"LTC/BTC": ltc})
    leader = ltc["close"].reindex(eth.index)
    above = leader > leader.rolling(20).mean()
    first = next(e for e in events if e.time > eth.index[100])
    assert first.direction == (1 if above[first.time] else -1)
    assert first.reasons[0].startswith(f"LTC/BTC close {leader[first.time]:.6g} crossed")
    with pytest.raises(ConfigError, match=r"needs universe=\.\.\. besides the bars"):
        strategy.signals(eth)
    with pytest.raises(ConfigError, match="unknown input"):
        strategy.signals(eth, universe={}, news=[])


def test_a_rule_breaking_the_contract_is_named(eth):
    class Overeager(FollowTheLeader):
        def rule(self, values):
            return super().rule(values).assign(strength=2.0)

    with pytest.raises(WorkbenchError, match=r"Overeager.rule\(\) returned strength 2.0 at row 0"):
        Overeager().signals(eth, universe={"BTC/USDT": eth})


def test_events_are_signals(eth):
    events = MovingAverageCross(name="ma_10_50").events(eth, SYMBOL)
    assert all(isinstance(e, Signal) and e.source == "ma_10_50" for e in events)
    assert all(a.direction != b.direction for a, b in itertools.pairwise(events))


@pytest.mark.parametrize("name", BUILTIN_STRATEGIES)
def test_strategies_pickle_for_parallel_sweeps(eth, name):
    strategy = BUILTIN_STRATEGIES[name](long_only=True)
    copy = pickle.loads(pickle.dumps(strategy))
    assert copy.param.values() == strategy.param.values()
    pd.testing.assert_series_equal(copy.target(eth), strategy.target(eth))
    for low, high in copy.ordered:  # the guard against contradictions came along
        with pytest.raises(ConfigError):
            setattr(copy, low, getattr(copy, high))
