"""Bad input to a backtest fails loudly, or the order is rejected with a reason.

Every case is a :class:`workbench.errors.WorkbenchError` subclass whose message names the
problem (and, for a failing strategy, the strategy and the bar, with the original
exception chained), or an order that ends ``rejected`` with a ``reason`` -- never a run
that quietly carries on with a wrong result.
"""

from __future__ import annotations

import math
import re

import numpy as np
import param
import pytest

from tests.test_engine_orders import (
    BASE,
    REL,
    Script,
    at,
    book,
    buy,
    fills_of,
    frame,
    order_row,
    run,
    sell,
)
from workbench.backtest.api import Backtest
from workbench.data.model import OrderBook
from workbench.engine import (
    BookSlippage,
    EventStrategy,
    FeeSchedule,
    Instrument,
    RiskLimits,
    VolumeSlippage,
)
from workbench.errors import ConfigError, DataFormatError, StrategyError

# -- data --------------------------------------------------------------------------------------


def _nan_close(f):
    f.iloc[2, f.columns.get_loc("close")] = np.nan
    return f


def _duplicate(f):
    return f.set_axis(f.index[[0, 1, 1, 2]])


def _high_below_low(f):
    f.iloc[1, f.columns.get_loc("high")] = 90.0
    return f


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda f: f.iloc[:0], "Bars of asset are empty: there is nothing to run over."),
        (
            _nan_close,
            "Bars of asset hold missing or infinite values at 2024-01-01 00:02:00+00:00 (1 bar(s))",
        ),
        (lambda f: f.iloc[[1, 0, 2, 3]], "Bars of asset are not in time order"),
        (_duplicate, "Bars of asset repeat the time 2024-01-01 00:01:00+00:00"),
        (lambda f: f.tz_localize(None), "Bars of asset have naive times"),
        (_high_below_low, "Bars of asset are inconsistent at 2024-01-01 00:01:00+00:00"),
        (lambda f: f.drop(columns="volume"), "Bars of asset lack the column(s) ['volume']"),
        (lambda f: f.reset_index(drop=True), "Bars of asset need a DatetimeIndex"),
        (lambda f: {}, "No data"),
    ],
    ids=[
        "empty",
        "nan",
        "unsorted",
        "duplicated",
        "naive",
        "high-below-low",
        "no-volume",
        "no-times",
        "no-frames",
    ],
)
def test_bad_bars_are_refused_before_anything_runs(spoil, message):
    with pytest.raises(DataFormatError, match=re.escape(message)):
        Backtest(spoil(frame(BASE)), Script())


def test_bars_under_a_symbol_name_it_in_the_error():
    with pytest.raises(DataFormatError, match=re.escape("Bars of ETH/USDT are empty")):
        Backtest({"BTC/USDT": frame(BASE), "ETH/USDT": frame(BASE).iloc[:0]}, Script())


# -- a failing strategy ------------------------------------------------------------------------


class Boom(EventStrategy):
    """Raises in the hook named ``where`` (at row 2, for on_bar)."""

    threshold = param.Number(1.5)

    def __init__(self, where: str, **params):
        super().__init__(**params)
        self.where = where

    def on_start(self, ctx):
        if self.where == "on_start":
            raise KeyError("no such indicator")

    def on_bar(self, ctx, bar):
        if bar.row == 0:
            ctx.buy(None, 1)
        if self.where == "on_bar" and bar.row == 2:
            raise ZeroDivisionError("division by zero in the signal")

    def on_fill(self, ctx, order, fill):
        if self.where == "on_fill":
            raise ValueError("bad fill handling")


def test_a_strategy_raising_in_on_bar_stops_the_run_naming_itself_and_the_bar():
    with pytest.raises(StrategyError) as caught:
        Backtest(frame(BASE), Boom("on_bar")).run()

    assert str(caught.value) == (
        "Boom(threshold=1.5) raised ZeroDivisionError at the asset bar of 2024-01-01 00:02:00+00:00: "
        "division by zero in the signal"
    )
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


def test_a_strategy_raising_in_on_start_stops_the_run_with_the_cause_chained():
    with pytest.raises(
        StrategyError, match=re.escape("Boom(threshold=1.5).on_start raised KeyError")
    ) as caught:
        Backtest(frame(BASE), Boom("on_start")).run()

    assert isinstance(caught.value.__cause__, KeyError)


def test_a_strategy_raising_in_on_fill_stops_the_run_with_the_cause_chained():
    with pytest.raises(
        StrategyError,
        match=re.escape(
            "Boom(threshold=1.5).on_fill raised ValueError at 2024-01-01 00:01:00+00:00: bad fill handling"
        ),
    ) as caught:
        Backtest(frame(BASE), Boom("on_fill")).run()

    assert isinstance(caught.value.__cause__, ValueError)


def test_a_strategy_raising_in_on_fill_names_the_bar_of_the_fill():
    with pytest.raises(StrategyError) as caught:
        Backtest(frame(BASE), Boom("on_fill")).run()

    assert "2024-01-01 00:01:00+00:00" in str(caught.value)


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (Script, "Pass a strategy object, e.g. Script(), not the class."),
        (
            "sma_cross",
            "A strategy must be a workbench.strategies.Strategy or a workbench.engine.EventStrategy; got str.",
        ),
    ],
)
def test_a_strategy_that_is_not_a_strategy_object_is_refused(strategy, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Backtest(frame(BASE), strategy)


# -- orders ------------------------------------------------------------------------------------


def test_an_order_for_an_unknown_symbol_is_rejected_and_the_run_goes_on():
    script = {
        0: [lambda ctx: ctx.buy("BTC/USDT", 1), lambda ctx: ctx.order_target("BTC/USDT", 0.5)],
        1: [buy(1)],
    }
    result, _ = run(BASE, script)

    reason = "unknown symbol 'BTC/USDT'; this run trades ['asset']"
    for order_id in (1, 2):
        order = order_row(result, order_id)
        assert (order["symbol"], order["status"], order["reason"]) == (
            "BTC/USDT",
            "rejected",
            reason,
        )
    assert fills_of(result) == [(3, at(2), "buy", 1.0, 103.0, 0.0, "taker")]


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        (buy(-1), "quantity must be a positive number; got -1.0"),
        (buy(0), "quantity must be a positive number; got 0.0"),
        (buy(math.nan), "quantity must be a positive number; got nan"),
        (sell(math.inf), "quantity must be a positive number; got inf"),
        (buy(1, type="limit"), "a limit order needs a positive limit_price; got nan"),
        (buy(1, limit_price=-5.0), "a limit order needs a positive limit_price; got -5.0"),
        (sell(1, stop_price=0.0), "a stop order needs a positive stop_price; got 0.0"),
        (
            buy(1, stop_price=101.0, limit_price=math.inf),
            "a stop_limit order needs a positive limit_price; got inf",
        ),
        (sell(1, trail=-0.05), "a trailing_stop order needs a positive trail; got -0.05"),
        (
            buy(1, stop_loss=-1.0, take_profit=110.0),
            "a bracket's stop_loss must be a positive price; got -1.0",
        ),
        (
            buy(1, stop_loss=110.0, take_profit=95.0),
            "a buy's stop_loss (110) must be below its take_profit (95)",
        ),
        (
            sell(1, stop_loss=95.0, take_profit=110.0),
            "a sell's stop_loss (95) must be above its take_profit (110)",
        ),
    ],
)
def test_an_impossible_order_is_rejected_with_the_reason(action, reason):
    result, _ = run(BASE, {0: [action]}, leverage=2)

    order = order_row(result, 1)
    assert (order["status"], order["filled"], order["reason"]) == ("rejected", 0.0, reason)
    assert order["updated"] == at(1)
    assert result.fills.empty
    assert set(result.orders["id"]) == {1}  # a refused bracket leaves no exits behind


def test_a_target_that_is_not_a_number_stops_the_run():
    with pytest.raises(
        ConfigError,
        match=re.escape("order_target needs a finite fraction of equity for asset; got nan"),
    ):
        run(BASE, {0: [lambda ctx: ctx.order_target(None, math.nan)]})


# -- account and venue settings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cash", "message"),
    [
        (-1000.0, "Starting cash must be a finite amount >= 0; got USD -1000.0."),
        (0.0, "Starting cash must be positive"),
        (math.nan, "Starting cash must be a finite amount >= 0; got USD nan."),
        (math.inf, "Starting cash must be a finite amount >= 0; got USD inf."),
        ({"USD": -5.0}, "Starting cash must be a finite amount >= 0; got USD -5.0."),
    ],
)
def test_bad_cash_is_refused_when_the_backtest_is_made(cash, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Backtest(frame(BASE), Script(), cash=cash)


@pytest.mark.parametrize(
    ("fees", "message"),
    [
        (-0.001, "The taker fee -0.001 is not a fraction of the traded value"),
        (0.1, "The maker fee 0.1 is not a fraction of the traded value"),
        (math.nan, "The maker fee nan is not a fraction"),
    ],
)
def test_bad_fees_are_refused(fees, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Backtest(frame(BASE), Script(), fees=fees)


@pytest.mark.parametrize(
    ("maker", "taker", "message"),
    [
        (0.0002, -0.0001, "The taker fee -0.0001 is not a fraction"),
        (-0.02, 0.001, "The maker fee -0.02 is not a fraction"),
    ],
)
def test_a_fee_schedule_refuses_a_taker_rebate_and_a_huge_maker_rebate(maker, taker, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        FeeSchedule(maker=maker, taker=taker)


def test_a_maker_rebate_is_paid_to_a_resting_limit_order():
    rows = [BASE[0], (102.0, 104.0, 101.0, 103.0), (103.0, 104.0, 99.5, 100.0)]
    result, _ = run(
        rows, {0: [buy(10, limit_price=100.0)]}, fees=FeeSchedule(maker=-0.0002, taker=0.001)
    )

    assert fills_of(result) == [
        (1, at(2), "buy", 10.0, 100.0, pytest.approx(-0.2, rel=REL), "maker")
    ]
    assert result.cash.iat[-1] == pytest.approx(10_000 - 1000 + 0.2, rel=REL)


@pytest.mark.parametrize(
    ("slippage", "message"),
    [
        (-5.0, "Slippage must be between 0 and 10,000 basis points; got -5.0."),
        (10_000.0, "Slippage must be between 0 and 10,000 basis points; got 10000.0."),
        (math.nan, "Slippage must be between 0 and 10,000 basis points; got nan."),
        ({"asset": -1.0}, "Slippage must be between 0 and 10,000 basis points; got -1.0."),
        ("5bps", "slippage must be basis points or a SlippageModel; got str '5bps'."),
    ],
)
def test_slippage_out_of_range_is_refused_when_the_backtest_is_made(slippage, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Backtest(frame(BASE), Script(), slippage=slippage)


@pytest.mark.parametrize("impact", [-0.1, math.nan, math.inf])
def test_volume_slippage_refuses_an_impact_that_is_not_a_cost(impact):
    with pytest.raises(
        ConfigError, match=re.escape(f"VolumeSlippage impact must be a number >= 0; got {impact}.")
    ):
        VolumeSlippage(impact=impact)


def test_book_slippage_needs_books_of_one_symbol_and_of_the_traded_one():
    with pytest.raises(ConfigError, match="at least one order book"):
        BookSlippage([])
    mine = book(at(0), [(99.0, 1.0)], [(101.0, 1.0)])
    other = OrderBook("ETH/USDT", at(0), [(9.0, 1.0)], [(11.0, 1.0)])
    with pytest.raises(
        ConfigError, match=re.escape("BookSlippage got order books of ['ETH/USDT', 'asset']")
    ):
        BookSlippage([mine, other])
    with pytest.raises(
        ConfigError, match=re.escape("BookSlippage holds order books of ETH/USDT, not of asset")
    ):
        run(BASE, {0: [buy(1)]}, slippage=BookSlippage([other]))


def test_book_slippage_without_a_book_before_the_fill_stops_the_run():
    late = book(at(3), [(99.0, 1.0)], [(101.0, 1.0)])
    with pytest.raises(
        ConfigError, match=re.escape("No order book at or before 2024-01-01T00:01:00")
    ):
        run(BASE, {0: [buy(1)]}, slippage=BookSlippage([late]))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"latency_ms": -1.0}, "latency_ms must be >= 0; got -1.0."),
        ({"latency_ms": math.nan}, "latency_ms must be >= 0; got nan."),
        ({"participation": 0.0}, "participation is a fraction of bar volume in (0, 1]; got 0.0."),
        ({"participation": 1.5}, "participation is a fraction of bar volume in (0, 1]; got 1.5."),
        (
            {"participation": math.nan},
            "participation is a fraction of bar volume in (0, 1]; got nan.",
        ),
    ],
)
def test_bad_venue_settings_are_refused_when_the_backtest_is_made(settings, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Backtest(frame(BASE), Script(), **settings)


def test_leverage_below_one_is_refused():
    with pytest.raises(ConfigError, match=re.escape("leverage must be >= 1; got 0.5.")):
        Backtest(frame(BASE), Script(), leverage=0.5).run()


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_position": -1.0}, "Risk limit max_position must be >= 0; got -1.0."),
        ({"max_position": {"asset": -1.0}}, "Risk limit max_position must be >= 0"),
        ({"max_notional": math.nan}, "Risk limit max_notional must be >= 0; got nan."),
        ({"max_leverage": 0.0}, "Risk limit max_leverage must be a positive number; got 0.0."),
        (
            {"daily_loss_limit": -0.05},
            "Risk limit daily_loss_limit must be a positive number; got -0.05.",
        ),
        ({"max_drawdown": math.inf}, "Risk limit max_drawdown must be a positive number; got inf."),
    ],
)
def test_bad_risk_limits_are_refused(limits, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        RiskLimits(**limits)


def test_a_perpetual_without_funding_data_is_refused_unless_ignored_knowingly():
    perp = "BTC/USDT:USDT"
    with pytest.raises(
        ConfigError, match=re.escape(f"['{perp}'] are perpetuals: pass funding={{symbol: rates}}")
    ):
        Backtest(frame(BASE), Script(), symbol=perp, cash={"USDT": 10_000.0}).run()

    result = Backtest(
        frame(BASE), Script(), symbol=perp, cash={"USDT": 10_000.0}, funding=False
    ).run()
    assert result.funding.empty and result.equity.iat[-1] == 10_000.0


@pytest.mark.parametrize(
    ("symbol", "message"),
    [
        ("/USDT", "Cannot read the symbol '/USDT'"),
        ("BTC/USD:BTC", "BTC/USD:BTC is an inverse or quanto contract"),
    ],
)
def test_a_symbol_the_engine_cannot_simulate_is_refused(symbol, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Instrument.parse(symbol)
