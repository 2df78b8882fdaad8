"""The dashboard: a Panel template around the workbench's views, built per browser session.

``create_app()`` runs once per session, so every visitor gets their own market source,
views and streaming task; each view stops its stream when its session is destroyed.
Served by ``workbench serve``, or directly with ``panel serve workbench/ui/app.py``.
"""

from __future__ import annotations

import panel as pn

from workbench.config import Settings, load_settings
from workbench.data.sources.simulated import SimulatedMarket
from workbench.ui.market_view import MarketView

#: Simulated seconds per wall second in the default market: a new 1m bar every 2 seconds.
SPEED = 30.0


def create_app(
    settings: Settings | None = None, *, speed: float = SPEED
) -> pn.template.BootstrapTemplate:
    """The dashboard over the embedded default: a simulated market seeded from the settings."""
    settings = settings or load_settings()
    market = SimulatedMarket(seed=settings.seed)
    return pn.template.BootstrapTemplate(
        title="Trading Workbench",
        main=[MarketView(market, stream_options={"speed": speed})],
    )


if pn.state.served:  # `panel serve workbench/ui/app.py`
    create_app().servable()
