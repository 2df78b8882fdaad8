"""Run records: every backtest kept in the store, so runs can be listed, found and compared.

    result = Backtest(bars, MovingAverageCross(fast=10, slow=50), fees=0.001).run()
    run = record_run(result)              # into the store the settings point at
    with BacktestRuns.from_settings() as runs:
        runs.list(strategy="MovingAverageCross")
        runs.compare([run.id, 7])

A record holds what is needed to tell runs apart and to repeat one: the strategy class,
label and parameters, the account and venue settings, the data (symbols, timeframe, span
and a :func:`fingerprint` of the bars' values), the code version (package version and git
commit, ``+dirty`` for uncommitted changes), the seed, and the headline stats (all of them
as JSON, the ones worth sorting by also as columns). The table is ``backtest_runs``
(migration 0003), beside the market data and the job runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)

import workbench
from workbench.data.store.database import Database
from workbench.errors import DataFormatError, StoreError

if TYPE_CHECKING:
    from workbench.backtest.api import BacktestResult
    from workbench.config import Settings

#: Stats kept as real columns too, for sorting and filtering in SQL.
HEADLINE = ("total_return", "sharpe", "max_drawdown", "trades", "final_equity")
#: Bar columns the fingerprint covers, in this order (the data convention's).
FINGERPRINT_COLUMNS = ("open", "high", "low", "close", "volume")

backtest_runs = Table(
    "backtest_runs",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("strategy", String(128), nullable=False),  # the strategy's class name
    Column("label", String(255), nullable=False),  # e.g. "SMA(10)/SMA(50)"
    Column("parameters", Text, nullable=False),  # JSON
    Column("settings", Text, nullable=False),  # JSON: cash, fees, slippage, ...
    Column("symbols", Text, nullable=False),  # JSON list
    Column("exchange", String(64)),  # where the bars came from, when known
    Column("timeframe", String(8)),
    Column("data_start", DateTime(timezone=True)),
    Column("data_end", DateTime(timezone=True)),
    Column("bars", Integer, nullable=False),  # bar rows over all symbols
    Column("fingerprint", String(64), nullable=False),  # sha256 hex of the bars
    Column("version", String(64), nullable=False),  # the workbench package version
    Column("commit", String(64)),  # git commit (+dirty), None outside a git checkout
    Column("seed", BigInteger),
    Column("note", Text, nullable=False),
    Column("stats", Text, nullable=False),  # JSON: every stat, NaN as null
    Column("total_return", Float(53)),
    Column("sharpe", Float(53)),
    Column("max_drawdown", Float(53)),
    Column("trades", Integer),
    Column("final_equity", Float(53)),
)


@dataclass(frozen=True)
class RunRecord:
    """One recorded backtest run, as read back from the store."""

    id: int
    created: pd.Timestamp
    strategy: str
    label: str
    parameters: dict[str, Any]
    settings: dict[str, Any]
    symbols: list[str]
    exchange: str | None
    timeframe: str | None
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    bars: int
    fingerprint: str
    version: str
    commit: str | None
    seed: int | None
    note: str
    stats: pd.Series = field(compare=False)  # same id, same stats; a Series has no ==

    @property
    def code_version(self) -> str:
        """``0.1.0`` or ``0.1.0 (git 021f023c…+dirty)``."""
        return self.version + (f" (git {self.commit})" if self.commit else "")

    def __str__(self) -> str:
        data = ", ".join(self.symbols) + (f" {self.timeframe}" if self.timeframe else "")
        if self.exchange:
            data += f" from {self.exchange}"
        lines = {
            "run": self.id,
            "created": self.created.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "strategy": f"{self.strategy} {self.label}",
            "parameters": _inline(self.parameters),
            "settings": _inline({k: v for k, v in self.settings.items() if v is not None}),
            "data": f"{data}, {self.bars} bars, {self.start} to {self.end}",
            "fingerprint": self.fingerprint,
            "code": self.code_version,
            "seed": self.seed,
            "note": self.note or None,
        }
        head = [f"{key:12} {value}" for key, value in lines.items() if value is not None]
        return "\n".join([*head, "", format_stats(self.stats)])


class BacktestRuns(Database):
    """Backtest run records in the workbench store (SQLite by default, PostgreSQL by URL)."""

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> BacktestRuns:
        """The store the settings point at (``data/workbench.db`` by default)."""
        from workbench.config import load_settings

        return cls((settings or load_settings()).store_url)

    def record(
        self,
        result: BacktestResult,
        *,
        data_fingerprint: str | None = None,
        seed: int | None = None,
        note: str = "",
        exchange: str | None = None,
        timeframe: str | None = None,
    ) -> RunRecord:
        """Store ``result`` as a new run and return its record.

        ``data_fingerprint`` defaults to :func:`fingerprint` of ``result.bars``;
        ``timeframe`` to the one the bars' spacing shows. ``seed``: whatever seeded the run
        or its data (a simulated market's, a Monte Carlo's), so it can be repeated.
        """
        bars = result.bars
        starts = [frame.index[0] for frame in bars.values() if len(frame)]
        ends = [frame.index[-1] for frame in bars.values() if len(frame)]
        version, commit = code_version()
        stats = {str(k): _plain(v) for k, v in result.stats.items()}
        strategy = result.strategy
        row = {
            "created": datetime.now(UTC),
            "strategy": type(strategy).__name__,
            "label": str(result.label)[:255],
            "parameters": _dumps(result.params),
            "settings": _dumps(result.settings),
            "symbols": _dumps(list(bars)),
            "exchange": exchange,
            "timeframe": timeframe or infer_timeframe(bars),
            "data_start": min(starts).to_pydatetime() if starts else None,
            "data_end": max(ends).to_pydatetime() if ends else None,
            "bars": sum(len(frame) for frame in bars.values()),
            "fingerprint": data_fingerprint or fingerprint(bars),
            "version": version,
            "commit": commit,
            "seed": None if seed is None else int(seed),
            "note": note,
            "stats": _dumps(stats),
            **{name: _headline(name, result.stats.get(name)) for name in HEADLINE},
        }
        with self._write() as conn:
            run_id = conn.execute(
                insert(backtest_runs).values(row).returning(backtest_runs.c.id)
            ).scalar_one()
        return self.get(run_id)

    def get(self, run_id: int) -> RunRecord:
        """The run ``run_id``; a :class:`StoreError` naming the newest ids if there is none."""
        with self._engine.connect() as conn:
            row = (
                conn.execute(select(backtest_runs).where(backtest_runs.c.id == int(run_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise self._missing([run_id])
        return _record(row)

    def list(self, strategy: str | None = None, limit: int = 50) -> pd.DataFrame:
        """The newest ``limit`` runs (of the ``strategy`` class, or of all), newest first:
        id, created, strategy, label, symbols, timeframe, start, end, the headline stats,
        parameters, fingerprint, version, commit, seed, note."""
        query = select(backtest_runs).order_by(backtest_runs.c.id.desc()).limit(limit)
        if strategy is not None:
            query = query.where(backtest_runs.c.strategy == strategy)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        records = [_record(row) for row in rows]
        columns = [
            "id", "created", "strategy", "label", "symbols", "exchange", "timeframe", "start",
            "end", *HEADLINE, "parameters", "fingerprint", "version", "commit", "seed", "note",
        ]  # fmt: skip
        frame = pd.DataFrame(
            [
                {
                    **{name: getattr(r, name) for name in columns if hasattr(r, name)},
                    **{name: r.stats.get(name, np.nan) for name in HEADLINE},
                    "symbols": ",".join(r.symbols),
                }
                for r in records
            ],
            columns=columns,
        )
        for name in ("created", "start", "end"):
            frame[name] = pd.to_datetime(frame[name], utc=True)
        return frame.astype({"id": "int64", "trades": "Int64", "seed": "Int64"})

    def compare(self, ids: Iterable[int]) -> pd.DataFrame:
        """Runs side by side, one column per run id (in the order given): what was run
        (strategy, label, data, code, parameters as ``param.NAME``, ``settings.cash``, ``.fees``
        and ``.slippage``), then every stat. Refuses unknown ids, naming them."""
        ids = [int(i) for i in ids]
        with self._engine.connect() as conn:
            rows = (
                conn.execute(select(backtest_runs).where(backtest_runs.c.id.in_(ids)))
                .mappings()
                .all()
            )
        found = {row["id"]: _record(row) for row in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise self._missing(missing)
        columns = {}
        for run_id in ids:
            r = found[run_id]
            column = {
                "strategy": r.strategy,
                "label": r.label,
                "symbols": ",".join(r.symbols),
                "timeframe": r.timeframe,
                "fingerprint": r.fingerprint[:12],
                "code": r.code_version,
                **{f"param.{k}": v for k, v in r.parameters.items()},
                **{f"settings.{k}": r.settings.get(k) for k in ("cash", "fees", "slippage")},
                **r.stats.to_dict(),
            }
            columns[run_id] = pd.Series(column, dtype=object)
        seen = list(dict.fromkeys(name for column in columns.values() for name in column.index))
        group = {"param": 1, "settings": 2}  # what ran, its parameters, settings, then stats
        stats = {name for r in found.values() for name in r.stats.index}
        rows = sorted(seen, key=lambda n: 3 if n in stats else group.get(n.split(".")[0], 0))
        frame = pd.DataFrame(columns).reindex(rows)  # each group in first-seen order
        frame.columns.name = "run"
        return frame

    def _missing(self, ids: list[int]) -> StoreError:
        with self._engine.connect() as conn:
            newest = conn.execute(
                select(backtest_runs.c.id).order_by(backtest_runs.c.id.desc()).limit(10)
            ).scalars()
            held = ", ".join(str(i) for i in newest) or "none"
        which = ", ".join(str(i) for i in ids)
        return StoreError(
            f"No backtest run {which} in the store. Newest runs: {held} "
            f"(workbench backtest list shows them)."
        )


def record_run(result: BacktestResult, store_url: str | None = None, **details: Any) -> RunRecord:
    """Record ``result`` in the store at ``store_url`` (default: the settings' store) and
    return the record; ``details`` are :meth:`BacktestRuns.record`'s keywords."""
    if store_url is None:
        from workbench.config import load_settings

        store_url = load_settings().store_url
    with BacktestRuns(store_url) as runs:
        return runs.record(result, **details)


# -- fingerprint and code version -------------------------------------------------------------


def fingerprint(bars: Mapping[str, pd.DataFrame] | pd.DataFrame) -> str:
    """A stable sha256 (hex) of the bars: per symbol, in name order, its name, its times as
    int64 UTC nanoseconds and its OHLCV values as float64. A copy (or another column order,
    or another time resolution) gives the same value; any changed price, volume or time
    does not. One frame is fingerprinted as the symbol ``asset``, as Backtest trades it."""
    if isinstance(bars, pd.DataFrame):
        bars = {"asset": bars}
    digest = hashlib.sha256(b"workbench-bars-v1\0")
    for symbol in sorted(bars):
        frame = bars[symbol]
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise DataFormatError(
                f"Bars of {symbol!r} need a DatetimeIndex to be fingerprinted (see "
                f"workbench.data.model.to_bars), not {type(frame.index).__name__}."
            )
        absent = [c for c in FINGERPRINT_COLUMNS if c not in frame]
        if absent:
            raise DataFormatError(f"Bars of {symbol!r} lack the columns {absent}.")
        index = frame.index if frame.index.tz is None else frame.index.tz_convert("UTC")
        times = np.ascontiguousarray(index.as_unit("ns").asi8, dtype="<i8")
        values = frame[list(FINGERPRINT_COLUMNS)].to_numpy(dtype="float64", na_value=np.nan)
        values = np.where(np.isnan(values), np.nan, values)  # one NaN bit pattern
        name = symbol.encode()
        digest.update(len(name).to_bytes(4, "little") + name)
        digest.update(len(times).to_bytes(8, "little"))
        digest.update(times.tobytes())
        digest.update(np.ascontiguousarray(values.T, dtype="<f8").tobytes())
    return digest.hexdigest()


def code_version(root: Path | None = None) -> tuple[str, str | None]:
    """The workbench version and the git commit of ``root`` (default: the checkout the
    package runs from), ``+dirty`` when ``git status --porcelain`` shows changes; the
    commit is None without git, outside a checkout, or before the first commit."""
    root = Path(root or Path(workbench.__file__).resolve().parent.parent)
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root.resolve():
        return workbench.__version__, None  # not a checkout of its own (e.g. site-packages)
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return workbench.__version__, None
    status = _git(root, "status", "--porcelain")
    return workbench.__version__, commit + ("+dirty" if status else "")


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


_UNITS = (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def infer_timeframe(bars: Mapping[str, pd.DataFrame]) -> str | None:
    """The timeframe the median bar spacing shows (``5m``, ``1h``, ``1d``; ``1M`` for about a
    month), or None with fewer than two bars or an irregular spacing."""
    gaps = [np.diff(frame.index.as_unit("s").asi8) for frame in bars.values() if len(frame) > 1]
    if not gaps:
        return None
    seconds = int(np.median(np.concatenate(gaps)))
    if 28 * 86_400 <= seconds <= 31 * 86_400:
        return "1M"
    for unit, size in _UNITS:
        if seconds > 0 and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return None


# -- JSON in and out ---------------------------------------------------------------------------

_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
_ISO_DURATION = re.compile(r"^-?P\d+DT\d+H\d+M[\d.]+S$")  # as Timedelta.isoformat() writes


def _plain(value: Any) -> Any:
    """``value`` as plain JSON: Timestamps and Timedeltas as ISO 8601 strings, NaN as null,
    infinities as "Infinity", numpy scalars as numbers, dataclasses (a FeeSchedule, a
    slippage model) as their fields and type, anything else as its repr."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, np.datetime64):
        return _plain(pd.Timestamp(value))
    if isinstance(value, np.timedelta64):
        return _plain(pd.Timedelta(value))
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")
    if value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, datetime)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, timedelta):
        return pd.Timedelta(value).isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"type": type(value).__name__, **fields}
    return {"type": type(value).__name__, "repr": repr(value)[:500]}


def _dumps(value: Any) -> str:
    return json.dumps(_plain(value), allow_nan=False, sort_keys=False)


def _stat(value: Any) -> Any:
    """A stat read back from JSON, with its type: NaN, infinities, times, durations."""
    if value is None:
        return np.nan
    if isinstance(value, str):
        if value in ("Infinity", "-Infinity"):
            return math.inf if value[0] == "I" else -math.inf
        if _ISO_TIME.match(value):
            return pd.Timestamp(value)
        if _ISO_DURATION.match(value):
            return pd.Timedelta(value)
    return value


def _headline(name: str, value: Any) -> float | int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if name == "trades":
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def _utc(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def _record(row: Mapping[str, Any]) -> RunRecord:
    stats = json.loads(row["stats"])
    return RunRecord(
        id=row["id"],
        created=_utc(row["created"]),
        strategy=row["strategy"],
        label=row["label"],
        parameters=json.loads(row["parameters"]),
        settings=json.loads(row["settings"]),
        symbols=json.loads(row["symbols"]),
        exchange=row["exchange"],
        timeframe=row["timeframe"],
        start=_utc(row["data_start"]),
        end=_utc(row["data_end"]),
        bars=row["bars"],
        fingerprint=row["fingerprint"],
        version=row["version"],
        commit=row["commit"],
        seed=row["seed"],
        note=row["note"],
        stats=pd.Series({k: _stat(v) for k, v in stats.items()}, name="stats", dtype=object),
    )


def _inline(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def format_stats(stats: pd.Series) -> str:
    """The stats as an aligned two-column table: ratios as percentages where they are
    fractions of equity, money to two decimals, times as they print."""
    percent = {
        "total_return", "annual_return", "volatility", "max_drawdown", "win_rate",
        "average_win", "average_loss", "exposure",
    }  # fmt: skip
    lines = []
    for key, value in stats.items():
        if isinstance(value, float) and key in percent:
            text = f"{value:.2%}" if math.isfinite(value) else str(value)
        elif isinstance(value, float):
            text = f"{value:,.4f}" if abs(value) < 100 else f"{value:,.2f}"
        else:
            text = str(value)
        lines.append(f"{key:22} {text:>24}")
    return "\n".join(lines)
