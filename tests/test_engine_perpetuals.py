"""Funding and liquidation of a linear perpetual, on Binance's recorded XRP/USDT:USDT bars.

The expected numbers are computed by hand in each test from the exchange's rules:
funding pays ``-quantity x mark price x rate`` at each funding time to positions held at
that instant; a cross-margin position is liquidated when the mark price reaches

    LP = (WB + cum - side * Q * EP) / (Q * MMR - side * Q)

(WB wallet balance, Q size, EP entry price, MMR and cum from the position's bracket), and
the liquidation fee is charged from the margin left, never more. Binance's terms for the
symbol come from the recorded market definition (maintenance margin 2.5 %, liquidation
fee 1 %). The recording has no funding-rate history, so the rates are set in the test.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.backtest.api import Backtest
from workbench.data.model import to_bars
from workbench.engine import EventStrategy, Instrument
from workbench.errors import ConfigError

SYMBOL = "XRP/USDT:USDT"
FEE = 0.0004


@pytest.fixture(scope="module")
def xrp(shared_data):
    bars = to_bars(pd.read_parquet(shared_data / "binance-futures/1h/XRP_USDT_USDT.parquet"))
    marks = to_bars(pd.read_parquet(shared_data / "binance-futures/1h-mark/XRP_USDT_USDT.parquet"))
    markets = json.loads((shared_data / "ccxt-static/markets/binance.json").read_text())
    instrument = Instrument.from_ccxt_market(markets[SYMBOL])
    both = bars.index.intersection(marks.index)
    return bars.loc[both], marks.loc[both], instrument


class Scripted(EventStrategy):
    """Places the given orders at the close of the bars opening at the given times."""

    def __init__(self, script, **params):
        super().__init__(**params)
        self.script = {pd.Timestamp(t).value: orders for t, orders in script.items()}

    def on_bar(self, ctx, bar):
        for side, quantity in self.script.get(bar.time, ()):
            (ctx.buy if side == "buy" else ctx.sell)(SYMBOL, quantity)


def funding_rates(start: str, end: str) -> pd.DataFrame:
    times = pd.date_range(start, end, freq="8h", tz="UTC", name="timestamp")
    rates = np.resize([0.0001, -0.00005, 0.0003, 0.00002], len(times))
    return pd.DataFrame({"funding_rate": rates}, index=times)


def test_the_recorded_market_gives_binance_terms(xrp):
    _, _, instrument = xrp
    assert instrument.kind == "perpetual" and instrument.quote == "USDT"
    assert instrument.tiers[0].rate == pytest.approx(0.025)
    assert instrument.liquidation_fee == pytest.approx(0.01)


def test_funding_is_exchanged_at_each_funding_time_held_through(xrp):
    bars, marks, instrument = xrp
    rates = funding_rates("2021-11-17 00:00", "2021-11-19 08:00")
    quantity = 5_000.0
    # decided at the close of the 07:00 bar: filled at the 08:00 open, just after 08:00's
    # funding, so the first payment is 16:00's; closed at the 05:00 open on the 19th
    script = {"2021-11-17 07:00": [("buy", quantity)], "2021-11-19 04:00": [("sell", quantity)]}
    result = Backtest(
        bars,
        Scripted(script),
        symbol=SYMBOL,
        cash={"USDT": 10_000.0},
        fees=FEE,
        leverage=5,
        instruments={SYMBOL: instrument},
        funding={SYMBOL: rates},
        marks={SYMBOL: marks},
    ).run()

    paid_at = pd.DatetimeIndex(
        [
            "2021-11-17 16:00",
            "2021-11-18 00:00",
            "2021-11-18 08:00",
            "2021-11-18 16:00",
            "2021-11-19 00:00",
        ],
        tz="UTC",
    )
    expected = (
        -quantity
        * marks["open"].loc[paid_at].to_numpy()
        * rates["funding_rate"].loc[paid_at].to_numpy()
    )
    assert list(result.funding["time"]) == list(paid_at)
    np.testing.assert_allclose(result.funding["payment"], expected, rtol=1e-12)
    assert result.stats["funding"] == pytest.approx(expected.sum(), rel=1e-12)
    (trade,) = result.trades.itertuples()
    assert trade.funding == pytest.approx(expected.sum(), rel=1e-12)

    entry = bars["open"].loc["2021-11-17 08:00"]
    exit_ = bars["open"].loc["2021-11-19 05:00"]
    fees = quantity * (entry + exit_) * FEE
    assert trade.pnl == pytest.approx(quantity * (exit_ - entry) - fees + expected.sum(), rel=1e-12)
    assert result.cash.iloc[-1] == pytest.approx(10_000 + trade.pnl, rel=1e-12)
    assert result.equity.iloc[-1] == pytest.approx(result.cash.iloc[-1], rel=1e-12)


def test_a_leveraged_short_is_liquidated_at_the_maintenance_margin_price(xrp):
    bars, marks, instrument = xrp
    quantity, cash = 18_000.0, 1_000.0
    script = {"2021-11-17 23:00": [("sell", quantity)]}  # filled at the 18th's 00:00 open
    result = Backtest(
        bars,
        Scripted(script),
        symbol=SYMBOL,
        cash={"USDT": cash},
        fees=FEE,
        leverage=20,
        instruments={SYMBOL: instrument},
        funding=False,
        marks={SYMBOL: marks},
    ).run()

    entry = bars["open"].loc["2021-11-18 00:00"]
    wallet = cash - quantity * entry * FEE
    mmr, cum, side = 0.025, 0.0, -1
    lp = (wallet + cum - side * quantity * entry) / (quantity * mmr - side * quantity)
    # the first bar whose mark high reaches LP: the 01:00 spike
    after = marks.loc["2021-11-18 00:00":]
    hit = after.index[(after["high"] >= lp).to_numpy().argmax()]
    assert hit == pd.Timestamp("2021-11-18 01:00", tz="UTC")

    liquidation = result.fills[result.fills["liquidity"] == "liquidation"]
    assert len(liquidation) == 1
    fill = liquidation.iloc[0]
    assert fill["time"] == hit and fill["side"] == "buy" and fill["quantity"] == quantity
    assert fill["price"] == pytest.approx(lp, rel=1e-12)
    margin_left = quantity * lp * mmr - cum
    fee = min(instrument.liquidation_fee * quantity * lp, margin_left)
    assert fill["fee"] == pytest.approx(fee, rel=1e-12)
    assert result.positions[SYMBOL].iloc[-1] == 0
    assert result.cash.iloc[-1] == pytest.approx(wallet + quantity * (entry - lp) - fee, rel=1e-12)
    order = result.orders.set_index("id").loc[fill["order_id"]]
    assert order["tag"] == "liquidation" and "liquidated" in order["reason"]


def test_without_mark_bars_the_last_price_range_decides(xrp):
    bars, _, instrument = xrp
    script = {"2021-11-17 23:00": [("sell", 18_000.0)]}
    result = Backtest(
        bars,
        Scripted(script),
        symbol=SYMBOL,
        cash={"USDT": 1_000.0},
        fees=FEE,
        leverage=20,
        instruments={SYMBOL: instrument},
        funding=False,
    ).run()
    liquidation = result.fills[result.fills["liquidity"] == "liquidation"]
    entry = bars["open"].loc["2021-11-18 00:00"]
    wallet = 1_000.0 - 18_000.0 * entry * FEE
    lp = (wallet + 18_000.0 * entry) / (18_000.0 * 1.025)
    hit = bars.index[(bars.index >= "2021-11-18 00:00") & (bars["high"] >= lp)][0]
    assert list(liquidation["time"]) == [hit]


def test_a_perpetual_without_funding_is_refused(xrp):
    bars, _, instrument = xrp
    with pytest.raises(ConfigError, match="perpetual"):
        Backtest(bars, Scripted({}), symbol=SYMBOL, instruments={SYMBOL: instrument}).run()


def test_more_than_the_margin_allows_is_rejected_with_a_reason(xrp):
    bars, marks, instrument = xrp
    script = {"2021-11-17 23:00": [("sell", 30_000.0)]}  # 32k notional on 1k at 20x
    result = Backtest(
        bars,
        Scripted(script),
        symbol=SYMBOL,
        cash={"USDT": 1_000.0},
        leverage=20,
        instruments={SYMBOL: instrument},
        funding=False,
    ).run()
    (order,) = result.orders.itertuples()
    assert order.status == "rejected" and "insufficient margin" in order.reason
    assert result.fills.empty
