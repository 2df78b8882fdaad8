"""``StrategyLab``: pick a strategy, set its parameters, backtest, sweep and compare runs.

The strategy's own ``param`` parameters become the widgets (rebuilt when another strategy
is chosen; ``long_only`` starts on for spot symbols). *Run* fetches the bars from the
market source (the last ``days`` of closed bars), runs :class:`~workbench.backtest.api.Backtest`
in a worker thread, so the page and the server's other sessions stay responsive, and shows
the stats, ``result.plot()`` (price with trades, equity, drawdown, exposure) and the trade
list. *Sweep* runs :func:`~workbench.backtest.sweep.sweep` over two numeric parameters and
shows the heatmap and the best combination, which *Apply* copies into the widgets. With
*Record* on, every run is kept in the store (:class:`~workbench.backtest.records.BacktestRuns`);
the *Recorded runs* table compares the rows selected.

The widgets edit a plain copy of the strategy's parameters, so a contradiction
(``fast >= slow``) shows as a warning while it is being typed and refuses the run with an
alert, instead of raising inside a widget callback. In a notebook, ``StrategyLab()``
displays itself (after ``pn.extension("tabulator")``); the dashboard shows it as a page.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import DateFormatter, NumberFormatter

from workbench.backtest.api import Backtest, BacktestResult
from workbench.backtest.records import BacktestRuns, RunRecord
from workbench.backtest.sweep import SweepResult, sweep
from workbench.config import Settings, load_settings
from workbench.data.sources.base import MarketSource
from workbench.data.sources.simulated import SimulatedMarket
from workbench.data.timeframes import timeframe_ms
from workbench.errors import ConfigError, WorkbenchError
from workbench.strategies import BUILTIN_STRATEGIES, Strategy
from workbench.ui.market_view import TIMEFRAMES

log = logging.getLogger(__name__)

#: More bars than this are refused: the run is quick, but drawing them would hold the page.
MAX_BARS = 100_000
#: More sweep combinations than this are refused (a notebook's ``sweep`` takes any number).
MAX_COMBINATIONS = 10_000
#: Sweep figures worth maximising, the first being the default objective.
OBJECTIVES = (
    "sharpe", "sortino", "calmar", "total_return", "annual_return", "final_equity",
    "max_drawdown", "win_rate", "profit_factor", "expectancy",
)  # fmt: skip
#: Default sweep axes per built-in strategy: parameter -> (start, stop, step), stop included.
SWEEP_DEFAULTS: dict[str, dict[str, tuple[float, float, float]]] = {
    "MovingAverageCross": {"fast": (5, 30, 5), "slow": (30, 150, 10)},
    "RsiReversion": {"timeperiod": (6, 30, 4), "lower": (15, 40, 5)},
    "MacdTrend": {"fastperiod": (6, 18, 2), "slowperiod": (20, 40, 4)},
    "BollingerBreakout": {"timeperiod": (10, 50, 5), "nbdev": (1, 3, 0.5)},
    "BollingerReversion": {"timeperiod": (10, 50, 5), "nbdev": (1, 3, 0.5)},
    "DonchianBreakout": {"timeperiod": (10, 60, 10), "exit_period": (5, 30, 5)},
    "Grid": {"levels": (2, 10, 2), "spacing": (0.005, 0.03, 0.005)},
}
#: How stats show: fractions of equity as percentages, money to cents, ratios to 2 places.
PERCENT = {
    "total_return", "annual_return", "volatility", "max_drawdown", "win_rate",
    "average_win", "average_loss", "exposure",
}  # fmt: skip
MONEY = {"initial_equity", "final_equity", "expectancy", "fees", "funding"}
RATIOS = {"sharpe", "sortino", "calmar", "profit_factor", "turnover"}
TRADE_COLUMNS = (
    "symbol", "side", "quantity", "entry_time", "entry_price", "exit_time", "exit_price",
    "fees", "funding", "pnl", "return", "duration", "open",
)  # fmt: skip
RUN_COLUMNS = (
    "id", "created", "strategy", "label", "data", "total_return", "sharpe", "max_drawdown",
    "trades", "final_equity",
)  # fmt: skip
STATS_CLASS = "strategy-lab-stats"  # CSS class of the stats table (browser tests find it)


class StrategyLab(pn.viewable.Viewer):
    """Backtest a built-in strategy on a market source; sweep two parameters; compare runs.

    ``StrategyLab()`` uses the simulated market seeded from the settings and the settings'
    run store; pass ``source`` and ``runs`` for others. :meth:`run`, :meth:`run_sweep`,
    :meth:`apply_best`, :meth:`refresh_runs` and :meth:`compare` are what the buttons call.
    """

    source = param.ClassSelector(
        class_=MarketSource, constant=True, allow_None=False, doc="Where bars come from."
    )
    runs = param.ClassSelector(
        class_=BacktestRuns, constant=True, doc="Where recorded runs are kept and listed."
    )
    strategy_name = param.Selector(
        default="MovingAverageCross", objects=list(BUILTIN_STRATEGIES), doc="The strategy."
    )
    symbol = param.Selector(doc="The symbol traded; one of source.symbols().")
    timeframe = param.Selector(default="1h", objects=list(TIMEFRAMES), doc="Bar length.")
    days = param.Integer(
        default=90, bounds=(1, 3650), doc="Days of history, up to the last closed bar."
    )
    cash = param.Number(
        default=10_000.0, bounds=(0, None), inclusive_bounds=(False, True), doc="Starting cash."
    )
    fees = param.Number(
        default=0.001, bounds=(0, 0.05), step=0.0005, doc="Fee, a fraction of traded value."
    )
    slippage = param.Number(default=2.0, bounds=(0, 500), step=0.5, doc="Slippage, basis points.")
    record = param.Boolean(default=True, doc="Keep each run in the store's recorded runs.")
    parameters = param.ClassSelector(
        class_=param.Parameterized,
        doc="The chosen strategy's parameters, as the widgets edit them (a plain copy).",
    )

    sweep_x = param.Selector(
        doc="The sweep's first parameter (the heatmap's x axis); choosing one resets its range."
    )
    x_start = param.Number(default=5, doc="First value of the x parameter.")
    x_stop = param.Number(default=30, doc="Last value of the x parameter (included).")
    x_step = param.Number(default=5, bounds=(0, None), inclusive_bounds=(False, True))
    sweep_y = param.Selector(
        doc="The sweep's second parameter (the heatmap's y axis); choosing one resets its range."
    )
    y_start = param.Number(default=30, doc="First value of the y parameter.")
    y_stop = param.Number(default=150, doc="Last value of the y parameter (included).")
    y_step = param.Number(default=10, bounds=(0, None), inclusive_bounds=(False, True))
    objective = param.Selector(
        default="sharpe", objects=list(OBJECTIVES), doc="Sweep figure to maximise."
    )

    result = param.ClassSelector(class_=BacktestResult, doc="The last backtest run.")
    bars = param.DataFrame(doc="The bars of the last run or sweep.")
    last_record = param.ClassSelector(class_=RunRecord, doc="The last run's record, if recorded.")
    sweep_result = param.ClassSelector(class_=SweepResult, doc="The last sweep.")
    stats_frame = param.DataFrame(doc="The last run's stats as shown: label and text per stat.")
    trades_frame = param.DataFrame(doc="The last run's trades as shown.")
    runs_frame = param.DataFrame(doc="The newest recorded runs.")
    comparison = param.DataFrame(doc="The compared runs, one column each.")
    busy = param.Boolean(default=False, doc="A run or sweep is under way (buttons disabled).")
    message = param.String(default="", doc="The outcome of the last action.")
    alert_type = param.Selector(default="info", objects=["info", "success", "warning", "danger"])

    def __init__(
        self,
        source: MarketSource | None = None,
        runs: BacktestRuns | None = None,
        *,
        settings: Settings | None = None,
        **params: Any,
    ) -> None:
        settings = settings or (load_settings() if source is None or runs is None else None)
        source = source if source is not None else SimulatedMarket(seed=settings.seed)
        self._owns_runs = runs is None
        runs = runs if runs is not None else BacktestRuns.from_settings(settings)
        symbols = list(source.symbols())
        params.setdefault("symbol", symbols[0] if symbols else None)
        super().__init__(
            source=source, runs=runs, stats_frame=_stats_frame(None),
            trades_frame=_trades_frame(None), comparison=pd.DataFrame(), **params,
        )  # fmt: skip
        self.param.symbol.objects = symbols
        self.param.symbol.check_on_set = True
        self._param_box = pn.Column(sizing_mode="stretch_width")
        self._contradiction = ""
        self._layout: pn.viewable.Viewable | None = None
        self._stats = pn.widgets.Tabulator(
            self.param.stats_frame, show_index=False, disabled=True, stylesheets=_DENSE,
            selectable=False, layout="fit_columns", widths={"stat": 175, "value": 165},
            text_align={"value": "right"}, header_align={"value": "right"},
            css_classes=[STATS_CLASS], width=350, sortable=False,
        )  # fmt: skip
        self._trades = pn.widgets.Tabulator(
            self.param.trades_frame, show_index=False, disabled=True, stylesheets=_DENSE,
            selectable=False, layout="fit_data_stretch", pagination="remote", page_size=10,
            sizing_mode="stretch_width", formatters=_trade_formats(None), titles=_TRADE_TITLES,
            text_align={"duration": "right"},
        )  # fmt: skip
        self._runs_table = pn.widgets.Tabulator(
            self.param.runs_frame, show_index=False, disabled=True, stylesheets=_DENSE,
            selectable="checkbox", layout="fit_data_stretch", pagination="local", page_size=10,
            sizing_mode="stretch_width", formatters=_RUN_FORMATS, titles=_RUN_TITLES,
        )  # fmt: skip
        self._comparison = pn.widgets.Tabulator(
            self.param.comparison, show_index=False, disabled=True, stylesheets=_DENSE,
            selectable=False, layout="fit_data_stretch", sizing_mode="stretch_width",
        )  # fmt: skip
        # Shown and hidden by their containers: toggling a HoloViews pane's own `visible`
        # after it has drawn fails in Panel 1.10 (it copies Bokeh stylesheets into a param).
        self._plot = pn.pane.HoloViews(sizing_mode="stretch_width", min_height=300)
        self._heatmap = pn.pane.HoloViews(sizing_mode="stretch_width", height=420)
        self._build_parameters()
        self.refresh_runs()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **params: Any) -> StrategyLab:
        """Over the simulated market seeded from the settings and the settings' run store."""
        return cls(settings=settings or load_settings(), **params)

    # -- what the buttons call ---------------------------------------------------------------

    def make_strategy(self) -> Strategy:
        """The chosen strategy with the widgets' parameters; a ConfigError if they contradict."""
        return self.strategy_class(**self._values())

    @property
    def strategy_class(self) -> type[Strategy]:
        return BUILTIN_STRATEGIES[self.strategy_name]

    async def run(self) -> BacktestResult | None:
        """Backtest the strategy on the last ``days`` of bars in a worker thread, then show
        the stats, the chart and the trades (and record the run if ``record``)."""
        if self._refuse_while_busy():
            return None
        try:
            strategy = self.make_strategy()
            fetch = self._fetcher()
        except WorkbenchError as exc:
            self._tell("danger", f"**Backtest refused.** {exc}")
            return None
        symbol, timeframe, record = self.symbol, self.timeframe, self.record
        settings = {"cash": self.cash, "fees": self.fees, "slippage": self.slippage}
        runs, source = self.runs, self.source

        def job() -> tuple[pd.DataFrame, BacktestResult, RunRecord | None, pd.DataFrame | None]:
            bars = fetch()
            result = Backtest(bars, strategy, symbol=symbol, **settings).run()
            if not record:
                return bars, result, None, None
            saved = runs.record(
                result,
                seed=getattr(source, "seed", None),
                exchange=source.name,
                timeframe=timeframe,
            )
            return bars, result, saved, runs.list()

        self._tell("info", f"Running {strategy.label} on {symbol} {timeframe}…")
        done = await self._off_loop(job, "Backtest")
        if done is None:
            return None
        bars, result, saved, listing = done
        self._trades.param.update(
            formatters=_trade_formats(result.trades), hidden_columns=_idle_columns(result.trades)
        )
        self.param.update(
            bars=bars, result=result, last_record=saved, stats_frame=_stats_frame(result.stats),
            trades_frame=_trades_frame(result.trades),
        )  # fmt: skip
        if listing is not None:
            self._show_runs(listing)
        try:
            self._plot.object = result.plot()
        except WorkbenchError as exc:
            self._tell("warning", f"Ran, but the chart cannot be drawn: {exc}")
            return result
        stats = result.stats
        kept = f" Recorded as run {saved.id}." if saved is not None else ""
        self._tell(
            "success",
            f"**{result.label}** on {symbol} {timeframe}, {len(bars):,} bars: total return "
            f"{_format_stat('total_return', stats['total_return'])}, sharpe "
            f"{_format_stat('sharpe', stats['sharpe'])}, {len(result.trades)} trades.{kept}",
        )
        return result

    async def run_sweep(self) -> SweepResult | None:
        """Sweep ``sweep_x`` and ``sweep_y`` over their ranges (the other parameters as the
        widgets say) in a worker thread; show the heatmap and the best combination."""
        if self._refuse_while_busy():
            return None
        try:
            grid = self.sweep_grid()
            fetch = self._fetcher()
        except WorkbenchError as exc:
            self._tell("danger", f"**Sweep refused.** {exc}")
            return None
        cls, objective = self.strategy_class, self.objective
        fixed = {k: v for k, v in self._values().items() if k not in grid}
        settings = {"cash": self.cash, "fees": self.fees, "slippage": self.slippage}

        def job() -> tuple[pd.DataFrame, SweepResult]:
            bars = fetch()
            found = sweep(
                bars, cls, grid, fixed=fixed, objective=objective, progress=False, **settings
            )
            return bars, found

        combinations = math.prod(len(v) for v in grid.values())
        self._tell("info", f"Sweeping {combinations:,} combinations of {' × '.join(grid)}…")
        done = await self._off_loop(job, "Sweep")
        if done is None:
            return None
        bars, found = done
        self.param.update(bars=bars, sweep_result=found)
        x, y = list(grid)
        self._heatmap.object = found.heatmap(x, y).opts(
            responsive=True, height=420, xlabel=x, ylabel=y, toolbar="above"
        )
        if len(found) == 0:
            self._tell(
                "warning", "Every combination broke the parameters' ordering; widen the ranges."
            )
        else:
            self._tell(
                "success",
                f"Swept {len(found):,} combinations in {found.seconds:.2f} s. {self._best_text()}",
            )
        return found

    def sweep_grid(self) -> dict[str, list]:
        """The sweep's grid from the axes and ranges; a ConfigError if they make no sense."""
        if self.sweep_x is None or self.sweep_y is None:
            raise ConfigError(
                f"{self.strategy_name} has fewer than two numeric parameters to sweep."
            )
        if self.sweep_x == self.sweep_y:
            raise ConfigError(
                f"Choose two different parameters to sweep (both are {self.sweep_x})."
            )
        grid = {
            self.sweep_x: self._values_of(self.sweep_x, self.x_start, self.x_stop, self.x_step),
            self.sweep_y: self._values_of(self.sweep_y, self.y_start, self.y_stop, self.y_step),
        }
        combinations = math.prod(len(v) for v in grid.values())
        if combinations > MAX_COMBINATIONS:
            raise ConfigError(
                f"{combinations:,} combinations is more than this page runs "
                f"({MAX_COMBINATIONS:,}); use larger steps, or sweep() in a notebook."
            )
        return grid

    def apply_best(self) -> dict[str, Any] | None:
        """Copy the last sweep's best parameters (by ``objective``) into the widgets."""
        found = self.sweep_result
        if found is None or len(found) == 0:
            self._tell("warning", "Run a sweep first: there is no best combination to apply.")
            return None
        if found.strategy is not self.strategy_class:
            self._tell(
                "warning",
                f"The last sweep was of {found.strategy.__name__}; sweep {self.strategy_name} first.",
            )
            return None
        best = found.best_params(self.objective)
        self.parameters.param.update(**best)
        shown = ", ".join(f"{k}={v}" for k, v in best.items())
        self._tell("success", f"Applied {shown}. Press **Run** to backtest them.")
        return best

    def refresh_runs(self) -> pd.DataFrame:
        """Re-read the newest recorded runs into the table."""
        try:
            self._show_runs(self.runs.list())
        except WorkbenchError as exc:
            self._tell("danger", f"**The recorded runs cannot be read.** {exc}")
        return self.runs_frame

    def _show_runs(self, listing: pd.DataFrame) -> None:
        """The listing into the table, keeping the ticked runs ticked (by id: rows move as
        new runs come in on top)."""
        ticked = set(self._selected_ids())
        self.runs_frame = _runs_frame(listing)
        ids = self.runs_frame["id"].tolist()
        self._runs_table.selection = [i for i, run_id in enumerate(ids) if run_id in ticked]

    def _selected_ids(self) -> list[int]:
        frame = self.runs_frame
        if frame is None or not hasattr(self, "_runs_table"):
            return []
        return [int(frame["id"].iloc[i]) for i in self._runs_table.selection if i < len(frame)]

    def compare(self, ids: Sequence[int] | None = None) -> pd.DataFrame | None:
        """Recorded runs side by side (default: the rows selected in the table)."""
        if ids is None:
            ids = self._selected_ids()
        if not ids:
            self._tell("warning", "Select the runs to compare in the table (tick their boxes).")
            return None
        try:
            frame = self.runs.compare(ids)
        except WorkbenchError as exc:
            self._tell("danger", f"**Compare failed.** {exc}")
            return None
        self.comparison = _comparison_frame(frame)
        self._tell("success", f"Comparing runs {', '.join(str(i) for i in ids)}.")
        return frame

    # -- display -----------------------------------------------------------------------------

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._layout = self._build_layout()
            doc = pn.state.curdoc
            if self._owns_runs and doc is not None and doc.session_context is not None:
                pn.state.on_session_destroyed(self._session_destroyed)
        return self._layout

    def _build_layout(self) -> pn.viewable.Viewable:
        alert = pn.pane.Alert(
            self.param.message, alert_type=self.param.alert_type,
            visible=self.param.message.rx.bool(), sizing_mode="stretch_width",
        )  # fmt: skip
        results = pn.Tabs(
            ("Backtest", self._backtest_view()),
            ("Sweep", self._sweep_view()),
            ("Recorded runs", self._runs_view()),
            sizing_mode="stretch_width",
        )
        return pn.Row(
            self._controls(),
            pn.Column(alert, results, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

    def _controls(self) -> pn.viewable.Viewable:
        run = pn.widgets.Button(
            label="Run backtest", color="primary", disabled=self.param.busy, width=150
        )
        run.on_click(self._on_run)
        return pn.Column(
            pn.widgets.Select.from_param(self.param.strategy_name, name="Strategy"),
            pn.pane.Markdown(
                pn.bind(_summary, self.param.strategy_name), styles={"font-size": "0.85em"}
            ),
            pn.Row(
                pn.widgets.Select.from_param(self.param.symbol, name="Symbol", width=140),
                pn.widgets.Select.from_param(self.param.timeframe, name="Timeframe", width=100),
                pn.widgets.IntInput.from_param(self.param.days, name="Days", width=80),
            ),
            pn.Row(
                pn.widgets.FloatInput.from_param(self.param.cash, name="Cash", width=110),
                pn.widgets.FloatInput.from_param(self.param.fees, name="Fees, fraction", width=115),
                pn.widgets.FloatInput.from_param(
                    self.param.slippage, name="Slippage, bps", width=115
                ),
            ),
            pn.pane.Markdown("**Parameters**", margin=(0, 10)),
            self._param_box,
            pn.widgets.Checkbox.from_param(self.param.record, name="Record each run"),
            pn.Row(
                run,
                pn.indicators.LoadingSpinner(
                    value=True, size=30, align="center", visible=self.param.busy
                ),
            ),
            width=380,
        )

    def _backtest_view(self) -> pn.viewable.Viewable:
        hint = pn.pane.Markdown(
            "Choose a strategy and its parameters, then press **Run backtest**.",
            visible=self.param.result.rx.is_(None),
        )
        return pn.Column(
            hint,
            pn.Row(
                self._stats,
                pn.Column(
                    self._plot,
                    visible=self.param.result.rx.is_not(None),
                    sizing_mode="stretch_width",
                ),
                sizing_mode="stretch_width",
            ),
            pn.pane.Markdown("#### Trades", visible=self.param.result.rx.is_not(None)),
            self._trades,
            sizing_mode="stretch_width",
        )

    def _sweep_view(self) -> pn.viewable.Viewable:
        button = pn.widgets.Button(label="Sweep", color="primary", disabled=self.param.busy)
        button.on_click(self._on_sweep)
        apply = pn.widgets.Button(
            label="Apply best parameters", disabled=self.param.sweep_result.rx.is_(None)
        )
        apply.on_click(lambda _: self.apply_best())

        def axis(which: str) -> pn.viewable.Viewable:
            p = self.param
            return pn.Column(
                pn.widgets.Select.from_param(
                    p[f"sweep_{which}"], name=f"{which} parameter", width=240
                ),
                pn.Row(
                    pn.widgets.FloatInput.from_param(p[f"{which}_start"], name="from", width=75),
                    pn.widgets.FloatInput.from_param(p[f"{which}_stop"], name="to", width=75),
                    pn.widgets.FloatInput.from_param(p[f"{which}_step"], name="step", width=75),
                ),
            )

        controls = pn.Column(
            axis("x"), axis("y"),
            pn.widgets.Select.from_param(self.param.objective, name="Maximise", width=240),
            button, width=270,
        )  # fmt: skip
        results = pn.Column(
            pn.Column(
                self._heatmap,
                visible=self.param.sweep_result.rx.is_not(None),
                sizing_mode="stretch_width",
            ),
            pn.pane.Markdown(pn.bind(lambda _: self._best_text(), self.param.sweep_result)),
            apply,
            sizing_mode="stretch_width",
        )
        return pn.Row(controls, results, sizing_mode="stretch_width")

    def _runs_view(self) -> pn.viewable.Viewable:
        refresh = pn.widgets.Button(label="Refresh")
        refresh.on_click(lambda _: self.refresh_runs())
        compare = pn.widgets.Button(label="Compare selected", color="primary")
        compare.on_click(lambda _: self.compare())
        return pn.Column(
            pn.Row(refresh, compare),
            self._runs_table,
            pn.pane.Markdown(
                "#### Comparison", visible=self.param.comparison.rx.pipe(len).rx.bool()
            ),
            self._comparison,
            sizing_mode="stretch_width",
        )

    # -- the strategy's parameters -----------------------------------------------------------

    @param.depends("strategy_name", watch=True)
    def _build_parameters(self) -> None:
        """A plain copy of the strategy's parameters (no contradiction watcher), its widgets,
        and the sweep's axes and their default ranges."""
        cls = self.strategy_class
        names = _parameter_names(cls)
        copied = {name: copy.deepcopy(cls.param[name]) for name in names}
        mirror = type(f"{cls.__name__}Parameters", (param.Parameterized,), copied)
        values = mirror(long_only=":" not in str(self.symbol))  # spot: long only
        values.param.watch(self._check_parameters, names)
        self._contradiction = ""
        numeric = _numeric(cls)
        defaults = SWEEP_DEFAULTS.get(cls.__name__, {})
        axes = [n for n in defaults if n in numeric] + [n for n in numeric if n not in defaults]
        self.param.sweep_x.objects = numeric
        self.param.sweep_y.objects = numeric
        x, y = (axes + [None, None])[:2]
        ranges = {}
        for which, name in (("x", x), ("y", y)):
            if name is not None:
                start, stop, step = self._range_of(name)
                ranges |= {f"{which}_start": start, f"{which}_stop": stop, f"{which}_step": step}
        self.param.update(parameters=values, sweep_result=None, sweep_x=x, sweep_y=y, **ranges)
        self._heatmap.object = None
        self._param_box.objects = [
            pn.Param(
                values, parameters=names, show_name=False, widgets=_widgets(cls), width=350,
            )
        ]  # fmt: skip

    @param.depends("sweep_x", watch=True)
    def _x_range(self) -> None:
        if self.sweep_x is not None:
            start, stop, step = self._range_of(self.sweep_x)
            self.param.update(x_start=start, x_stop=stop, x_step=step)

    @param.depends("sweep_y", watch=True)
    def _y_range(self) -> None:
        if self.sweep_y is not None:
            start, stop, step = self._range_of(self.sweep_y)
            self.param.update(y_start=start, y_stop=stop, y_step=step)

    def _range_of(self, name: str) -> tuple[float, float, float]:
        """The default sweep range of a parameter: the table's, else around its default."""
        known = SWEEP_DEFAULTS.get(self.strategy_name, {}).get(name)
        if known is not None:
            return known
        p = self.strategy_class.param[name]
        default = p.default
        low, high = p.get_soft_bounds()
        if isinstance(p, param.Integer):
            step = max(1, round(default / 4))
            start = max(low if low is not None else 1, default - 3 * step)
            return start, start + 6 * step, step
        step = abs(default) / 4 or 0.1
        start = default - 2 * step
        if low is not None:
            start = max(low, start)
        stop = start + 4 * step if high is None else min(high, start + 4 * step)
        return round(start, 10), round(stop, 10), round(step, 10)

    def _values_of(self, name: str, start: float, stop: float, step: float) -> list:
        if not step > 0:
            raise ConfigError(f"The step of {name} must be positive, not {step}.")
        if stop < start:
            raise ConfigError(f"The range of {name} runs backwards: from {start} to {stop}.")
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        values = [start + i * step for i in range(count)]
        if isinstance(self.strategy_class.param[name], param.Integer):
            values = list(dict.fromkeys(int(round(v)) for v in values))
        else:
            values = [round(float(v), 10) for v in values]
        return values

    def _values(self) -> dict[str, Any]:
        return {k: v for k, v in self.parameters.param.values().items() if k != "name"}

    def _check_parameters(self, *_: object) -> None:
        """Warn at once when the widgets contradict each other; clear the warning when not."""
        try:
            self.make_strategy()
        except WorkbenchError as exc:
            self._contradiction = str(exc)
            self._tell("warning", f"**These parameters contradict each other.** {exc}")
            return
        if self._contradiction and self.message.endswith(self._contradiction):
            self._tell("info", "")
        self._contradiction = ""

    # -- machinery ---------------------------------------------------------------------------

    def _fetcher(self) -> Callable[[], pd.DataFrame]:
        """A function (for the worker thread) fetching the last ``days`` of closed bars."""
        source, symbol, timeframe = self.source, self.symbol, self.timeframe
        step = pd.Timedelta(milliseconds=timeframe_ms(timeframe))
        count = int(pd.Timedelta(days=self.days) / step)
        if count > MAX_BARS:
            raise ConfigError(
                f"{self.days} days of {timeframe} bars is {count:,} bars, more than this page "
                f"draws ({MAX_BARS:,}); choose fewer days or a longer timeframe."
            )
        now = getattr(source, "now", None)
        now = pd.Timestamp.now("UTC") if now is None else pd.Timestamp(now)
        end = now.floor(step) - step  # the open of the last closed bar
        start = end - pd.Timedelta(days=self.days) + step

        def fetch() -> pd.DataFrame:
            bars = source.fetch_ohlcv(symbol, timeframe, start, end)
            if not len(bars):
                raise WorkbenchError(
                    f"{source.name} has no {symbol} {timeframe} bars between {start} and {end}."
                )
            return bars

        return fetch

    async def _off_loop(self, job: Callable[[], Any], what: str) -> Any:
        """``job()`` in a worker thread, with the buttons disabled; failures as alerts."""
        self.busy = True
        try:
            return await asyncio.to_thread(job)
        except WorkbenchError as exc:
            self._tell("danger", f"**{what} failed.** {exc}")
        except Exception as exc:  # a bug, not bad input: the page says so, the log has the trace
            log.exception("%s failed", what)
            self._tell(
                "danger",
                f"**{what} failed unexpectedly** ({type(exc).__name__}: {exc}); the log has the details.",
            )
        finally:
            self.busy = False
        return None

    def _refuse_while_busy(self) -> bool:
        if self.busy:
            self._tell("warning", "A run or sweep is under way; wait for it to finish.")
        return self.busy

    def _best_text(self) -> str:
        found = self.sweep_result
        if found is None or len(found) == 0:
            return ""
        row = found.best(self.objective)
        params = ", ".join(f"{k}={v}" for k, v in found.best_params(self.objective).items())
        skipped = f", {found.skipped} skipped by the parameters' ordering" if found.skipped else ""
        return (
            f"Best {self.objective} **{_format_stat(self.objective, float(row[self.objective]))}** at "
            f"**{params}** ({len(found):,} combinations{skipped})."
        )

    async def _on_run(self, _: object) -> None:
        await self.run()

    async def _on_sweep(self, _: object) -> None:
        await self.run_sweep()

    def _session_destroyed(self, session_context: object) -> None:
        self.runs.close()

    def _tell(self, alert_type: str, message: str) -> None:
        self.param.update(alert_type=alert_type, message=message)


# -- tables ------------------------------------------------------------------------------------

_DENSE = [":host .tabulator { font-size: 13px; }"]  # the lab's tables hold many columns
_TIME = DateFormatter(format="%Y-%m-%d %H:%M", text_align="right")
_TRADE_TITLES = {
    "entry_time": "entry (UTC)", "entry_price": "entry price", "exit_time": "exit (UTC)",
    "exit_price": "exit price", "return": "return",
}  # fmt: skip
_RUN_TITLES = {
    "created": "created (UTC)", "total_return": "return", "max_drawdown": "drawdown",
    "final_equity": "equity",
}  # fmt: skip
_RUN_FORMATS = {
    "created": _TIME,
    "total_return": NumberFormatter(format="0.00%", text_align="right"),
    "sharpe": NumberFormatter(format="0.00", text_align="right"),
    "max_drawdown": NumberFormatter(format="0.00%", text_align="right"),
    "final_equity": NumberFormatter(format="0,0.00", text_align="right"),
}


def _stats_frame(stats: pd.Series | None) -> pd.DataFrame:
    """The stats as shown: a label and a formatted value per stat, indexed by the stat."""
    if stats is None:
        return pd.DataFrame({"stat": pd.Series(dtype=str), "value": pd.Series(dtype=str)})
    return pd.DataFrame(
        {
            "stat": [str(k).replace("_", " ") for k in stats.index],
            "value": [_format_stat(str(k), v) for k, v in stats.items()],
        },
        index=pd.Index(stats.index, name="key"),
    )


def _format_stat(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M} UTC"
    if isinstance(value, pd.Timedelta):
        return _duration(value)
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return "∞" if value > 0 else "−∞"
        if key in PERCENT:
            return f"{value:.2%}"
        if key in MONEY:
            return f"{value:,.2f}"
        if key in RATIOS:
            return f"{value:,.2f}"
        return f"{value:,.6g}"
    return str(value)


def _duration(value: pd.Timedelta) -> str:
    days, rest = divmod(int(value.total_seconds()), 86_400)
    hours, rest = divmod(rest, 3_600)
    text = f"{hours:02d}:{rest // 60:02d}"
    return f"{days} d {text}" if days else text


def _trades_frame(trades: pd.DataFrame | None) -> pd.DataFrame:
    """The trades as shown: UTC times without their zone (as Bokeh draws them), durations
    as text; one row per trade, in order."""
    if trades is None:  # typed, so the table's columns are formatted from the start
        times = pd.Series(dtype="datetime64[ns]")
        return pd.DataFrame(
            {
                c: times if c.endswith("_time") else pd.Series(dtype=_EMPTY.get(c, "float64"))
                for c in TRADE_COLUMNS
            }
        )
    frame = trades[[c for c in TRADE_COLUMNS if c in trades]].copy()
    for name in ("entry_time", "exit_time"):
        frame[name] = frame[name].dt.tz_convert("UTC").dt.tz_localize(None)
    frame["duration"] = [_duration(d) if pd.notna(d) else "" for d in frame["duration"]]
    return frame.reset_index(drop=True)


def _idle_columns(trades: pd.DataFrame) -> list[str]:
    """Trade columns that tell nothing in this run: one symbol, no funding."""
    idle = ["symbol"] if trades["symbol"].nunique() <= 1 else []
    return idle + (["funding"] if not trades["funding"].abs().gt(0).any() else [])


_EMPTY = {"symbol": "str", "side": "str", "duration": "str", "open": "bool"}


def _trade_formats(trades: pd.DataFrame | None) -> dict[str, Any]:
    """Number formats for the trade list, with as many price decimals as the prices need
    (two for BTC/USDT, ten for an altcoin priced in BTC)."""
    prices = None if trades is None else trades["entry_price"].abs()
    largest = float(prices.max()) if prices is not None and len(prices) else 1.0
    places = int(min(10, max(2, 4 - math.floor(math.log10(largest))))) if largest > 0 else 2
    price = NumberFormatter(format=f"0,0.{'0' * places}", text_align="right")
    money = NumberFormatter(format="0,0.00", text_align="right")
    return {
        "quantity": NumberFormatter(format="0,0.[00000000]", text_align="right"),
        "entry_time": _TIME,
        "entry_price": price,
        "exit_time": _TIME,
        "exit_price": price,
        "fees": money,
        "funding": money,
        "pnl": money,
        "return": NumberFormatter(format="0.00%", text_align="right"),
    }


def _runs_frame(listing: pd.DataFrame) -> pd.DataFrame:
    """The recorded runs as listed, newest first; ``data`` is the symbols and timeframe."""
    timeframe = listing["timeframe"].fillna("").astype(str)
    frame = listing.assign(data=(listing["symbols"].astype(str) + " " + timeframe).str.strip())
    frame = frame[list(RUN_COLUMNS)].copy()
    frame["created"] = frame["created"].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame.reset_index(drop=True)


def _comparison_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``BacktestRuns.compare``'s frame as text: a ``field`` column, then one per run."""
    shown = pd.DataFrame({"field": [str(name) for name in frame.index]})
    for run_id in frame.columns:
        shown[f"run {run_id}"] = [_format_stat(str(k), v) for k, v in frame[run_id].items()]
    return shown


# -- strategies --------------------------------------------------------------------------------


def _parameter_names(cls: type[Strategy]) -> list[str]:
    """The strategy's own parameters in declaration order, then the inherited ones."""
    names = [name for name in cls.param if name != "name"]
    own = [n for n in names if cls.param[n].owner is not Strategy]
    return own + [n for n in names if n not in own]


def _widgets(cls: type[Strategy]) -> dict[str, Any]:
    """Sliders one can also type into, for the bounded numbers; a labelled long-only box."""
    widgets: dict[str, Any] = {
        "long_only": {"type": pn.widgets.Checkbox, "name": "Long only (spot)"}
    }
    for name in _numeric(cls):
        p = cls.param[name]
        if None not in p.get_soft_bounds():
            integer = isinstance(p, param.Integer)
            kind = pn.widgets.EditableIntSlider if integer else pn.widgets.EditableFloatSlider
            widgets[name] = {"type": kind, "width": 320}
    return widgets


def _numeric(cls: type[Strategy]) -> list[str]:
    """Parameters a sweep can range over: numbers with a default (not Booleans)."""
    return [
        n for n in _parameter_names(cls)
        if isinstance(cls.param[n], param.Number) and cls.param[n].default is not None
    ]  # fmt: skip


def _summary(name: str) -> str:
    """The strategy's rule, as the first paragraph of its docstring says it."""
    doc = BUILTIN_STRATEGIES[name].__doc__ or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


__all__ = ["StrategyLab", "SWEEP_DEFAULTS"]
