"""Backtest speed against vectorbt, backtesting.py and a fused numba loop, side by side.

One process, the same seeded synthetic 1-minute bars (1,000,000 by default) and the same
strategy for every engine: an SMA(10)/SMA(50) long-only cross, all-in, 0.1 % fees,
decisions on a bar's close filled at the next bar's open. Every engine's trades are
asserted equal (fill bars and prices, final equity to 1e-9) before any time is printed.

The account starts with 1e12: on a random walk the crosses whipsaw, and 0.1 % fees on up
to 33,000 fills (SMA(5)/SMA(60) in the sweep) shrink the account by a factor of up to
1e-14 over the million bars. From 10,000 it would end near 1e-10, and vectorbt's
absolute tolerances start refusing orders once its cash falls to about 1e-6, so the
engines would part ways near the end for a reason that has nothing to do with speed.

Sections:

- single run: our vectorised path (``run_vectorized`` and its final equity; its fill and
  trade records are computed in the run, the equity curve and the pandas tables when
  first read, as vectorbt's portfolio computes its curves on demand: a second row adds
  building the curve and the trades table); vectorbt 1.2 ``Portfolio.from_signals`` on
  its numba engine, fed by vectorbt's TA-Lib SMA indicator (``IndicatorFactory.from_talib``,
  the same values as ours), then ``final_value()``; and the reference, one plain fused
  numba loop computing both averages and the fills in a single pass, the practical speed
  limit. vectorbt gets the bars on a tz-naive index (see :func:`naive_index`). Cold = the
  first call in this process (numba's on-disk cache, when present, spares the compile;
  ``--fresh-cache`` compiles everything anew), warm = the best of ``--runs`` rounds in
  which the engines take turns, so a busy machine slows them alike.
- backtesting.py on the first ``--bt-bars`` bars (it runs Python per bar), in whole
  units (10 per trade, from 10,000 cash) with ``commission=0.001``, its SMAs declared
  with ``self.I``, against our path in the same units; bars per second.
- the event engine against backtesting.py on that slice: the same rule as a workbench
  ``EventStrategy`` (one Python ``on_bar`` call per bar, orders through the order manager,
  risk seam and simulated venue). Both runs end with their stats computed (backtesting.py
  builds its trades table for them); our trades, orders and fills tables are built when
  first read, so a second row times the run with all three read.
- a 100-combination (fast, slow) sweep (fast 5..50, slow 60..240): ours (``sweep``), the
  fused loop over the combinations in parallel threads, and vectorbt's broadcast sweep
  of the same grid in a child process (it needs about 9 GB; with too little free memory
  it runs on fewer bars and its time is scaled, which the output says).

Peak memory is tracemalloc's peak of traced allocations during a warm call (numpy and
numba both report to it), in MB; vectorbt's sweep reports its child's peak RSS growth.
Another engine is one more function in ``SECTIONS``. Ends with one JSON line of every
figure.

    .venv/bin/python benchmarks/backtest.py [--bars N] [--runs R] [--bt-bars N] [--only event]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

if "--fresh-cache" in sys.argv:  # before numba is imported: compile every kernel anew
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-bench-")

import numpy as np
import pandas as pd
from numba import njit, prange

import _synthetic

CASH, FEES, FAST, SLOW = 1e12, 0.001, 10, 50
BT_CASH, UNITS = 10_000.0, 10  # backtesting.py trades whole units: 10 at about 100 each
FAST_GRID = (5, 10, 15, 20, 25, 30, 35, 40, 45, 50)
SLOW_GRID = (60, 80, 100, 120, 140, 160, 180, 200, 220, 240)
RTOL = 1e-9


def synthetic_bars(rows: int, seed: int = 7) -> pd.DataFrame:
    """The seeded walk, each bar opening with a small gap from the previous close."""
    return _synthetic.synthetic_bars(rows, seed, gap=2e-4)


# -- measuring --------------------------------------------------------------------------------


def timed(func: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """(cold, warm) seconds and the first result: the first call, then the best of ``runs``."""
    return race({"": func}, runs)[""]


def race(funcs: dict[str, Callable[[], Any]], runs: int) -> dict[str, tuple[float, float, Any]]:
    """Per engine: cold seconds (its first call), warm seconds (the best of ``runs`` rounds
    in which the engines take turns, so that a busy machine slows them alike) and the
    first call's result."""
    out = {}
    for name, func in funcs.items():
        start = time.perf_counter()
        result = func()
        out[name] = [time.perf_counter() - start, np.inf, result]
    for _ in range(runs):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            out[name][1] = min(out[name][1], time.perf_counter() - start)
    return {name: tuple(value) for name, value in out.items()}


def peak_mb(func: Callable[[], Any]) -> float:
    """tracemalloc's peak of traced allocations during one call, in MB."""
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@dataclass
class Bench:
    """What the sections share: the data, the figures so far and the targets' verdicts."""

    bars: pd.DataFrame
    runs: int
    bt_bars: int
    figures: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, bool] = field(default_factory=dict)

    def target(self, name: str, passed: bool) -> None:
        self.targets[name] = bool(passed)
        print(f"  {'PASS' if passed else 'FAIL'}  {name}")


def same_fills(name: str, bars: np.ndarray, prices: np.ndarray, ref: tuple) -> None:
    """Assert fills at the same bars and prices as the reference (our vectorised run)."""
    ref_bars, ref_prices = ref
    assert np.array_equal(bars, ref_bars), f"{name}: fills at other bars than ours"
    np.testing.assert_allclose(prices, ref_prices, rtol=RTOL, err_msg=f"{name}: fill prices")


def same_value(name: str, value: float, ref: float) -> None:
    assert abs(value - ref) <= RTOL * abs(ref), f"{name}: final equity {value!r} != {ref!r}"


# -- the reference: one fused numba loop ----------------------------------------------------


@njit(cache=True, nogil=True)
def fused(open_, close, fast, slow, cash, fee, fill_bar, fill_price):
    """Both running sums (TA-Lib's order of operations), the cross and the all-in fills
    in one pass; returns the final equity and the number of fills."""
    fsum = 0.0
    ssum = 0.0
    q = 0.0
    previous = 0.0
    target = 0.0
    k = 0
    for t in range(close.size):
        if target != previous:  # decided on bar t - 1, filled at bar t's open
            previous = target
            p = open_[t]
            if target > 0.0:  # all-in: cash / (1 + fee) buys, the rest is the fee
                q = cash / (1.0 + fee) / p
                cash = 0.0
            else:
                cash = cash + q * p - q * p * fee
                q = 0.0
            fill_bar[k] = t
            fill_price[k] = p
            k += 1
        x = close[t]
        fsum += x
        ssum += x
        target = 0.0
        if t >= slow - 1 and fsum / fast - ssum / slow > 0.0:
            target = 1.0
        if t >= fast - 1:
            fsum -= close[t - fast + 1]
        if t >= slow - 1:
            ssum -= close[t - slow + 1]
    return cash + q * close[close.size - 1], k


@njit(cache=True, parallel=True)
def fused_sweep(open_, close, fasts, slows, cash, fee, final, fills):
    """:func:`fused` for every (fast, slow) pair, in parallel threads, keeping the final
    equity and the number of fills (no per-combination arrays)."""
    for c in prange(fasts.size):
        final[c], fills[c] = _fused_count(open_, close, fasts[c], slows[c], cash, fee)


@njit(cache=True, nogil=True)
def _fused_count(open_, close, fast, slow, cash, fee):
    fsum = 0.0
    ssum = 0.0
    q = 0.0
    previous = 0.0
    target = 0.0
    k = 0
    for t in range(close.size):
        if target != previous:
            previous = target
            p = open_[t]
            if target > 0.0:
                q = cash / (1.0 + fee) / p
                cash = 0.0
            else:
                cash = cash + q * p - q * p * fee
                q = 0.0
            k += 1
        x = close[t]
        fsum += x
        ssum += x
        target = 0.0
        if t >= slow - 1 and fsum / fast - ssum / slow > 0.0:
            target = 1.0
        if t >= fast - 1:
            fsum -= close[t - fast + 1]
        if t >= slow - 1:
            ssum -= close[t - slow + 1]
    return cash + q * close[close.size - 1], k


def naive_index(bars: pd.DataFrame) -> pd.DataFrame:
    """The bars on a tz-naive index, for vectorbt: with a UTC index it turns the index into
    a million Python objects for a shape check on every result it wraps (about 1 s each
    here), a cost that has nothing to do with its engine."""
    return bars.set_axis(bars.index.tz_localize(None), axis=0)


def run_fused(bars: pd.DataFrame) -> tuple[float, np.ndarray, np.ndarray]:
    open_, close = bars["open"].to_numpy(), bars["close"].to_numpy()
    fill_bar = np.empty(close.size, dtype=np.int64)  # untouched pages cost nothing
    fill_price = np.empty(close.size)
    final, k = fused(open_, close, FAST, SLOW, CASH, FEES, fill_bar, fill_price)
    return final, fill_bar[:k], fill_price[:k]


# -- sections ---------------------------------------------------------------------------------


def section_single(bench: Bench) -> None:
    """One run over all the bars: ours, vectorbt, the fused loop."""
    import vectorbt as vbt

    from workbench.backtest.vectorized import run_vectorized
    from workbench.strategies import MovingAverageCross

    bars, runs = bench.bars, bench.runs
    strategy = MovingAverageCross(fast=FAST, slow=SLOW, long_only=True)

    def ours():
        result = run_vectorized(bars, strategy, cash=CASH, fees=FEES)
        return result, result.final_equity

    def ours_with_frames():
        result = run_vectorized(bars, strategy, cash=CASH, fees=FEES)
        return result.equity, result.trades

    sma = vbt.IndicatorFactory.from_talib("SMA")
    naive = naive_index(bars)

    def vectorbt():
        close = naive["close"]
        fast = sma.run(close, timeperiod=FAST).real.to_numpy()
        slow = sma.run(close, timeperiod=SLOW).real.to_numpy()
        above = fast > slow
        entries = np.r_[False, above[:-1]]
        exits = np.r_[False, ~above[:-1]]
        portfolio = vbt.Portfolio.from_signals(
            close, entries, exits, price=naive["open"], size=np.inf, fees=FEES,
            init_cash=CASH, freq="1min", engine="numba",
        )  # fmt: skip
        return portfolio, float(portfolio.final_value())

    print(f"\nsingle run, {len(bars):,} bars")
    engines = {
        "ours": ours,
        "ours + frames": ours_with_frames,
        "vectorbt": vectorbt,
        "fused loop": lambda: run_fused(bars),
    }
    times = race(engines, runs)
    result = times["ours"][2][0]
    portfolio = times["vectorbt"][2][0]
    # value() rather than final_value(): the latter adds up P&L from the initial cash and
    # loses digits when the account shrinks by many orders of magnitude
    v_final = float(portfolio.value().iloc[-1])
    fused_out = times["fused loop"][2]

    fills = result.fills
    ref = (bars.index.get_indexer(fills["time"]), fills["price"].to_numpy())
    orders = portfolio.orders.values
    same_fills("vectorbt", orders["idx"], orders["price"], ref)
    same_value("vectorbt", v_final, result.final_equity)
    same_fills("fused loop", fused_out[1], fused_out[2], ref)
    same_value("fused loop", fused_out[0], result.final_equity)
    print(f"  same trades: {len(fills):,} fills, final equity {result.final_equity:.6g}")

    rows = {name: (cold, warm, peak_mb(engines[name])) for name, (cold, warm, _) in times.items()}
    print(f"  {'engine':<13} {'cold s':>9} {'warm s':>9} {'peak MB':>9}")
    for name, (cold, warm, mem) in rows.items():
        print(f"  {name:<13} {cold:9.4f} {warm:9.4f} {mem:9.1f}")
    print(
        "  ours: run_vectorized and its final equity (fill and trade records; the curves and\n"
        "  tables are built when first read, as vectorbt's portfolio holds its order records\n"
        "  and computes the rest on demand); '+ frames' also builds the equity curve and the\n"
        "  trades table. vectorbt: TA-Lib SMAs via its indicator factory, from_signals and\n"
        "  final_value(). fused loop: both averages and the fills in one pass."
    )
    o_warm, v_warm, f_warm = rows["ours"][1], rows["vectorbt"][1], rows["fused loop"][1]
    vs_vbt, vs_fused = v_warm / o_warm, o_warm / f_warm
    print(f"  vectorbt / ours {vs_vbt:.1f}x; ours / fused loop {vs_fused:.2f}x "
          f"(with the frames {rows['ours + frames'][1] / f_warm:.2f}x)")  # fmt: skip
    bench.target(f"single run >= 10x faster than vectorbt ({vs_vbt:.1f}x)", vs_vbt >= 10)
    bench.target(f"single run within 3x of the fused loop ({vs_fused:.2f}x)", vs_fused <= 3)
    keys = ("cold_s", "warm_s", "peak_mb")
    bench.figures["single"] = {
        "fills": len(fills),
        "final_equity": result.final_equity,
        **{
            f"{name.replace(' + ', '_').replace(' ', '_')}_{key}": value
            for name, row in rows.items()
            for key, value in zip(keys, row, strict=True)
        },
        "vectorbt_over_ours": vs_vbt,
        "ours_over_fused": vs_fused,
    }


def reference_cross() -> type:
    """The SMA cross as a backtesting.py strategy, trading ``UNITS`` whole units.

    TA-Lib's SMAs (ours to the bit) are its indicators, their warm-up filled with values
    that never cross (fast 0, slow inf): backtesting.py skips next() until every indicator
    is defined, which would miss a cross on the first bar both averages exist, where our
    convention can already act."""
    import talib
    from backtesting import Strategy

    class Cross(Strategy):
        def init(self):
            self.fast = self.I(
                lambda x: np.nan_to_num(talib.SMA(x, FAST), nan=0.0), self.data.Close
            )
            self.slow = self.I(
                lambda x: np.nan_to_num(talib.SMA(x, SLOW), nan=np.inf), self.data.Close
            )

        def next(self):
            if self.fast[-1] > self.slow[-1]:
                if not self.position:
                    self.buy(size=UNITS)
            elif self.position:
                self.position.close()

    return Cross


def section_backtesting(bench: Bench) -> None:
    """backtesting.py on a slice, in whole units, against our path in the same units."""
    import backtesting.backtesting as bt_module
    from backtesting import Backtest

    from workbench.backtest.vectorized import run_vectorized
    from workbench.strategies import MovingAverageCross

    bt_module._tqdm = lambda seq, **_: seq  # no progress bar in the timing
    bars = bench.bars.iloc[: bench.bt_bars]
    data = bars.rename(columns=str.capitalize)

    Cross = reference_cross()

    def theirs():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Backtest(data, Cross, cash=BT_CASH, commission=FEES).run()

    strategy = MovingAverageCross(fast=FAST, slow=SLOW, long_only=True)
    print(f"\nbacktesting.py, first {len(bars):,} bars, {UNITS} units per trade")
    b_cold, b_warm, stats = timed(theirs, 1)
    o_cold, o_warm, result = timed(
        lambda: run_vectorized(bars, strategy, cash=BT_CASH, fees=FEES, units=UNITS), bench.runs
    )
    closed = stats["_trades"]
    ours = result.trades[~result.trades["open"]]
    assert len(closed) == len(ours), "backtesting.py: another number of trades"
    assert np.array_equal(closed["EntryBar"].to_numpy(), bars.index.get_indexer(ours["entry_time"]))
    assert np.array_equal(closed["ExitBar"].to_numpy(), bars.index.get_indexer(ours["exit_time"]))
    np.testing.assert_allclose(closed["EntryPrice"], ours["entry_price"], rtol=RTOL)
    np.testing.assert_allclose(closed["ExitPrice"], ours["exit_price"], rtol=RTOL)
    same_value("backtesting.py", float(stats["Equity Final [$]"]), result.final_equity)
    print(f"  same trades: {len(closed):,} closed trades, final equity {result.final_equity:.6g}")
    rate = len(bars) / b_warm
    print(f"  backtesting.py {b_warm:.3f} s ({rate:,.0f} bars/s); ours {o_warm:.5f} s, "
          f"{b_warm / o_warm:,.0f}x faster")  # fmt: skip
    bench.figures["backtesting"] = {
        "bars": len(bars),
        "trades": len(closed),
        "backtesting_s": b_warm,
        "backtesting_bars_per_s": rate,
        "ours_cold_s": o_cold,
        "ours_warm_s": o_warm,
        "backtesting_over_ours": b_warm / o_warm,
    }


def section_sweep(bench: Bench) -> None:
    """100 (fast, slow) combinations: ours, the fused loop in parallel, vectorbt (child)."""
    bars, runs = bench.bars, bench.runs
    grid = {"fast": list(FAST_GRID), "slow": list(SLOW_GRID)}
    fasts = np.repeat(np.array(FAST_GRID), len(SLOW_GRID))
    slows = np.tile(np.array(SLOW_GRID), len(FAST_GRID))
    open_, close = bars["open"].to_numpy(), bars["close"].to_numpy()

    def ours():
        return ours_on(bars, grid)

    def reference():
        final, fills = np.empty(fasts.size), np.empty(fasts.size, dtype=np.int64)
        fused_sweep(open_, close, fasts, slows, CASH, FEES, final, fills)
        return final, fills

    print(f"\nsweep of {fasts.size} (fast, slow) combinations, {len(bars):,} bars")
    times = race({"ours": ours, "fused loop": reference}, max(1, runs // 2))
    o_cold, o_warm, result = times["ours"]
    f_cold, f_warm, (final, fills) = times["fused loop"]
    table = result.table
    assert np.array_equal(table["fast"], fasts) and np.array_equal(table["slow"], slows)
    np.testing.assert_allclose(table["final_equity"], final, rtol=RTOL)
    assert np.array_equal(table["trades"], fills // 2), "fused sweep: another number of trades"
    o_mem, f_mem = peak_mb(ours), peak_mb(reference)

    child = vectorbt_sweep_in_child(len(bars))
    same = table if child["bars"] == len(bars) else ours_on(bars.iloc[: child["bars"]], grid)
    np.testing.assert_allclose(child["final"], same["final_equity"], rtol=RTOL)
    assert np.array_equal(np.asarray(child["orders"]) // 2, same["trades"]), "vectorbt sweep"
    v_time = child["seconds"] * len(bars) / child["bars"]
    scaled = "" if child["bars"] == len(bars) else f" (run on {child['bars']:,} bars, scaled)"
    print(f"  same trades: final equity and trade count of all {fasts.size} combinations")
    print(f"  {'engine':<12} {'cold s':>9} {'warm s':>9} {'peak MB':>9}")
    print(f"  {'ours':<12} {o_cold:9.3f} {o_warm:9.3f} {o_mem:9.1f}")
    print(f"  {'fused loop':<12} {f_cold:9.3f} {f_warm:9.3f} {f_mem:9.1f}")
    print(
        f"  {'vectorbt':<12} {'':>9} {v_time:9.3f} {child['peak_rss_mb']:9.0f}  (child RSS){scaled}"
    )
    vs_vbt, vs_fused = v_time / o_warm, o_warm / f_warm
    print(f"  vectorbt / ours {vs_vbt:.1f}x; ours / fused loop {vs_fused:.2f}x")
    bench.target(f"sweep >= 20x faster than vectorbt ({vs_vbt:.1f}x)", vs_vbt >= 20)
    bench.target(f"sweep within 3x of the fused loop ({vs_fused:.2f}x)", vs_fused <= 3)
    bench.target(f"sweep peak memory < 1 GB ({o_mem:.0f} MB)", o_mem < 1024)
    bench.figures["sweep"] = {
        "combinations": int(fasts.size),
        "ours_cold_s": o_cold,
        "ours_warm_s": o_warm,
        "ours_peak_mb": o_mem,
        "fused_cold_s": f_cold,
        "fused_warm_s": f_warm,
        "fused_peak_mb": f_mem,
        "vectorbt_s": v_time,
        "vectorbt_bars": child["bars"],
        "vectorbt_peak_rss_mb": child["peak_rss_mb"],
        "vectorbt_over_ours": vs_vbt,
        "ours_over_fused": vs_fused,
    }


def ours_on(bars: pd.DataFrame, grid: dict[str, list[int]]) -> Any:
    from workbench.backtest.sweep import sweep
    from workbench.strategies import MovingAverageCross

    return sweep(
        bars, MovingAverageCross, grid, cash=CASH, fees=FEES, fixed={"long_only": True},
        progress=False,
    )  # fmt: skip


def vectorbt_sweep_in_child(rows: int) -> dict[str, Any]:
    """Run :func:`vectorbt_sweep` in a child process (its memory stays there)."""
    import psutil

    free_gb = psutil.virtual_memory().available / 2**30
    need_gb = 9.0 * rows / 1_000_000  # ~7 GB measured on 1M bars, with room to spare
    child_rows = rows if free_gb > need_gb + 2 else max(50_000, int(rows * (free_gb - 2) / need_gb))
    command = [
        sys.executable,
        __file__,
        "--child-vectorbt-sweep",
        str(child_rows),
        "--bars",
        str(rows),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"vectorbt sweep child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def vectorbt_sweep(rows: int, total: int) -> None:
    """(In the child) vectorbt's sweep of the grid: TA-Lib SMAs for every window pair,
    broadcast signals, one ``from_signals`` over all columns; prints one JSON line."""
    import vectorbt as vbt

    bars = naive_index(synthetic_bars(total).iloc[:rows])
    fasts = np.repeat(np.array(FAST_GRID), len(SLOW_GRID))
    slows = np.tile(np.array(SLOW_GRID), len(FAST_GRID))
    sma = vbt.IndicatorFactory.from_talib("SMA")

    def run(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        close = frame["close"]
        fast = sma.run(close, timeperiod=list(fasts)).real.to_numpy()
        slow = sma.run(close, timeperiod=list(slows)).real.to_numpy()
        above = fast > slow
        entries = np.zeros_like(above)
        exits = np.zeros_like(above)
        entries[1:] = above[:-1]
        exits[1:] = ~above[:-1]
        columns = pd.MultiIndex.from_arrays([fasts, slows], names=["fast", "slow"])
        portfolio = vbt.Portfolio.from_signals(
            close, pd.DataFrame(entries, index=frame.index, columns=columns),
            pd.DataFrame(exits, index=frame.index, columns=columns), price=frame["open"],
            size=np.inf, fees=FEES, init_cash=CASH, freq="1min", engine="numba",
        )  # fmt: skip
        return portfolio.value().iloc[-1].to_numpy(), portfolio.orders.count().to_numpy()

    run(bars.iloc[:2_000])  # compile vectorbt's kernels first
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    final, orders = run(bars)
    seconds = time.perf_counter() - start
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    print(json.dumps({"bars": rows, "seconds": seconds, "peak_rss_mb": peak,
                      "final": final.tolist(), "orders": orders.tolist()}))  # fmt: skip


def section_event(bench: Bench) -> None:
    """The event engine (a Python ``on_bar`` per bar, orders through the order manager,
    risk seam and simulated venue) against backtesting.py on the same slice and strategy,
    in whole units; then its throughput on all the bars, all-in."""
    import backtesting.backtesting as bt_module
    import talib
    from backtesting import Backtest as ReferenceBacktest

    from workbench.backtest.api import Backtest
    from workbench.engine import EventStrategy

    bt_module._tqdm = lambda seq, **_: seq  # backtesting.py at its fastest: no progress bar
    bars = bench.bars.iloc[: bench.bt_bars]
    data = bars.rename(columns=str.capitalize)

    Reference = reference_cross()

    class Cross(EventStrategy):
        """The same rule as a workbench event strategy: one Python call per bar."""

        def __init__(self, units: float | None, **params):
            super().__init__(**params)
            self.units = units

        def on_start(self, ctx):
            close = ctx.history(full=True)["close"].to_numpy()
            self.up = (talib.SMA(close, FAST) > talib.SMA(close, SLOW)).tolist()
            self.long = False

        def on_bar(self, ctx, bar):
            up = self.up[bar.row]
            if up != self.long:
                self.long = up
                if self.units is None:
                    ctx.order_target(None, 1.0 if up else 0.0)
                elif up:
                    ctx.buy(quantity=self.units)
                else:
                    ctx.sell(quantity=ctx.position())

    def theirs():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ReferenceBacktest(data, Reference, cash=BT_CASH, commission=FEES).run()

    def ours():
        return Backtest(bars, Cross(UNITS), cash=BT_CASH, fees=FEES).run()

    def ours_read():  # and every table read, as a user studying the run would
        result = ours()
        return result, result.trades, result.orders, result.fills

    print(f"\nevent engine vs backtesting.py, first {len(bars):,} bars, {UNITS} units per trade")
    engines = {"backtesting.py": theirs, "event engine": ours, "tables read": ours_read}
    times = race(engines, max(3, bench.runs // 5))
    stats, result = times["backtesting.py"][2], times["event engine"][2]
    closed, trades = stats["_trades"], result.trades[~result.trades["open"]]
    assert len(closed) == len(trades), "event engine: another number of trades than backtesting.py"
    assert np.array_equal(
        closed["EntryBar"].to_numpy(), bars.index.get_indexer(trades["entry_time"])
    )
    assert np.array_equal(closed["ExitBar"].to_numpy(), bars.index.get_indexer(trades["exit_time"]))
    np.testing.assert_allclose(closed["EntryPrice"], trades["entry_price"], rtol=RTOL)
    np.testing.assert_allclose(closed["ExitPrice"], trades["exit_price"], rtol=RTOL)
    same_value("event engine", float(stats["Equity Final [$]"]), float(result.equity.iloc[-1]))
    b_warm, o_cold, o_warm = times["backtesting.py"][1], *times["event engine"][:2]
    print(f"  same trades: {len(closed):,} closed trades")
    print(f"  backtesting.py {b_warm:.3f} s ({len(bars) / b_warm:,.0f} bars/s); event engine "
          f"{o_warm:.3f} s warm, {o_cold:.3f} s cold ({len(bars) / o_warm:,.0f} bars/s)")  # fmt: skip
    read = times["tables read"][1]
    print(f"  with the trades, orders and fills tables read: {read:.3f} s "
          f"({b_warm / read:.1f}x faster than backtesting.py)")  # fmt: skip
    ratio = b_warm / o_warm
    print(f"  event engine {ratio:.1f}x faster than backtesting.py")
    bench.target("event engine >= 10x faster than backtesting.py", ratio >= 10)

    everything = bench.bars
    start = time.perf_counter()
    full = Backtest(everything, Cross(None), cash=CASH, fees=FEES).run()
    seconds = time.perf_counter() - start
    peak = peak_mb(lambda: Backtest(everything, Cross(None), cash=CASH, fees=FEES).run())
    print(f"  all {len(everything):,} bars all-in: {seconds:.2f} s ({len(everything) / seconds:,.0f} bars/s, "
          f"{len(full.fills):,} fills, peak {peak:,.0f} MB traced)")  # fmt: skip
    bench.figures["event"] = {
        "bars": len(bars), "trades": len(closed), "backtesting_s": b_warm, "ours_cold_s": o_cold,
        "ours_warm_s": o_warm, "backtesting_over_ours": ratio, "ours_tables_read_s": read,
        "backtesting_over_ours_tables_read": b_warm / read, "full_bars": len(everything),
        "full_s": seconds, "full_bars_per_s": len(everything) / seconds, "full_peak_mb": peak,
    }  # fmt: skip


SECTIONS: list[Callable[[Bench], None]] = [
    section_single, section_backtesting, section_event, section_sweep,
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--bt-bars", type=int, default=100_000)
    parser.add_argument("--fresh-cache", action="store_true", help="compile numba kernels anew")
    names = [f.__name__.removeprefix("section_") for f in SECTIONS]
    parser.add_argument("--only", choices=names, action="append", help="run only these sections")
    parser.add_argument("--child-vectorbt-sweep", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_vectorbt_sweep:
        vectorbt_sweep(args.child_vectorbt_sweep, args.bars)
        return
    bench = Bench(synthetic_bars(args.bars), args.runs, min(args.bt_bars, args.bars))
    print(f"{args.bars:,} seeded 1-minute bars; SMA({FAST})/SMA({SLOW}) long-only cross, "
          f"{FEES:.1%} fees, {CASH:.0e} cash; {os.cpu_count()} CPUs, numba cache "
          f"{'fresh' if args.fresh_cache else 'as found'}")  # fmt: skip
    for section in SECTIONS:
        if not args.only or section.__name__.removeprefix("section_") in args.only:
            section(bench)
    passed = sum(bench.targets.values())
    print(f"\ntargets: {passed} of {len(bench.targets)} passed")
    print(json.dumps({"bars": args.bars, "runs": args.runs, **bench.figures,
                      "targets": bench.targets}, default=float))  # fmt: skip


if __name__ == "__main__":
    main()
