"""The vectorised fast path: the fill convention by hand, the fast target, and the cross-check
against two independent engines on the real 5-minute spot files.

The must-show check: an SMA(10)/SMA(50) long-only cross with 0.1 % fees gives the same
trades (entry and exit times and prices) and final equity as vectorbt's
``Portfolio.from_signals`` and as backtesting.py, to 1e-9 relative, on every file in
``../shared/data/binance-spot/5m/``. How each reference is set to our convention is said
in its test's docstring. The signals fed to the references come from TA-Lib's SMA (the
indicators are checked against TA-Lib to the bit elsewhere), not from our code.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import param
import pytest

from workbench.backtest import metrics
from workbench.backtest.vectorized import (
    FAST_PATHS,
    FILL_COLUMNS,
    TRADE_COLUMNS,
    fast_target,
    infer_periods_per_year,
    run_vectorized,
)
from workbench.data.model import to_bars
from workbench.errors import ConfigError, DataFormatError
from workbench.strategies import MovingAverageCross, RsiReversion, Strategy

# vectorbt 1.2 calls DataFrame.rename(inplace=True), which pandas 3.1 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.rename")

SPOT = ["ADA_BTC", "ETC_BTC", "ETH_BTC", "LTC_BTC", "NXT_BTC", "XLM_BTC"]
CASH, FEES, RTOL = 10_000.0, 0.001, 1e-9


@pytest.fixture(scope="module")
def spot(shared_data) -> dict[str, pd.DataFrame]:
    folder = shared_data / "binance-spot" / "5m"
    return {name: to_bars(pd.read_parquet(folder / f"{name}.parquet")) for name in SPOT}


@pytest.fixture(scope="module")
def vbt():
    """vectorbt, imported once per module (it takes about 10 s)."""
    return pytest.importorskip("vectorbt")


def talib_above(bars: pd.DataFrame, fast: int = 10, slow: int = 50) -> np.ndarray:
    """Where TA-Lib's fast SMA is above its slow one (False during the warm-up)."""
    talib = pytest.importorskip("talib")
    close = bars["close"].to_numpy()
    return talib.SMA(close, fast) > talib.SMA(close, slow)


class Script(Strategy):
    """Holds the target it is given, bar by bar (for hand-computed tests)."""

    plan = param.List(default=[], doc="The target per bar.")

    def compute(self, bars, inputs):
        return pd.DataFrame({"plan": np.asarray(self.plan, dtype=float)}, index=bars.index)

    def rule(self, values):
        plan = values["plan"].to_numpy()
        return pd.DataFrame(
            {"direction": np.sign(plan).astype(np.int8), "strength": np.abs(plan), "target": plan},
            index=values.index,
        )


def hand_bars(opens, closes=None) -> pd.DataFrame:
    opens = np.asarray(opens, dtype=float)
    closes = opens + 0.5 if closes is None else np.asarray(closes, dtype=float)
    index = pd.date_range("2024-01-01", periods=len(opens), freq="1h", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, closes) + 1,
            "low": np.minimum(opens, closes) - 1,
            "close": closes,
            "volume": 1.0,
        },
        index=index,
    )


# -- the convention, by hand ------------------------------------------------------------------


def test_fills_at_the_next_open_only_when_the_target_changes():
    bars = hand_bars([10, 11, 12, 13, 14, 15])
    result = run_vectorized(bars, Script(plan=[1, 1, 0, 0.5, 0.5, 1]), cash=1000.0, fees=0.01)
    f = 0.01
    # bar 1: all-in from flat at 11, capped at cash / (p * (1 + f)): all the cash goes,
    # cash / (1 + f) for the coins and the rest as the fee (vectorbt's arithmetic)
    q1 = 1000.0 / (1 + f) / 11.0
    fee1 = 1000.0 - 1000.0 / (1 + f)
    cash1 = 0.0
    # bar 3: target 0 closes everything at 13
    cash3 = cash1 + q1 * 13.0 - q1 * 13.0 * f
    # bar 4: half of the equity at 14 (the last target, 1, is decided on the last bar: no fill)
    q4 = 0.5 * cash3 / 14.0 - 0.0
    cash4 = cash3 - q4 * 14.0 - q4 * 14.0 * f
    fills = result.fills
    assert list(fills.columns) == list(FILL_COLUMNS)
    assert list(fills["time"]) == [bars.index[1], bars.index[3], bars.index[4]]
    assert list(fills["side"]) == ["buy", "sell", "buy"]
    assert fills["quantity"].tolist() == [q1, q1, q4]
    assert fills["price"].tolist() == [11.0, 13.0, 14.0]
    assert fills["fee"].tolist() == [fee1, q1 * 13.0 * f, q4 * 14.0 * f]
    assert fee1 == pytest.approx(q1 * 11.0 * f, rel=1e-14)
    assert fills["order_id"].tolist() == [1, 2, 3]
    assert set(fills["liquidity"]) == {"taker"}
    cash = [1000.0, cash1, cash1, cash3, cash4, cash4]
    position = [0.0, q1, q1, 0.0, q4, q4]
    assert result.cash.tolist() == cash
    assert result.positions["asset"].tolist() == position
    assert result.equity.tolist() == [c + q * x for c, q, x in zip(cash, position, bars["close"])]
    assert result.equity.name == "equity" and result.equity.index.equals(bars.index)


def test_trades_table_round_trips_and_the_open_trade():
    bars = hand_bars([10, 11, 12, 13, 14, 15])
    result = run_vectorized(bars, Script(plan=[1, 1, 0, 0.5, 0.5, 1]), cash=1000.0, fees=0.01)
    trades = result.trades
    assert list(trades.columns) == list(TRADE_COLUMNS)
    first, second = trades.iloc[0], trades.iloc[1]
    fills = result.fills
    assert first["side"] == "long" and not first["open"]
    assert (first["entry_time"], first["exit_time"]) == (bars.index[1], bars.index[3])
    assert (first["entry_price"], first["exit_price"]) == (11.0, 13.0)
    assert first["fees"] == fills["fee"].iloc[0] + fills["fee"].iloc[1]
    assert first["pnl"] == (13.0 - 11.0) * first["quantity"] - first["fees"]
    assert first["return"] == first["pnl"] / (11.0 * first["quantity"])
    assert first["duration"] == pd.Timedelta("2h")
    # the open trade is marked at the last close, exit fields empty
    assert second["open"] and pd.isna(second["exit_time"]) and np.isnan(second["exit_price"])
    assert second["pnl"] == (15.5 - 14.0) * second["quantity"] - second["fees"]
    assert second["duration"] == bars.index[-1] - bars.index[4]
    assert result.final_equity == pytest.approx(
        result.cash.iloc[-1] + second["quantity"] * 15.5, rel=1e-15
    )


def test_slippage_moves_the_price_against_the_trader():
    bars = hand_bars([100, 100, 110, 120])
    result = run_vectorized(bars, Script(plan=[1, 0, 0, 0]), cash=1000.0, slippage=10)
    buy, sell = result.fills["price"]
    assert buy == 100 * (1 + 10 / 1e4) and sell == 110 * (1 - 10 / 1e4)
    assert result.fills["quantity"].iloc[0] == 1000.0 / buy  # no fees: all the cash


def test_a_reduction_splits_the_trade_and_a_short_target_stops_at_flat():
    bars = hand_bars([10, 10, 12, 12, 8, 9, 9])
    result = run_vectorized(bars, Script(plan=[1, 0.5, 0.5, -1, 0, -1, 0]), fees=0.001)
    trades = result.trades
    assert trades["side"].tolist() == ["long", "long"]
    assert trades["open"].tolist() == [False, False]
    # half sold at bar 2, the rest at bar 4 (target -1 on a spot account: flat, not short)
    assert trades["entry_time"].tolist() == [bars.index[1], bars.index[1]]
    assert trades["exit_time"].tolist() == [bars.index[2], bars.index[4]]
    fills = result.fills
    assert len(fills) == 3  # the -1 decided on bar 5 finds nothing to sell
    assert trades["quantity"].sum() == pytest.approx(fills["quantity"].iloc[0], rel=1e-15)
    assert trades["fees"].sum() == pytest.approx(fills["fee"].sum(), rel=1e-12)
    assert trades["exit_price"].tolist() == [12.0, 8.0]
    assert result.positions["asset"].min() == 0.0 and result.positions["asset"].iloc[-1] == 0.0
    assert result.final_equity == pytest.approx(CASH + trades["pnl"].sum(), rel=1e-12)


def test_long_only_never_shorts_and_units_size_in_whole_units():
    bars = hand_bars([10, 11, 12, 13])
    result = run_vectorized(bars, Script(plan=[1, -1, 1, 0], long_only=True), units=3)
    assert result.fills["quantity"].tolist() == [3.0, 3.0, 3.0]
    assert result.fills["side"].tolist() == ["buy", "sell", "buy"]
    assert result.positions["asset"].min() == 0.0


def test_a_buy_without_cash_does_not_fill():
    bars = hand_bars([10, 11, 12, 13])
    result = run_vectorized(bars, Script(plan=[1, 0.5, 1, 1]), units=1_000_000, fees=0.01)
    assert len(result.fills) == 1  # all-in, capped by the cash; then nothing to add
    assert result.cash.min() >= -1e-9


# -- the fast target ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sma", "ema"])
@pytest.mark.parametrize("long_only", [True, False])
@pytest.mark.parametrize("fast,slow", [(10, 50), (1, 7), (21, 22)])
def test_fast_target_equals_strategy_target(spot, kind, long_only, fast, slow):
    assert MovingAverageCross in FAST_PATHS
    for bars in spot.values():
        strategy = MovingAverageCross(fast=fast, slow=slow, kind=kind, long_only=long_only)
        ours = fast_target(strategy, bars)
        expected = strategy.target(bars).to_numpy(dtype=float)
        assert np.array_equal(ours.to_numpy(), expected)
        assert ours.index.equals(bars.index)


def test_strategies_without_a_fast_path_use_their_target(spot):
    bars = spot["ETH_BTC"]
    strategy = RsiReversion(long_only=True)
    assert fast_target(strategy, bars) is None
    result = run_vectorized(bars, strategy, fees=FEES)
    flips = np.flatnonzero(np.diff(np.r_[0.0, strategy.target(bars).to_numpy(float)]))
    assert result.fills["time"].tolist() == [bars.index[i + 1] for i in flips if i + 1 < len(bars)]


def test_summary_equals_the_metrics_module(spot):
    for bars in spot.values():
        result = run_vectorized(bars, MovingAverageCross(long_only=True), fees=FEES)
        stats = metrics.stats(
            result.equity, result.trades, fees=result.fills["fee"].sum(), positions=result.positions
        )
        for name, value in result.summary.items():
            assert value == pytest.approx(stats[name], rel=RTOL, abs=1e-12, nan_ok=True), name


def test_periods_per_year_as_the_metrics_module_infers_it(spot):
    for bars in spot.values():  # ADA_BTC has gaps
        assert infer_periods_per_year(bars.index) == metrics.infer_periods_per_year(bars.index)
    ragged = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 00:01", "2024-01-01 00:03",
                               "2024-01-01 00:06", "2024-01-01 00:10"], tz="UTC")  # fmt: skip
    assert infer_periods_per_year(ragged) == metrics.infer_periods_per_year(ragged)


# -- the independent engines ------------------------------------------------------------------


@pytest.mark.parametrize("name", SPOT)
def test_same_trades_and_equity_as_vectorbt(spot, vbt, name):
    """vectorbt 1.2.0 ``Portfolio.from_signals``, set to our convention.

    - Fills at the next open: the signals are shifted by one bar and ``price=open``
      (``close=close`` values the portfolio at each close, as we do).
    - All-in on a cash account: ``size=np.inf`` buys ``cash / (p * (1 + f))``, the cap of
      our convention; ``fees=0.001`` is charged on the notional at each fill.
    - Entries are "fast above slow", exits its negation, as levels: vectorbt ignores an
      entry while in a position and an exit while flat, which is exactly "trade only when
      the target changes" for a 0/1 target.

    Nothing is approximated: trades, per-bar cash, position and value agree to 1e-9.
    """
    bars = spot[name]
    ours = run_vectorized(bars, MovingAverageCross(fast=10, slow=50, long_only=True), fees=FEES)
    above = talib_above(bars)
    entries = np.r_[False, above[:-1]]
    exits = np.r_[False, ~above[:-1]]
    portfolio = vbt.Portfolio.from_signals(
        bars["close"], entries, exits, price=bars["open"], size=np.inf, fees=FEES,
        init_cash=CASH, freq="5min", engine="numba",
    )  # fmt: skip
    theirs = portfolio.trades.records_readable
    trades = ours.trades
    assert len(trades) == len(theirs) > 10
    assert list(trades["entry_time"]) == list(theirs["Entry Timestamp"])
    closed = ~trades["open"].to_numpy()
    assert list(trades["exit_time"][closed]) == list(theirs["Exit Timestamp"][closed])
    assert (theirs["Status"] == "Open").to_numpy().tolist() == trades["open"].tolist()
    for ours_column, their_column in [
        ("entry_price", "Avg Entry Price"), ("quantity", "Size"), ("pnl", "PnL"),
        ("return", "Return"),
    ]:  # fmt: skip
        np.testing.assert_allclose(trades[ours_column], theirs[their_column], rtol=RTOL)
    np.testing.assert_allclose(
        trades["exit_price"][closed], theirs["Avg Exit Price"][closed], rtol=RTOL
    )
    np.testing.assert_allclose(
        trades["fees"], theirs["Entry Fees"] + theirs["Exit Fees"], rtol=RTOL
    )
    assert ours.final_equity == pytest.approx(float(portfolio.final_value()), rel=RTOL)
    np.testing.assert_allclose(ours.equity, portfolio.value(), rtol=RTOL)
    np.testing.assert_allclose(ours.positions["asset"], portfolio.assets(), rtol=RTOL)
    np.testing.assert_allclose(ours.cash, portfolio.cash(), rtol=RTOL, atol=1e-9)


@pytest.mark.parametrize("name", SPOT)
def test_same_trades_and_equity_as_backtesting_py(spot, name):
    """backtesting.py 0.6.6, set to our convention.

    - Fills at the next open: its default (``trade_on_close=False``); a market order placed
      in ``next()`` on bar t fills at bar t+1's open, and ``spread=0`` leaves that price.
    - Sizing: backtesting.py buys whole units (a fraction of equity is rounded down to an
      integer), so both engines trade a fixed integer number of units, ``units=`` in ours
      and ``buy(size=units)`` in it, small enough that neither caps or cancels an order.
    - ``commission=0.001`` is charged on the notional at entry and again at exit, as our
      fee at each fill; its cash books the commission and the trade's P&L rather than the
      notional, which gives the same equity (cash + position at the close).
    - Warm-up: backtesting.py does not call ``next()`` until every ``self.I`` indicator is
      defined (bar 50 here), while our convention may act on the cross decided on bar 49,
      the first bar with both averages. The indicators' warm-up is therefore filled with
      values that cannot cross (fast 0, slow +inf), so ``next()`` runs from bar 1 and the
      rule reads as ours: long while fast > slow, flat otherwise.
    - Its final equity marks the open trade at the last close, as ours does
      (``finalize_trades=False``).

    Entry and exit bars, prices and the final equity agree to 1e-9.
    """
    from backtesting import Backtest
    from backtesting import Strategy as BtStrategy

    talib = pytest.importorskip("talib")
    bars = spot[name]
    units = int(CASH * 0.4 / bars["high"].max())
    assert units >= 1

    class Cross(BtStrategy):
        def init(self):
            self.fast = self.I(lambda x: np.nan_to_num(talib.SMA(x, 10), nan=0.0), self.data.Close)
            self.slow = self.I(
                lambda x: np.nan_to_num(talib.SMA(x, 50), nan=np.inf), self.data.Close
            )

        def next(self):
            if self.fast[-1] > self.slow[-1]:
                if not self.position:
                    self.buy(size=units)
            elif self.position:
                self.position.close()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # open trade at the end; its progress bar
        stats = Backtest(
            bars.rename(columns=str.capitalize), Cross, cash=CASH, commission=FEES
        ).run()
    ours = run_vectorized(
        bars, MovingAverageCross(fast=10, slow=50, long_only=True), fees=FEES, units=units
    )
    assert (ours.fills["quantity"] == units).all()  # no order was capped
    theirs = stats["_trades"]
    closed = ours.trades[~ours.trades["open"]]
    assert len(closed) == len(theirs) > 10
    assert list(closed["entry_time"]) == list(theirs["EntryTime"])
    assert list(closed["exit_time"]) == list(theirs["ExitTime"])
    np.testing.assert_allclose(closed["entry_price"], theirs["EntryPrice"], rtol=RTOL)
    np.testing.assert_allclose(closed["exit_price"], theirs["ExitPrice"], rtol=RTOL)
    np.testing.assert_allclose(closed["pnl"], theirs["PnL"], rtol=RTOL)
    still_open = stats["_strategy"].trades
    assert len(still_open) == int(ours.trades["open"].sum())
    for trade, (_, row) in zip(still_open, ours.trades[ours.trades["open"]].iterrows()):
        assert (trade.entry_time, trade.entry_price) == (row["entry_time"], row["entry_price"])
    assert ours.final_equity == pytest.approx(float(stats["Equity Final [$]"]), rel=RTOL)
    np.testing.assert_allclose(ours.equity, stats["_equity_curve"]["Equity"], rtol=RTOL)


# -- bad input ----------------------------------------------------------------------------------


def test_bad_input_is_refused_with_a_clear_error():
    bars = hand_bars([10, 11, 12, 13])
    script = Script(plan=[1, 0, 1, 0])
    with pytest.raises(DataFormatError, match="no bars"):
        run_vectorized(bars.iloc[:0], script)
    with pytest.raises(DataFormatError, match="DataFrame"):
        run_vectorized(bars["close"], script)
    nan = bars.copy()
    nan.iloc[2, nan.columns.get_loc("open")] = np.nan
    with pytest.raises(DataFormatError, match="open is nan"):
        run_vectorized(nan, script)
    with pytest.raises(DataFormatError, match="sorted"):
        run_vectorized(bars.iloc[::-1], script)
    zero = bars.copy()
    zero.iloc[1, zero.columns.get_loc("close")] = 0.0
    with pytest.raises(DataFormatError, match="positive"):
        run_vectorized(zero, script)
    with pytest.raises(DataFormatError, match="DatetimeIndex"):
        run_vectorized(bars.reset_index(drop=True), script)
    for settings, words in [
        ({"cash": -5}, "cash must be positive"), ({"cash": np.nan}, "finite"),
        ({"fees": 1.5}, "fees"), ({"fees": -0.1}, "fees"), ({"slippage": -1}, "slippage"),
        ({"units": 0}, "units"), ({"cash": "100"}, "number"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError, match=words):
            run_vectorized(bars, script, **settings)
    with pytest.raises(ConfigError, match="Strategy"):
        run_vectorized(bars, "sma")


def test_too_few_bars_raise_the_strategys_own_error():
    bars = hand_bars(np.linspace(10, 20, 30))
    with pytest.raises(DataFormatError, match="at least 50 rows"):
        run_vectorized(bars, MovingAverageCross(fast=10, slow=50))
    with pytest.raises(DataFormatError, match="at least 50 rows"):
        fast_target(MovingAverageCross(fast=10, slow=50), bars)


def test_a_target_out_of_range_is_refused():
    class Wild(Script):
        def rule(self, values):
            out = super().rule(values)
            return out.drop(columns="target")

        def target(self, bars, **inputs):
            return pd.Series(2.0, index=bars.index)

    with pytest.raises(ConfigError, match=r"\[-1, 1\]"):
        run_vectorized(hand_bars([10, 11, 12]), Wild(plan=[0, 0, 0]))


def test_result_displays_itself(spot):
    result = run_vectorized(spot["ETH_BTC"], MovingAverageCross, fees=FEES, symbol="ETH/BTC")
    html = result._repr_html_()
    assert "SMA(10)/SMA(50)" in html and "ETH/BTC" in html and "sharpe" in html
    assert result.trades["symbol"].unique().tolist() == ["ETH/BTC"]
    assert list(result.positions.columns) == ["ETH/BTC"]
    exposure = result.exposure  # shorts too: a short that went against us exceeds 1
    value = (result.positions["ETH/BTC"] * spot["ETH_BTC"]["close"]).abs()
    assert exposure.name == "exposure" and exposure.equals(
        (value / result.equity).rename("exposure")
    )


def test_a_target_that_changes_on_every_bar_gets_every_fill():
    plan = [1.0, 0.0] * 100  # more changes than the first guess of room for records
    bars = hand_bars(np.linspace(10, 30, len(plan)))
    result = run_vectorized(bars, Script(plan=plan), fees=0.001)
    assert len(result.fills) == len(plan) - 1
    assert len(result.trades) == len(plan) // 2
    assert result.fills["time"].tolist() == list(bars.index[1:])
