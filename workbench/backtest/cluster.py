"""The Dask client sweeps and walk-forward windows run on: the user's cluster, or a local one.

::

    from workbench.backtest.cluster import get_client

    with get_client() as client:          # settings.dask_scheduler, else a local cluster
        result = sweep(bars, MovingAverageCross, grid, client=client)

With ``WORKBENCH_DASK_SCHEDULER`` (or ``dask_scheduler`` in workbench.toml) set, the client
connects to that scheduler. Otherwise it starts a local cluster inside this process:
worker threads, no network at all (Dask's in-process transport), no dashboard. Threads
suit the vectorised sweep, whose numba kernels release the GIL; ``processes=True`` gives
worker processes instead (listening on 127.0.0.1 only), for strategies whose Python code
holds the GIL. Close the client when done (``with`` does it); that stops a local cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.config import Settings, load_settings
from workbench.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client


def get_client(
    settings: Settings | None = None,
    *,
    n_workers: int = 2,
    processes: bool = False,
    timeout: str = "10s",
) -> Client:
    """A ``distributed.Client`` on ``settings.dask_scheduler`` (given up after ``timeout``),
    or on a new local cluster of ``n_workers`` single-threaded workers (threads, or
    processes on 127.0.0.1)."""
    from distributed import Client

    settings = load_settings() if settings is None else settings
    if settings.dask_scheduler:
        try:
            return Client(settings.dask_scheduler, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(
                f"Cannot reach the Dask scheduler at {settings.dask_scheduler!r} "
                f"(settings.dask_scheduler): {exc}. Start it, fix the address, or unset "
                f"WORKBENCH_DASK_SCHEDULER to use a local cluster."
            ) from None
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ConfigError(f"n_workers must be a whole number >= 1; got {n_workers!r}.")
    network = {"host": "127.0.0.1"} if processes else {}
    return Client(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=None,
        **network,
    )
