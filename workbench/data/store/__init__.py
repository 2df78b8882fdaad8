"""The market store (SQLAlchemy 2, Alembic migrations; SQLite by default, PostgreSQL by URL)."""

from workbench.data.store.store import MarketStore

__all__ = ["MarketStore"]
