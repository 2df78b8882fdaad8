"""Market-structure detectors on hand-made bars with known answers, and on real 5m bars.

The real ETH/BTC bars (a crash and a recovery) are for sanity: every detector finds
something, its outputs are consistent, and nothing looks ahead: cutting or altering the
bars after a time leaves every value up to it unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.data.model import to_bars
from workbench.errors import DataFormatError
from workbench.signals import fair_value_gaps, order_blocks, structure_breaks, swings

NaN = np.nan


def make_bars(high, low, open_=None, close=None) -> pd.DataFrame:
    """Bars one minute apart from lists (open and close default to the bar's middle)."""
    high, low = np.asarray(high, float), np.asarray(low, float)
    middle = (high + low) / 2
    index = pd.date_range("2024-01-01", periods=len(high), freq="1min", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {
            "open": middle if open_ is None else np.asarray(open_, float),
            "high": high,
            "low": low,
            "close": middle if close is None else np.asarray(close, float),
            "volume": 1.0,
        },
        index=index,
    )


def zigzag(closes, *, doji: bool = False) -> pd.DataFrame:
    """Bars that open at the previous close and span half a point around their close."""
    closes = np.asarray(closes, float)
    opens = closes.copy() if doji else np.r_[closes[0], closes[:-1]]
    return make_bars(closes + 0.5, closes - 0.5, opens, closes)


# Swing highs confirmed at bars 3 (12.5) and 7 (13.5); swing lows at 5 (9.5) and 11 (7.5).
# Closes break 12.5 at bar 6, then 9.5 at bar 9 (a reversal) and 7.5 at bar 13.
LEGS = [10, 11, 12, 11, 10, 11, 13, 12, 11, 9, 8, 9, 10, 7]


@pytest.fixture(scope="module")
def eth_btc(shared_data) -> pd.DataFrame:
    return to_bars(pd.read_parquet(shared_data / "binance-spot" / "5m" / "ETH_BTC.parquet"))


def sparse(n: int, values: dict[int, float], fill=NaN) -> list:
    return [values.get(i, fill) for i in range(n)]


# -- known answers ---------------------------------------------------------------------------


def test_swings_are_written_at_their_confirmation_bar():
    bars = make_bars([1, 2, 5, 3, 2, 4, 6, 4, 3, 3], [0, 1, 2, 1, 0.5, 2, 3, 1, 2, 2])
    out = swings(bars, left=2, right=2)
    assert out["swing_high"].tolist() == pytest.approx(sparse(10, {4: 5, 8: 6}), nan_ok=True)
    assert out["swing_low"].tolist() == pytest.approx(sparse(10, {6: 0.5, 9: 1}), nan_ok=True)
    later = swings(bars, left=2, right=3)["swing_high"]  # one more bar to confirm each
    assert later.tolist() == pytest.approx(sparse(10, {5: 5, 9: 6}), nan_ok=True)


def test_a_flat_top_is_one_swing_at_its_first_bar():
    out = swings(make_bars([1, 2, 5, 5, 2, 1], [0, 0, 0, 0, 0, 0]), left=2, right=2)
    assert out["swing_high"].tolist() == pytest.approx(sparse(6, {4: 5}), nan_ok=True)


def test_fair_value_gaps_with_bounds_and_fill_times():
    bars = make_bars(
        high=[10, 12, 13, 13, 12, 11, 11.2, 12],
        low=[9, 10, 11, 11.5, 10.5, 9.8, 10, 11],
    )
    out = fair_value_gaps(bars)
    assert out["fvg"].tolist() == [0, 0, 1, 0, 0, -1, 0, 0]
    assert out["top"].tolist() == pytest.approx(sparse(8, {2: 11, 5: 11.5}), nan_ok=True)
    assert out["bottom"].tolist() == pytest.approx(sparse(8, {2: 10, 5: 11}), nan_ok=True)
    filled = {2: bars.index[5], 5: bars.index[7]}  # bar 4 only dips into the first gap
    assert out["filled_at"].tolist() == sparse(8, filled, fill=pd.NaT)


def test_breaks_of_structure_and_changes_of_character():
    out = structure_breaks(zigzag(LEGS), left=1, right=1)
    assert out["bos"].tolist() == sparse(14, {6: 1, 13: -1}, fill=0)
    assert out["choch"].tolist() == sparse(14, {9: -1}, fill=0)
    assert out["level"].tolist() == pytest.approx(
        sparse(14, {6: 12.5, 9: 9.5, 13: 7.5}), nan_ok=True
    )
    assert out["trend"].tolist() == [0] * 6 + [1] * 3 + [-1] * 5


def test_order_blocks_are_the_last_opposite_candle_before_the_break():
    bars = zigzag(LEGS)
    out = order_blocks(bars, left=1, right=1)
    assert out["order_block"].tolist() == sparse(14, {6: 1, 9: -1, 13: -1}, fill=0)
    # Bar 4 is the last down candle before the up break; bars 6 and 12 the last up ones.
    zones = {6: (10.5, 9.5, 4), 9: (13.5, 12.5, 6), 13: (10.5, 9.5, 12)}
    blocks = out[out["order_block"] != 0]
    assert list(blocks[["top", "bottom"]].itertuples(index=False)) == [
        zones[i][:2] for i in (6, 9, 13)
    ]
    assert blocks["candle_time"].tolist() == [bars.index[zones[i][2]] for i in (6, 9, 13)]
    assert not order_blocks(zigzag(LEGS, doji=True), 1, 1)["order_block"].any()


# -- real bars -------------------------------------------------------------------------------


def test_detectors_find_consistent_structure_in_real_bars(eth_btc):
    found = swings(eth_btc)
    assert found["swing_high"].notna().sum() > 100 and found["swing_low"].notna().sum() > 100
    at = found["swing_high"].notna().to_numpy().nonzero()[0]
    assert (found["swing_high"].to_numpy()[at] == eth_btc["high"].to_numpy()[at - 2]).all()

    gaps = fair_value_gaps(eth_btc)
    gaps = gaps[gaps["fvg"] != 0]
    assert (gaps["fvg"] == 1).sum() > 20 and (gaps["fvg"] == -1).sum() > 20
    assert (gaps["top"] > gaps["bottom"]).all()
    assert (gaps["filled_at"].dropna() > gaps.index[gaps["filled_at"].notna()]).all()

    breaks = structure_breaks(eth_btc)
    assert (breaks["bos"] != 0).sum() > 20 and (breaks["choch"] != 0).sum() > 20
    assert not ((breaks["bos"] != 0) & (breaks["choch"] != 0)).any()

    blocks = order_blocks(eth_btc)
    made = blocks[blocks["order_block"] != 0]
    assert len(made) > 20 and (made["candle_time"] < made.index).all()
    assert (made["top"] >= made["bottom"]).all()


DETECTORS = {
    "swings": lambda bars: swings(bars, 3, 2),
    "fair_value_gaps": fair_value_gaps,
    "structure_breaks": structure_breaks,
    "order_blocks": order_blocks,
}


def known_by(out: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    """The rows up to ``cut`` as they were known then (a gap filled later was still open)."""
    known = out[out.index <= cut]
    if "filled_at" in known:
        known = known.assign(filled_at=known["filled_at"].where(known["filled_at"] <= cut))
    return known


@pytest.mark.parametrize("name", DETECTORS)
def test_structure_detectors_do_not_look_ahead(eth_btc, name):
    detect = DETECTORS[name]
    full = detect(eth_btc)
    for row in (1, 700, 2500, 4000):
        cut = eth_btc.index[row]
        later = eth_btc.index > cut
        crashed = eth_btc.copy()
        crashed[later] = eth_btc[later] * [0.9, 0.9, 0.9, 0.9, 3.0]
        for variant in (eth_btc.iloc[: row + 1], crashed):
            part = detect(variant)
            pd.testing.assert_frame_equal(known_by(part, cut), known_by(full, cut))


# -- bad input -------------------------------------------------------------------------------


def test_bad_bars_are_refused(eth_btc):
    bars = eth_btc.iloc[:50]
    cases = [
        (bars.iloc[[1, 0, 2]], r"sorted and unique, but row 1 .* is earlier"),
        (pd.concat([bars, bars.iloc[-1:]]), "repeats the time"),
        (bars.drop(columns="high"), r"needs column\(s\) \['high'\]"),
        (bars.iloc[:0], "no rows"),
        (bars.reset_index(drop=True), "needs a DatetimeIndex"),
        (bars.assign(high=bars["high"].mask(np.arange(50) == 7)), "row 7"),
        (bars.assign(low=bars["low"].mask(np.arange(50) < 3)), "first 3 rows hold NaNs"),
        (bars.assign(low="x"), "must be numeric"),
        (bars["high"], "needs a DataFrame"),
    ]
    for detect in (swings, fair_value_gaps, structure_breaks, order_blocks):
        for frame, words in cases:
            with pytest.raises(DataFormatError, match=words):
                detect(frame)
    for left, right in ((0, 2), (2, 0), (2.5, 2), (True, 2)):
        for detect in (swings, structure_breaks, order_blocks):
            with pytest.raises(DataFormatError, match="left|right"):
                detect(bars, left, right)
