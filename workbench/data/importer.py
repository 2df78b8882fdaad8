"""Importing market-data files into the store: read and check everything, then write."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workbench.data import model
from workbench.data.files import FileSpec, describe, read_table
from workbench.data.quality import Policy, QualityReport, apply_policy
from workbench.data.store import MarketStore


@dataclass
class Prepared:
    """One file read and checked, ready to write."""

    spec: FileSpec
    data: pd.DataFrame
    report: QualityReport | None


def prepare(
    path: str | Path,
    *,
    unit: model.TimeUnit = "ms",
    policy: Policy = "reject",
    **given: str | None,
) -> Prepared:
    """Read one file and bring it into the convention under the quality policy."""
    spec = describe(path, **given)
    raw = read_table(spec.path)
    if spec.kind == "bars":
        data, report = apply_policy(raw, spec.timeframe, policy, symbol=spec.symbol, unit=unit)
        return Prepared(spec, data, report)
    convert = model.to_trades if spec.kind == "trades" else model.to_funding
    return Prepared(spec, convert(raw, unit=unit), None)


def import_files(
    store: MarketStore,
    paths: Sequence[str | Path],
    *,
    unit: model.TimeUnit = "ms",
    policy: Policy = "reject",
    **given: str | None,
) -> pd.DataFrame:
    """Import files into the store; nothing is written unless every file passes.

    Returns one row per file: path, kind, exchange, symbol, timeframe, rows, new rows,
    missing bars and the quality findings (``check:count``; see :mod:`quality`).
    """
    prepared = [prepare(path, unit=unit, policy=policy, **given) for path in paths]
    results = []
    for item in prepared:
        spec = item.spec
        if spec.kind == "bars":
            new = store.upsert_bars(spec.exchange, spec.symbol, spec.timeframe, item.data, price=spec.price)
        elif spec.kind == "trades":
            new = store.upsert_trades(spec.exchange, spec.symbol, item.data)
        else:
            new = store.upsert_funding(spec.exchange, spec.symbol, item.data)
        results.append(
            {
                "path": str(spec.path), "kind": spec.kind if spec.price == "trade" else spec.price,
                "exchange": spec.exchange, "symbol": spec.symbol, "timeframe": spec.timeframe or "",
                "rows": len(item.data), "written": new,
                "missing_bars": item.report.missing_bars if item.report else None,
                "findings": item.report.findings() if item.report else "",
            }
        )
    frame = pd.DataFrame(results)
    frame["missing_bars"] = frame["missing_bars"].astype("Int64")
    return frame
