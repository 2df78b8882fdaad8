"""SignalAggregator on hand-made signals whose answer is known: k of n, window, weights,
cooldown and the BTC/ETH volatility regime, each decision logged with its reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.data.model import to_bars
from workbench.errors import ConfigError, DataFormatError
from workbench.signals.combine import LOG_COLUMNS, SignalAggregator, volatility_rank
from workbench.signals.signal import Signal
from workbench.strategies import MacdTrend, MovingAverageCross, RsiReversion

T0 = pd.Timestamp("2024-03-01", tz="UTC")
ETH, SOL = "ETH/USDT", "SOL/USDT"


def at(minutes: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minutes)


def vote(
    minutes: float, source: str, direction: int = 1, strength: float = 1.0, symbol: str = ETH
) -> Signal:
    return Signal(
        symbol, at(minutes), direction, strength, source=source, reasons=(f"{source} rule fired",)
    )


def decide(signals: list[Signal], regime_bars=None, **params):
    params.setdefault("regime", "off")
    return SignalAggregator(**params).combine(signals, regime_bars)


def test_a_direction_is_confirmed_when_k_of_n_sources_agree():
    signals = [vote(0, "a"), vote(10, "b"), vote(20, "c", -1)]
    emitted, log = decide(signals, k=2, sources=["a", "b", "c"])
    assert [(s.time, s.direction, s.source) for s in emitted] == [(at(10), 1, "consensus")]
    assert list(log["decision"]) == ["suppressed", "emitted", "suppressed"]
    assert list(log["agree"]) == [1, 2, 1]
    assert (
        log["reason"].iat[0]
        == "1 of 3 sources say long within 1h: a (1.00); not enough agreement: 1 of 3, need 2"
    )
    assert emitted[0].reasons == (
        "2 of 3 sources say long within 1h: a (1.00), b (1.00)",
        "a: a rule fired",
        "b: b rule fired",
    )
    emitted, log = decide([*signals, vote(30, "c")], k=3, sources=["a", "b", "c"])
    assert [s.time for s in emitted] == [at(30)] and list(log["agree"]) == [1, 2, 1, 3]


def test_n_is_every_source_seen_when_none_are_configured():
    _, log = decide([vote(0, "a"), vote(1, "b", -1), vote(2, "c", 0)], k=1)
    assert log["reason"].str.contains(" of 3 sources say").all()


def test_agreeing_votes_must_fall_within_the_window():
    emitted, _ = decide([vote(0, "a"), vote(60, "b")], window="1h")
    assert [s.time for s in emitted] == [at(60)]  # exactly one window apart still agrees
    emitted, log = decide([vote(0, "a"), vote(61, "b")], window="1h")
    assert emitted == [] and log["reason"].iat[1].startswith("1 of 2 sources say long within 1h: b")
    emitted, _ = decide([vote(0, "a"), vote(61, "b")], window="2h")
    assert len(emitted) == 1


def test_a_source_that_changes_its_mind_withdraws_its_vote():
    emitted, log = decide([vote(0, "a"), vote(5, "a", -1), vote(10, "b")], sources=["a", "b"])
    assert emitted == [] and log["agree"].iat[2] == 1


def test_confidence_weighs_the_agreeing_strengths_against_all_sources():
    signals = [vote(0, "a", strength=0.5), vote(5, "b", strength=1.0), vote(6, "c", -1)]
    (signal,), log = decide(signals, sources=["a", "b", "c"], weights={"a": 3.0, "b": 1.0})
    assert signal.confidence == pytest.approx((3 * 0.5 + 1 * 1.0) / (3 + 1 + 1))
    assert signal.strength == pytest.approx((3 * 0.5 + 1 * 1.0) / (3 + 1))
    assert log["confidence"].iat[1] == pytest.approx(0.5)
    emitted, log = decide(signals, sources=["a", "b", "c"], weights={"a": 3.0}, min_confidence=0.6)
    assert emitted == [] and log["reason"].iat[1].endswith("confidence 0.50 below the minimum 0.60")


def test_only_changes_of_the_confirmed_direction_are_emitted():
    signals = [
        vote(0, "a"),
        vote(5, "b"),
        vote(10, "c"),
        vote(20, "a", 0),
        vote(25, "b", 0),
        vote(30, "c", 0),
    ]
    emitted, log = decide(signals)
    assert [(s.time, s.direction) for s in emitted] == [(at(5), 1), (at(25), 0)]
    assert "already long since 2024-03-01 00:05:00 UTC" in log["reason"].iat[2]
    assert "already flat since 2024-03-01 00:25:00 UTC" in log["reason"].iat[5]
    _, log = decide([vote(0, "a", 0), vote(1, "b", 0)])
    assert log["reason"].iat[1].endswith("already flat (nothing emitted yet)")


def test_cooldown_holds_back_a_symbols_next_signal():
    signals = [vote(0, "a"), vote(5, "b"), vote(20, "a", -1), vote(25, "b", -1), vote(70, "c", -1)]
    emitted, log = decide(signals, cooldown="1h")
    assert [(s.time, s.direction) for s in emitted] == [(at(5), 1), (at(70), -1)]
    assert (
        log["reason"]
        .iat[3]
        .endswith(
            "cooldown: last ETH/USDT signal 20 min ago (2024-03-01 00:05:00 UTC), "
            "within the 1h cooldown"
        )
    )
    assert "3 of 3 sources say short" in emitted[1].reasons[0]
    other = [vote(20, "a", -1, symbol=SOL), vote(25, "b", -1, symbol=SOL)]
    emitted, _ = decide(signals[:2] + other, cooldown="1h")
    assert [(s.symbol, s.time) for s in emitted] == [(ETH, at(5)), (SOL, at(25))]  # per symbol
    emitted, _ = decide(signals, cooldown=None)
    assert [s.time for s in emitted] == [at(5), at(25)]


# -- the volatility regime --------------------------------------------------------------------


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    """5-minute bars: 300 calm ones, then 40 wild ones."""
    rng = np.random.default_rng(3)
    returns = np.concatenate([rng.normal(0, 0.001, 300), rng.normal(0, 0.02, 40)])
    close = 40_000 * np.exp(np.cumsum(returns))
    index = pd.date_range(T0, periods=close.size, freq="5min", name="timestamp")
    frame = pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=index
    )
    return to_bars(frame)


REGIME = {"vol_window": 12, "rank_window": 100, "high_vol": 0.9}


def bar(i: int) -> float:
    return 5.0 * i  # minutes after T0 of bar i


def test_volatility_rank_is_the_rolling_percentile_of_realised_vol(btc):
    ranks = volatility_rank(btc, vol_window=12, rank_window=100)
    vol = np.log(btc["close"]).diff().rolling(12).std(ddof=0)
    np.testing.assert_allclose(ranks["vol"], vol, rtol=1e-9)
    np.testing.assert_allclose(ranks["rank"], vol.rolling(100).rank(pct=True), rtol=1e-12)
    assert ranks["rank"].iloc[:111].isna().all() and ranks["rank"].iloc[111:].notna().all()
    assert ranks["rank"].iloc[300:312].min() > 0.95  # the wild bars top their history


def test_high_volatility_blocks_altcoin_signals_only(btc):
    calm = [vote(bar(200), "a", symbol=SOL), vote(bar(201), "b", symbol=SOL)]
    wild = [vote(bar(305), "a", -1, symbol=SOL), vote(bar(306), "b", -1, symbol=SOL)]
    major = [vote(bar(305), "a", -1), vote(bar(306), "b", -1)]
    emitted, log = decide(calm + wild + major, {"BTC/USDT": btc}, regime="block", **REGIME)
    assert [(s.symbol, s.time) for s in emitted] == [(SOL, at(bar(201))), (ETH, at(bar(306)))]
    assert "regime normal (BTC/USDT realised vol" in emitted[0].reasons[1]
    blocked = log[(log["symbol"] == SOL) & (log.index == at(bar(306)))]
    assert blocked["decision"].item() == "suppressed"
    assert blocked["reason"].item().endswith("; high from 0.90): altcoin signals blocked")
    assert "regime" not in " ".join(emitted[1].reasons)  # BTC and ETH are not filtered


def test_high_volatility_can_down_weight_instead(btc):
    wild = [vote(bar(305), "a", -1, symbol=SOL), vote(bar(306), "b", -1, symbol=SOL)]
    (signal,), _ = decide(wild, {"BTC/USDT": btc}, regime="downweight", downweight=0.25, **REGIME)
    assert signal.confidence == pytest.approx(0.25)
    assert "altcoin confidence x0.25" in signal.reasons[1]
    emitted, log = decide(
        wild, {"BTC/USDT": btc}, regime="downweight", min_confidence=0.6, **REGIME
    )
    assert emitted == [] and "below the minimum" in log["reason"].iat[1]


def test_any_major_in_a_high_regime_makes_it_high(btc):
    calm_eth = to_bars(btc.iloc[:300].reindex(btc.index).ffill().rename_axis("timestamp"))
    wild = [vote(bar(305), "a", -1, symbol=SOL), vote(bar(306), "b", -1, symbol=SOL)]
    emitted, log = decide(wild, {"ETH/USDT": calm_eth, "BTC/USDT": btc}, regime="block", **REGIME)
    assert emitted == [] and "BTC/USDT realised vol" in log["reason"].iat[1]
    emitted, _ = decide(wild, {"ETH/USDT": calm_eth}, regime="block", **REGIME)
    assert len(emitted) == 1


def test_an_unknown_regime_is_said_and_not_filtered(btc):
    early = [vote(bar(20), "a", symbol=SOL), vote(bar(21), "b", symbol=SOL)]
    (signal,), _ = decide(early, {"BTC/USDT": btc}, regime="block", **REGIME)
    assert signal.reasons[1].startswith("regime unknown at 2024-03-01 01:45:00 UTC")


def test_the_regime_filter_needs_the_majors_bars(btc):
    signals = [vote(0, "a", symbol=SOL)]
    with pytest.raises(
        ConfigError,
        match=r"majors \['BTC', 'ETH'\] for the altcoin signals of \['SOL/USDT'\]",
    ):
        decide(signals, regime="block")
    with pytest.raises(ConfigError, match=r"must be bars of the majors .* \['SOL/USDT'\]"):
        decide(signals, {"SOL/USDT": btc}, regime="block")
    decide([vote(0, "a")], regime="block")  # no altcoin: no bars needed


# -- the log, the order, bad configuration ----------------------------------------------------


def test_every_signal_gets_one_logged_decision_in_time_order():
    signals = [vote(10, "b"), vote(0, "a"), vote(5, "x", symbol=SOL)]
    emitted, log = decide(signals, sources=["a", "b"])
    assert list(log.columns) == list(LOG_COLUMNS) and log.index.name == "time"
    assert list(log.index) == [at(0), at(5), at(10)]
    assert log["reason"].iat[1] == "source 'x' is not one of the configured ['a', 'b']"
    assert len(emitted) == 1 and (log["reason"].str.len() > 0).all()
    empty, log = decide([])
    assert empty == [] and log.empty and list(log.columns) == list(LOG_COLUMNS)


def test_decisions_up_to_t_ignore_later_signals():
    rng = np.random.default_rng(11)
    signals = [
        vote(
            float(m),
            str(rng.choice(list("abcd"))),
            int(rng.choice([-1, 0, 1])),
            float(rng.uniform()),
        )
        for m in np.sort(rng.uniform(0, 600, 200))
    ]
    _, full = decide(signals, cooldown="20min", weights={"a": 2.0})
    for cut in (50, 120):
        _, early = decide(signals[:cut], cooldown="20min", weights={"a": 2.0})
        pd.testing.assert_frame_equal(early, full.iloc[:cut])


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"k": 3, "sources": ["a", "b"]}, ConfigError, "k=3 sources can never agree out of 2"),
        (
            {"sources": ["a"], "k": 1, "weights": {"z": 1.0}},
            ConfigError,
            r"unknown source\(s\) \['z'\]",
        ),
        ({"weights": {"a": -1.0}}, ConfigError, r"bad weight\(s\) \{'a': -1.0\}"),
        ({"window": "60"}, DataFormatError, "window must be a positive duration with a unit"),
        ({"cooldown": "soon"}, DataFormatError, "cooldown must be a positive duration"),
    ],
)
def test_contradicting_settings_are_refused(params, error, message):
    with pytest.raises(error, match=message):
        SignalAggregator(**params)


def test_parameters_are_bounded():
    aggregator = SignalAggregator()
    for name, value in [
        ("k", 0),
        ("min_confidence", 1.5),
        ("regime", "sometimes"),
        ("high_vol", -0.1),
    ]:
        with pytest.raises(ValueError):
            setattr(aggregator, name, value)


def test_weights_that_sum_to_zero_cannot_score():
    with pytest.raises(ConfigError, match="sum to zero"):
        decide([vote(0, "a")], weights={"a": 0.0})


def test_only_signals_are_combined():
    with pytest.raises(DataFormatError, match="needs Signals"):
        SignalAggregator().combine([vote(0, "a"), "long"])


# -- on real data ------------------------------------------------------------------------


def test_strategies_events_combine_on_recorded_bars(shared_data):
    bars = to_bars(pd.read_parquet(shared_data / "binance-spot" / "5m" / "ETH_BTC.parquet"))
    strategies = [MovingAverageCross(name="ma"), MacdTrend(name="macd"), RsiReversion(name="rsi")]
    signals = [s for strategy in strategies for s in strategy.events(bars, "ETH/BTC")]
    emitted, log = SignalAggregator(k=2, window="30min", cooldown="2h").combine(signals)
    assert len(log) == len(signals) and 5 < len(emitted) < len(signals) / 2
    for signal in emitted:
        assert signal.reasons[0].split()[0] in ("2", "3")
        sources = {r.split(":")[0] for r in signal.reasons[1:]}
        assert len(sources) >= 2 and sources <= {"ma", "macd", "rsi"}
    times = pd.DatetimeIndex([s.time for s in emitted])
    assert (times.to_series().diff().dropna() >= pd.Timedelta("2h")).all()
