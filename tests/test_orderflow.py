"""Order-flow and order-book signals against plain reference computations.

The tape detectors run on a real Binance futures tape and are checked, to 1e-12, against
straightforward loops or groupbys written here; the book signals on hand-made books with
known answers and on SimulatedMarket books. Every detector is also checked for look-ahead:
cutting or altering the data after a time leaves every value up to that time unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.data.model import OrderBook, to_trades
from workbench.data.sources.simulated import SimulatedMarket
from workbench.errors import DataFormatError
from workbench.signals import (
    book_imbalance,
    cvd,
    depth_within,
    flow_imbalance,
    imbalance_events,
    liquidity_change,
    liquidity_events,
    trade_delta,
    volume_confirmation,
    volume_delta,
)

TOL = {"rtol": 1e-12, "atol": 1e-12}
T0 = pd.Timestamp("2024-01-01 12:00", tz="UTC")


@pytest.fixture(scope="module")
def tape(shared_data) -> pd.DataFrame:
    frame = pd.read_parquet(shared_data / "binance-futures" / "trades" / "ETH_USDT_USDT.parquet")
    return to_trades(frame)


@pytest.fixture(scope="module")
def tape_bars(tape) -> pd.DataFrame:
    """One-second bars of the real tape (seconds without trades left out)."""
    ohlc = tape["price"].resample("1s").ohlc()
    return ohlc.assign(volume=tape["amount"].resample("1s").sum()).dropna()


@pytest.fixture(scope="module")
def sim_books() -> list[OrderBook]:
    market = SimulatedMarket(["BTC/USDT"], now="2024-01-02")
    return [
        market.fetch_order_book("BTC/USDT", at=T0 + pd.Timedelta(seconds=s)) for s in range(300)
    ]


def book(at: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> OrderBook:
    return OrderBook("X/Y", T0 + pd.Timedelta(seconds=at), np.array(bids), np.array(asks))


def signed(tape: pd.DataFrame) -> list[float]:
    return [a if s == "buy" else -a for a, s in zip(tape["amount"], tape["side"])]


# -- values against reference computations -------------------------------------------------


def test_trade_delta_and_cvd_are_signed_aggressor_volume(tape):
    expected = signed(tape)
    delta = trade_delta(tape)
    assert delta.name == "delta" and delta.index.equals(tape.index)
    np.testing.assert_array_equal(delta.to_numpy(), expected)
    running, totals = 0.0, []
    for value in expected:
        running += value
        totals.append(running)
    np.testing.assert_allclose(cvd(tape).to_numpy(), totals, **TOL)


@pytest.mark.parametrize("freq", ["1s", "10s", "1min"])
def test_volume_delta_matches_groupby(tape, freq):
    out = volume_delta(tape, freq)
    buckets = tape.index.floor(freq)
    grouped = tape.groupby([buckets, "side"])["amount"].sum().unstack(fill_value=0.0)
    grid = pd.date_range(buckets[0], buckets[-1], freq=freq, name="timestamp")
    grouped = grouped.reindex(grid, fill_value=0.0)
    np.testing.assert_allclose(out["buy_volume"], grouped["buy"], **TOL)
    np.testing.assert_allclose(out["sell_volume"], grouped["sell"], **TOL)
    np.testing.assert_allclose(out["delta"], grouped["buy"] - grouped["sell"], **TOL)
    np.testing.assert_allclose(out["cvd"], (grouped["buy"] - grouped["sell"]).cumsum(), **TOL)
    assert out.index.equals(grid)


def reference_flow(tape: pd.DataFrame, window: str) -> pd.DataFrame:
    """Buy and sell volume over (t - window, t], trade by trade, summed afresh each time."""
    times, span, rows = tape.index, pd.Timedelta(window), []
    amount, side = tape["amount"].to_numpy(), tape["side"].to_numpy()
    for i, now in enumerate(times):
        inside = np.flatnonzero(times[: i + 1] > now - span)
        buy = amount[inside][side[inside] == "buy"].sum()
        sell = amount[inside][side[inside] == "sell"].sum()
        rows.append((buy, sell, (buy - sell) / (buy + sell)))
    return pd.DataFrame(rows, columns=["buy_volume", "sell_volume", "imbalance"], index=times)


@pytest.mark.parametrize("window", ["10s", "15s", "30s"])
def test_flow_imbalance_matches_window_sums(tape, window):
    out = flow_imbalance(tape, window)
    expected = reference_flow(tape, window)
    for column in expected:
        np.testing.assert_allclose(out[column], expected[column], **TOL)
    assert out["imbalance"].between(-1, 1).all()


@pytest.mark.parametrize(("threshold", "min_volume", "rearm"), [(0.6, 0, None), (0.5, 50, 0.4)])
def test_imbalance_events_match_a_state_machine(tape, threshold, min_volume, rearm):
    flow = reference_flow(tape, "15s")
    calm = threshold / 2 if rearm is None else rearm
    state, expected = 0, []
    for now, buy, sell, imbalance in flow.itertuples():
        if abs(imbalance) >= threshold and buy + sell >= min_volume:
            new = 1 if imbalance > 0 else -1
        else:
            new = 0 if abs(imbalance) < calm else state
        if new not in (0, state):
            expected.append((now, new, imbalance, buy + sell))
        state = new
    out = imbalance_events(tape, "15s", threshold, min_volume, rearm)
    assert len(out) == len(expected) > 3
    assert list(out.index) == [e[0] for e in expected]
    assert out["direction"].tolist() == [e[1] for e in expected]
    np.testing.assert_allclose(out["imbalance"], [e[2] for e in expected], **TOL)
    np.testing.assert_allclose(out["volume"], [e[3] for e in expected], **TOL)


def test_volume_confirmation_matches_window_statistics(tape_bars):
    window, k, m = 10, 1.5, 1.2
    out = volume_confirmation(tape_bars, window, k, m)
    change = np.log(tape_bars["close"]).diff().to_numpy()
    volume = tape_bars["volume"].to_numpy()
    corr, ratio, confirmed = [], [], []
    for i in range(len(change)):
        now = slice(i - window + 1, i + 1)
        past = slice(i - window, i)
        corr.append(np.corrcoef(abs(change[now]), volume[now])[0, 1] if i >= window else np.nan)
        median = np.median(volume[past]) if i >= window else np.nan
        sigma = np.std(change[past], ddof=1) if i > window else np.nan
        ratio.append(volume[i] / median)
        confirmed.append(bool(abs(change[i]) > k * sigma and volume[i] > m * median))
    np.testing.assert_allclose(out["return"], change, **TOL)
    np.testing.assert_allclose(out["corr"], corr, **TOL)
    np.testing.assert_allclose(out["volume_ratio"], ratio, **TOL)
    assert out["confirmed"].tolist() == confirmed and any(confirmed)


# -- order books ---------------------------------------------------------------------------


def test_book_imbalance_on_a_known_book():
    known = book(0, [(99, 3), (98, 1), (97, 100)], [(101, 1), (102, 1)])
    assert book_imbalance(known, levels=2) == pytest.approx((4 - 2) / 6)
    assert book_imbalance(known, levels=2, weights=[1, 0.5]) == pytest.approx((3.5 - 1.5) / 5)
    assert book_imbalance(known, levels=3) == pytest.approx((104 - 2) / 106)  # thin ask side
    assert book_imbalance(book(0, [], [(101, 2)]), levels=1) == -1.0


def test_book_imbalance_over_simulated_books_matches_their_tables(sim_books):
    weights = [1.0, 0.8, 0.6, 0.4, 0.2]
    out = book_imbalance(sim_books, levels=5, weights=weights)
    assert out.name == "nobi" and len(out) == len(sim_books)
    for snapshot, value in zip(sim_books, out):
        table = snapshot.to_frame().query("level < 5")
        sized = table["amount"] * np.take(weights, table["level"])
        bid, ask = sized[table["side"] == "bid"].sum(), sized[table["side"] == "ask"].sum()
        assert value == pytest.approx((bid - ask) / (bid + ask), rel=1e-12)
    assert out.between(-1, 1).all() and out.std() > 0.1


def test_depth_within_counts_levels_inside_the_band():
    known = book(0, [(99.95, 1), (99.9, 2), (99.0, 4)], [(100.05, 3), (100.5, 5)])
    out = depth_within([known], bps=10)  # mid 100: the band is [99.9, 100.1]
    assert out.iloc[0].tolist() == [3.0, 3.0, 6.0]


def step_books(withdraw: tuple[int, int], seconds: int = 120) -> list[OrderBook]:
    """Books a second apart with the same ten levels a side, thinned to a tenth in between
    ``withdraw`` seconds."""
    start, end = withdraw
    books = []
    for s in range(seconds):
        size = 0.1 if start <= s < end else 1.0
        bids = [(100 - 0.01 * (i + 1), size) for i in range(10)]
        asks = [(100 + 0.01 * (i + 1), size) for i in range(10)]
        books.append(book(s, bids, asks))
    return books


def test_liquidity_events_on_a_known_withdrawal():
    depth = depth_within(step_books((60, 90)), bps=50)["depth"]
    events = liquidity_events(depth, window="30s", threshold=4)
    assert list(events.index) == [T0 + pd.Timedelta(seconds=s) for s in (60, 90)]
    assert events["direction"].tolist() == [-1, 1]
    np.testing.assert_allclose(events["rate"], [np.log(0.1), np.log(10)], **TOL)
    absolute = liquidity_events(depth, window="30s", threshold=4, relative=False)
    assert absolute["rate"].tolist() == [-18.0, 18.0]


def test_liquidity_events_find_a_withdrawal_in_simulated_books(sim_books):
    thinned = [
        OrderBook(b.symbol, b.timestamp, b.bids * [1, 0.2], b.asks * [1, 0.2])
        if 200 <= i < 240
        else b
        for i, b in enumerate(sim_books)
    ]
    depth = depth_within(thinned, bps=25)["depth"]
    events = liquidity_events(depth, window="60s", threshold=5)
    withdrawal, refill = (T0 + pd.Timedelta(seconds=s) for s in (200, 240))
    assert events.loc[withdrawal, "direction"] == -1
    assert events.loc[refill, "direction"] == 1
    assert len(events) <= 4  # hardly any noise events in 300 noisy books


@pytest.mark.parametrize("relative", [True, False])
def test_liquidity_change_matches_window_quantiles(sim_books, relative):
    depth = depth_within(sim_books, bps=25)["depth"]
    out = liquidity_change(depth, window="30s", min_periods=10, relative=relative)
    level = np.log(depth.to_numpy()) if relative else depth.to_numpy()
    elapsed = np.diff(depth.index.as_unit("ns").asi8, prepend=0) / 1e9
    rate = np.diff(level, prepend=np.nan) / elapsed
    acceleration = np.diff(rate, prepend=np.nan) / elapsed
    np.testing.assert_allclose(out["rate"], rate, **TOL)
    np.testing.assert_allclose(out["acceleration"], acceleration, **TOL)
    for name, values in (("rate_score", rate), ("acceleration_score", acceleration)):
        scores = []
        for i, now in enumerate(depth.index):
            past = values[(depth.index >= now - pd.Timedelta("30s")) & (depth.index < now)]
            past = past[~np.isnan(past)]
            if past.size < 10:
                scores.append(np.nan)
                continue
            q25, q50, q75 = np.quantile(past, [0.25, 0.5, 0.75])
            scores.append((values[i] - q50) / ((q75 - q25) / 1.3489795003921634))
        np.testing.assert_allclose(out[name], scores, **TOL)


# -- no look-ahead -------------------------------------------------------------------------


def altered_after(tape: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    """The tape with every later trade's side flipped and size tripled."""
    later = tape.index > cut
    flipped = tape["side"].where(~later, tape["side"].map({"buy": "sell", "sell": "buy"}))
    return tape.assign(side=flipped, amount=tape["amount"].where(~later, tape["amount"] * 3))


TAPE_DETECTORS = {
    "trade_delta": (trade_delta, None),
    "cvd": (cvd, None),
    "volume_delta": (lambda t: volume_delta(t, "10s"), pd.Timedelta("10s")),
    "flow_imbalance": (lambda t: flow_imbalance(t, "15s"), None),
    "imbalance_events": (lambda t: imbalance_events(t, "15s", 0.5), None),
}


@pytest.mark.parametrize("name", TAPE_DETECTORS)
def test_tape_detectors_do_not_look_ahead(tape, name):
    detect, bucket = TAPE_DETECTORS[name]
    full = detect(tape)
    for cut in tape.index[[100, 333, 334, 700]]:
        known = full.index + bucket <= cut if bucket is not None else full.index <= cut
        for variant in (tape[tape.index <= cut], altered_after(tape, cut)):
            assert_same_prefix(full[known], detect(variant))


def test_per_trade_values_ignore_later_trades_printed_at_the_same_time(tape):
    same = np.flatnonzero(tape.index[1:] == tape.index[:-1])  # row i shares row i+1's time
    assert same.size > 100
    for row in same[[0, 50, 100]]:
        for detect in (trade_delta, cvd, lambda t: flow_imbalance(t, "10s")):
            assert_same_prefix(detect(tape).iloc[: row + 1], detect(tape.iloc[: row + 1]))


def test_volume_confirmation_does_not_look_ahead(tape_bars):
    full = volume_confirmation(tape_bars, 10)
    for row in (30, 90):
        cut = tape_bars.index[row]
        later = tape_bars.index > cut
        altered = tape_bars.assign(close=tape_bars["close"].where(~later, 1.0),
                                   volume=tape_bars["volume"].where(~later, 1e6))
        for variant in (tape_bars.iloc[: row + 1], altered):
            assert_same_prefix(full.iloc[: row + 1], volume_confirmation(variant, 10))


def test_book_signals_do_not_look_ahead(sim_books):
    depth = depth_within(sim_books, bps=25)["depth"]
    for detect in (
        lambda books: book_imbalance(books, levels=3),
        lambda books: depth_within(books, bps=25),
        lambda books: liquidity_change(depth_within(books, bps=25)["depth"], "30s"),
        lambda books: liquidity_events(depth_within(books, bps=25)["depth"], "30s", 2.0),
    ):
        full = detect(sim_books)
        for row in (50, 150):
            altered = sim_books[: row + 1] + [
                OrderBook(b.symbol, b.timestamp, b.bids * [1, 5], b.asks)
                for b in sim_books[row + 1 :]
            ]
            for variant in (sim_books[: row + 1], altered):
                assert_same_prefix(full[full.index <= sim_books[row].timestamp], detect(variant))
    assert len(liquidity_events(depth, "30s", 2.0)) > 0  # the events check above had some


def assert_same_prefix(expected: pd.Series | pd.DataFrame, result: pd.Series | pd.DataFrame):
    """``result`` holds ``expected`` unchanged as its first rows."""
    head = result.iloc[: len(expected)]
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(head, expected, check_freq=False)
    else:
        pd.testing.assert_series_equal(head, expected, check_freq=False)


# -- bad input -----------------------------------------------------------------------------


def test_bad_tapes_are_refused(tape):
    row = np.arange(len(tape))
    cases = [
        (tape.iloc[[1, 0, 2]], r"must be sorted, but row 1 \(.*\) is earlier"),
        (tape.drop(columns="side"), r"need column\(s\) \['side'\].*to_trades"),
        (tape.assign(side=tape["side"].str.upper()), "'buy' or 'sell'.*row 0 has 'BUY'"),
        (tape.assign(side=tape["side"].mask(row == 9)), "row 9 has <NA>"),
        (tape.iloc[:0], "no rows"),
        (tape.assign(amount=-tape["amount"]), "amount is negative"),
        (tape.assign(amount=tape["amount"].mask(row == 5)), "nan at row 5"),
        (tape.assign(amount="1"), "amount must be numeric"),
        (tape.reset_index(drop=True), "needs a DatetimeIndex"),
        (tape["amount"], "needs a DataFrame of trades"),
    ]
    for detect in (trade_delta, cvd, volume_delta, flow_imbalance, imbalance_events):
        for frame, words in cases:
            with pytest.raises(DataFormatError, match=words):
                detect(frame)


@pytest.mark.parametrize("window", ["15", "abc", "-5s", "0s", "1M", 15, None])
def test_bad_windows_are_refused(tape, window):
    with pytest.raises(DataFormatError, match="positive duration with a unit"):
        flow_imbalance(tape, window)
    with pytest.raises(DataFormatError, match="positive duration with a unit"):
        volume_delta(tape, window)
    depth = pd.Series([1.0, 2.0], index=tape.index.unique()[:2])
    with pytest.raises(DataFormatError, match="positive duration with a unit"):
        liquidity_change(depth, window)


def test_bad_parameters_are_refused(tape, tape_bars):
    for kwargs in ({"threshold": 0}, {"threshold": 1.5}, {"threshold": 0.5, "rearm": 0.6}):
        with pytest.raises(DataFormatError):
            imbalance_events(tape, **kwargs)
    with pytest.raises(DataFormatError, match="window"):
        volume_confirmation(tape_bars, window=1)
    with pytest.raises(DataFormatError, match="needs column"):
        volume_confirmation(tape_bars.drop(columns="volume"))
    with pytest.raises(DataFormatError, match="positive"):
        volume_confirmation(tape_bars.assign(close=0.0))


def test_bad_books_and_liquidity_series_are_refused(sim_books):
    ok = book(0, [(99, 1)], [(101, 1)])
    cases = [
        (lambda: book_imbalance([]), "no rows"),
        (lambda: book_imbalance([ok, "book"]), "needs OrderBooks"),
        (lambda: book_imbalance(sim_books[::-1]), "sorted"),
        (lambda: book_imbalance(ok, levels=0), "levels"),
        (lambda: book_imbalance(ok, levels=2, weights=[1.0]), "weights"),
        (lambda: book_imbalance(ok, levels=2, weights=[0.0, 1.0]), "best level"),
        (lambda: book_imbalance(book(0, [], [])), "no levels"),
        (lambda: depth_within([book(0, [], [(101, 1)])]), "empty side"),
        (lambda: depth_within([ok], bps=0), "bps"),
    ]
    depth = depth_within(sim_books[:20], bps=25)["depth"]
    cases += [
        (lambda: liquidity_change(depth.iloc[::-1]), "sorted and unique"),
        (lambda: liquidity_change(pd.concat([depth, depth.iloc[-1:]])), "repeats"),
        (lambda: liquidity_change(depth.iloc[:0]), "no rows"),
        (lambda: liquidity_change(depth.where(depth.index != depth.index[3])), "nan"),
        (lambda: liquidity_change(depth.to_frame()), "Series"),
        (lambda: liquidity_events(depth, threshold=-1), "threshold"),
        (lambda: liquidity_change(depth - depth.iloc[5]), "relative=False"),
    ]
    for call, words in cases:
        with pytest.raises(DataFormatError, match=words):
            call()
