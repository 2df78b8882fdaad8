"""Walk-forward optimisation: choose parameters on one window, judge them on the next.

Each window's parameters are optimised in-sample (every combination of ``grid``, ranked
by ``objective``), then the best are run out-of-sample on the event engine over the
following window -- with the in-sample bars before it as indicator warm-up only, so no
out-of-sample bar ever informs the choice. The out-of-sample pieces are stitched into one
equity curve (each piece compounding on the last), which is the honest estimate of how
the procedure would have done.

Windows are ``rolling`` (a fixed-length training window that moves) or ``anchored``
(training always starts at the first bar). Lengths are pandas offsets (``"5D"``) or bar
counts. Windows run in turn, or over a Dask client when one is given.

A position still open at the end of a window is marked at its last close and the next
window starts flat from that equity (no exit fee is charged for the hand-over).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from workbench.backtest import metrics
from workbench.backtest.api import Backtest
from workbench.errors import ConfigError

if TYPE_CHECKING:
    import holoviews as hv

    from workbench.strategies import Strategy


@dataclass(frozen=True)
class Window:
    train_start: pd.Timestamp
    train_end: pd.Timestamp  # exclusive: the test starts here
    test_end: pd.Timestamp  # exclusive


def windows(
    index: pd.DatetimeIndex, train: str | int, test: str | int, *, anchored: bool = False
) -> list[Window]:
    """The train/test windows over ``index``; the last test window may be shorter, and one
    holding fewer than two bars (no return to judge) is left out."""
    if len(index) < 2:
        raise ConfigError("Walk-forward needs bars to split; got fewer than two.")
    first, end = index[0], index[-1] + (index[-1] - index[-2])  # one bar past the last
    span_train, span_test = _span(index, train, "train"), _span(index, test, "test")
    out, start = [], first
    while start + span_train < end:
        test_start = start + span_train
        window = Window(first if anchored else start, test_start, min(test_start + span_test, end))
        if (
            (index >= window.train_end) & (index < window.test_end)
        ).sum() >= 2:  # a return to judge
            out.append(window)
        start += span_test
    if not out:
        raise ConfigError(
            f"The data ({first} to {index[-1]}) is shorter than one training window ({train}); "
            f"shorten train= or load more bars."
        )
    return out


def _span(index: pd.DatetimeIndex, length: str | int, name: str) -> pd.Timedelta:
    if isinstance(length, int):
        if length < 1:
            raise ConfigError(f"{name}= must be at least one bar; got {length}.")
        return length * (index[1] - index[0]) if len(index) > 1 else pd.Timedelta(0)
    try:
        span = pd.Timedelta(pd.tseries.frequencies.to_offset(length))
    except (ValueError, TypeError):
        raise ConfigError(
            f"{name}={length!r} is not a length: use an offset like '5D' or a bar count."
        ) from None
    if span <= pd.Timedelta(0):
        raise ConfigError(f"{name}= must be a positive length; got {length!r}.")
    return span


@dataclass(frozen=True)
class WalkForwardResult:
    """Per-window choices and results, the stitched out-of-sample equity, and its stats."""

    table: pd.DataFrame
    equity: pd.Series
    trades: pd.DataFrame
    stats: pd.Series
    objective: str

    def plot(self) -> hv.Layout:
        """Stitched out-of-sample equity with the windows shaded, and in- vs out-of-sample
        objective per window (a large gap is the sign of over-fitting)."""
        import holoviews as hv
        import holoviews.plotting.bokeh  # noqa: F401 - registers the Bokeh backend's options

        curve = hv.Curve(
            (self.equity.index.tz_localize(None), self.equity.to_numpy()), "time", "equity"
        ).opts(responsive=True, height=300, title="Out-of-sample equity (stitched)")
        shades = [
            hv.VSpan(row.test_start.tz_localize(None), row.test_end.tz_localize(None)).opts(
                color="#dde6f0" if k % 2 else "#eef2f7", alpha=0.6
            )
            for k, row in enumerate(self.table.itertuples())
        ]
        labels = [str(k + 1) for k in range(len(self.table))]
        bars = hv.Bars(
            [
                (label, "in-sample", v)
                for label, v in zip(labels, self.table["in_sample"], strict=True)
            ]
            + [
                (label, "out-of-sample", v)
                for label, v in zip(labels, self.table["out_of_sample"], strict=True)
            ],
            ["window", "sample"],
            self.objective,
        ).opts(responsive=True, height=220, multi_level=False, title=f"{self.objective} per window")
        equity = hv.Overlay([*shades, curve]).opts(xlabel="time", ylabel="equity")
        return (equity + bars).cols(1)

    def _repr_html_(self) -> str:
        return (
            f"<b>Walk-forward</b> &middot; {len(self.table)} windows, objective {self.objective}"
            f"{self.stats.to_frame().to_html(header=False)}{self.table.to_html()}"
        )


def walk_forward(
    bars: pd.DataFrame,
    strategy: Strategy,
    grid: Mapping[str, Sequence[Any]],
    *,
    train: str | int,
    test: str | int,
    anchored: bool = False,
    objective: str = "sharpe",
    cash: float = 10_000.0,
    fees: float = 0.0,
    slippage: float = 0.0,
    symbol: str = "asset",
    client: Any = None,
    progress: bool = True,
) -> WalkForwardResult:
    """Optimise ``strategy``'s ``grid`` on each training window and trade the best
    parameters on the window after it; see the module docstring."""
    from workbench.backtest.sweep import FIGURES

    usable = [f for f in FIGURES if f in metrics.STATS_KEYS]
    if objective not in usable:
        raise ConfigError(f"objective={objective!r} cannot rank windows; choose from {usable}.")
    unknown = set(grid) - set(strategy.param)
    if unknown:
        raise ConfigError(f"{type(strategy).__name__} has no parameter(s) {sorted(unknown)}.")
    plan = windows(bars.index, train, test, anchored=anchored)
    settings = {"cash": cash, "fees": fees, "slippage": slippage, "symbol": symbol}
    jobs = [
        (
            bars.loc[w.train_start : w.test_end - pd.Timedelta(1)],
            w,
            strategy,
            dict(grid),
            objective,
            settings,
        )
        for w in plan
    ]
    if client is not None:
        outcomes = client.gather(client.map(_run_window, jobs, pure=False))
    else:
        from tqdm.auto import tqdm

        outcomes = [
            _run_window(job) for job in tqdm(jobs, desc="walk-forward", disable=not progress)
        ]
    return _combine(outcomes, objective, cash)


def _run_window(job: tuple) -> dict[str, Any]:
    data, window, strategy, grid, objective, settings = job
    train = data.loc[: window.train_end - pd.Timedelta(1)]
    best, in_sample = optimise(train, strategy, grid, objective, settings)
    chosen = _with(strategy, best)
    result = Backtest(
        data,
        chosen,
        cash=settings["cash"],
        fees=settings["fees"],
        slippage=settings["slippage"],
        symbol=settings["symbol"],
        start=window.train_end,
    ).run()
    return {"window": window, "params": best, "in_sample": in_sample, "result": result}


def optimise(
    bars: pd.DataFrame,
    strategy: Strategy,
    grid: Mapping[str, Sequence[Any]],
    objective: str,
    settings: Mapping[str, Any],
) -> tuple[dict[str, Any], float]:
    """The grid's best parameters on ``bars`` by ``objective``, and that objective's value
    (the vectorised sweep: the same fills as the engine, far faster)."""
    from workbench.backtest.sweep import sweep

    table = sweep(
        bars,
        strategy,
        grid,
        cash=settings["cash"],
        fees=settings["fees"],
        slippage=settings["slippage"],
        objective=objective,
        progress=False,
    )
    return table.best_params(objective), float(table.best(objective)[objective])


def _with(strategy: Strategy, params: Mapping[str, Any]) -> Strategy:
    values = {k: v for k, v in strategy.param.values().items() if k != "name"}
    return type(strategy)(**{**values, **params})


def _combine(outcomes: list[dict[str, Any]], objective: str, cash: float) -> WalkForwardResult:
    rows, pieces, trades, capital = [], [], [], cash
    for k, outcome in enumerate(outcomes):
        window, result = outcome["window"], outcome["result"]
        growth = result.equity / result.equity.iloc[0]
        pieces.append(growth * capital)
        capital = float(pieces[-1].iloc[-1])
        trades.append(result.trades.assign(window=k + 1))
        out_value = result.stats[objective]
        rows.append(
            {
                "train_start": window.train_start, "test_start": window.train_end, "test_end": window.test_end,
                **outcome["params"], "in_sample": outcome["in_sample"], "out_of_sample": out_value,
                "total_return": result.stats["total_return"], "max_drawdown": result.stats["max_drawdown"],
                "trades": result.stats["trades"],
            }
        )  # fmt: skip
    equity = pd.concat(pieces).rename("equity")
    equity = equity[~equity.index.duplicated(keep="last")]
    all_trades = pd.concat(trades, ignore_index=True)
    results = [o["result"] for o in outcomes]
    stats = metrics.stats(
        equity,
        all_trades,
        fees=sum(r.stats["fees"] for r in results),
        funding=sum(r.stats["funding"] for r in results),
        traded_notional=sum(
            float((r.fills["quantity"] * r.fills["price"]).sum()) for r in results if len(r.fills)
        ),
    )
    return WalkForwardResult(
        pd.DataFrame(rows, index=pd.RangeIndex(1, len(rows) + 1, name="window")),
        equity,
        all_trades,
        stats,
        objective,
    )
