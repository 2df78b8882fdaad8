"""``workbench data``: import, fetch, list and check what the market store holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from workbench.cli import app

data_app = typer.Typer(help="Market data: import files, fetch from exchanges, list, check.", no_args_is_help=True)
app.add_typer(data_app, name="data")

Unit = typer.Option("--unit", help="Epoch unit of numeric timestamps in the files (ms, s, us, ns).")
PolicyOpt = typer.Option("--policy", help="On quality errors: reject (default), repair, or flag.")


def _store():
    from workbench.data.store import MarketStore

    return MarketStore.from_settings()


def _show(frame: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 500):
        typer.echo(frame.to_string(index=False) if len(frame) else "(nothing)")


@data_app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Parquet or CSV files.")],
    exchange: Annotated[str | None, typer.Option(help="Exchange id (else from the path).")] = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol, ccxt spelling (else from the path).")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Timeframe of bar files (else from the path).")] = None,
    kind: Annotated[str | None, typer.Option(help="bars, trades or funding (else from the path).")] = None,
    unit: Annotated[str, Unit] = "ms",
    policy: Annotated[str, PolicyOpt] = "reject",
) -> None:
    """Import files into the store. Every file is read and checked before anything is written."""
    from workbench.data.importer import import_files

    with _store() as store:
        result = import_files(
            store, paths, unit=unit, policy=policy,
            exchange=exchange, symbol=symbol, timeframe=timeframe, kind=kind,
        )
    _show(result)


@data_app.command("fetch")
def fetch(
    symbols: Annotated[list[str], typer.Argument(help="Symbols in ccxt spelling, e.g. BTC/USDT.")],
    timeframe: Annotated[str, typer.Option(help="Bar timeframe, ccxt spelling.")] = "1h",
    start: Annotated[str, typer.Option(help="First bar time (ISO date or datetime, UTC).")] = ...,
    end: Annotated[str | None, typer.Option(help="Last bar time (default: now).")] = None,
    exchange: Annotated[str | None, typer.Option(help="ccxt exchange id, 'alpaca' or 'sim' (default: settings).")] = None,
) -> None:
    """Fetch the bars the store is missing from an exchange (incremental, with progress)."""
    from workbench.data.sources import open_source

    source = open_source(exchange)
    with _store() as store:
        added = store.update(source, symbols, timeframe, start, end, progress=True)
    _show(pd.DataFrame({"symbol": list(added), "new_bars": list(added.values())}))


@data_app.command("list")
def list_() -> None:
    """What the store holds: kind, exchange, symbol, timeframe, first, last, rows, missing bars."""
    with _store() as store:
        _show(store.list())


@data_app.command("check")
def check(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files to check instead of the store.")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Timeframe of the files (else from the path).")] = None,
    unit: Annotated[str, Unit] = "ms",
    outlier_sigma: Annotated[float, typer.Option(help="Robust sigmas beyond which a return is an outlier.")] = 20.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print each report in full.")] = False,
) -> None:
    """The data-quality report per series: gaps, duplicates, bad prices, outliers. Exits 1 on errors."""
    from workbench.data.files import describe, read_table
    from workbench.data.quality import check_bars

    rows, reports = [], []
    if paths:
        for path in paths:
            spec = describe(path, timeframe=timeframe, kind="bars")
            bars = read_table(path)
            reports.append(check_bars(bars, spec.timeframe, symbol=spec.symbol, unit=unit, outlier_sigma=outlier_sigma))
            rows.append({"file": path.name})
    else:
        with _store() as store:
            for series in store.list().itertuples():
                if series.timeframe:
                    bars = store.bars(series.exchange, series.symbol, series.timeframe, price=_price(series.kind))
                    reports.append(check_bars(bars, series.timeframe, symbol=series.symbol, outlier_sigma=outlier_sigma))
                    rows.append({"exchange": series.exchange, "kind": series.kind})
    for row, report in zip(rows, reports):
        row.update(symbol=report.symbol, timeframe=report.timeframe, rows=report.rows,
                   missing_bars=report.missing_bars, gaps=len(report.gaps), findings=report.findings(), ok=report.ok)
        if verbose:
            typer.echo(str(report))
    _show(pd.DataFrame(rows))
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def _price(kind: str) -> str:
    from workbench.data.store.store import BAR_KINDS

    return {v: k for k, v in BAR_KINDS.items()}[kind]
