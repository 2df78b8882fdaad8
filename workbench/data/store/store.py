"""``MarketStore``: bars, trades and funding in a SQL database, read back as DataFrames."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from workbench.data import model
from workbench.data.resample import resample_bars
from workbench.data.sources.base import TimeLike, as_timestamp
from workbench.data.store import _segments as seg
from workbench.data.store.database import Database
from workbench.data.store.schema import bar_segments, funding, series, trades
from workbench.data.timeframes import is_fixed, timeframe_ms
from workbench.errors import StoreError

if TYPE_CHECKING:
    from workbench.config import Settings
    from workbench.data.sources.base import MarketSource

BAR_KINDS = {"trade": "bars", "mark": "mark", "index": "index"}
_MAX_MS = 9_000_000_000_000  # 2255-03-14: beyond any bar, within pandas' range


def _ms(value: TimeLike, default: int) -> int:
    stamp = as_timestamp(value)
    return default if stamp is None else int(stamp.value // 1_000_000)


class MarketStore(Database):
    """Market data in SQLite (the embedded default) or PostgreSQL, keyed by
    (exchange, symbol, timeframe, timestamp).

    Writes are idempotent upserts (writing the same bars twice leaves the same rows; a newer
    value for a stored time replaces it). Reads return the data convention of
    :mod:`workbench.data.model`. The schema is migrated to the newest revision on open.
    """

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> MarketStore:
        """The store the settings point at (``data/workbench.db`` by default)."""
        from workbench.config import load_settings

        return cls((settings or load_settings()).store_url)

    # -- bars ------------------------------------------------------------------------------

    def upsert_bars(
        self, exchange: str, symbol: str, timeframe: str, bars: pd.DataFrame, *, price: str = "trade"
    ) -> int:
        """Insert or replace bars; returns how many bars were new (not replacements).

        ``price`` says which price the bars are of: ``trade`` (the default), or a
        perpetual's ``mark`` or ``index`` price, kept as separate series."""
        bars = model.to_bars(bars)
        step = timeframe_ms(timeframe)
        if bars.empty:
            return 0
        ts = bars.index.asi8 // 1_000_000
        incoming = seg.Block(ts, bars.to_numpy(dtype="float64").T)
        parts = seg.split(incoming, seg.segment_span(step))
        with self._write() as conn:
            sid = self._series_id(conn, _bar_kind(price), exchange, symbol, timeframe, create=True)
            stored = self._segments(conn, sid, list(parts))
            rows, added = [], 0
            for start, new in parts.items():
                old = stored.get(start)
                merged = seg.merge(old, new) if old is not None else new
                added += len(merged) - (len(old) if old is not None else 0)
                rows.append({"series_id": sid, "start_ts": start, "rows": len(merged), "data": seg.encode(merged)})
            self._upsert(conn, bar_segments, rows, ("series_id", "start_ts"), ("rows", "data"))
            self._touch_series(conn, sid, int(ts[0]), int(ts[-1]), added)
        return added

    def bars(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: TimeLike = None,
        end: TimeLike = None,
        *,
        price: str = "trade",
    ) -> pd.DataFrame:
        """Bars with open time in [start, end] (``price`` as in :meth:`upsert_bars`).

        When ``timeframe`` is not stored but a finer one that divides it is, the finer bars
        are resampled (see :func:`workbench.data.resample.resample_bars`).
        """
        lo, hi = _ms(start, 0), _ms(end, _MAX_MS)
        with self._engine.connect() as conn:
            kind = _bar_kind(price)
            sid = self._series_id(conn, kind, exchange, symbol, timeframe)
            if sid is None:
                finer = self._finer_timeframe(conn, kind, exchange, symbol, timeframe)
                if finer is None:
                    raise self._unknown(kind, exchange, symbol, timeframe)
                step = timeframe_ms(timeframe)
                fine = self.bars(exchange, symbol, finer, lo - lo % step, hi, price=price)
                return resample_bars(fine, timeframe).loc[as_timestamp(lo) : as_timestamp(hi)]
            span = seg.segment_span(timeframe_ms(timeframe))
            query = (
                select(bar_segments.c.rows, bar_segments.c.data)
                .where(bar_segments.c.series_id == sid)
                .where(bar_segments.c.start_ts.between(lo - lo % span, hi))
                .order_by(bar_segments.c.start_ts)
            )
            block = seg.concat([seg.decode(data, rows) for rows, data in conn.execute(query)])
        first = int(np.searchsorted(block.ts, lo, side="left"))
        last = int(np.searchsorted(block.ts, hi, side="right"))
        return model.bars_from_arrays(block.ts[first:last], block.values[:, first:last])

    def bar_times(self, exchange: str, symbol: str, timeframe: str) -> pd.DatetimeIndex:
        """All stored bar open times of one series (for gap checks)."""
        return self.bars(exchange, symbol, timeframe).index

    # -- trades and funding ------------------------------------------------------------------

    def upsert_trades(self, exchange: str, symbol: str, trade_tape: pd.DataFrame) -> int:
        """Insert or replace trades keyed by (time, trade id); returns rows written."""
        tape = model.to_trades(trade_tape)
        if tape.empty:
            return 0
        ts = tape.index.asi8 // 1_000_000
        rows = [
            {"ts": t, "trade_id": i, "price": p, "amount": a, "side": s}
            for t, i, p, a, s in zip(
                ts.tolist(), tape["id"].tolist(), tape["price"].tolist(),
                tape["amount"].tolist(), tape["side"].tolist(),
            )
        ]
        return self._upsert_rows("trades", trades, exchange, symbol, rows, ("ts", "trade_id"), ts)

    def trades(self, exchange: str, symbol: str, start: TimeLike = None, end: TimeLike = None) -> pd.DataFrame:
        """Trades with time in [start, end], in the convention."""
        columns = [trades.c.ts.label("timestamp"), trades.c.price, trades.c.amount, trades.c.side, trades.c.trade_id.label("id")]
        frame = self._read_rows("trades", trades, columns, exchange, symbol, start, end)
        return model.to_trades(frame)

    def upsert_funding(self, exchange: str, symbol: str, rates: pd.DataFrame) -> int:
        """Insert or replace funding rates keyed by funding time; returns rows written."""
        rates = model.to_funding(rates)
        if rates.empty:
            return 0
        ts = rates.index.asi8 // 1_000_000
        mark = rates["mark_price"].to_numpy()
        rows = [
            {"ts": t, "funding_rate": r, "mark_price": None if np.isnan(m) else m}
            for t, r, m in zip(ts.tolist(), rates["funding_rate"].tolist(), mark.tolist())
        ]
        return self._upsert_rows("funding", funding, exchange, symbol, rows, ("ts",), ts)

    def funding(self, exchange: str, symbol: str, start: TimeLike = None, end: TimeLike = None) -> pd.DataFrame:
        """Funding rates with time in [start, end], in the convention."""
        columns = [funding.c.ts.label("timestamp"), funding.c.funding_rate, funding.c.mark_price]
        frame = self._read_rows("funding", funding, columns, exchange, symbol, start, end)
        return model.to_funding(frame)

    # -- what is stored ----------------------------------------------------------------------

    def list(self) -> pd.DataFrame:
        """One row per stored series: kind, exchange, symbol, timeframe, first, last, rows,
        and for bars the number of missing bars between first and last."""
        with self._engine.connect() as conn:
            frame = pd.DataFrame(
                conn.execute(select(series).order_by(series.c.kind, series.c.exchange, series.c.symbol, series.c.timeframe)).mappings().all(),
                columns=[c.name for c in series.columns],
            )
        frame["first"] = pd.to_datetime(frame.pop("first_ts"), unit="ms", utc=True)
        frame["last"] = pd.to_datetime(frame.pop("last_ts"), unit="ms", utc=True)
        frame["missing"] = [
            _missing_bars(row.timeframe, row.first, row.last, row.rows) if row.timeframe else pd.NA
            for row in frame.itertuples()
        ]
        frame["missing"] = frame["missing"].astype("Int64")
        return frame.drop(columns="id")[["kind", "exchange", "symbol", "timeframe", "first", "last", "rows", "missing"]]

    def delete(self, kind: str, exchange: str, symbol: str, timeframe: str = "") -> None:
        """Remove one series and all its data."""
        with self._write() as conn:
            sid = self._series_id(conn, kind, exchange, symbol, timeframe)
            if sid is None:
                raise self._unknown(kind, exchange, symbol, timeframe)
            for table in (bar_segments, trades, funding):
                conn.execute(delete(table).where(table.c.series_id == sid))
            conn.execute(delete(series).where(series.c.id == sid))

    # -- incremental update ---------------------------------------------------------------

    def update(
        self,
        source: MarketSource,
        symbols: Iterable[str],
        timeframe: str,
        start: TimeLike,
        end: TimeLike = None,
        *,
        progress: bool = False,
    ) -> dict[str, int]:
        """Fetch from ``source`` only the bars each symbol is missing at the edges of
        [start, end] (before its first or after its last stored bar); returns new bars
        per symbol. Gaps inside the stored span are left to an explicit backfill."""
        step = timeframe_ms(timeframe)
        lo = _ms(start, 0)
        hi = _ms(end, int(pd.Timestamp.now(tz="UTC").value // 1_000_000))
        added: dict[str, int] = {}
        for symbol in symbols:
            have = self._span(source.name, symbol, timeframe)
            windows = [(lo, hi)] if have is None else [(lo, have[0] - step), (have[1] + step, hi)]
            added[symbol] = 0
            for a, b in windows:
                if a <= b:
                    bars = source.fetch_ohlcv(symbol, timeframe, a, b, progress=progress)
                    added[symbol] += self.upsert_bars(source.name, symbol, timeframe, bars)
        return added

    # -- internals ------------------------------------------------------------------------

    def _series_id(self, conn: Connection, kind: str, exchange: str, symbol: str, timeframe: str, *, create: bool = False) -> int | None:
        """The series' id; with ``create``, made if missing and locked until the transaction
        ends, so concurrent writers of one series take turns (SQLite's writers already do)."""
        key = dict(kind=kind, exchange=exchange, symbol=symbol, timeframe=timeframe)
        if create:
            conn.execute(self._insert(series).values(**key, rows=0).on_conflict_do_nothing(index_elements=list(key)))
        query = select(series.c.id).where(*(series.c[name] == value for name, value in key.items()))
        if create and self._dialect == "postgresql":
            query = query.with_for_update()
        return conn.execute(query).scalar()

    def _span(self, exchange: str, symbol: str, timeframe: str) -> tuple[int, int] | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(series.c.first_ts, series.c.last_ts).where(
                    series.c.kind == "bars", series.c.exchange == exchange,
                    series.c.symbol == symbol, series.c.timeframe == timeframe,
                )
            ).first()
        return None if row is None or row.first_ts is None else (row.first_ts, row.last_ts)

    def _finer_timeframe(self, conn: Connection, kind: str, exchange: str, symbol: str, timeframe: str) -> str | None:
        """The coarsest stored timeframe that divides ``timeframe`` evenly, if any."""
        if not is_fixed(timeframe):
            return None
        target = timeframe_ms(timeframe)
        stored = conn.execute(
            select(series.c.timeframe).where(series.c.kind == kind, series.c.exchange == exchange, series.c.symbol == symbol)
        ).scalars()
        divisors = [tf for tf in stored if is_fixed(tf) and target % timeframe_ms(tf) == 0 and timeframe_ms(tf) < target]
        return max(divisors, key=timeframe_ms, default=None)

    def _segments(self, conn: Connection, sid: int, starts: list[int]) -> dict[int, seg.Block]:
        query = select(bar_segments.c.start_ts, bar_segments.c.rows, bar_segments.c.data).where(
            bar_segments.c.series_id == sid, bar_segments.c.start_ts.in_(starts)
        )
        return {start: seg.decode(data, rows) for start, rows, data in conn.execute(query)}

    def _upsert(self, conn: Connection, table, rows: list[dict], keys: tuple[str, ...], values: tuple[str, ...]) -> None:
        if not rows:
            return
        statement = self._insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=list(keys), set_={name: statement.excluded[name] for name in values}
        )
        conn.execute(statement, rows)

    def _insert(self, table):
        """The dialect's INSERT, which knows ON CONFLICT."""
        return (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(table)

    def _upsert_rows(self, kind: str, table, exchange: str, symbol: str, rows: list[dict], keys: tuple[str, ...], ts: np.ndarray) -> int:
        with self._write() as conn:
            sid = self._series_id(conn, kind, exchange, symbol, "", create=True)
            for row in rows:
                row["series_id"] = sid
            before = self._count(conn, table, sid)
            values = tuple(c.name for c in table.columns if c.name not in keys and c.name != "series_id")
            self._upsert(conn, table, rows, ("series_id", *keys), values)
            self._touch_series(conn, sid, int(ts.min()), int(ts.max()), self._count(conn, table, sid) - before)
        return len(rows)

    def _read_rows(self, kind: str, table, columns: list, exchange: str, symbol: str, start: TimeLike, end: TimeLike) -> pd.DataFrame:
        with self._engine.connect() as conn:
            sid = self._series_id(conn, kind, exchange, symbol, "")
            if sid is None:
                raise self._unknown(kind, exchange, symbol, "")
            query = (
                select(*columns)
                .where(table.c.series_id == sid, table.c.ts.between(_ms(start, 0), _ms(end, _MAX_MS)))
                .order_by(table.c.ts)
            )
            result = conn.execute(query)
            return pd.DataFrame(result.all(), columns=list(result.keys()))

    @staticmethod
    def _count(conn: Connection, table, sid: int) -> int:
        return conn.execute(select(func.count()).select_from(table).where(table.c.series_id == sid)).scalar_one()

    @staticmethod
    def _touch_series(conn: Connection, sid: int, first: int, last: int, added: int) -> None:
        conn.execute(
            update(series)
            .where(series.c.id == sid)
            .values(
                first_ts=_least(series.c.first_ts, first, conn),
                last_ts=_greatest(series.c.last_ts, last, conn),
                rows=series.c.rows + added,
            )
        )

    def _unknown(self, kind: str, exchange: str, symbol: str, timeframe: str) -> StoreError:
        what = f"{kind} {exchange} {symbol}" + (f" {timeframe}" if timeframe else "")
        stored = self.list()
        held = ", ".join(
            f"{r.exchange} {r.symbol} {r.timeframe}".strip() for r in stored[stored.kind == kind].itertuples()
        ) or "none"
        return StoreError(f"The store holds no {what}. Stored {kind}: {held}. Import or fetch it first (workbench data import/fetch).")


def _bar_kind(price: str) -> str:
    try:
        return BAR_KINDS[price]
    except KeyError:
        raise StoreError(f"Unknown bar price {price!r}; use one of {', '.join(BAR_KINDS)}.") from None


def _least(column, value: int, conn: Connection):
    name = "least" if conn.dialect.name == "postgresql" else "min"
    return func.coalesce(getattr(func, name)(column, value), value)


def _greatest(column, value: int, conn: Connection):
    name = "greatest" if conn.dialect.name == "postgresql" else "max"
    return func.coalesce(getattr(func, name)(column, value), value)


def _missing_bars(timeframe: str, first: pd.Timestamp, last: pd.Timestamp, rows: int) -> int | None:
    if not is_fixed(timeframe) or pd.isna(first):
        return None
    expected = (last - first) // pd.Timedelta(milliseconds=timeframe_ms(timeframe)) + 1
    return int(expected - rows)
