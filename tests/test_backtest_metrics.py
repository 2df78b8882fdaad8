"""Backtest metrics against quantstats and empyrical on real returns, and by hand.

The equity curves are built from the recorded Binance 5-minute bars: buy-and-hold of each
symbol and a long/flat SMA(10)/SMA(50) cross paying 0.1 % per change. Both references get
the same returns and the same periods per year and must agree to 1e-9 relative. The trade
stats are checked on a small hand-computed trades frame, then the edge cases the module
defines (no trades, zero volatility, no losses, too little or bad data).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.backtest import metrics
from workbench.backtest.metrics import STATS_KEYS, returns, stats
from workbench.data.model import to_bars
from workbench.errors import ConfigError, DataFormatError
from workbench.strategies import MovingAverageCross

SYMBOLS = ("ADA_BTC", "ETC_BTC", "ETH_BTC", "LTC_BTC", "NXT_BTC", "XLM_BTC")
CURVES = [f"{symbol}:{kind}" for symbol in SYMBOLS for kind in ("hold", "long_flat")]
FIVE_MINUTES_PER_YEAR = 365 * 24 * 12
RTOL = 1e-9
RF = 0.05


@pytest.fixture(scope="module")
def qs():
    """quantstats, imported once per module (the import takes seconds)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantstats

    return quantstats


@pytest.fixture(scope="module")
def ep():
    import empyrical

    return empyrical


@pytest.fixture(scope="module")
def equity_curves(shared_data: Path) -> dict[str, pd.Series]:
    curves = {}
    for symbol in SYMBOLS:
        bars = to_bars(pd.read_parquet(shared_data / "binance-spot" / "5m" / f"{symbol}.parquet"))
        close = bars["close"]
        curves[f"{symbol}:hold"] = (10_000 * close / close.iloc[0]).rename("equity")
        held = MovingAverageCross(fast=10, slow=50, long_only=True).target(bars).shift(1)
        held = held.fillna(0.0)
        bar_return = held * close.pct_change().fillna(0.0) - 0.001 * held.diff().abs().fillna(0)
        curves[f"{symbol}:long_flat"] = (10_000 * (1 + bar_return).cumprod()).rename("equity")
    return curves


@pytest.fixture(params=CURVES)
def curve(request, equity_curves) -> pd.Series:
    return equity_curves[request.param]


def close(ours: float, reference: float) -> bool:
    return np.isclose(ours, reference, rtol=RTOL, atol=0)


# -- against the references ---------------------------------------------------------------

P = FIVE_MINUTES_PER_YEAR
BOTH = {
    "volatility": (
        lambda r: metrics.volatility(r, periods_per_year=P),
        lambda qs, r: qs.stats.volatility(r, periods=P),
        lambda ep, r: ep.annual_volatility(r, annualization=P),
    ),
    "sharpe": (
        lambda r: metrics.sharpe(r, periods_per_year=P),
        lambda qs, r: qs.stats.sharpe(r, periods=P),
        lambda ep, r: ep.sharpe_ratio(r, annualization=P),
    ),
    "sharpe_rf": (
        lambda r: metrics.sharpe(r, periods_per_year=P, risk_free=RF),
        lambda qs, r: qs.stats.sharpe(r, rf=RF, periods=P),
        lambda ep, r: ep.sharpe_ratio(r, risk_free=(1 + RF) ** (1 / P) - 1, annualization=P),
    ),
    "sortino": (
        lambda r: metrics.sortino(r, periods_per_year=P),
        lambda qs, r: qs.stats.sortino(r, periods=P),
        lambda ep, r: ep.sortino_ratio(r, annualization=P),
    ),
    "sortino_rf": (
        lambda r: metrics.sortino(r, periods_per_year=P, risk_free=RF),
        lambda qs, r: qs.stats.sortino(r, rf=RF, periods=P),
        lambda ep, r: ep.sortino_ratio(r, required_return=(1 + RF) ** (1 / P) - 1, annualization=P),
    ),
    "annual_return": (
        lambda r: metrics.annual_return(r, periods_per_year=P),
        lambda qs, r: qs.stats.cagr(r, periods=P),
        lambda ep, r: ep.annual_return(r, annualization=P),
    ),
    "max_drawdown": (
        metrics.max_drawdown,
        lambda qs, r: qs.stats.max_drawdown(r),
        lambda ep, r: ep.max_drawdown(r),
    ),
    "calmar": (
        lambda r: metrics.calmar(r, periods_per_year=P),
        lambda qs, r: qs.stats.calmar(r, periods=P),
        lambda ep, r: ep.calmar_ratio(r, annualization=P),
    ),
}


@pytest.mark.parametrize("metric", list(BOTH))
def test_metric_equals_quantstats_and_empyrical(metric, curve, qs, ep):
    ours, by_quantstats, by_empyrical = BOTH[metric]
    r = returns(curve)
    value = ours(r)
    assert np.isfinite(value)
    assert close(value, by_quantstats(qs, r)), (value, by_quantstats(qs, r))
    assert close(value, by_empyrical(ep, r)), (value, by_empyrical(ep, r))


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (metrics.win_rate, "win_rate"),
        (metrics.profit_factor, "profit_factor"),
        (metrics.average_win, "avg_win"),
        (metrics.average_loss, "avg_loss"),
    ],
)
def test_win_loss_stats_equal_quantstats_on_bar_returns(ours, theirs, curve, qs):
    r = returns(curve)
    value = ours(r)
    assert np.isfinite(value)
    assert close(value, getattr(qs.stats, theirs)(r))


def test_drawdown_series_equals_both_references(curve, qs, ep):
    from empyrical.stats import drawdown_series

    r = returns(curve)
    ours = metrics.drawdown(r)
    assert ours.index.equals(r.index) and ours.min() < -0.01
    np.testing.assert_allclose(ours, drawdown_series(r), rtol=RTOL, atol=0)
    np.testing.assert_allclose(ours, qs.stats.to_drawdown_series(r), rtol=RTOL, atol=0)


def test_max_drawdown_duration_equals_backtesting_py(curve):
    from backtesting._stats import compute_drawdown_duration_peaks

    durations, _ = compute_drawdown_duration_peaks(curve / curve.cummax() - 1)
    ours = metrics.max_drawdown_duration(curve)
    assert ours > pd.Timedelta(hours=1)
    assert ours == durations.max()


def test_stats_are_the_reference_values_in_the_spec_order(equity_curves, qs, ep):
    equity = equity_curves["ETH_BTC:long_flat"]
    r = returns(equity)
    trades = pd.DataFrame(columns=metrics.TRADE_COLUMNS).astype({"open": bool})
    s = stats(equity, trades, risk_free=RF)
    assert tuple(s.index) == STATS_KEYS
    assert s["start"] == equity.index[0] and s["end"] == equity.index[-1]
    assert s["duration"] == pd.Timedelta(days=20) - pd.Timedelta(minutes=5)
    assert close(s["total_return"], ep.cum_returns_final(r))
    assert close(s["annual_return"], qs.stats.cagr(r, periods=P))
    assert close(s["volatility"], ep.annual_volatility(r, annualization=P))
    assert close(s["sharpe"], qs.stats.sharpe(r, rf=RF, periods=P))
    assert close(s["sortino"], qs.stats.sortino(r, rf=RF, periods=P))
    assert close(s["calmar"], ep.calmar_ratio(r, annualization=P))
    assert close(s["max_drawdown"], ep.max_drawdown(r))


def test_periods_per_year_come_from_the_median_bar_spacing(equity_curves):
    ada = equity_curves["ADA_BTC:hold"]
    assert ada.index.to_series().diff().max() > pd.Timedelta(hours=2)  # a real gap
    assert metrics.infer_periods_per_year(ada.index) == FIVE_MINUTES_PER_YEAR
    hourly = pd.date_range("2024-01-01", periods=5, freq="h", tz="UTC")
    assert metrics.infer_periods_per_year(hourly) == 365 * 24
    r = returns(ada)
    assert metrics.sharpe(r) == metrics.sharpe(r, periods_per_year=FIVE_MINUTES_PER_YEAR)


def test_annual_return_counts_bars_not_calendar_time(equity_curves):
    """On ADA, whose record has a gap, bars/periods and the calendar give different years."""
    ada = equity_curves["ADA_BTC:hold"]
    r = returns(ada)
    growth = ada.iloc[-1] / ada.iloc[0]
    by_bars = growth ** (FIVE_MINUTES_PER_YEAR / len(r)) - 1
    by_calendar = growth ** (metrics.YEAR / (ada.index[-1] - ada.index[0])) - 1
    assert close(metrics.annual_return(r), by_bars)
    assert not close(metrics.annual_return(r), by_calendar)


# -- trade stats by hand --------------------------------------------------------------------

HOURS = pd.date_range("2024-01-01", periods=10, freq="h", tz="UTC", name="timestamp")


def trades_frame(rows: list[tuple]) -> pd.DataFrame:
    """Trades with the spec's columns the metrics read: (entry bar, exit bar or None,
    pnl, return, open)."""
    return pd.DataFrame(
        {
            "entry_time": pd.DatetimeIndex([HOURS[e] for e, *_ in rows]),
            "exit_time": pd.DatetimeIndex([pd.NaT if x is None else HOURS[x] for _, x, *_ in rows]),
            "pnl": [row[2] for row in rows],
            "return": [row[3] for row in rows],
            "open": [row[4] for row in rows],
        }
    )


@pytest.fixture
def flat_equity() -> pd.Series:
    return pd.Series(10_000.0, index=HOURS, name="equity")


def test_trade_stats_by_hand(flat_equity):
    trades = trades_frame(
        [
            (0, 1, 100.0, 0.10, False),
            (1, 2, -50.0, -0.05, False),
            (2, 3, 30.0, 0.03, False),
            (3, 4, -20.0, -0.02, False),
            (4, 5, 0.0, 0.0, False),  # break-even: neither a win nor a loss
            (6, None, 70.0, 0.07, True),  # open: left out of every trade stat
        ]
    )
    s = stats(flat_equity, trades)
    assert s["trades"] == 5
    assert s["win_rate"] == 2 / 4
    assert s["profit_factor"] == pytest.approx(130 / 70, rel=1e-12)
    assert s["expectancy"] == pytest.approx(60 / 5, rel=1e-12)
    assert s["average_win"] == pytest.approx(0.065, rel=1e-12)
    assert s["average_loss"] == pytest.approx(-0.035, rel=1e-12)


def test_exposure_counts_bars_held_by_any_trade(flat_equity):
    trades = trades_frame(
        [
            (2, 5, 1.0, 0.01, False),  # held after bars 2, 3, 4
            (3, 4, 1.0, 0.01, False),  # another symbol at the same time: counted once
            (5, 7, -1.0, -0.01, False),  # a reversal at 5: bars 5, 6
            (8, None, 1.0, 0.01, True),  # still open: bars 8, 9
        ]
    )
    assert stats(flat_equity, trades)["exposure"] == 7 / 10


def test_exposure_from_positions_wins_over_trades(flat_equity):
    positions = pd.DataFrame({"A": [0, 1, 1, 0, 0, 0, 0, 0, 0, 0.0]}, index=HOURS)
    positions["B"] = [0, 0, 2, -2, 0, 0, 0, 0, 0, 0.0]
    trades = trades_frame([(0, None, 1.0, 0.01, True)])
    assert stats(flat_equity, trades, positions=positions)["exposure"] == 3 / 10
    with pytest.raises(DataFormatError, match="positions must have the equity's index"):
        stats(flat_equity, trades, positions=positions.iloc[1:])


def test_totals_and_turnover(flat_equity):
    equity = flat_equity.copy()
    equity.iloc[5:] = 12_500.0
    s = stats(equity, trades_frame([]), fees=12.5, funding=-3.0, traded_notional=22_500.0)
    assert s["turnover"] == 22_500.0 / 11_250.0
    assert (s["fees"], s["funding"]) == (12.5, -3.0)
    assert (s["initial_equity"], s["final_equity"], s["total_return"]) == (10_000.0, 12_500.0, 0.25)


def test_max_drawdown_and_duration_by_hand():
    equity = pd.Series([100.0, 90, 95, 101, 110, 105, 100, 111, 108, 109], index=HOURS)
    r = returns(equity)
    # The first bar's loss is the deepest (-10 % against -9.1 % later): the start is a peak.
    assert metrics.max_drawdown(r) == pytest.approx(-0.1, rel=1e-12)
    assert metrics.drawdown(r).iloc[5] == pytest.approx(100 / 110 - 1, rel=1e-12)
    # 0 -> 3 and 4 -> 7 take 3 hours, 7 -> end (never recovered) 2 hours.
    assert metrics.max_drawdown_duration(equity) == pd.Timedelta(hours=3)
    rising = pd.Series(np.arange(10, 20.0), index=HOURS)
    assert metrics.max_drawdown_duration(rising) == pd.Timedelta(0)
    assert metrics.max_drawdown(returns(rising)) == 0.0


# -- edge cases ---------------------------------------------------------------------------


def test_no_trades(flat_equity):
    s = stats(flat_equity, trades_frame([]))
    assert s["trades"] == 0 and s["exposure"] == 0.0
    for key in ("win_rate", "profit_factor", "expectancy", "average_win", "average_loss"):
        assert np.isnan(s[key]), key


def test_zero_volatility_gives_nan_not_inf(flat_equity):
    s = stats(flat_equity, trades_frame([]))
    assert s["volatility"] == 0.0 and s["max_drawdown"] == 0.0
    assert np.isnan(s["sharpe"]) and np.isnan(s["sortino"]) and np.isnan(s["calmar"])
    # A constant growth rate: the returns differ in their last bits, still NaN, not 1e15.
    steady = returns(pd.Series(1.001 ** np.arange(10), index=HOURS))
    assert steady.min() != steady.max()
    assert np.isnan(metrics.sharpe(steady)) and np.isnan(metrics.sortino(steady))


def test_profit_factor_without_losses_is_inf():
    assert metrics.profit_factor(pd.Series([5.0, 0.0, 2.5])) == np.inf
    assert np.isnan(metrics.profit_factor(pd.Series([0.0, 0.0])))
    assert np.isnan(metrics.win_rate(pd.Series([0.0, 0.0])))
    assert metrics.win_rate(pd.Series([5.0, 0.0, 2.5])) == 1.0
    assert np.isnan(metrics.average_loss(pd.Series([5.0, 0.0, 2.5])))


@pytest.mark.parametrize(
    ("equity", "message"),
    [
        (pd.Series([], dtype=float, index=pd.DatetimeIndex([], tz="UTC")), "non-empty"),
        (pd.Series([1.0, 2.0], index=[0, 1]), "DatetimeIndex"),
        (pd.Series([1.0, 2.0], index=HOURS[[1, 0]]), "sorted"),
        (pd.Series([1.0, np.nan, 2.0], index=HOURS[:3]), "finite, positive"),
        (pd.Series([1.0, 0.0, 2.0], index=HOURS[:3]), "finite, positive"),
        (pd.Series([np.nan, 1.0, 2.0], index=HOURS[:3]), "is nan at"),
        (pd.Series([1.0, 2.0, np.inf], index=HOURS[:3]), "is inf at"),
        (pd.Series([1.0, -np.inf, 2.0], index=HOURS[:3]), "is -inf at"),
    ],
)
def test_bad_equity_is_refused(equity, message):
    with pytest.raises(DataFormatError, match=message):
        stats(equity, trades_frame([]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_returns_that_are_not_finite_are_refused(bad):
    r = pd.Series([0.01, bad, -0.02], index=HOURS[:3])
    with pytest.raises(DataFormatError, match="finite value"):
        metrics.sharpe(r)


def test_periods_per_year_cannot_be_inferred_from_one_bar():
    one = pd.Series([10_000.0], index=HOURS[:1])
    with pytest.raises(DataFormatError, match="pass periods_per_year"):
        stats(one, trades_frame([]))
    with pytest.raises(DataFormatError, match="median bar spacing"):
        metrics.infer_periods_per_year(HOURS[[0, 0, 0, 1]])
    s = stats(one, trades_frame([]), periods_per_year=365)
    assert s["total_return"] == 0.0 and np.isnan(s["sharpe"]) and np.isnan(s["annual_return"])


def test_bad_arguments_are_refused(flat_equity):
    r = returns(flat_equity)
    with pytest.raises(ConfigError, match="periods_per_year must be positive"):
        metrics.sharpe(r, periods_per_year=0)
    with pytest.raises(ConfigError, match="annual rate above -1"):
        metrics.sortino(r, risk_free=-1.0)
    with pytest.raises(DataFormatError, match="NaN must be dropped"):
        metrics.sharpe(flat_equity.pct_change())
    with pytest.raises(DataFormatError, match=r"trades lack the columns \['pnl'\]"):
        stats(flat_equity, trades_frame([]).drop(columns="pnl"))
