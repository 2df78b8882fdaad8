"""The store's tables, as SQLAlchemy Core metadata (the migrations create them).

Bars are stored as *segments*: one row per (series, aligned block of up to
``SEGMENT_BARS`` bars) holding the block's timestamps and OHLCV values as one binary
column-major array. Reading a million bars is then a few hundred row fetches and a
``numpy.frombuffer`` instead of a million Python tuples, which keeps range reads within a
small factor of a Parquet file while the database stays the single source of truth
(upserts, gaps and summaries stay transactional). Trades and funding are plain rows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

#: Bars per segment; a segment covers SEGMENT_BARS × timeframe of time, aligned to it.
SEGMENT_BARS = 4096

metadata = MetaData()

series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # "bars", "trades" or "funding"
    Column("exchange", String(64), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("timeframe", String(8), nullable=False),  # "" for trades and funding
    Column("first_ts", BigInteger),  # epoch ms of the first stored row
    Column("last_ts", BigInteger),
    Column("rows", BigInteger, nullable=False, default=0),
    UniqueConstraint("kind", "exchange", "symbol", "timeframe", name="uq_series_key"),
)

bar_segments = Table(
    "bar_segments",
    metadata,
    Column("series_id", Integer, ForeignKey("series.id", ondelete="CASCADE"), primary_key=True),
    Column("start_ts", BigInteger, primary_key=True),  # segment start, epoch ms
    Column("rows", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),  # int64 ts[n] then float64 ohlcv[5][n]
)

trades = Table(
    "trades",
    metadata,
    Column("series_id", Integer, ForeignKey("series.id", ondelete="CASCADE"), primary_key=True),
    Column("ts", BigInteger, primary_key=True),
    Column("trade_id", String(64), primary_key=True),
    Column("price", Float(53), nullable=False),
    Column("amount", Float(53), nullable=False),
    Column("side", String(4), nullable=False),
)

funding = Table(
    "funding",
    metadata,
    Column("series_id", Integer, ForeignKey("series.id", ondelete="CASCADE"), primary_key=True),
    Column("ts", BigInteger, primary_key=True),
    Column("funding_rate", Float(53), nullable=False),
    Column("mark_price", Float(53)),
)
