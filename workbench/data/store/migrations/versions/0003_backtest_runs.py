"""Backtest runs: one row per recorded backtest (strategy, parameters, data fingerprint,
code version, seed, headline stats), for ``workbench backtest list`` and comparisons.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backtest_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("strategy", sa.String(128), nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("parameters", sa.Text, nullable=False),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("symbols", sa.Text, nullable=False),
        sa.Column("exchange", sa.String(64)),
        sa.Column("timeframe", sa.String(8)),
        sa.Column("data_start", sa.DateTime(timezone=True)),
        sa.Column("data_end", sa.DateTime(timezone=True)),
        sa.Column("bars", sa.Integer, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("commit", sa.String(64)),
        sa.Column("seed", sa.BigInteger),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("stats", sa.Text, nullable=False),
        sa.Column("total_return", sa.Float(53)),
        sa.Column("sharpe", sa.Float(53)),
        sa.Column("max_drawdown", sa.Float(53)),
        sa.Column("trades", sa.Integer),
        sa.Column("final_equity", sa.Float(53)),
    )
    op.create_index("ix_backtest_runs_strategy_created", "backtest_runs", ["strategy", "created"])
    op.create_index("ix_backtest_runs_fingerprint", "backtest_runs", ["fingerprint"])


def downgrade() -> None:
    op.drop_table("backtest_runs")
