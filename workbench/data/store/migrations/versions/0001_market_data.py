"""Market data: series, bar segments, trades, funding.

On PostgreSQL with the TimescaleDB extension available, the time-keyed tables become
hypertables (integer time in epoch milliseconds). Without it they stay plain tables.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_WEEK_MS = 7 * 86_400_000
_HYPERTABLES = {"bar_segments": "start_ts", "trades": "ts", "funding": "ts"}


def upgrade() -> None:
    op.create_table(
        "series",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("exchange", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("first_ts", sa.BigInteger),
        sa.Column("last_ts", sa.BigInteger),
        sa.Column("rows", sa.BigInteger, nullable=False, server_default="0"),
        sa.UniqueConstraint("kind", "exchange", "symbol", "timeframe", name="uq_series_key"),
    )
    op.create_table(
        "bar_segments",
        sa.Column("series_id", sa.Integer, _series_fk(), primary_key=True),
        sa.Column("start_ts", sa.BigInteger, primary_key=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "trades",
        sa.Column("series_id", sa.Integer, _series_fk(), primary_key=True),
        sa.Column("ts", sa.BigInteger, primary_key=True),
        sa.Column("trade_id", sa.String(64), primary_key=True),
        sa.Column("price", sa.Float(53), nullable=False),
        sa.Column("amount", sa.Float(53), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
    )
    op.create_table(
        "funding",
        sa.Column("series_id", sa.Integer, _series_fk(), primary_key=True),
        sa.Column("ts", sa.BigInteger, primary_key=True),
        sa.Column("funding_rate", sa.Float(53), nullable=False),
        sa.Column("mark_price", sa.Float(53)),
    )
    if _timescaledb_available():
        op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        for table, column in _HYPERTABLES.items():
            op.execute(
                f"SELECT create_hypertable('{table}', '{column}', "
                f"chunk_time_interval => {_WEEK_MS}, migrate_data => true)"
            )


def downgrade() -> None:
    for table in ("funding", "trades", "bar_segments", "series"):
        op.drop_table(table)


def _series_fk() -> sa.ForeignKey:
    return sa.ForeignKey("series.id", ondelete="CASCADE")


def _timescaledb_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    query = sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    return bind.execute(query).first() is not None
