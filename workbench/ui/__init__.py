"""Panel components and the dashboard; they read from ``workbench.data``, never the reverse."""

from workbench.ui.market_view import MarketView

__all__ = ["MarketView"]
