"""The one exception family users see.

Every failure caused by bad input, configuration or an outside system is a
``WorkbenchError`` whose message says what was wrong and what to do about it.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on purpose."""


class ConfigError(WorkbenchError):
    """Settings are missing, malformed or contradictory."""


class DataFormatError(WorkbenchError):
    """Market data does not follow the convention (columns, index, units, values)."""


class DataQualityError(DataFormatError):
    """Data failed a quality check under the ``reject`` policy."""


class StoreError(WorkbenchError):
    """The market store cannot be reached or refused an operation."""


class SourceError(WorkbenchError):
    """A market source failed: unknown exchange or symbol, network trouble, bad reply."""

    def __init__(self, message: str, *, exchange: str | None = None, symbol: str | None = None):
        super().__init__(message)
        self.exchange = exchange
        self.symbol = symbol


class UnknownSymbolError(SourceError):
    """The source does not list the symbol asked for."""


class StrategyError(WorkbenchError):
    """A strategy raised during a run; the message names the strategy, the bar and the cause
    (chained), and the run stops rather than carry on from a half-handled bar."""


class JobRefusedError(WorkbenchError):
    """A job run was refused before its notebook ran (unknown job, bad or secret-looking
    parameters, or already running), so nothing was written."""
