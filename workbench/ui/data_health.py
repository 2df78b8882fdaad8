"""``DataHealth``: what the store holds, how sound each bar series is, and ways to fill it.

The table is one row per stored series with the quality check of every bar series
(:func:`workbench.data.quality.check_bars`), so a gap or a bad bar shows before it skews a
backtest. Selecting a row shows that series' gaps and its close with the gaps shaded.
Files are imported under the ``reject`` policy (nothing is written unless every file
passes); backfills run the ``backfill`` job in a worker thread, so the server keeps serving
other sessions while the job's notebook runs.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import holoviews as hv
import pandas as pd
import panel as pn
import param

from workbench.config import Settings, load_settings
from workbench.data.importer import import_files
from workbench.data.quality import QualityReport, check_bars
from workbench.data.store import MarketStore
from workbench.data.timeframes import timeframe_ms
from workbench.errors import WorkbenchError
from workbench.jobs import JobRun, run_job
from workbench.ui.market_view import TIMEFRAMES

#: Store kinds that hold bars, and the price each one is of (see ``MarketStore.upsert_bars``).
BAR_PRICES = {"bars": "trade", "mark": "mark", "index": "index"}
KEY = ["kind", "exchange", "symbol", "timeframe"]
COLUMNS = [
    "kind", "exchange", "symbol", "timeframe", "first", "last", "rows", "missing", "findings", "ok",
]
IMPORTABLE = (".parquet", ".pq", ".csv")


class DataHealth(pn.viewable.Viewer):
    """The store's series with their quality; gaps and chart of the selected one; import
    and backfill controls. ``refresh()`` re-reads the store."""

    store = param.ClassSelector(class_=MarketStore, constant=True, doc="The store shown.")
    settings = param.ClassSelector(
        class_=Settings, constant=True, doc="Where backfill jobs run; their store is settings'."
    )
    series = param.DataFrame(doc="One row per stored series, with its quality findings.")
    selected = param.Integer(
        default=None, allow_None=True, doc="Row of `series` whose gaps and chart are shown."
    )
    import_path = param.String(default="", doc="A market-data file, or a folder of them.")
    exchange = param.String(default="sim", doc="Backfill from: sim, alpaca or a ccxt id.")
    symbols = param.String(default="BTC/USDT", doc="Backfill symbols, comma-separated.")
    timeframe = param.Selector(default="1h", objects=list(TIMEFRAMES), doc="Backfill bars.")
    start = param.String(default="", doc="Backfill from (ISO date, UTC); empty: 7 days ago.")
    busy = param.Boolean(default=False, doc="A backfill is running (its button is disabled).")
    message = param.String(default="", doc="The outcome of the last import or backfill.")
    alert_type = param.Selector(default="info", objects=["info", "success", "warning", "danger"])

    def __init__(self, store: MarketStore, settings: Settings | None = None, **params: object):
        super().__init__(store=store, settings=settings or load_settings(), **params)
        self._reports: list[QualityReport | None] = []
        self._table = pn.widgets.Tabulator(
            self.param.series, show_index=False, disabled=True, selectable=1,
            sizing_mode="stretch_width", layout="fit_data_stretch", pagination="local", page_size=10,
        )
        self._table.param.watch(self._on_select, "selection")
        self.refresh()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **params: object) -> DataHealth:
        """Over the store the settings point at, so backfills land in the table shown."""
        settings = settings or load_settings()
        return cls(MarketStore.from_settings(settings), settings, **params)

    def refresh(self) -> None:
        """Re-read the store and re-check every bar series, keeping the selected series."""
        key = self._key(self.selected)
        listing = self.store.list()
        self._reports = [self._check(*row) for row in listing[KEY].itertuples(index=False)]
        keys = list(listing[KEY].itertuples(index=False, name=None))
        self.param.update(
            series=_with_quality(listing, self._reports),
            selected=keys.index(key) if key in keys else None,
        )

    def import_files(self) -> None:
        """Import ``import_path`` under the reject policy; failures become an alert."""
        if not self.import_path.strip():
            self._tell("warning", "Enter the path of a file or folder to import.")
            return
        files = _files_at(Path(self.import_path.strip()).expanduser())
        if not files:
            self._tell("danger", f"**Import failed.** No {'/'.join(IMPORTABLE)} files in {self.import_path}.")
            return
        try:
            result = import_files(self.store, files)
        except WorkbenchError as exc:
            self._tell("danger", f"**Import failed.** {exc}")
            return
        self.refresh()
        written = int(result["written"].sum())
        self._tell("success", f"Imported {len(result)} file(s): {written:,} new rows.")

    async def backfill(self) -> JobRun | None:
        """Run the backfill job off the event loop, then show its outcome and new data."""
        parameters = {
            "exchange": self.exchange, "symbols": self.symbols,
            "timeframe": self.timeframe, "start": self.start,
        }
        job = partial(run_job, "backfill", parameters, settings=self.settings)
        self.busy = True
        self._tell("info", f"Backfilling {self.symbols} {self.timeframe}…")
        try:
            run = await asyncio.get_running_loop().run_in_executor(None, job)
        except WorkbenchError as exc:
            self._tell("danger", f"**Backfill refused.** {exc}")
            return None
        finally:
            self.busy = False
        self.refresh()
        self._tell("success" if run.ok else "warning", f"Backfill: {run}")
        return run

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.Alert(
                self.param.message, alert_type=self.param.alert_type,
                visible=self.param.message.rx.bool(), sizing_mode="stretch_width",
            ),
            pn.Row(self._import_controls(), self._backfill_controls(), sizing_mode="stretch_width"),
            self._table,
            pn.Row(
                pn.Column("#### Gaps", self._gaps_table, width=470),
                pn.pane.HoloViews(self._chart, sizing_mode="stretch_width", height=300),
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )

    # -- building blocks ---------------------------------------------------------------------

    def _import_controls(self) -> pn.viewable.Viewable:
        path = pn.widgets.TextInput.from_param(
            self.param.import_path, name="Import files",
            placeholder="a .parquet/.csv file or a folder of them", width=360,
        )
        button = pn.widgets.Button(label="Import", color="primary", align="end")
        button.on_click(lambda _: self.import_files())
        return pn.Row(path, button)

    def _backfill_controls(self) -> pn.viewable.Viewable:
        button = pn.widgets.Button(
            label="Backfill", color="primary", align="end", disabled=self.param.busy
        )
        button.on_click(self._on_backfill)
        return pn.Row(
            pn.widgets.TextInput.from_param(self.param.exchange, width=90),
            pn.widgets.TextInput.from_param(self.param.symbols, width=180),
            pn.widgets.Select.from_param(self.param.timeframe, width=80),
            pn.widgets.TextInput.from_param(self.param.start, placeholder="YYYY-MM-DD", width=120),
            button,
        )

    @param.depends("selected", "series")
    def _gaps_table(self) -> pn.viewable.Viewable:
        report = self._report(self.selected)
        if report is None:
            return pn.pane.Markdown("Select a bar series to see its gaps.")
        if report.gaps.empty:
            return pn.pane.Markdown(f"{report.symbol} {report.timeframe}: no gaps.")
        return pn.widgets.Tabulator(
            report.gaps, show_index=False, disabled=True, layout="fit_data_table",
            pagination="local", page_size=8,
        )

    @param.depends("selected", "series")
    def _chart(self) -> hv.Overlay | hv.Curve:
        report = self._report(self.selected)
        if report is None:
            return hv.Curve([], "timestamp", "close").opts(responsive=True, height=300)
        row = self.series.iloc[self.selected]
        bars = self.store.bars(row.exchange, row.symbol, row.timeframe, price=BAR_PRICES[row.kind])
        close = hv.Curve((bars.index.tz_localize(None), bars["close"]), "timestamp", "close")
        step = pd.Timedelta(milliseconds=timeframe_ms(row.timeframe))
        spans = hv.VSpans(
            (_naive(report.gaps["start"] - step / 2), _naive(report.gaps["end"] + step / 2))
        )
        title = f"{row.symbol} {row.timeframe} close, gaps shaded"
        return (close * spans.opts(color="red", alpha=0.3)).opts(
            title=title, responsive=True, height=300, tools=["hover"], active_tools=["wheel_zoom"]
        )

    def _check(self, kind: str, exchange: str, symbol: str, timeframe: str) -> QualityReport | None:
        """The quality report of a bar series; None for trades and funding."""
        if kind not in BAR_PRICES:
            return None
        bars = self.store.bars(exchange, symbol, timeframe, price=BAR_PRICES[kind])
        return check_bars(bars, timeframe, symbol=symbol)

    def _report(self, index: int | None) -> QualityReport | None:
        return None if index is None else self._reports[index]

    def _key(self, index: int | None) -> tuple[str, ...] | None:
        if index is None or self.series is None:
            return None
        return tuple(self.series.iloc[index][KEY])

    def _on_select(self, event: param.parameterized.Event) -> None:
        self.selected = event.new[0] if event.new else None

    @param.depends("selected", "series", watch=True)
    def _select_row(self) -> None:
        """Keeps the table's highlight in step when `selected` is set in code."""
        self._table.selection = [] if self.selected is None else [self.selected]

    async def _on_backfill(self, _: object) -> None:
        await self.backfill()

    def _tell(self, alert_type: str, message: str) -> None:
        self.param.update(alert_type=alert_type, message=message)


def _with_quality(listing: pd.DataFrame, reports: list[QualityReport | None]) -> pd.DataFrame:
    """The store's listing with each bar series' missing bars, findings and verdict."""
    frame = listing.copy()
    frame["missing"] = pd.array([r.missing_bars if r else pd.NA for r in reports], dtype="Int64")
    frame["findings"] = [r.findings() if r else "" for r in reports]
    frame["ok"] = pd.array([r.ok if r else pd.NA for r in reports], dtype="boolean")
    return frame[COLUMNS]


def _files_at(path: Path) -> list[Path]:
    """The file itself, or the importable files under a folder (a bad path fails on read)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMPORTABLE)
    return [path]


def _naive(times: pd.Series) -> pd.Series:
    """UTC times without their zone: Bokeh draws naive datetimes as they read."""
    return times.dt.tz_localize(None)
